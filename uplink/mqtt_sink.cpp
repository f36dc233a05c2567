#include "uplink/mqtt_sink.h"

#include <mqtt/async_client.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "uplink/payload_template.h"

namespace vigil::uplink {

bool IsTlsUri(const std::string& uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0 ||
         uri.rfind("wss://", 0) == 0;
}

mqtt::ssl_options SslOptions(const config::TlsConfig& tls) {
  auto ssl = mqtt::ssl_options_builder()
                 .enable_server_cert_auth(!tls.insecure_skip_verify)
                 .verify(!tls.insecure_skip_verify);
  if (!tls.ca_file.empty()) ssl.trust_store(tls.ca_file);
  if (!tls.cert_file.empty()) ssl.key_store(tls.cert_file);
  if (!tls.key_file.empty()) ssl.private_key(tls.key_file);
  return ssl.finalize();
}
std::string ExpandTopic(const config::TextTemplate& topic, const std::string& event_json) {
  nlohmann::json e = nlohmann::json::parse(event_json, nullptr, false);
  if (!e.is_object()) e = nlohmann::json::object();
  auto lookup = [&e](const config::TextPiece& placeholder, std::string* value) {
    const std::string& name = placeholder.text;
    if (name == "agent" || name == "kind" || name == "rule") {
      *value = e.value(name, "");
    } else if (e.contains("key") && e["key"].contains(name) && e["key"][name].is_string()) {
      *value = e["key"][name].get<std::string>();
    }
    return true;
  };
  return topic.Render(lookup, config::TextTemplate::Escape::kTopicLevel,
                      config::TextTemplate::Unknown::kEmpty);
}

std::string ExpandTopic(const std::string& topic_template, const std::string& event_json) {
  return ExpandTopic(
      config::TextTemplate::Parse(topic_template, config::TextTemplate::Syntax::kLenient).value(),
      event_json);
}

MqttSink::MqttSink(config::UplinkConfig config, config::MqttUplink settings,
                   std::unique_ptr<mqtt::async_client> client)
    : config_(std::move(config)),
      mqtt_(std::move(settings)),
      topic_(
          config::TextTemplate::Parse(mqtt_.topic, config::TextTemplate::Syntax::kLenient).value()),
      client_(std::move(client)) {
  if (!mqtt_.payload.empty()) payload_.emplace(mqtt_.payload);
}

MqttSink::~MqttSink() {
  try {
    if (client_ && client_->is_connected()) client_->disconnect()->wait_for(2000);
  } catch (const mqtt::exception&) {
  }
}

Result<std::unique_ptr<Sink>> MqttSink::Create(const config::UplinkConfig& config,
                                               const config::MqttUplink& settings,
                                               const SinkContext& context) {
  using R = Result<std::unique_ptr<Sink>>;
  try {
    auto client = std::make_unique<mqtt::async_client>(
        settings.uri, "vigil-" + context.agent + "-" + config.name);
    return std::unique_ptr<Sink>(new MqttSink(config, settings, std::move(client)));
  } catch (const mqtt::exception& e) {
    return R::Error("uplink " + config.name + ": " + e.what());
  }
}

bool MqttSink::Connect(std::string* error) {
  auto builder = mqtt::connect_options_builder()
                     .clean_session(false)
                     .keep_alive_interval(std::chrono::seconds(30))
                     .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(
                         std::max(config_.timeout, Millis(1000))))
                     .automatic_reconnect(false);
  if (!mqtt_.username.empty()) builder.user_name(mqtt_.username);
  if (!mqtt_.password.empty()) builder.password(mqtt_.password);
  if (IsTlsUri(mqtt_.uri)) builder.ssl(SslOptions(config_.tls));
  try {
    auto tok = client_->connect(builder.finalize());
    if (!tok->wait_for(std::chrono::milliseconds(config_.timeout.count() + 2000))) {
      *error = "connect to " + mqtt_.uri + " timed out";
      return false;
    }
  } catch (const mqtt::exception& e) {
    // Paho says "TCP/TLS connect failure" for a refused handshake (wrong CA, bad certificate).
    *error = "cannot connect to " + mqtt_.uri + ": " + e.what();
    return false;
  }
  return true;
}

Verdict MqttSink::Send(const std::vector<store::OutboxRow>& batch) {
  Verdict v;
  // (topic, body) of every event the uplink sends; with a payload template, the events it
  // has no entry for are skipped.
  std::vector<std::pair<std::string, std::string>> messages;
  messages.reserve(batch.size());
  for (const auto& row : batch) {
    if (!payload_) {
      messages.emplace_back(ExpandTopic(topic_, row.json), row.json);
    } else if (std::optional<std::string> body = payload_->Render(row.json)) {
      messages.emplace_back(ExpandTopic(topic_, row.json), std::move(*body));
    } else {
      ++v.skipped;
    }
  }
  if (messages.empty()) {
    v.outcome = Verdict::Outcome::kDelivered;
    return v;
  }
  std::string error;
  if (!client_->is_connected() && !Connect(&error)) {
    v.error = error;
    return v;  // Retry
  }
  try {
    std::vector<mqtt::delivery_token_ptr> tokens;
    tokens.reserve(messages.size());
    for (const auto& [topic, body] : messages) {
      tokens.push_back(client_->publish(topic, body.data(), body.size(), mqtt_.qos, mqtt_.retain));
    }
    for (auto& tok : tokens) {
      if (!tok->wait_for(std::chrono::milliseconds(config_.timeout.count()))) {
        v.error = "publish to " + mqtt_.uri + " timed out";
        return v;
      }
    }
  } catch (const mqtt::exception& e) {
    v.error = std::string("publish to ") + mqtt_.uri + ": " + e.what();
    return v;
  }
  v.outcome = Verdict::Outcome::kDelivered;
  return v;
}

}  // namespace vigil::uplink
