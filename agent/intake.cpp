#include "agent/intake.h"

#include <csignal>

#include <algorithm>
#include <chrono>

#include "config/log.h"

namespace vigil::agent {
namespace {

constexpr std::size_t kTopicShown = 200;  // bytes of a rejected message's topic in the log
constexpr auto kJournalRetry = std::chrono::seconds(1);
// How long Stop waits for an append under way (SQLite's busy timeout is 5 s).
constexpr auto kStopWait = std::chrono::seconds(10);
// How long a message held on the way out waits for the connection to be lost; the process
// ends long before unless the journal failed after Stop (the disconnect then waits for it).
constexpr auto kHeldWait = std::chrono::seconds(60);

}  // namespace

MessageIntake::MessageIntake(const config::MqttConfig& mqtt, store::Journal* journal,
                             Metrics* metrics, Push push, Clock clock)
    : after_commit_(mqtt.ack == config::MqttConfig::Ack::kAfterCommit),
      decoder_(mqtt),
      journal_(journal),
      metrics_(metrics),
      push_(std::move(push)),
      clock_(std::move(clock)) {}

void MessageIntake::OnConnecting() {
  const std::int64_t last = journal_->LastSeq();
  std::lock_guard lock(mu_);
  ++connection_;
  closed_ = false;
  window_last_ = std::max(window_last_, last);
  window_first_ = window_last_ - kRedeliveryWindow + 1;
  std::erase_if(taken_, [this](std::int64_t seq) { return seq < window_first_; });
}

void MessageIntake::OnConnectionClosed() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

bool MessageIntake::Stop() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  cv_.wait_for(lock, kStopWait, [this] { return !journaling_ || held_; });
  return held_;
}

bool MessageIntake::IsRedelivery(const std::string& topic, const std::string& payload,
                                 int packet_id) {
  std::unique_lock lock(mu_);
  if (packet_id == 0 || window_last_ < window_first_) return false;
  auto found =
      journal_->FindRedelivered(packet_id, topic, payload, window_first_, window_last_, taken_);
  if (!found.ok()) {
    // Processed as new: a duplicate reading at worst, never a lost one.
    log::WriteLimited(log::Level::kError, "journal-redelivery",
                      "journal: cannot look up a redelivered message: " + found.error());
    return false;
  }
  if (found.value() == 0) {
    metrics_->redelivered_new.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  taken_.push_back(found.value());
  metrics_->duplicates.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool MessageIntake::Journal(store::JournalMessage* message) {
  std::uint64_t connection = 0;
  {
    std::lock_guard lock(mu_);
    connection = connection_;
    journaling_ = true;
  }
  while (true) {
    Status s = journal_->Append({message});
    if (s.ok()) break;
    metrics_->journal_failures.fetch_add(1, std::memory_order_relaxed);
    log::WriteLimited(log::Level::kError, "journal-append",
                      "journal: cannot append, holding the message: " + s.message());
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kJournalRetry, [this] { return stopping_ || closed_; })) continue;
    journaling_ = false;
    if (!closed_) {
      // Stopping with the connection up: returning would let Paho acknowledge the message.
      // Held until the connection is lost, or the process ends (RunDaemon abandons the
      // connection); either way the broker delivers the message again.
      held_ = true;
      cv_.notify_all();
      log::Warning(
          "journal: stopping with a message that could not be journaled: it is left "
          "unacknowledged and the broker delivers it again");
      if (!cv_.wait_for(lock, kHeldWait, [this] { return closed_; })) {
        // Only when the journal fails after Stop returned and the disconnect waits for this.
        metrics_->dropped_unjournaled.fetch_add(1, std::memory_order_relaxed);
        log::Error(
            "journal: a message that could not be journaled is let go with the "
            "connection open: it may be acknowledged "
            "(vigil_dropped_total{what=\"unjournaled\"})");
        return false;
      }
    }
    log::Warning(
        "journal: a message that could not be journaled is left unacknowledged; the "
        "broker delivers it again");
    return false;
  }
  std::lock_guard lock(mu_);
  journaling_ = false;
  cv_.notify_all();
  // Journaled after a new connection began: it came on the one before, so a redelivery on
  // the new one may repeat it.
  if (connection != connection_) window_last_ = std::max(window_last_, message->seq);
  return true;
}

void MessageIntake::OnMessage(const std::string& topic, const std::string& payload, int packet_id,
                              bool duplicate) {
  IngestMessage m;
  m.received = clock_();
  Decoded decoded;
  decoder_.Decode(topic, payload, m.received, &decoded);
  for (const auto& reject : decoded.rejects) {
    metrics_->CountReject(reject.reason);
    // A topic may be up to 64 KiB: the log shows its start.
    const std::string shown =
        topic.size() > kTopicShown ? topic.substr(0, kTopicShown) + "…" : topic;
    log::WriteLimited(log::Level::kWarning, ReasonName(reject.reason),
                      std::string("rejected reading (") + ReasonName(reject.reason) + ") on " +
                          shown + ": " + reject.detail);
  }
  if (decoded.readings.empty()) return;  // nothing to keep: acknowledged as is
  if (after_commit_) {
    if (duplicate && IsRedelivery(topic, payload, packet_id)) return;
    store::JournalMessage jm{0, m.received, topic, payload, packet_id};
    if (!Journal(&jm)) return;
    m.seq = jm.seq;
    if (crash_after_journal_ > 0 && ++journaled_ == crash_after_journal_) {
      // Test failpoint: die between the journal commit and Paho's acknowledgement.
      log::Error("failpoint crash-after-journal reached: SIGKILL");
      raise(SIGKILL);
    }
  } else {
    m.topic = topic;
    m.payload = payload;
    m.packet_id = packet_id;
  }
  metrics_->readings_total.fetch_add(decoded.readings.size(), std::memory_order_relaxed);
  m.size = topic.size() + payload.size();
  m.readings = std::move(decoded.readings);
  push_(std::move(m));
}

}  // namespace vigil::agent
