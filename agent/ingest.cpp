#include "agent/ingest.h"

#include <mqtt/async_client.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "config/log.h"
#include "uplink/mqtt_sink.h"

namespace vigil::agent {
namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr Millis kBackoffInitial{1000};
constexpr Millis kBackoffMax{30'000};

}  // namespace

Ingest::Ingest(const config::MqttConfig& mqtt, MessageHandler on_message, StateHandler on_state)
    : mqtt_(mqtt), on_message_(std::move(on_message)), on_state_(std::move(on_state)) {}

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
  client_->set_message_callback([this](mqtt::const_message_ptr msg) {
    on_message_(msg->get_topic(), msg->get_payload_str(), msg->is_duplicate());
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
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
  try {
    auto tok = client_->connect(builder.finalize());
    if (!tok->wait_for(kConnectTimeout + std::chrono::seconds(2))) {
      *error = "connect timed out";
      return false;
    }
    for (const auto& sub : mqtt_.subscriptions) {
      client_->subscribe(sub.topic.Filter(), sub.qos)->wait_for(kConnectTimeout);
    }
  } catch (const mqtt::exception& e) {
    *error = e.what();
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(1000);
    } catch (const mqtt::exception&) {
    }
    return false;
  }
  return true;
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
    std::string error;
    if (ConnectOnce(&error)) {
      log::Info("mqtt: connected to " + mqtt_.uri + ", subscribed to " +
                std::to_string(mqtt_.subscriptions.size()) + " topic filter(s)");
      on_state_(true);
      backoff = kBackoffInitial;
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || lost_; });
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
