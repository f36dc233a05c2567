#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/bounded_queue.h"
#include "agent/metrics.h"
#include "config/config.h"
#include "config/result.h"
#include "rules/engine.h"
#include "store/store.h"

namespace vigil::agent {

// The engine thread: takes decoded readings from the bounded queue in batches, runs the rule
// engine over them with the processing-time clock, and group-commits the changed state and
// the new events (one outbox row per routed uplink) to the store at least every
// store.commit_interval, then tells the uplinks. The only owner of the Engine.
//
// A commit that fails keeps its state changes and events and is tried again at the next
// interval: nothing produced is dropped.
class Pipeline {
 public:
  // Called after a commit that added rows for `uplink`. Must not block.
  using Notify = std::function<void(const std::string& uplink)>;
  // The pseudo-uplink that keeps events when no uplink is configured (SPEC §2 defaults).
  static constexpr const char* kLogUplink = "log";

  Pipeline(const config::Config& config, std::shared_ptr<const rules::RuleSet> rules,
           store::Store* store, Metrics* metrics, Notify notify);
  ~Pipeline();  // Stop()
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Restores every rule's key state from the store. REQUIRES: before Start().
  Status Restore();
  void Start();
  // Queues one reading; blocks while the queue is full (back-pressure). False after Stop().
  bool Push(rules::Reading reading);
  // Stops taking readings, processes what is queued, commits, joins. Idempotent.
  void Stop();

  std::size_t queue_depth() const { return queue_.size(); }

  // The engine's rule statistics and firing alerts as of the last commit. Thread-safe.
  struct Snapshot {
    std::vector<rules::RuleStats> rules;
    std::vector<rules::FiringAlert> firing;
  };
  Snapshot LastSnapshot() const;

 private:
  void Run();
  void Commit(Millis now);

  const config::Config& config_;  // not owned; outlives this
  std::shared_ptr<const rules::RuleSet> rules_;
  store::Store* store_;  // not owned
  Metrics* metrics_;     // not owned
  Notify notify_;
  rules::Engine engine_;  // touched only by the engine thread after Start()
  BoundedQueue<rules::Reading> queue_;
  std::thread thread_;
  mutable std::mutex snapshot_mu_;  // guards snapshot_
  Snapshot snapshot_;
  Millis snapshot_time_{0};  // engine thread only
  // Produced but not yet committed (engine thread only).
  std::vector<rules::Event> events_;
  std::vector<rules::StateChange> changes_;
};

// Processing time: the agent's clock, in ms since the epoch.
Millis Now();

}  // namespace vigil::agent
