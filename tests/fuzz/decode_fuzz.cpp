// Fuzz target: one MQTT message through the agent's Decoder (agent/decode.h).
// Input: the topic, a newline, then the payload (any bytes). The subscriptions cover every
// payload mapping of SPEC §2: json value/time/tags, metrics, number, nested paths, rfc3339
// and numeric time units, a final `#`.
// Checks: no crash, no exception, and every reading honours what the engine relies on
// (finite value, time in range, tags sorted and unique with `metric`, clean text, the
// limits, set low here so inputs reach them); every message is either kept or counted; a
// payload the in-place reader takes (agent/json_fields.h) is valid JSON and it reads each
// member as the full parse does.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/decode.h"
#include "agent/json_fields.h"
#include "config/config.h"

namespace {

constexpr vigil::Millis kNow{1'795'341'720'000};  // 2026-11-22T10:02:00Z

const vigil::config::MqttConfig& Mqtt() {
  static const vigil::config::MqttConfig mqtt = [] {
    auto r = vigil::config::ParseConfig(R"({ "mqtt": { "subscriptions": [
        { "topic": "sensors/{device}/{metric}",
          "payload": { "value": "value", "time": "ts", "tags": ["site", "meta.room"] } },
        { "topic": "plant/{line}/{device}/state",
          "payload": { "metrics": ["temperature", "pressure"], "time": "t", "time_unit": "s" } },
        { "topic": "legacy/{device}/rpm", "payload": { "format": "number" } },
        { "topic": "nested/{device}", "metric": "humidity",
          "payload": { "value": "data.h", "time": "at", "time_unit": "rfc3339" } },
        { "topic": "fine/{device}/+", "payload": { "time": "t", "time_unit": "ns" } },
        { "topic": "micro/{device}", "payload": { "time": "t", "time_unit": "us" } },
        { "topic": "any/#", "metric": "x" }
      ], "max_readings_per_message": 50, "max_tags": 5, "max_tag_bytes": 40 } })",
                                        "/fuzz/vigil.json");
    if (!r.config) std::abort();
    return r.config->mqtt;
  }();
  return mqtt;
}

// The in-place reader against the full parse.
void CheckInPlace(std::string_view payload) {
  using vigil::agent::JsonField;
  constexpr std::string_view kNames[] = {"value", "ts", "site", "t", "temperature"};
  JsonField fields[std::size(kNames)];
  if (!vigil::agent::ScanFlatObject(payload, kNames, std::size(kNames), fields)) return;
  auto doc = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) std::abort();  // also when discarded (invalid)
  for (std::size_t i = 0; i < std::size(kNames); ++i) {
    auto it = doc.find(kNames[i]);
    const JsonField& f = fields[i];
    bool same = false;
    if (it == doc.end()) {
      same = f.kind == JsonField::Kind::kMissing;
    } else if (it->is_null()) {
      same = f.kind == JsonField::Kind::kNull;
    } else if (it->is_boolean()) {
      same = f.kind == JsonField::Kind::kBool && f.boolean == it->get<bool>();
    } else if (it->is_number()) {
      const double d = it->get<double>();
      same = f.kind == JsonField::Kind::kNumber && std::memcmp(&d, &f.number, sizeof d) == 0;
    } else if (it->is_string()) {
      same = f.kind == JsonField::Kind::kString && f.text == it->get_ref<const std::string&>();
    }
    if (!same) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t newline = input.find('\n');
  std::string_view topic = input.substr(0, newline);
  std::string_view payload =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  CheckInPlace(payload);
  static const vigil::agent::Decoder decoder(Mqtt());
  vigil::agent::Decoded out;
  decoder.Decode(topic, payload, kNow, &out);

  const auto& mqtt = Mqtt();
  for (const auto& r : out.readings) {
    if (!std::isfinite(r.value)) std::abort();
    if (r.time.count() < 0 || r.time > kNow + mqtt.max_clock_skew) std::abort();
    if (r.metric.empty()) std::abort();
    const std::string* metric = vigil::rules::FindTag(r.tags, "metric");
    if (metric == nullptr || *metric != r.metric) std::abort();
    for (std::size_t i = 1; i < r.tags.size(); ++i) {
      if (!(r.tags[i - 1].first < r.tags[i].first)) std::abort();  // sorted, unique
    }
    if (r.tags.size() > mqtt.max_tags) std::abort();
    for (const auto& [name, value] : r.tags) {
      if (name.size() > mqtt.max_tag_bytes || value.size() > mqtt.max_tag_bytes) std::abort();
      for (char c : name + value) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
      }
    }
  }
  if (out.readings.size() > mqtt.max_readings_per_message) std::abort();
  // Every message is kept or counted.
  if (out.readings.empty() && out.rejects.empty()) std::abort();
  return 0;
}
