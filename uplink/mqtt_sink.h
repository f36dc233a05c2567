#pragma once

#include <mqtt/ssl_options.h>

#include <memory>
#include <optional>
#include <string>

#include "config/text_template.h"
#include "uplink/payload_template.h"
#include "uplink/sink.h"

namespace mqtt {
class async_client;
}

namespace vigil::uplink {

// True for `ssl://`, `mqtts://` and `wss://` broker URIs (config/ also refuses a `tls` block
// with any other).
bool IsTlsUri(const std::string& uri);
// Paho's TLS options from a `tls` block: the server certificate is verified (against
// ca_file, else the system's CAs) unless insecure_skip_verify; cert_file/key_file for a
// client certificate. Shared by the ingest connection and the `mqtt` uplink.
mqtt::ssl_options SslOptions(const config::TlsConfig& tls);

// The `mqtt` uplink (SPEC §9): each event is published as one message (its SPEC §6 JSON) to a
// second, cloud broker at the uplink's QoS (default 1), on the topic template (`{agent}`,
// `{kind}`, `{rule}` and the key's tags; `+`, `#` and `/` inside a value become `_`). Paho
// MQTT C++; a persistent session (client id `vigil-<agent>-<uplink>`); TLS with `ca_file`,
// `cert_file`, `key_file` for `ssl://` URIs. It connects on demand: a broker that is down,
// or refuses the TLS handshake, is a Retry with Paho's reason, and nothing is dropped.
// The topic template and the `payload` template are parsed once, when the sink is made.
// With a `payload` template (actions: commands to devices, e.g. on the local broker) the
// body is PayloadTemplate's, and an event the template has no entry for is not published but
// counted in Verdict::skipped; `retain` sets the retained flag. A batch is delivered once
// every message it published is acknowledged at its QoS; else the whole batch is retried.
class MqttSink final : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const config::UplinkConfig& config,
                                              const config::MqttUplink& settings,
                                              const SinkContext& context);
  ~MqttSink() override;
  Verdict Send(const std::vector<store::OutboxRow>& batch) override;

 private:
  MqttSink(config::UplinkConfig config, config::MqttUplink settings,
           std::unique_ptr<mqtt::async_client> client);
  bool Connect(std::string* error);

  config::UplinkConfig config_;  // the keys every uplink has (name, timeout, tls)
  config::MqttUplink mqtt_;
  config::TextTemplate topic_;              // mqtt_.topic
  std::optional<PayloadTemplate> payload_;  // mqtt_.payload; none: the event's JSON
  std::unique_ptr<mqtt::async_client> client_;
};

// The topic for one event (SPEC §6 JSON) under a topic template (config::TextTemplate's kLenient
// syntax): `{agent}`, `{kind}`, `{rule}` or a key tag, each one topic level (`+`, `#`, `/` in
// a value become `_`; an empty or missing value is `_`); other text as it is.
std::string ExpandTopic(const config::TextTemplate& topic, const std::string& event_json);
// The same, the template parsed for this one event.
std::string ExpandTopic(const std::string& topic_template, const std::string& event_json);

}  // namespace vigil::uplink
