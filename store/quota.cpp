#include "store/quota.h"

#include <algorithm>
#include <utility>

namespace vigil::store {

QuotaDrops TrimToQuota(Store& store, Journal& journal, const QuotaTrim& trim,
                       const std::function<std::uint64_t()>& used) {
  QuotaDrops drops;
  // The journal the checkpoint covers, 500 messages a round (rounds bounded in count).
  for (int round = 0; round < 256 && used() > trim.target; ++round) {
    auto j = journal.TrimOldest(500, trim.journal_up_to);
    if (!j.ok()) drops.errors.push_back("journal: " + j.error());
    if (!j.ok() || j.value() == 0) break;
    drops.journal += static_cast<std::uint64_t>(j.value());
    journal.Vacuum();
  }
  // Dead letters, oldest first, as many bytes as are over the target.
  for (int round = 0; round < 16 && used() > trim.target; ++round) {
    auto d = store.DropOldestDead(used() - trim.target);
    if (!d.ok()) drops.errors.push_back("dead letters: " + d.error());
    if (!d.ok() || d.value().rows == 0) break;
    drops.dead_letters += static_cast<std::uint64_t>(d.value().rows);
    store.Vacuum();
  }
  // Undelivered events, aggregates before alerts, down to the outbox's floor at most.
  for (int round = 0; round < 16 && used() > trim.target; ++round) {
    auto size = store.MeasureOutbox();
    if (!size.ok()) {
      drops.errors.push_back("outbox: " + size.error());
      break;
    }
    const std::uint64_t pending = size.value().pending_bytes;
    if (pending <= trim.outbox_floor) {
      drops.at_floor = true;
      break;
    }
    const std::uint64_t budget = std::min(used() - trim.target, pending - trim.outbox_floor);
    std::uint64_t freed = 0;
    for (auto [kind, count] : {std::pair{rules::EventKind::kAggregate, &drops.aggregates},
                               std::pair{rules::EventKind::kAlert, &drops.alerts}}) {
      if (freed >= budget) break;
      auto r = store.DropOldest(kind, budget - freed);
      if (!r.ok()) {
        drops.errors.push_back(rules::EventKindName(kind) + "s: " + r.error());
        continue;
      }
      *count += static_cast<std::uint64_t>(r.value().rows);
      freed += r.value().bytes;
    }
    store.Vacuum();
    if (freed == 0) break;
  }
  return drops;
}

Policy::Policy(const config::StoreConfig& config, Store* store, Journal* journal)
    : max_bytes_(config.max_bytes),
      journal_retention_(config.journal_retention),
      ttl_(config.ttl),
      store_(store),
      journal_(journal) {}

std::size_t Policy::EventsPerCommit(std::size_t most) const {
  return std::clamp<std::size_t>(static_cast<std::size_t>(max_bytes_ / 16 / 512), 16,
                                 std::max<std::size_t>(most, 16));
}

std::uint64_t Policy::UsedBytes() const { return store_->SizeBytes() + journal_->SizeBytes(); }

Policy::Retired Policy::Retire(Millis now, std::int64_t checkpoint_position, Millis clock_forward) {
  Retired out;
  next_retire_ = now + kRetireInterval;
  if (clock_forward > Millis(0)) out.shifted = store_->ShiftCreated(clock_forward);
  // Journal retention: only what the committed state already covers may go.
  auto trimmed = journal_->TrimBefore(now - journal_retention_, checkpoint_position);
  if (!trimmed.ok()) out.errors.push_back("journal: " + trimmed.error());
  // TTL: outbox rows older than store.ttl.
  auto expired = store_->DropExpired(now - ttl_);
  if (expired.ok()) {
    out.expired = expired.value();
  } else {
    out.errors.push_back("outbox: " + expired.error());
  }
  return out;
}

Policy::Enforced Policy::EnforceQuota(Millis now, std::uint64_t incoming,
                                      std::int64_t checkpoint_position, bool after_checkpoint) {
  Enforced out;
  const std::uint64_t low = Target();
  const std::uint64_t keep = OutboxFloor();
  auto used = [&] { return UsedBytes() + incoming; };
  if (used() > Threshold()) {
    journal_->Vacuum();
    store_->Vacuum();
    out.trimmed = true;
    out.drops = TrimToQuota(*store_, *journal_, {low, keep, checkpoint_position}, used);
  }
  out.used = used() - incoming;
  if (!after_checkpoint) return out;
  // Right after a checkpoint the whole journal may be trimmed: what vigil.db holds besides its
  // outbox is rule state (and free pages, WAL), which the quota never drops. When it leaves
  // less than the outbox's floor under the trim target, every trim cuts the outbox to its floor.
  if (out.used <= low) {
    out.exceeded_by_state = false;
    return out;
  }
  store_->Vacuum();  // the WAL and free pages out of the measure
  auto outbox = store_->MeasureOutbox();
  if (!outbox.ok()) return out;
  const std::uint64_t db = store_->SizeBytes();
  const std::uint64_t rows = outbox.value().pending_bytes + outbox.value().dead_bytes;
  out.fixed_bytes = db > rows ? db - rows : 0;
  if (!state_measured_ || now - *state_measured_ >= kStateMeasureInterval) {
    state_measured_ = now;
    if (auto bytes = store_->StateBytes(); bytes.ok()) out.state_bytes = bytes.value();
  }
  out.exceeded_by_state = out.fixed_bytes + keep > low;
  return out;
}

}  // namespace vigil::store
