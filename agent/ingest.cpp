#include "agent/ingest.h"

// Paho C++ 1.2 shows a message's packet identifier (MQTTAsync_message::msgid, which matches a
// redelivery to the message it repeats) only through message::c_struct(), an inline accessor
// it declares under UNIT_TESTS; the define adds the accessor and changes nothing else.
#define UNIT_TESTS 1
#include <mqtt/async_client.h>
#undef UNIT_TESTS

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "config/log.h"
#include "uplink/mqtt_sink.h"

namespace vigil::agent {
namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr Millis kBackoffInitial{1000};
constexpr Millis kBackoffMax{30'000};
// A subscription the broker refused is tried again while connected after these (doubling).
constexpr Millis kResubscribeInitial{5000};
constexpr Millis kResubscribeMax{300'000};

}  // namespace

Ingest::Ingest(const config::MqttConfig& mqtt, MessageHandler on_message, StateHandler on_state,
               Metrics* metrics, ConnectingHandler on_connecting)
    : mqtt_(mqtt),
      on_message_(std::move(on_message)),
      on_state_(std::move(on_state)),
      on_connecting_(std::move(on_connecting)) {
  // One subscribe per distinct filter, at the highest QoS asked for it.
  for (const auto& sub : mqtt_.subscriptions) {
    const std::string filter = sub.topic.Filter();
    auto same = std::find_if(filters_.begin(), filters_.end(),
                             [&](const Filter& f) { return f.filter == filter; });
    if (same != filters_.end()) {
      same->configured = std::max(same->configured, sub.qos);
      continue;
    }
    filters_.push_back({filter, sub.qos, sub.qos, &metrics->subscriptions.emplace_back(filter)});
  }
  // With ack after_commit, QoS 2 would be acknowledged before the journal commit (the PUBREC
  // goes out on receipt): QoS 1 is acknowledged after it.
  for (Filter& f : filters_) {
    f.qos =
        f.configured == 2 && mqtt_.ack == config::MqttConfig::Ack::kAfterCommit ? 1 : f.configured;
  }
}

Ingest::~Ingest() { Stop(); }

void Ingest::Start() {
  try {
    // No client-side persistence: the subscriber publishes nothing; the broker's persistent
    // session keeps what we have not acknowledged.
    client_ = std::make_unique<mqtt::async_client>(mqtt_.uri, mqtt_.client_id);
  } catch (const mqtt::exception& e) {
    log::Error(std::string("mqtt: cannot create client for ") + mqtt_.uri + ": " + e.what());
    return;
  }
  if (mqtt_.tls && mqtt_.tls->insecure_skip_verify) {
    log::Warning("mqtt: tls.insecure_skip_verify is on: the broker's certificate is not checked");
  }
  for (const Filter& f : filters_) {
    if (f.qos == f.configured) continue;
    log::Info("mqtt: subscribing to " + f.filter +
              " at QoS 1, not 2: with mqtt.ack after_commit a message is acknowledged only "
              "after it is journaled, which the client library does for QoS 1 (it acknowledges "
              "QoS 2 on receipt); a redelivery after a crash is recognised in the journal");
  }
  client_->set_message_callback([this](const mqtt::const_message_ptr& msg) {
    on_message_(msg->get_topic(), msg->get_payload_str(),
                msg->get_qos() > 0 ? msg->c_struct().msgid : 0, msg->is_duplicate());
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    for (const Filter& f : filters_) f.counters->subscribed = false;
    log::Warning("mqtt: connection to " + mqtt_.uri + " lost" +
                 (cause.empty() ? "" : ": " + cause) + "; reconnecting");
    on_state_(false);
    std::lock_guard lock(mu_);
    lost_ = true;
    cv_.notify_all();
  });
  thread_ = std::thread([this] { ConnectLoop(); });
}

void Ingest::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (client_) {
    try {
      if (client_->is_connected())
        client_->disconnect(std::chrono::milliseconds(2000))->wait_for(3000);
    } catch (const mqtt::exception& e) {
      log::Warning(std::string("mqtt: disconnect: ") + e.what());
    }
    on_state_(false);
  }
}

void Ingest::Abandon() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

bool Ingest::Subscribe(Filter& f, std::string* error) {
  int granted = 0;
  std::string refusal;
  try {
    auto tok = client_->subscribe(f.filter, f.qos);
    if (!tok->wait_for(kConnectTimeout)) {
      *error = "no answer to the subscription to " + f.filter;
      return false;
    }
    const mqtt::subscribe_response response = tok->get_subscribe_response();
    const auto& codes = response.get_reason_codes();
    granted = codes.empty() ? f.qos : static_cast<int>(codes.front());
    if (granted >= MQTT_BAD_SUBSCRIBE) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", static_cast<unsigned>(granted) & 0xffu);
      refusal = std::string("SUBACK ") + code;
    }
  } catch (const mqtt::exception& e) {
    // Paho reports an MQTT 3.1.1 SUBACK of 0x80 for a single filter as a failure with that code.
    if (e.get_return_code() != MQTT_BAD_SUBSCRIBE) {
      *error = "subscription to " + f.filter + ": " + e.what();
      return false;
    }
    refusal = "SUBACK 0x80";
  }
  if (!refusal.empty()) {
    f.refused = true;
    f.counters->subscribed = false;
    f.counters->failures.fetch_add(1, std::memory_order_relaxed);
    log::WriteLimited(log::Level::kError, "mqtt-suback-" + f.filter,
                      "mqtt: the broker refused the subscription to " + f.filter + " (" + refusal +
                          ": not authorized by its ACL, or a filter it does not take): its "
                          "messages are not received; the other subscriptions go on, and it is "
                          "tried again while connected and at every reconnect");
    return true;
  }
  if (granted < f.qos) {
    log::WriteLimited(log::Level::kWarning, "mqtt-granted-" + f.filter,
                      "mqtt: the broker granted QoS " + std::to_string(granted) + " for " +
                          f.filter + " (asked: " + std::to_string(f.qos) +
                          "): messages it sends at QoS 0 are not acknowledged, nor kept while "
                          "the agent is away");
  }
  if (f.refused) log::Info("mqtt: the broker granted the subscription to " + f.filter + " now");
  f.refused = false;
  f.counters->subscribed = true;
  return true;
}

bool Ingest::SubscribeMissing(std::string* error) {
  for (Filter& f : filters_) {
    if (!f.counters->subscribed && !Subscribe(f, error)) return false;
  }
  return true;
}

std::size_t Ingest::Subscribed() const {
  return static_cast<std::size_t>(
      std::count_if(filters_.begin(), filters_.end(),
                    [](const Filter& f) { return f.counters->subscribed.load(); }));
}

bool Ingest::ConnectOnce(std::string* error) {
  auto builder = mqtt::connect_options_builder()
                     .clean_session(false)
                     .keep_alive_interval(std::chrono::duration_cast<std::chrono::seconds>(
                         std::max(mqtt_.keepalive, Millis(1000))))
                     .connect_timeout(kConnectTimeout)
                     .automatic_reconnect(false);
  if (!mqtt_.username.empty()) builder.user_name(mqtt_.username);
  if (!mqtt_.password.empty()) builder.password(mqtt_.password);
  // TLS for an ssl://, mqtts:// or wss:// broker (a `tls` block with any other URI is a
  // config error); the broker's certificate is verified (against ca_file, else the system's
  // CAs) unless tls.insecure_skip_verify says otherwise.
  if (uplink::IsTlsUri(mqtt_.uri)) {
    builder.ssl(uplink::SslOptions(mqtt_.tls.value_or(config::TlsConfig{})));
  }
  for (Filter& f : filters_) f.counters->subscribed = false;  // a new connection
  bool ok = false;
  try {
    auto tok = client_->connect(builder.finalize());
    if (!tok->wait_for(kConnectTimeout + std::chrono::seconds(2))) {
      *error = "connect timed out";
    } else {
      ok = SubscribeMissing(error);
    }
  } catch (const mqtt::exception& e) {
    *error = e.what();
  }
  if (!ok) {
    for (Filter& f : filters_) f.counters->subscribed = false;
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(1000);
    } catch (const mqtt::exception&) {
    }
  }
  return ok;
}

void Ingest::ConnectLoop() {
  std::mt19937_64 rng(std::random_device{}());
  Millis backoff = kBackoffInitial;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      lost_ = false;
    }
    if (on_connecting_) on_connecting_();
    std::string error;
    if (ConnectOnce(&error)) {
      log::Info("mqtt: connected to " + mqtt_.uri + ", subscribed to " +
                std::to_string(Subscribed()) + " of " + std::to_string(filters_.size()) +
                " topic filter(s)");
      on_state_(true);
      backoff = kBackoffInitial;
      // Connected: refused subscriptions are tried again now and then (an ACL may be fixed
      // without the connection ever dropping).
      Millis resubscribe = kResubscribeInitial;
      std::unique_lock lock(mu_);
      while (!stopping_ && !lost_) {
        if (Subscribed() == filters_.size()) {
          cv_.wait(lock, [&] { return stopping_ || lost_; });
          break;
        }
        if (cv_.wait_for(lock, resubscribe, [&] { return stopping_ || lost_; })) break;
        resubscribe = std::min(resubscribe * 2, kResubscribeMax);
        lock.unlock();
        std::string sub_error;
        const bool answered = SubscribeMissing(&sub_error);
        lock.lock();
        if (!answered) {
          // The broker stopped answering: the connection-lost handler (or the next attempt)
          // reconnects.
          log::WriteLimited(log::Level::kWarning, "mqtt-resubscribe",
                            "mqtt: " + sub_error + "; reconnecting");
          lock.unlock();
          try {
            if (client_->is_connected()) client_->disconnect()->wait_for(1000);
          } catch (const mqtt::exception&) {
          }
          on_state_(false);
          lock.lock();
          break;
        }
      }
      if (stopping_) return;
      continue;
    }
    log::WriteLimited(log::Level::kWarning, "mqtt-connect",
                      "mqtt: cannot connect to " + mqtt_.uri + ": " + error + "; retrying");
    // Full jitter between half the backoff and the backoff.
    std::uniform_int_distribution<std::int64_t> jitter(backoff.count() / 2, backoff.count());
    Millis wait{jitter(rng)};
    backoff = std::min(backoff * 2, kBackoffMax);
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, wait, [&] { return stopping_; })) return;
  }
}

}  // namespace vigil::agent
