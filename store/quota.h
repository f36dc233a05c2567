#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/values.h"
#include "store/journal.h"
#include "store/store.h"

namespace vigil::store {

// What one trim may do (store/README.md, "Retention, TTL and the quota").
struct QuotaTrim {
  std::uint64_t target = 0;        // trim while used() is above this many bytes
  std::uint64_t outbox_floor = 0;  // never drop undelivered events below this many bytes
  std::int64_t journal_up_to = 0;  // only journal messages the state checkpoint covers
};

// What one trim dropped, in rows (the counts of vigil_dropped_total{what}).
struct QuotaDrops {
  std::uint64_t journal = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t aggregates = 0;
  std::uint64_t alerts = 0;
  // The trim reached the outbox's floor (or found nothing left to drop) with used() still
  // above the target: what remains cannot be dropped (rule state, the journal since the
  // checkpoint, the outbox's floor).
  bool at_floor = false;
  std::vector<std::string> errors;  // failed drops, for the log
};

// Trims until used() ≤ trim.target, in this order: the oldest journal messages up to
// trim.journal_up_to; then dead letters, oldest first; then the oldest undelivered aggregate
// events, then alerts (every routed uplink's pending row of an event together), but only while
// the outbox's undelivered events take more than trim.outbox_floor bytes (as
// Store::MeasureOutbox counts them), so its newest events always stay. Returns free pages to
// the file system as it goes (Vacuum). `used` says the bytes in use now (files on disk, plus
// what is about to be written).
QuotaDrops TrimToQuota(Store& store, Journal& journal, const QuotaTrim& trim,
                       const std::function<std::uint64_t()>& used);

// The store's quota and retention policy (store/README.md, "Retention, TTL and the quota"):
// what the engine thread asks of the files at a processing time, and when. It decides what
// goes and in what order; the caller (agent::Pipeline) counts the drops in its metrics and
// logs them. Not thread-safe: the engine thread owns it.
class Policy {
 public:
  // The quota never drops the outbox's newest max_bytes / kOutboxFloorShare bytes of
  // undelivered events.
  static constexpr std::uint64_t kOutboxFloorShare = 8;
  // Journal retention and the outbox TTL are applied this often (the quota at every commit).
  static constexpr Millis kRetireInterval{1000};
  // Rule state is measured (a read of every state row) at most this often.
  static constexpr Millis kStateMeasureInterval{10'000};

  // `store` and `journal` are not owned and outlive the policy.
  Policy(const config::StoreConfig& config, Store* store, Journal* journal);

  // Past this many bytes on disk (75% of max_bytes) a commit trims, down to Target() (60%).
  std::uint64_t Threshold() const { return max_bytes_ / 100 * 75; }
  std::uint64_t Target() const { return max_bytes_ / 100 * 60; }
  std::uint64_t OutboxFloor() const { return max_bytes_ / kOutboxFloorShare; }
  // The most events one commit may hold (counted at about 512 bytes each: a sixteenth of the
  // quota), between 16 and `most`.
  std::size_t EventsPerCommit(std::size_t most) const;
  // Whether the journal written since the last checkpoint (`journal_tail_bytes`) calls for a
  // checkpoint now: only the journal a checkpoint covers may be trimmed, so it must not take
  // more than an eighth of the quota.
  bool CheckpointDue(std::uint64_t journal_tail_bytes) const {
    return journal_tail_bytes > max_bytes_ / 8;
  }
  // The state database and the journal, on disk.
  std::uint64_t UsedBytes() const;

  // What Retire did.
  struct Retired {
    Status shifted = Status::Ok();    // Store::ShiftCreated after a forward step
    std::int64_t expired = 0;         // outbox rows older than store.ttl, deleted
    std::vector<std::string> errors;  // failed deletes, for the log
  };
  // Whether Retire is due at processing time `now` (kRetireInterval after the last one).
  bool RetireDue(Millis now) const { return now >= next_retire_; }
  // At processing time `now`: first the outbox's ages move with a forward step of the clock
  // of `clock_forward` (a step forward makes nothing older); then the journal older than
  // store.journal_retention goes, up to `checkpoint_position` (what the committed state
  // covers); then outbox rows older than store.ttl. The next is due kRetireInterval later.
  Retired Retire(Millis now, std::int64_t checkpoint_position, Millis clock_forward);

  // What EnforceQuota did.
  struct Enforced {
    bool trimmed = false;  // the files were past Threshold(): TrimToQuota ran
    QuotaDrops drops;
    std::uint64_t used = 0;  // bytes on disk after it
    // After a checkpoint, while the files are past Target(): whether the rule state (and the
    // other rows the quota never drops) leaves the outbox less than its floor under Target().
    std::optional<bool> exceeded_by_state;
    std::uint64_t fixed_bytes = 0;  // vigil.db without its outbox (when measured)
    // Rule state as stored (Store::StateBytes), measured at most every kStateMeasureInterval.
    std::optional<std::uint64_t> state_bytes;
  };
  // The quota at processing time `now`, with `incoming` bytes about to be written: past
  // Threshold() it trims to Target() (TrimToQuota, the journal up to `checkpoint_position`).
  // `after_checkpoint`: right after a checkpoint commit, when the journal may all be trimmed and
  // what cannot be dropped is rule state; then it also says whether that state takes the
  // outbox's room (exceeded_by_state: false when under Target()).
  Enforced EnforceQuota(Millis now, std::uint64_t incoming, std::int64_t checkpoint_position,
                        bool after_checkpoint);

 private:
  std::uint64_t max_bytes_;
  Millis journal_retention_;
  Millis ttl_;
  Store* store_;
  Journal* journal_;
  Millis next_retire_{0};
  std::optional<Millis> state_measured_;
};

}  // namespace vigil::store
