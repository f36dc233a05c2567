#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "config/values.h"
#include "rules/engine.h"
#include "rules/event.h"
#include "store/store.h"

namespace vigil::uplink {

// What a sink says of one attempt to deliver a batch. Sinks never retry: the dispatcher
// owns batching, backoff with jitter and dead letters.
struct Verdict {
  enum class Outcome { kDelivered, kRetry, kReject };
  Outcome outcome = Outcome::kRetry;
  std::optional<Millis> retry_after;  // from a Retry-After header
  std::string error;                  // for logs, metrics and dead letters; no secrets
  // kDelivered: how many rows of the batch the sink had nothing to send for (an mqtt
  // uplink's payload template without an entry for the event, an aggregate to Alertmanager,
  // an alert to InfluxDB). They are acked like the rest and counted as `skipped`, not
  // `delivered`.
  std::size_t skipped = 0;
};

// One upstream destination. Send may block up to the uplink's timeout. Not thread-safe:
// one dispatcher thread owns a sink.
class Sink {
 public:
  virtual ~Sink() = default;
  // REQUIRES: !batch.empty(). Every row's `json` is one event (SPEC §6).
  virtual Verdict Send(const std::vector<store::OutboxRow>& batch) = 0;
  // The alerts firing when the agent starts (restored state), for sinks that re-send them.
  virtual void Seed(const std::vector<rules::FiringAlert>& firing) { (void)firing; }
  // Called by the dispatcher at least once a second (processing time), between batches:
  // periodic work such as re-sending firing alerts. May block up to the uplink's timeout.
  virtual void Tick(Millis now) { (void)now; }
};

// What sinks need to know beyond their own config.
struct SinkContext {
  std::string agent;
  std::map<std::string, std::string> rule_descriptions;  // rule id → description
};

// The factory: one explicit switch (a std::visit) over the uplink's type, whose sink gets the
// keys of that type and no other. Fails when the sink cannot be set up (libcurl or Paho
// refuses it).
Result<std::unique_ptr<Sink>> MakeSink(const config::UplinkConfig& config,
                                       const SinkContext& context = {});

// The uplinks an event goes to (SPEC §2 routes, §12.25): the union of every matching
// route's `to`; with no routes at all, every uplink.
std::vector<std::string> Route(const std::vector<config::RouteConfig>& routes,
                               const std::vector<config::UplinkConfig>& uplinks,
                               rules::EventKind kind, const std::string& rule,
                               const std::string& severity);

}  // namespace vigil::uplink
