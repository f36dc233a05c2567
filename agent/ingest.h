#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/metrics.h"
#include "config/config.h"

namespace mqtt {
class async_client;
}

namespace vigil::agent {

// The connection to the gateway's broker (Paho MQTT C++). Connects with a persistent session
// (clean session off) so the broker keeps readings while the agent is away, subscribes to
// every subscription's filter at its QoS, and reconnects with exponential backoff and jitter
// (1 s … 30 s) whenever the connection is lost or cannot be made, resubscribing each time.
//
// QoS: with mqtt.ack after_commit, a subscription asking for QoS 2 is subscribed at QoS 1
// (logged once at Start): Paho acknowledges a QoS 2 message (PUBREC) on receipt, before the
// handler runs, so only QoS 1 lets the journal commit come first (agent/README.md).
//
// A subscription the broker refuses (SUBACK 0x80, e.g. an ACL) is logged with its filter and
// counted (Metrics::subscriptions); the connection and the other subscriptions go on, and the
// refused one is tried again while connected (after 5 s, doubling up to 5 min) and at every
// reconnect.
//
// Each received message is handed to `on_message` on Paho's callback thread. The handler may
// block (back-pressure): while it blocks, Paho reads no more messages and the broker holds
// them. Paho acknowledges a QoS 1 message after the handler returns (see agent/README.md,
// "When is a message acknowledged"), so a handler that journals the message before returning
// acknowledges only what is durable.
class Ingest {
 public:
  // `packet_id`: the message's MQTT packet identifier (0 for QoS 0); `duplicate`: the
  // broker's DUP flag (a QoS 1/2 redelivery).
  using MessageHandler = std::function<void(const std::string& topic, const std::string& payload,
                                            int packet_id, bool duplicate)>;
  // Called with false when the connection is lost or closed by Stop, and with true once it is
  // up and subscribed.
  using StateHandler = std::function<void(bool connected)>;
  // Called on the connector thread before each connection attempt.
  using ConnectingHandler = std::function<void()>;

  // Adds one Metrics::SubscriptionCounters per distinct topic filter to *metrics, which must
  // outlive this.
  Ingest(const config::MqttConfig& mqtt, MessageHandler on_message, StateHandler on_state,
         Metrics* metrics, ConnectingHandler on_connecting = nullptr);
  ~Ingest();  // Stop()
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  // Starts the connector thread; returns at once (the broker may be down).
  void Start();
  // Disconnects and joins the connector thread. Blocks up to a few seconds.
  void Stop();
  // Instead of Stop, when a message handler holds a message that must not be acknowledged
  // (MessageIntake::Stop): joins the connector thread and leaves the connection and the Paho
  // client as they are (a disconnect would wait for the handler, and the handler's return
  // would send the acknowledgement). REQUIRES: the process ends next, without destroying this.
  void Abandon();

 private:
  // One distinct topic filter. filters_ is made by the constructor and never resized; after
  // Start `refused` is the connector thread's, and the counters (atomics) are also reset by
  // Paho's connection-lost callback.
  struct Filter {
    std::string filter;
    int qos = 1;         // what is asked of the broker
    int configured = 1;  // the highest `qos` of the subscriptions with this filter
    Metrics::SubscriptionCounters* counters = nullptr;
    bool refused = false;  // the last answer was a refusal
  };

  void ConnectLoop();
  bool ConnectOnce(std::string* error);
  // Subscribes one filter and records the broker's answer. False only when the connection
  // failed on the way (no answer; *error says why); a refusal is true.
  bool Subscribe(Filter& f, std::string* error);
  // Subscribes every filter not subscribed; false as Subscribe.
  bool SubscribeMissing(std::string* error);
  std::size_t Subscribed() const;

  const config::MqttConfig& mqtt_;  // not owned; outlives this
  MessageHandler on_message_;
  StateHandler on_state_;
  ConnectingHandler on_connecting_;
  std::vector<Filter> filters_;
  std::unique_ptr<mqtt::async_client> client_;
  std::thread thread_;
  std::mutex mu_;  // guards stopping_ and lost_ (with cv_)
  std::condition_variable cv_;
  bool stopping_ = false;
  bool lost_ = false;
};

}  // namespace vigil::agent
