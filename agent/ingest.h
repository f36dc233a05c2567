#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
// Each received message is handed to `on_message` on Paho's callback thread. The handler may
// block (back-pressure): while it blocks, Paho reads no more messages and the broker holds
// them. Paho acknowledges a QoS 1/2 message after the handler returns (see
// agent/README.md, "When is a message acknowledged"), so a handler that journals the
// message before returning acknowledges only what is durable.
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

  Ingest(const config::MqttConfig& mqtt, MessageHandler on_message, StateHandler on_state,
         ConnectingHandler on_connecting = nullptr);
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
  void ConnectLoop();
  bool ConnectOnce(std::string* error);

  const config::MqttConfig& mqtt_;  // not owned; outlives this
  MessageHandler on_message_;
  StateHandler on_state_;
  ConnectingHandler on_connecting_;
  std::unique_ptr<mqtt::async_client> client_;
  std::thread thread_;
  std::mutex mu_;  // guards stopping_ and lost_ (with cv_)
  std::condition_variable cv_;
  bool stopping_ = false;
  bool lost_ = false;
};

}  // namespace vigil::agent
