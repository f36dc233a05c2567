#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "agent/decode.h"

namespace vigil::agent {

// The agent's process-wide counters (SPEC §10 names). Lock-free: written by the ingest and
// engine threads, read by status and the HTTP endpoint.
struct Metrics {
  static constexpr std::size_t kReasons = static_cast<std::size_t>(kLastRejectReason) + 1;

  std::atomic<std::uint64_t> readings_total{0};  // accepted readings
  std::array<std::atomic<std::uint64_t>, kReasons> rejected{};
  std::atomic<std::uint64_t> alert_events{0};
  std::atomic<std::uint64_t> aggregate_events{0};
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> commit_failures{0};
  std::atomic<bool> mqtt_connected{false};
  // vigil_dropped_total{what}: every path that drops anything (SPEC §8).
  std::atomic<std::uint64_t> dropped_journal{0};       // journal rows trimmed by the quota
  std::atomic<std::uint64_t> dropped_aggregates{0};    // undelivered aggregate rows (quota)
  std::atomic<std::uint64_t> dropped_alerts{0};        // undelivered alert rows (quota)
  std::atomic<std::uint64_t> dropped_ttl{0};           // undelivered rows older than store.ttl
  std::atomic<std::uint64_t> dropped_dead_letters{0};  // dead letters (quota, before events)
  // vigil_state_bytes: rule state in vigil.db (rule, key and state bytes of every row), as
  // measured at start and at checkpoints while the files are past the quota's trim threshold.
  std::atomic<std::uint64_t> state_bytes{0};
  // vigil_quota_exceeded_by_state: what the quota may not drop (rule state, WAL) keeps the
  // files above the trim target even with the outbox at its floor (agent/README.md, quota).
  std::atomic<bool> quota_exceeded_by_state{false};
  // A message the journal refused after Stop, let go with the connection open (see intake.h).
  std::atomic<std::uint64_t> dropped_unjournaled{0};
  // Redeliveries (DUP) of messages journaled on an earlier connection: skipped, not processed
  // twice (vigil_duplicate_messages_total).
  std::atomic<std::uint64_t> duplicates{0};
  // Redeliveries that match no journaled message: processed as new readings.
  std::atomic<std::uint64_t> redelivered_new{0};
  std::atomic<std::uint64_t> journal_failures{0};  // after_commit appends that had to wait
  // Reloads refused because a rule file was invalid or broke a limit (rules.max_*).
  std::atomic<std::uint64_t> reload_failures{0};
  std::atomic<bool> last_commit_failed{false};
  // Steps of the system clock seen (agent/clock.h), forward or back.
  std::atomic<std::uint64_t> clock_steps{0};

  // vigil_table_rows{table} and vigil_table_reloads_total{table,outcome}: one entry per
  // configured table, in config order, added before any thread starts (the deque then stays as
  // it is; only the counters change).
  struct TableCounters {
    explicit TableCounters(std::string table_name) : name(std::move(table_name)) {}
    const std::string name;
    std::atomic<std::uint64_t> rows{0};           // rows of the table in force
    std::atomic<std::uint64_t> reloads_ok{0};     // reloads that replaced it
    std::atomic<std::uint64_t> reloads_error{0};  // reloads refused: the previous table stays
  };
  std::deque<TableCounters> tables;

  // vigil_mqtt_subscribed{topic} and vigil_mqtt_subscription_failures_total{topic}: one entry
  // per distinct topic filter, in config order, added by Ingest's constructor (before any
  // thread starts); the connector thread updates them.
  struct SubscriptionCounters {
    explicit SubscriptionCounters(std::string topic_filter) : filter(std::move(topic_filter)) {}
    const std::string filter;
    std::atomic<bool> subscribed{false};     // the broker granted it on this connection
    std::atomic<std::uint64_t> failures{0};  // SUBACKs that refused it (0x80)
  };
  std::deque<SubscriptionCounters> subscriptions;

  // vigil_commit_duration_seconds: cumulative-by-export histogram of group commit latency.
  static constexpr std::array<double, 8> kCommitBuckets = {0.001, 0.0025, 0.005, 0.01,
                                                           0.025, 0.05,   0.1,   0.5};
  std::array<std::atomic<std::uint64_t>, kCommitBuckets.size() + 1> commit_buckets{};
  std::atomic<std::uint64_t> commit_micros_sum{0};

  void ObserveCommit(double seconds) {
    std::size_t i = 0;
    while (i < kCommitBuckets.size() && seconds > kCommitBuckets[i]) ++i;
    commit_buckets[i].fetch_add(1, std::memory_order_relaxed);
    commit_micros_sum.fetch_add(static_cast<std::uint64_t>(seconds * 1e6),
                                std::memory_order_relaxed);
  }

  // vigil_commit_rows: rows (state + outbox) written per group commit.
  static constexpr std::array<double, 5> kRowBuckets = {1, 10, 100, 1000, 10000};
  std::array<std::atomic<std::uint64_t>, kRowBuckets.size() + 1> commit_row_buckets{};
  std::atomic<std::uint64_t> commit_rows_sum{0};

  void ObserveCommitRows(std::uint64_t rows) {
    std::size_t i = 0;
    while (i < kRowBuckets.size() && static_cast<double>(rows) > kRowBuckets[i]) ++i;
    commit_row_buckets[i].fetch_add(1, std::memory_order_relaxed);
    commit_rows_sum.fetch_add(rows, std::memory_order_relaxed);
  }

  void CountReject(RejectReason reason) {
    rejected[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t Rejected(RejectReason reason) const {
    return rejected[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
  }
};

}  // namespace vigil::agent
