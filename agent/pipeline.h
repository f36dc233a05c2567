#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/bounded_queue.h"
#include "agent/clock.h"
#include "agent/decode.h"
#include "agent/drive.h"
#include "agent/metrics.h"
#include "config/config.h"
#include "config/result.h"
#include "rules/engine.h"
#include "rules/table.h"
#include "store/journal.h"
#include "store/quota.h"
#include "store/store.h"

namespace vigil::agent {

// One MQTT message on its way to the engine: its accepted readings, and where it is in the
// journal. With mqtt.ack = after_commit it was journaled before it was queued (seq > 0);
// with on_receive the engine thread journals it (topic and payload kept for that).
struct IngestMessage {
  std::int64_t seq = 0;
  Millis received{0};    // processing time at arrival: the engine's clock for these readings
  std::string topic;     // on_receive only: journaled by the engine thread
  std::string payload;   // on_receive only
  int packet_id = 0;     // on_receive only: the MQTT packet identifier, journaled with it
  std::size_t size = 0;  // topic and payload bytes, as the journal keeps them
  std::vector<rules::Reading> readings;
};

// The engine thread: takes messages from the bounded queue in batches, runs the rule engine
// over their readings (processing time = arrival time, so recovery and `replay --journal`
// reproduce the same results), and group-commits the new events (one outbox row per routed
// uplink) and the journal position to the store at least every store.commit_interval, then
// tells the uplinks; every store.checkpoint_interval the commit also holds the changed rule
// state (a checkpoint). Recovery restores the checkpoint and re-processes the journal after
// it, dropping the events that were committed before the crash. The live loop and recovery
// drive the engine through one Drive (agent/drive.h): the moments at which timers were due are
// committed as ticks and fired again between the same journal messages. After each commit it
// asks the store's policy (store::Policy) to enforce the disk quota, and about once a second
// journal retention and the outbox TTL (SPEC §8), and counts and logs what went. Every time it
// reads or waits for comes from the injected Clock (AgentClock() in the daemon; unit tests move
// a fake one). The only owner of the Engine.
//
// A commit that fails keeps its state changes and events and is tried again at the next
// interval: nothing produced is dropped.
class Pipeline {
 public:
  // Called after a commit that added rows for `uplink`. Must not block.
  using Notify = std::function<void(const std::string& uplink)>;
  // The pseudo-uplink that keeps events when no uplink is configured (SPEC §2 defaults).
  static constexpr const char* kLogUplink = "log";
  // Messages a round of the engine thread takes from the queue at most.
  static constexpr std::size_t kBatch = 4096;
  // The quota never drops the outbox's newest store.max_bytes / kOutboxFloorShare bytes of
  // undelivered events (agent/README.md).
  static constexpr std::uint64_t kOutboxFloorShare = store::Policy::kOutboxFloorShare;

  // `tables`: the reference tables the rules read (rules/table.h); null for none. `clock`:
  // processing time for the live loop, its commits and the quota; not owned, outlives this.
  Pipeline(const config::Config& config, std::shared_ptr<const rules::RuleSet> rules,
           std::shared_ptr<const rules::Tables> tables, store::Store* store,
           store::Journal* journal, Metrics* metrics, Notify notify, Clock& clock = AgentClock());
  ~Pipeline();  // Stop()
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Restores every rule's key state from the store, then re-processes the journal after the
  // committed position (what a crash left uncommitted) and commits. REQUIRES: before Start().
  Status Restore();
  // The alerts firing after Restore. REQUIRES: before Start() (the engine thread owns it after).
  std::vector<rules::FiringAlert> Firing() const { return engine_->Firing(); }
  // Hands new rules to the engine thread (SIGHUP, a changed rule file). It applies them
  // between batches: unchanged rules keep their state, changed and new ones start fresh, the
  // firing alerts of changed and removed rules are resolved. Never blocks. Thread-safe.
  void RequestReload(std::shared_ptr<const rules::RuleSet> rules);
  // Hands new reference tables to the engine thread (a table file changed, SIGHUP). It applies
  // them between batches to the live engine, and to every engine a rule reload makes after;
  // the rules' state is kept. Never blocks. Thread-safe.
  void RequestTables(std::shared_ptr<const rules::Tables> tables);
  void Start();
  // Queues one message; blocks while the queue is full (back-pressure). False after Stop().
  bool Push(IngestMessage message);
  // Stops taking messages, processes what is queued, commits, joins. Idempotent.
  void Stop();

  std::size_t queue_depth() const { return queue_.size(); }
  // True while the engine thread goes round its loop (the systemd watchdog asks).
  bool Alive(Millis now) const { return now - Millis(heartbeat_.load()) < Millis(10'000); }

  // The engine's rule statistics and firing alerts as of the last commit. Thread-safe.
  struct Snapshot {
    std::vector<rules::RuleStats> rules;
    std::vector<rules::FiringAlert> firing;
  };
  Snapshot LastSnapshot() const;

 private:
  void Run();
  void ProcessMessage(const IngestMessage& m);
  // Commits the new events and the journal position; with `checkpoint`, the changed state
  // too (SPEC §8, store.checkpoint_interval).
  void Commit(Millis now, bool checkpoint);
  void ApplyReload(std::shared_ptr<const rules::RuleSet> rules, Millis now);
  // Journal retention and the outbox TTL (store::Policy::Retire), counted and logged.
  void Retire(Millis now);
  // The quota (store::Policy::EnforceQuota), counted and logged. `incoming`: bytes about to be
  // written; `after_checkpoint`: right after a checkpoint commit, when the journal may all be
  // trimmed and what cannot be dropped is rule state (vigil_quota_exceeded_by_state,
  // vigil_state_bytes, an error log).
  void EnforceQuota(std::uint64_t incoming, bool after_checkpoint);

  const config::Config& config_;  // not owned; outlives this
  std::shared_ptr<const rules::RuleSet> rules_;
  std::shared_ptr<const rules::Tables> tables_;  // engine thread only after Start()
  store::Store* store_;                          // not owned
  store::Journal* journal_;                      // not owned
  Metrics* metrics_;                             // not owned
  Notify notify_;
  Clock& clock_;                           // processing time; not owned
  std::unique_ptr<rules::Engine> engine_;  // touched only by the engine thread after Start()
  Drive drive_;                            // drives engine_ (reset when a reload replaces it)
  std::mutex reload_mu_;                   // guards pending_rules_ and pending_tables_
  std::shared_ptr<const rules::RuleSet> pending_rules_;
  std::shared_ptr<const rules::Tables> pending_tables_;
  BoundedQueue<IngestMessage> queue_;
  std::thread thread_;
  mutable std::mutex snapshot_mu_;  // guards snapshot_
  Snapshot snapshot_;
  Millis snapshot_time_{0};  // engine thread only
  // Produced but not yet committed (engine thread only).
  std::vector<rules::Event> events_;
  std::vector<rules::StateChange> changes_;
  std::vector<store::JournalMessage> unjournaled_;  // on_receive: journaled at the next commit
  // Moments at which the engine's timers were due (Engine::Advance returned true), committed
  // with the events after them, so recovery fires the timers at the same moments.
  struct PendingTick {
    store::Tick tick;
    std::size_t unjournaled = 0;  // on_receive: after this many of unjournaled_ (seq unknown yet)
  };
  std::vector<PendingTick> ticks_;
  std::int64_t position_ = 0;             // last journal seq processed
  std::int64_t events_position_ = 0;      // ... whose events are committed
  std::int64_t checkpoint_position_ = 0;  // ... whose state is committed
  std::uint64_t journal_tail_bytes_ = 0;  // journaled since the checkpoint: not trimmable
  store::Policy policy_;  // quota and retention: what goes, and when (engine thread only)
  std::atomic<std::int64_t> heartbeat_{0};  // ms; written by the engine thread each round
};

// Processing time: the agent's clock (agent/clock.h: the system clock, never going back), in
// ms since the epoch.
Millis Now();

}  // namespace vigil::agent
