// `mqtt`: the broker, its TLS, its limits and the subscriptions with their payload mappings.

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "config/config_parse.h"

namespace vigil::config::parse {
namespace {

// Whether an MQTT URI asks for TLS (ssl://, mqtts://, wss://). Paho connects in plaintext to
// every other one (tcp://, mqtt://, ws://, or none), whatever TLS options it is given.
bool TlsUri(std::string_view uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0 ||
         uri.rfind("wss://", 0) == 0;
}

std::optional<TimeUnit> ParseTimeUnit(const std::string& s) {
  if (s == "s") return TimeUnit::kSeconds;
  if (s == "ms") return TimeUnit::kMillis;
  if (s == "us") return TimeUnit::kMicros;
  if (s == "ns") return TimeUnit::kNanos;
  if (s == "rfc3339") return TimeUnit::kRfc3339;
  return std::nullopt;
}

void ReadPayload(JsonReader& r, const json& o, const std::string& p, PayloadMapping* m) {
  if (!r.CheckObject(o, p, {"format", "value", "metrics", "time", "time_unit", "tags"})) return;
  std::string format = "json";
  r.String(o, "format", p, &format);
  if (format == "json") {
    m->format = PayloadMapping::Format::kJson;
  } else if (format == "number") {
    m->format = PayloadMapping::Format::kNumber;
  } else {
    r.Error(p + "/format", "unknown format \"" + format + "\" (json, number)");
  }
  r.String(o, "value", p, &m->value);
  m->metrics = ReadStrings(r, o, "metrics", p);
  r.String(o, "time", p, &m->time);
  std::string unit;
  if (r.String(o, "time_unit", p, &unit) && !unit.empty()) {
    m->time_unit = ParseTimeUnit(unit);
    if (!m->time_unit) {
      r.Error(p + "/time_unit", "unknown time unit \"" + unit + "\" (s, ms, us, ns, rfc3339)");
    }
  }
  m->tags = ReadStrings(r, o, "tags", p);
}

// Subscription `s` at pointer `sp`; nullopt when it cannot be used (not an object, no valid
// topic). `max_tags`: mqtt.max_tags, which its readings must fit.
std::optional<Subscription> ReadSubscription(JsonReader& r, const json& s, const std::string& sp,
                                             std::size_t max_tags) {
  if (!r.CheckObject(s, sp, {"topic", "qos", "metric", "payload"})) return std::nullopt;
  std::string topic;
  r.String(s, "topic", sp, &topic);
  std::string error;
  auto tmpl = TopicTemplate::Parse(topic, &error);
  if (!tmpl) {
    r.Error(sp + "/topic", topic.empty() ? "a topic is needed" : error);
    return std::nullopt;
  }
  Subscription sub{*tmpl, 1, "", {}};
  std::int64_t qos = 1;
  r.Int(s, "qos", sp, 0, 2, &qos);
  sub.qos = static_cast<int>(qos);
  r.String(s, "metric", sp, &sub.metric);
  if (s.contains("payload")) ReadPayload(r, s["payload"], sp + "/payload", &sub.payload);
  // Captures, payload tags and `metric`: more than mqtt.max_tags would reject every reading.
  std::size_t tags = sub.payload.tags.size() + 1;
  for (const auto& name : sub.topic.Names()) tags += name == "metric" ? 0 : 1;
  if (tags > max_tags) {
    r.Error(sp, "makes readings of up to " + std::to_string(tags) + " tags; mqtt.max_tags is " +
                    std::to_string(max_tags));
  }
  return sub;
}

// The `mqtt` object `o` at pointer `p`.
void ReadMqttObject(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
                    MqttConfig* m) {
  if (!r.CheckObject(o, p,
                     {"uri", "client_id", "ack", "username", "password", "tls", "subscriptions",
                      "max_clock_skew", "max_payload_bytes", "keepalive",
                      "max_readings_per_message", "max_tags", "max_tag_bytes"})) {
    return;
  }
  r.String(o, "uri", p, &m->uri);
  r.String(o, "client_id", p, &m->client_id);
  std::string ack = "after_commit";
  r.String(o, "ack", p, &ack);
  if (ack == "after_commit") {
    m->ack = MqttConfig::Ack::kAfterCommit;
  } else if (ack == "on_receive") {
    m->ack = MqttConfig::Ack::kOnReceive;
  } else {
    r.Error(p + "/ack", "must be \"after_commit\" or \"on_receive\"");
  }
  r.String(o, "username", p, &m->username);
  r.String(o, "password", p, &m->password);
  if (o.contains("tls")) {
    m->tls.emplace();
    ReadTls(r, o["tls"], p + "/tls", dir, &*m->tls);
    CheckMqttTls(r, p + "/tls", m->uri);
  }
  r.Duration(o, "max_clock_skew", p, &m->max_clock_skew);
  r.Size(o, "max_payload_bytes", p, &m->max_payload_bytes);
  r.Duration(o, "keepalive", p, &m->keepalive);
  auto count = [&](std::string_view key, std::int64_t max, std::size_t* out) {
    auto n = static_cast<std::int64_t>(*out);
    if (r.Int(o, key, p, 1, max, &n)) *out = static_cast<std::size_t>(n);
  };
  count("max_readings_per_message", 1'000'000, &m->max_readings_per_message);
  count("max_tags", 1000, &m->max_tags);
  count("max_tag_bytes", 1024, &m->max_tag_bytes);
  auto subs = o.find("subscriptions");
  if (subs == o.end() || !subs->is_array() || subs->empty()) {
    r.Error(p + "/subscriptions", "at least one subscription is needed");
    return;
  }
  for (std::size_t i = 0; i < subs->size(); ++i) {
    auto sub =
        ReadSubscription(r, (*subs)[i], p + "/subscriptions/" + std::to_string(i), m->max_tags);
    if (sub) m->subscriptions.push_back(std::move(*sub));
  }
}

}  // namespace

void ReadTls(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
             TlsConfig* tls) {
  if (!r.CheckObject(o, p, {"ca_file", "cert_file", "key_file", "insecure_skip_verify"})) return;
  r.String(o, "ca_file", p, &tls->ca_file);
  r.String(o, "cert_file", p, &tls->cert_file);
  r.String(o, "key_file", p, &tls->key_file);
  r.Bool(o, "insecure_skip_verify", p, &tls->insecure_skip_verify);
  tls->ca_file = Resolve(dir, tls->ca_file);
  tls->cert_file = Resolve(dir, tls->cert_file);
  tls->key_file = Resolve(dir, tls->key_file);
}

// A `tls` block with a plaintext MQTT URI would silently stay plaintext: an error at `pointer`.
void CheckMqttTls(JsonReader& r, const std::string& pointer, const std::string& uri) {
  if (TlsUri(uri)) return;
  const std::size_t colon = uri.find("://");
  const std::string scheme = colon == std::string::npos ? "tcp" : uri.substr(0, colon);
  r.Error(pointer, "given for a plaintext " + scheme +
                       ":// broker, which would not use it: use an ssl:// or mqtts:// URI "
                       "for TLS (e.g. ssl://host:8883), or remove tls");
}

void ReadMqtt(JsonReader& r, const json& root, const std::string& dir, const std::string& agent_id,
              MqttConfig* mqtt) {
  if (auto m = root.find("mqtt"); m != root.end()) {
    ReadMqttObject(r, *m, "/mqtt", dir, mqtt);
  } else {
    r.Error("/mqtt", "missing (at least one subscription is needed)");
  }
  if (mqtt->client_id.empty()) mqtt->client_id = "vigil-" + agent_id;
}

}  // namespace vigil::config::parse
