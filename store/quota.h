#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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

}  // namespace vigil::store
