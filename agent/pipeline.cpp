#include "agent/pipeline.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <set>
#include <thread>

#include "agent/clock.h"
#include "config/log.h"
#include "store/quota.h"
#include "uplink/sink.h"

namespace vigil::agent {
namespace {

constexpr std::size_t kQueueCapacity = 16384;
// ...and at most this many bytes of messages (QueuedBytes): about a quarter of a second of
// one-reading messages at 20 000/s; beyond that the broker keeps them (back-pressure).
constexpr std::size_t kQueueBytes = std::size_t{2} * 1024 * 1024;
// A checkpoint serializes and writes the changed keys' state this many at a time.
constexpr std::size_t kStateChunk = 1024;
// A small batch waits this long for more messages: one wake-up per batch, not per message (at
// 20 000 readings/s, 2 ms gave batches of about 40 and the wake-ups cost the engine thread
// 0.9 µs a reading; 10 ms gives about 200).
constexpr Millis kLinger{10};
// Stats and firing alerts walk every key: refreshed for the endpoint at most this often.
constexpr Millis kSnapshotInterval{1000};
constexpr std::size_t kRestoreBatch = 4096;   // checkpoint rows read before decoding them
constexpr std::size_t kJournalRowBytes = 40;  // a journal row besides topic and payload

std::string DescribeKey(const rules::Tags& key) {
  std::string out;
  for (const auto& [name, value] : key) {
    if (!out.empty()) out += ",";
    out.append(name).append("=").append(value);
  }
  return out;
}

// What a queued message holds in memory, about: the message, its text, its readings.
std::size_t QueuedBytes(const IngestMessage& m) {
  std::size_t bytes = sizeof(IngestMessage) + m.size;
  for (const auto& r : m.readings) {
    bytes += sizeof(rules::Reading) + r.metric.size();
    for (const auto& [name, value] : r.tags) {
      bytes += 2 * sizeof(std::string) + name.size() + value.size();
    }
  }
  return bytes;
}

}  // namespace

Millis Now() { return AgentClock().Now(); }

Pipeline::Pipeline(const config::Config& config, std::shared_ptr<const rules::RuleSet> rules,
                   std::shared_ptr<const rules::Tables> tables, store::Store* store,
                   store::Journal* journal, Metrics* metrics, Notify notify, Clock& clock)
    : config_(config),
      rules_(std::move(rules)),
      tables_(std::move(tables)),
      store_(store),
      journal_(journal),
      metrics_(metrics),
      notify_(std::move(notify)),
      clock_(clock),
      engine_(std::make_unique<rules::Engine>(config.agent.id, rules_)),
      drive_(engine_.get()),
      queue_(kQueueCapacity, kQueueBytes, QueuedBytes),
      policy_(config.store, store, journal) {
  engine_->SetTables(tables_);
}

Pipeline::~Pipeline() { Stop(); }

Status Pipeline::Restore() {
  const auto started = std::chrono::steady_clock::now();
  std::size_t restored = 0;
  std::size_t stale = 0;
  // Read in batches, each decoded on every core (a restart with many keys is mostly that).
  std::vector<rules::StateChange> batch;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<rules::DecodedKey> decoded_keys;
  auto restore = [&] {
    // Decoding is most of a restart's work and touches nothing shared (Engine::Decode): it is
    // split among threads, each a contiguous part of the rows; the keys are then adopted on
    // this thread in row order.
    decoded_keys.clear();
    decoded_keys.resize(batch.size());
    auto decode = [&](std::size_t from, std::size_t to) {
      for (std::size_t i = from; i < to; ++i) {
        const rules::StateChange& row = batch[i];
        if (row.bytes) decoded_keys[i] = engine_->Decode(row.rule, row.key, *row.bytes);
      }
    };
    const std::size_t parts = std::clamp<std::size_t>(batch.size() / 256, 1, threads);
    std::vector<std::thread> workers;
    for (std::size_t p = 1; p < parts; ++p) {
      workers.emplace_back(decode, batch.size() * p / parts, batch.size() * (p + 1) / parts);
    }
    decode(0, batch.size() / parts);
    for (auto& w : workers) w.join();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (engine_->Adopt(std::move(decoded_keys[i]))) {
        ++restored;
      } else {
        ++stale;
        // The rule is gone or changed: its old state is dropped at the next commit.
        changes_.push_back({std::move(batch[i].rule), std::move(batch[i].key), std::nullopt});
      }
    }
    batch.clear();
  };
  std::uint64_t state_bytes = 0;
  Status s = store_->LoadState(
      [&](const std::string& rule, const std::string& key, const std::string& bytes) {
        state_bytes += rule.size() + key.size() + bytes.size();
        batch.push_back({rule, key, bytes});
        if (batch.size() == kRestoreBatch) restore();
      });
  if (!s.ok()) return s;
  restore();
  auto timers = store_->Timers();
  auto ticks = store_->Ticks();
  if (!timers.ok()) return Status::Error(timers.error());
  if (!ticks.ok()) return Status::Error(ticks.error());
  engine_->RestoreTimers(timers.value());
  metrics_->state_bytes = state_bytes;
  const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  log::Info("restored state of " + std::to_string(restored) + " key(s) in " +
            std::to_string(took.count()) + " ms" +
            (stale ? ", dropped " + std::to_string(stale) + " of changed or removed rules" : ""));

  // What the last run journaled after its last checkpoint: decode and process it again,
  // exactly as it was processed then (same clock), so the state, the events and their ids are
  // the same. Events of messages up to the events position are in the outbox already.
  auto position = store_->JournalPosition();
  auto events_position = store_->EventsPosition();
  if (!position.ok()) return Status::Error(position.error());
  if (!events_position.ok()) return Status::Error(events_position.error());
  position_ = checkpoint_position_ = position.value();
  events_position_ = events_position.value();
  if (journal_->LastSeq() < position_) {
    // The journal is newer than the state (it was damaged or removed and started afresh):
    // none of it is in the state yet, and its numbering starts again. Replay all of it and
    // commit the new position below.
    log::Warning("journal: starts afresh below the committed position " +
                 std::to_string(position_) + "; replaying it from its start");
    position_ = events_position_ = 0;
    checkpoint_position_ = -1;
    ticks.value().clear();  // their positions are of the journal that is gone
  }
  const std::int64_t emitted = events_position_;
  // The timers fire at the moments they fired before the crash (committed with their events,
  // which are in the outbox already): the same state and the same events, with the same ids.
  drive_.Recorded(std::move(ticks.value()));
  Decoder decoder(config_.mqtt);
  std::size_t replayed = 0;
  std::size_t committed_before = 0;
  Status r = journal_->Read(position_, Millis(0), [&](const store::JournalMessage& jm) {
    drive_.CatchUp(jm.seq);
    IngestMessage m;
    m.seq = jm.seq;
    m.received = jm.received;
    m.size = jm.topic.size() + jm.payload.size();
    Decoded decoded;
    decoder.Decode(jm.topic, jm.payload, jm.received, &decoded);
    m.readings = std::move(decoded.readings);
    const std::size_t before = events_.size();
    ProcessMessage(m);
    if (jm.seq <= emitted) {
      events_.erase(events_.begin() + static_cast<std::ptrdiff_t>(before), events_.end());
      ++committed_before;
    }
    ++replayed;
    return true;
  });
  if (!r.ok()) return r;
  // The ticks stay stored until the next checkpoint replaces them; the live loop adds to them.
  drive_.CatchUp(std::numeric_limits<std::int64_t>::max());
  if (replayed > 0) {
    log::Info("recovered " + std::to_string(replayed) +
              " journaled message(s) since the last checkpoint (the events of " +
              std::to_string(committed_before) + " were committed already)");
  }
  // The events of the re-processed messages are committed; their state is checkpointed at the
  // next interval, as before the crash (the agent is ready without writing every key touched
  // again), unless the journal started afresh and its new position must be recorded now.
  Commit(clock_.Now(), /*checkpoint=*/checkpoint_position_ < 0);
  return Status::Ok();
}

void Pipeline::Start() {
  snapshot_ = {engine_->Stats(), engine_->Firing()};
  heartbeat_.store(clock_.Now().count());
  thread_ = std::thread([this] { Run(); });
}

Pipeline::Snapshot Pipeline::LastSnapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

bool Pipeline::Push(IngestMessage message) { return queue_.Push(std::move(message)); }

void Pipeline::ProcessMessage(const IngestMessage& m) {
  drive_.Feed(m.readings, m.received, &events_);
  journal_tail_bytes_ += m.size + kJournalRowBytes;
  if (m.seq > 0) position_ = std::max(position_, m.seq);
}

void Pipeline::Stop() {
  queue_.Close();
  if (thread_.joinable()) thread_.join();
}

void Pipeline::Run() {
  const Millis interval = std::max(config_.store.commit_interval, Millis(1));
  const Millis checkpoint_interval = std::max(config_.store.checkpoint_interval, Millis(1));
  const std::size_t events_per_commit = policy_.EventsPerCommit(kBatch);
  std::vector<IngestMessage> batch;
  batch.reserve(kBatch);
  Millis next_commit = clock_.Now() + interval;
  Millis next_checkpoint = clock_.Now() + checkpoint_interval;
  while (true) {
    const Millis wait = clock_.RealWait(next_commit - clock_.Now());
    batch.clear();
    queue_.PopBatch(&batch, kBatch, wait);
    if (!batch.empty() && batch.size() < kBatch / 16 && !queue_.closed()) {
      std::this_thread::sleep_for(kLinger);
      queue_.PopBatch(&batch, kBatch - batch.size(), Millis(0));
    }
    // Once closed, the queue only drains: the last batch ends with a final commit.
    const bool draining = queue_.closed() && queue_.size() == 0;
    heartbeat_.store(clock_.Now().count(), std::memory_order_relaxed);
    std::shared_ptr<const rules::RuleSet> reload;
    std::shared_ptr<const rules::Tables> tables;
    {
      std::lock_guard lock(reload_mu_);
      reload.swap(pending_rules_);
      tables.swap(pending_tables_);
    }
    if (tables) {  // before the rules: an engine a rule reload makes reads the new tables
      tables_ = std::move(tables);
      engine_->SetTables(tables_);
    }
    if (reload) ApplyReload(std::move(reload), clock_.Now());
    for (auto& m : batch) {
      ProcessMessage(m);
      if (m.seq == 0) {
        unjournaled_.push_back(
            {0, m.received, std::move(m.topic), std::move(m.payload), m.packet_id});
      }
      // A batch's events go to the store in parts of at most a sixteenth of the quota (about
      // 512 bytes each): the quota is enforced before each part is written.
      if (events_.size() >= events_per_commit) Commit(clock_.Now(), false);
    }
    const Millis now = clock_.Now();
    // The timers' processing time stops at the oldest message still queued: behind a burst, a
    // key whose next reading is waiting is not idle, and recovery, which fires this tick before
    // the next journal message, sees the same order.
    const Millis timers_at = std::min(
        now, queue_.Front([](const IngestMessage& m) { return m.received; }).value_or(now));
    if (auto tick = drive_.Tick(timers_at, position_, &events_)) {
      ticks_.push_back({*tick, unjournaled_.size()});
    }
    if (now >= next_commit || draining || events_.size() >= kBatch) {
      const bool checkpoint = draining || now >= next_checkpoint;
      Commit(now, checkpoint);
      next_commit = now + interval;
      if (checkpoint) next_checkpoint = now + checkpoint_interval;
    }
    if (policy_.RetireDue(now)) Retire(now);
    if (draining) break;
  }
}

void Pipeline::RequestReload(std::shared_ptr<const rules::RuleSet> rules) {
  std::lock_guard lock(reload_mu_);
  pending_rules_ = std::move(rules);
}

void Pipeline::RequestTables(std::shared_ptr<const rules::Tables> tables) {
  std::lock_guard lock(reload_mu_);
  pending_tables_ = std::move(tables);
}

void Pipeline::ApplyReload(std::shared_ptr<const rules::RuleSet> rules, Millis now) {
  auto next = std::make_unique<rules::Engine>(config_.agent.id, rules);
  next->SetTables(tables_);
  // The keys of unchanged rules move to the new engine as they are; those of changed or
  // removed rules start fresh (their rows go at the checkpoint below).
  rules::Engine::Handover handover = next->TakeStateOf(*engine_);
  const std::size_t kept = handover.kept;
  const std::vector<std::string>& dropped = handover.dropped_rules;
  for (auto& c : handover.deleted) changes_.push_back(std::move(c));
  const std::size_t before = events_.size();
  for (const auto& rule : dropped) engine_->ResolveFiring(rule, now, &events_);
  engine_ = std::move(next);
  drive_.Reset(engine_.get());
  rules_ = std::move(rules);
  log::Info("reload: " + std::to_string(rules_->rules.size()) + " rule(s) in force; kept the " +
            "state of " + std::to_string(kept) + " key(s); " + std::to_string(dropped.size()) +
            " changed or removed rule(s) start fresh; resolved " +
            std::to_string(events_.size() - before) + " of their firing alert(s)");
  Commit(now, /*checkpoint=*/true);
}

void Pipeline::Retire(Millis now) {
  // A step forward of the clock makes nothing older: the store moves the outbox's ages with it
  // before it applies the TTL (a gateway that boots in the past until NTP steps its clock keeps
  // its events).
  const ClockSteps steps = clock_.TakeSteps();
  const store::Policy::Retired retired = policy_.Retire(now, checkpoint_position_, steps.forward);
  if (steps.forward > Millis(0)) {
    metrics_->clock_steps.fetch_add(1, std::memory_order_relaxed);
    log::Warning("clock: the system clock stepped forward by " +
                 std::to_string(steps.forward.count()) + " ms; outbox ages kept" +
                 (retired.shifted.ok() ? "" : " (failed: " + retired.shifted.message() + ")"));
  }
  if (steps.back > Millis(1000)) {
    metrics_->clock_steps.fetch_add(1, std::memory_order_relaxed);
    log::Warning("clock: the system clock stepped back by " + std::to_string(steps.back.count()) +
                 " ms; processing time goes on from where it was (ahead of the system clock "
                 "until a step forward or a restart)");
  }
  for (const auto& e : retired.errors) {
    log::WriteLimited(log::Level::kError, "retire", "store: retention: " + e);
  }
  if (retired.expired > 0) {
    metrics_->dropped_ttl.fetch_add(static_cast<std::uint64_t>(retired.expired));
    log::Warning("store: dropped " + std::to_string(retired.expired) +
                 " undelivered outbox row(s) older than store.ttl");
  }
}

void Pipeline::EnforceQuota(std::uint64_t incoming, bool after_checkpoint) {
  // The store's policy decides what goes (store/README.md, "Retention, TTL and the quota");
  // the engine thread counts and logs it.
  const store::Policy::Enforced q =
      policy_.EnforceQuota(clock_.Now(), incoming, checkpoint_position_, after_checkpoint);
  const std::uint64_t limit = config_.store.max_bytes;
  if (q.trimmed) {
    for (const auto& e : q.drops.errors) {
      log::WriteLimited(log::Level::kError, "quota-error", "store: quota: cannot drop " + e);
    }
    const std::string now = "; now " + std::to_string(q.used) + " of store.max_bytes " +
                            std::to_string(limit) + " bytes";
    auto report = [&](const char* key, std::uint64_t n, std::atomic<std::uint64_t>& counter,
                      const std::string& what, const char* label) {
      if (n == 0) return;
      const std::uint64_t total = counter.fetch_add(n) + n;
      log::WriteLimited(log::Level::kWarning, key,
                        "store: quota: dropped " + std::to_string(n) + " " + what + " (" +
                            std::to_string(total) + " so far, vigil_dropped_total{what=\"" + label +
                            "\"})" + now);
    };
    report("quota-journal", q.drops.journal, metrics_->dropped_journal,
           "journal message(s) the state already covers", "journal");
    report("quota-dead-letters", q.drops.dead_letters, metrics_->dropped_dead_letters,
           "dead letter(s), the oldest", "dead_letters");
    report("quota-aggregates", q.drops.aggregates, metrics_->dropped_aggregates,
           "undelivered aggregate row(s), the oldest", "aggregates");
    report("quota-alerts", q.drops.alerts, metrics_->dropped_alerts,
           "undelivered alert row(s), the oldest", "alerts");
  }
  if (q.state_bytes) metrics_->state_bytes = *q.state_bytes;
  if (!q.exceeded_by_state) return;
  metrics_->quota_exceeded_by_state = *q.exceeded_by_state;
  if (!*q.exceeded_by_state) return;
  const std::uint64_t low = policy_.Target();
  const std::uint64_t keep = policy_.OutboxFloor();
  log::WriteLimited(
      log::Level::kError, "quota-state",
      "store: the rule state takes more of store.max_bytes (" + std::to_string(limit) +
          " bytes) than the quota allows: vigil.db without its outbox is " +
          std::to_string(q.fixed_bytes) + " bytes (rule state " +
          std::to_string(metrics_->state_bytes.load()) + " bytes as stored), over the " +
          std::to_string(low > keep ? low - keep : 0) +
          " bytes the trim target leaves beside the outbox's floor" +
          (q.fixed_bytes > limit ? "; the files exceed store.max_bytes" : "") +
          ". The outbox keeps only its newest " + std::to_string(keep) +
          " bytes of undelivered events; older ones are dropped (vigil_dropped_total). Raise "
          "store.max_bytes or lower the rules' keys (group_by, max_keys)");
}

void Pipeline::Commit(Millis now, bool checkpoint) {
  if (!unjournaled_.empty()) {
    // on_receive: the messages were acknowledged on receipt; journal them now.
    std::vector<store::JournalMessage*> ptrs;
    ptrs.reserve(unjournaled_.size());
    for (auto& m : unjournaled_) ptrs.push_back(&m);
    Status s = journal_->Append(ptrs);
    if (s.ok()) {
      position_ = std::max(position_, unjournaled_.back().seq);
      // The timer moments among these messages now know the seq they came after.
      for (PendingTick& t : ticks_) {
        if (t.unjournaled > 0) t.tick.after = unjournaled_[t.unjournaled - 1].seq;
      }
    } else {
      metrics_->dropped_journal.fetch_add(unjournaled_.size());
      log::WriteLimited(
          log::Level::kError, "journal-append",
          "journal: cannot append (messages processed but not journaled): " + s.message());
    }
    unjournaled_.clear();
    for (PendingTick& t : ticks_) t.unjournaled = 0;
  }
  // Only the journal before the checkpoint may be trimmed (from 75% of the quota down to 60%):
  // checkpoint before the journal after it takes an eighth of the quota.
  if (policy_.CheckpointDue(journal_tail_bytes_)) checkpoint = true;
  checkpoint = checkpoint && (!changes_.empty() || engine_->HasChanges() ||
                              position_ != checkpoint_position_ || !ticks_.empty());
  // At once when an alert changed (the endpoint lists firing alerts before they are delivered),
  // else once a second, also with nothing to commit (the figures catch up once input stops).
  const bool alerts_changed =
      std::any_of(events_.begin(), events_.end(),
                  [](const rules::Event& e) { return e.kind == rules::EventKind::kAlert; });
  if (alerts_changed || now - snapshot_time_ >= kSnapshotInterval) {
    Snapshot fresh{engine_->Stats(), engine_->Firing()};
    snapshot_time_ = now;
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = std::move(fresh);
  }
  if (!checkpoint && events_.empty() && position_ == events_position_) return;

  store::CommitBatch batch;
  std::size_t streamed = 0;  // state rows made by batch.more_state
  if (position_ != events_position_) batch.events_position = position_;
  if (checkpoint) {
    if (position_ != checkpoint_position_) batch.journal_position = position_;
    batch.timers = engine_->SaveTimers();  // and the ticks before it are in the state
    batch.state.reserve(changes_.size());
    for (auto& c : changes_)
      batch.state.push_back({std::move(c.rule), std::move(c.key), std::move(c.bytes)});
    // The changed keys' state, serialized a chunk at a time inside the transaction.
    batch.more_state = [this, &streamed, chunk = std::vector<rules::StateChange>()](
                           std::vector<store::StateRow>* rows) mutable {
      chunk.clear();
      if (!engine_->TakeChanges(&chunk, kStateChunk)) return false;
      streamed += chunk.size();
      for (auto& c : chunk) {
        rows->push_back({std::move(c.rule), std::move(c.key), std::move(c.bytes)});
      }
      return true;
    };
  } else {
    batch.ticks.reserve(ticks_.size());
    for (const PendingTick& t : ticks_) batch.ticks.push_back(t.tick);
  }
  std::set<std::string> touched;
  batch.events.reserve(events_.size());
  for (const auto& e : events_) {
    store::OutboxEvent out{e.id, e.kind, e.rule, rules::ToJson(e), e.time, {}};
    if (config_.uplinks.empty()) {
      out.uplinks.emplace_back(kLogUplink);
    } else {
      out.uplinks = uplink::Route(config_.routes, config_.uplinks, e.kind, e.rule, e.severity);
    }
    touched.insert(out.uplinks.begin(), out.uplinks.end());
    batch.events.push_back(std::move(out));
  }

  std::uint64_t incoming = 0;
  for (const auto& e : batch.events) incoming += (e.json.size() + 64) * e.uplinks.size();
  for (const auto& st : batch.state) incoming += st.bytes ? st.bytes->size() + 64 : 0;
  EnforceQuota(incoming, false);

  auto started = std::chrono::steady_clock::now();
  Status s = store_->Commit(batch, now);
  if (!s.ok()) {
    metrics_->commit_failures.fetch_add(1, std::memory_order_relaxed);
    metrics_->last_commit_failed = true;
    log::WriteLimited(log::Level::kError, "commit",
                      "store: commit failed, will retry: " + s.message());
    // Keep the events (and the state) for the next attempt.
    if (checkpoint) {
      for (std::size_t i = 0; i < batch.state.size(); ++i) {
        changes_[i] = {std::move(batch.state[i].rule), std::move(batch.state[i].key),
                       std::move(batch.state[i].bytes)};
      }
      engine_->MarkAllChanged();
    }
    return;
  }
  metrics_->commits.fetch_add(1, std::memory_order_relaxed);
  metrics_->last_commit_failed = false;
  auto took = std::chrono::steady_clock::now() - started;
  metrics_->ObserveCommit(std::chrono::duration<double>(took).count());
  std::uint64_t rows = batch.state.size() + streamed;
  for (const auto& e : batch.events) rows += e.uplinks.size();
  metrics_->ObserveCommitRows(rows);
  log::Debug("store: committed " + std::to_string(batch.state.size() + streamed) +
             " state row(s), " + std::to_string(batch.events.size()) + " event(s) in " +
             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(took).count()) +
             "us");

  for (std::size_t i = 0; i < events_.size(); ++i) {
    const auto& e = events_[i];
    if (e.kind == rules::EventKind::kAlert) {
      metrics_->alert_events.fetch_add(1, std::memory_order_relaxed);
      log::Info("alert " + rules::EventStateName(e.state) + ": " + e.rule + " {" +
                DescribeKey(e.key) + "} " + e.severity + ": " + e.summary);
    } else {
      metrics_->aggregate_events.fetch_add(1, std::memory_order_relaxed);
      if (config_.uplinks.empty()) log::Info("event: " + batch.events[i].json);
    }
  }
  events_.clear();
  ticks_.clear();
  events_position_ = position_;
  if (checkpoint) {
    changes_.clear();
    checkpoint_position_ = position_;
    journal_tail_bytes_ = 0;
  }
  for (const auto& name : touched) {
    if (name != kLogUplink) notify_(name);
  }
  EnforceQuota(0, checkpoint);  // two stat() calls unless near the limit: cheap per commit
}

}  // namespace vigil::agent
