#include "agent/pipeline.h"

#include <chrono>
#include <set>

#include "config/log.h"
#include "uplink/sink.h"

namespace vigil::agent {
namespace {

constexpr std::size_t kQueueCapacity = 65536;
constexpr std::size_t kBatch = 4096;
// Stats and firing alerts walk every key: refreshed for the endpoint at most this often.
constexpr Millis kSnapshotInterval{1000};

std::string DescribeKey(const rules::Tags& key) {
  std::string out;
  for (const auto& [name, value] : key) {
    if (!out.empty()) out += ",";
    out += name + "=" + value;
  }
  return out;
}

}  // namespace

Millis Now() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch());
}

Pipeline::Pipeline(const config::Config& config, std::shared_ptr<const rules::RuleSet> rules,
                   store::Store* store, Metrics* metrics, Notify notify)
    : config_(config),
      rules_(std::move(rules)),
      store_(store),
      metrics_(metrics),
      notify_(std::move(notify)),
      engine_(config.agent.id, rules_),
      queue_(kQueueCapacity) {}

Pipeline::~Pipeline() { Stop(); }

Status Pipeline::Restore() {
  std::size_t restored = 0;
  std::size_t stale = 0;
  Status s = store_->LoadState(
      [&](const std::string& rule, const std::string& key, const std::string& bytes) {
        if (engine_.Restore(rule, key, bytes)) {
          ++restored;
        } else {
          ++stale;
          // The rule is gone or changed: its old state is dropped at the next commit.
          changes_.push_back({rule, key, std::nullopt});
        }
      });
  if (!s.ok()) return s;
  log::Info("restored state of " + std::to_string(restored) + " key(s)" +
            (stale ? ", dropped " + std::to_string(stale) + " of changed or removed rules" : ""));
  return Status::Ok();
}

void Pipeline::Start() {
  snapshot_ = {engine_.Stats(), engine_.Firing()};
  thread_ = std::thread([this] { Run(); });
}

Pipeline::Snapshot Pipeline::LastSnapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

bool Pipeline::Push(rules::Reading reading) { return queue_.Push(std::move(reading)); }

void Pipeline::Stop() {
  queue_.Close();
  if (thread_.joinable()) thread_.join();
}

void Pipeline::Run() {
  const Millis interval = std::max(config_.store.commit_interval, Millis(1));
  std::vector<rules::Reading> batch;
  batch.reserve(kBatch);
  Millis next_commit = Now() + interval;
  while (true) {
    Millis wait = std::max(next_commit - Now(), Millis(0));
    batch.clear();
    queue_.PopBatch(&batch, kBatch, wait);
    // Once closed, the queue only drains: the last batch ends with a final commit.
    const bool draining = queue_.closed() && queue_.size() == 0;
    Millis now = Now();
    for (const auto& reading : batch) engine_.Process(reading, now, &events_);
    engine_.Advance(now, &events_);
    if (now >= next_commit || draining || events_.size() >= kBatch) {
      Commit(now);
      next_commit = now + interval;
    }
    if (draining) break;
  }
}

void Pipeline::Commit(Millis now) {
  engine_.TakeChanges(&changes_);
  if (changes_.empty() && events_.empty()) return;
  if (now - snapshot_time_ >= kSnapshotInterval) {
    Snapshot fresh{engine_.Stats(), engine_.Firing()};
    snapshot_time_ = now;
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = std::move(fresh);
  }

  store::CommitBatch batch;
  batch.state.reserve(changes_.size());
  for (const auto& c : changes_) batch.state.push_back({c.rule, c.key, c.bytes});
  std::set<std::string> touched;
  batch.events.reserve(events_.size());
  for (const auto& e : events_) {
    store::OutboxEvent out{e.id, e.kind, e.rule, rules::ToJson(e), e.time, {}};
    if (config_.uplinks.empty()) {
      out.uplinks.push_back(kLogUplink);
    } else {
      out.uplinks = uplink::Route(config_.routes, config_.uplinks, e.kind, e.rule, e.severity);
    }
    touched.insert(out.uplinks.begin(), out.uplinks.end());
    batch.events.push_back(std::move(out));
  }

  auto started = std::chrono::steady_clock::now();
  Status s = store_->Commit(batch, now);
  if (!s.ok()) {
    metrics_->commit_failures.fetch_add(1, std::memory_order_relaxed);
    metrics_->last_commit_failed = true;
    log::WriteLimited(log::Level::kError, "commit",
                      "store: commit failed, will retry: " + s.message());
    return;  // keep changes_ and events_ for the next attempt
  }
  metrics_->commits.fetch_add(1, std::memory_order_relaxed);
  metrics_->last_commit_failed = false;
  auto took = std::chrono::steady_clock::now() - started;
  metrics_->ObserveCommit(std::chrono::duration<double>(took).count());
  log::Debug("store: committed " + std::to_string(batch.state.size()) + " state row(s), " +
             std::to_string(batch.events.size()) + " event(s) in " +
             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(took).count()) +
             "us");

  for (std::size_t i = 0; i < events_.size(); ++i) {
    const auto& e = events_[i];
    if (e.kind == "alert") {
      metrics_->alert_events.fetch_add(1, std::memory_order_relaxed);
      log::Info("alert " + e.state + ": " + e.rule + " {" + DescribeKey(e.key) + "} " + e.severity +
                ": " + e.summary);
    } else {
      metrics_->aggregate_events.fetch_add(1, std::memory_order_relaxed);
      if (config_.uplinks.empty()) log::Info("event: " + batch.events[i].json);
    }
  }
  changes_.clear();
  events_.clear();
  for (const auto& name : touched) {
    if (name != kLogUplink) notify_(name);
  }
}

}  // namespace vigil::agent
