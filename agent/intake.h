#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "agent/decode.h"
#include "agent/metrics.h"
#include "agent/pipeline.h"
#include "config/config.h"
#include "store/journal.h"

namespace vigil::agent {

// The ingest contract (SPEC §8, agent/README.md "When is a message acknowledged"): what
// becomes of one MQTT message the broker hands over. Paho acknowledges a QoS 1/2 message
// after OnMessage returns, so:
//
// - The message is decoded; every reject is counted by reason and logged (rate-limited). A
//   message without an accepted reading is acknowledged as it is.
// - mqtt.ack = after_commit: the message is appended to the journal before OnMessage returns,
//   so only a durable message is acknowledged. While the journal cannot be written (a full
//   disk, a locked file) OnMessage holds the message and tries again each second; Paho reads
//   nothing more meanwhile and the broker keeps the rest. When the connection is lost while a
//   message is held, it is let go (its acknowledgement cannot reach the broker, which
//   delivers it again). When the agent stops while a message is held, OnMessage does not
//   return until the connection is lost: the agent then ends without closing the connection
//   (Stop says so), and the broker delivers the message again to its next run.
// - A redelivery (the DUP flag) of a message journaled on an earlier connection, whose
//   acknowledgement did not reach the broker, is skipped: it matches by packet id, topic and
//   payload a journaled message among the last kRedeliveryWindow journaled before the
//   connection it came on, and each journaled message matches once. Anything else is a new
//   reading, however often its payload repeats.
// - mqtt.ack = on_receive: the message goes to the engine thread, which journals it at its
//   next commit (acknowledged before it is durable: README "Durability and delivery").
// - Then the readings are queued for the engine thread; `push` blocks while the queue is full
//   (back-pressure), and a message queued after the pipeline stopped is journaled and is
//   processed at the next start (recovery).
//
// Thread-safety: OnMessage is called by one thread at a time (Paho's callback thread);
// OnConnecting, OnConnectionClosed and Stop from any thread.
class MessageIntake {
 public:
  using Push = std::function<bool(IngestMessage)>;  // false once the queue is closed
  using Clock = std::function<Millis()>;
  // Journaled messages before a connection that a redelivery on it may repeat: many times a
  // broker's window of unacknowledged messages (mosquitto's max_inflight_messages, 20 by
  // default; each message is acknowledged as soon as it is journaled).
  static constexpr std::int64_t kRedeliveryWindow = 1024;

  MessageIntake(const config::MqttConfig& mqtt, store::Journal* journal, Metrics* metrics,
                Push push, Clock clock = Now);
  MessageIntake(const MessageIntake&) = delete;
  MessageIntake& operator=(const MessageIntake&) = delete;

  // One message. `packet_id`: its MQTT packet identifier (0 for QoS 0); `duplicate`: the DUP
  // flag. May block (see above).
  void OnMessage(const std::string& topic, const std::string& payload, int packet_id,
                 bool duplicate);
  // Before each connection attempt: what is journaled up to now is what a redelivery on the
  // new connection may repeat.
  void OnConnecting();
  // The connection is lost (or closed): a held message may be let go.
  void OnConnectionClosed();
  // The agent is stopping: the journal is tried no more. Waits (up to about 10 s) for an
  // append under way to end; returns true when a message is held unjournaled, so the
  // connection must be abandoned (Ingest::Abandon), not closed: closing it would let Paho
  // acknowledge the message.
  bool Stop();
  // Test failpoint (VIGIL_FAILPOINT=crash-after-journal=N): SIGKILL after the N-th journaled
  // message, before its acknowledgement.
  void CrashAfterJournal(long n) { crash_after_journal_ = n; }

 private:
  // True when the message repeats one journaled on an earlier connection (counted).
  bool IsRedelivery(const std::string& topic, const std::string& payload, int packet_id);
  // Appends it; false when it was let go unjournaled (stopping, or the connection closed).
  bool Journal(store::JournalMessage* message);

  const bool after_commit_;
  Decoder decoder_;
  store::Journal* journal_;  // not owned
  Metrics* metrics_;         // not owned
  Push push_;
  Clock clock_;
  long crash_after_journal_ = 0;
  long journaled_ = 0;  // callback thread only

  std::mutex mu_;  // guards what follows; cv_ signals stopping_ and closed_
  std::condition_variable cv_;
  bool stopping_ = false;
  bool closed_ = false;
  bool journaling_ = false;       // OnMessage is appending to the journal
  bool held_ = false;             // OnMessage holds a message it will not journal (stopping)
  std::uint64_t connection_ = 0;  // counts OnConnecting calls
  // The journaled messages a redelivery may repeat: seqs [window_first_, window_last_].
  std::int64_t window_first_ = 1;
  std::int64_t window_last_ = 0;
  std::vector<std::int64_t> taken_;  // matched by a redelivery already
};

}  // namespace vigil::agent
