#include "uplink/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>

#include "config/log.h"

namespace vigil::uplink {
namespace {

// How long to wait when no rows are pending and nobody notifies (dead letters moved back
// by `vigil outbox retry` are picked up so).
constexpr Millis kIdlePoll{1000};

}  // namespace

Dispatcher::Dispatcher(config::UplinkConfig config, store::Store* store, std::unique_ptr<Sink> sink,
                       Clock& clock)
    : config_(std::move(config)), store_(store), sink_(std::move(sink)), clock_(clock) {}

Dispatcher::~Dispatcher() { Stop(Millis(0)); }

void Dispatcher::Seed(const std::vector<rules::FiringAlert>& firing) { sink_->Seed(firing); }

void Dispatcher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Dispatcher::Notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  cv_.notify_one();
}

void Dispatcher::Stop(Millis drain) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      drain_until_ = clock_.Steady() + drain;
    }
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

DispatcherStats Dispatcher::Stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Dispatcher::Run() {
  std::mt19937_64 rng(std::random_device{}());
  int failures = 0;  // consecutive failed attempts
  const std::string& name = config_.name;

  // Waits until `deadline` (steady clock) or a Notify; false when the dispatcher must stop.
  auto wait = [&](Millis deadline, bool wake_on_notify) {
    std::unique_lock lock(mu_);
    while (true) {
      if (stopping_ && clock_.Steady() >= drain_until_) return false;
      if (wake_on_notify && notified_) break;
      Millis now = clock_.Steady();
      if (now >= deadline) break;
      Millis until = deadline;
      if (stopping_) until = std::min(until, drain_until_);
      clock_.WaitUntil(cv_, lock, until);
      if (stopping_ && !wake_on_notify) {
        // While draining, a backoff still ends the dispatcher at drain_until_.
        if (clock_.Steady() >= drain_until_) return false;
      }
    }
    notified_ = false;
    return true;
  };

  // Full jitter between retry_initial and the doubling cap (retry_max at most), or
  // Retry-After; counts the failure.
  auto backoff = [&](std::optional<Millis> retry_after) {
    ++failures;
    const double initial = static_cast<double>(config_.retry_initial.count());
    const double cap = std::min<double>(static_cast<double>(config_.retry_max.count()),
                                        initial * std::pow(2.0, std::min(failures - 1, 30)));
    std::uniform_real_distribution<double> jitter(initial, std::max(cap, initial));
    Millis delay(static_cast<std::int64_t>(jitter(rng)));
    if (retry_after) delay = std::min(std::max(*retry_after, delay), config_.retry_max);
    return delay;
  };

  // Delivered rows whose delete from the outbox failed: deleted again, after a backoff,
  // before anything else is sent (a failing store must not make the dispatcher spin, nor
  // send them again and again).
  std::vector<std::int64_t> unacked;
  // Tries to delete `unacked`; on failure logs, counts and backs off. False: stop.
  auto ack = [&]() {
    Status s = store_->Ack(name, unacked);
    if (s.ok()) {
      unacked.clear();
      return true;
    }
    const Millis delay = backoff(std::nullopt);
    log::WriteLimited(log::Level::kError, "uplink-ack-" + name,
                      "uplink " + name + ": " + std::to_string(unacked.size()) +
                          " event(s) delivered but not removed from the outbox: " + s.message() +
                          "; trying again in " + std::to_string(delay.count()) +
                          "ms (they are sent again if the agent stops first)");
    {
      std::lock_guard lock(mu_);
      ++stats_.ack_failures;
      stats_.last_error = "cannot remove delivered events from the outbox: " + s.message();
    }
    return wait(clock_.Steady() + delay, false);
  };

  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ && clock_.Steady() >= drain_until_) return;
      notified_ = false;
    }
    if (!unacked.empty()) {
      if (!ack()) return;
      if (!unacked.empty()) continue;
      log::Info("uplink " + name + ": delivered events removed from the outbox");
      failures = 0;
    }
    sink_->Tick(clock_.Now());
    auto pending = store_->Pending(name, config_.batch_max_events);
    if (!pending.ok()) {
      log::WriteLimited(log::Level::kError, "uplink-store-" + name,
                        "uplink " + name + ": cannot read the outbox: " + pending.error());
      if (!wait(clock_.Steady() + Millis(1000), false)) return;
      continue;
    }
    std::vector<store::OutboxRow>& rows = pending.value();
    if (rows.empty()) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;  // drained
      }
      if (!wait(clock_.Steady() + kIdlePoll, true)) return;
      continue;
    }
    // A partial batch waits up to batch_max_delay after its oldest row was committed.
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
    }
    if (rows.size() < config_.batch_max_events && !stopping) {
      // Never more than batch_max_delay, also when the system clock stepped back after the
      // row was committed (its time would then look to be in the future).
      Millis age = std::max(clock_.Now() - rows.front().created, Millis(0));
      if (age < config_.batch_max_delay) {
        if (!wait(clock_.Steady() + (config_.batch_max_delay - age), false)) return;
        continue;
      }
    }

    Verdict v = sink_->Send(rows);
    std::vector<std::int64_t> seqs;
    seqs.reserve(rows.size());
    for (const auto& r : rows) seqs.push_back(r.seq);

    if (v.outcome == Verdict::Outcome::kDelivered) {
      if (failures > 0) log::Info("uplink " + name + ": delivering again");
      failures = 0;
      {
        const std::size_t skipped = std::min(v.skipped, rows.size());
        std::lock_guard lock(mu_);
        stats_.delivered += rows.size() - skipped;
        stats_.skipped += skipped;
      }
      unacked = std::move(seqs);
      if (!ack()) return;
      continue;
    }
    if (v.outcome == Verdict::Outcome::kReject) {
      Status s = store_->MoveToDead(name, seqs, v.error);
      log::Error("uplink " + name + ": " + v.error + "; " + std::to_string(rows.size()) +
                 " event(s) moved to dead letters" +
                 (s.ok() ? "" : " (failed: " + s.message() + ")"));
      std::lock_guard lock(mu_);
      stats_.dead += rows.size();
      stats_.last_error = v.error;
      continue;
    }
    // Retry: full jitter between retry_initial and the doubling cap, or Retry-After.
    (void)store_->RecordFailure(name, seqs, v.error);
    const Millis delay = backoff(v.retry_after);
    log::WriteLimited(
        log::Level::kWarning, "uplink-retry-" + name,
        "uplink " + name + ": " + v.error + ", retry in " + std::to_string(delay.count()) + "ms");
    {
      std::lock_guard lock(mu_);
      ++stats_.retried;
      stats_.last_error = v.error;
    }
    if (!wait(clock_.Steady() + delay, false)) return;
  }
}

}  // namespace vigil::uplink
