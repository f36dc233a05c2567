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
    for (auto [kind, count] :
         {std::pair{"aggregate", &drops.aggregates}, std::pair{"alert", &drops.alerts}}) {
      if (freed >= budget) break;
      auto r = store.DropOldest(kind, budget - freed);
      if (!r.ok()) {
        drops.errors.push_back(std::string(kind) + "s: " + r.error());
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

}  // namespace vigil::store
