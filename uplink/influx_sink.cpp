#include "uplink/influx_sink.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

#include "rules/event.h"

namespace vigil::uplink {
namespace {

using nlohmann::json;

// Line protocol escaping as InfluxDB 1.x reads it: each of `specials` gets a backslash. A
// backslash is otherwise read literally, but one right before a special would be taken for an
// escape, and one at the end would escape the separator after it (the line is then refused,
// and with it the whole batch). Neither can be written exactly: before a special the backslash
// is doubled (InfluxDB 1.x keeps both), at the end it is dropped.
std::string Escape(std::string_view s, std::string_view specials) {
  while (!s.empty() && s.back() == '\\') s.remove_suffix(1);
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool special = specials.find(c) != std::string_view::npos;
    if (special ||
        (c == '\\' && i + 1 < s.size() && specials.find(s[i + 1]) != std::string_view::npos)) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

// Measurements escape commas and spaces; tag keys, tag values and field keys also `=`.
std::string Measurement(std::string_view s) { return Escape(s, ", "); }
std::string Key(std::string_view s) { return Escape(s, ",= "); }

}  // namespace

std::string LineProtocol(const std::string& event_json, long long units_per_ms) {
  json e = json::parse(event_json, nullptr, false);
  if (!e.is_object() || rules::ParseEventKind(e.value("kind", "")) != rules::EventKind::kAggregate)
    return "";
  std::string line = Measurement(e.value("rule", ""));
  if (line.empty()) return "";
  json tags = e.value("key", json::object());
  tags["agent"] = e.value("agent", "");
  for (const auto& [name, value] : tags.items()) {  // nlohmann objects iterate sorted by key
    if (!value.is_string()) continue;
    const std::string tag_key = Key(name);
    const std::string tag_value = Key(value.get_ref<const std::string&>());
    if (tag_key.empty() || tag_value.empty()) continue;  // the line protocol has no empty tags
    line.append(",").append(tag_key).append("=").append(tag_value);
  }
  std::string fields;
  const json values = e.value("values", json::object());
  for (const auto& [name, value] : values.items()) {
    if (!value.is_number()) continue;  // null: left out
    const std::string field_key = Key(name);
    if (field_key.empty()) continue;
    if (!fields.empty()) fields += ",";
    fields += field_key + "=";
    if (value.is_number_integer()) {
      fields += std::to_string(value.get<long long>()) + "i";
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", value.get<double>());
      fields += buf;
    }
  }
  if (fields.empty()) return "";
  auto end = config::ParseRfc3339(e.contains("window") ? e["window"].value("end", "")
                                                       : e.value("time", ""));
  if (!end) return "";
  const long long ms = end->count();
  const long long stamp = units_per_ms == 0 ? ms / 1000 : ms * units_per_ms;
  return line + " " + fields + " " + std::to_string(stamp);
}

InfluxSink::InfluxSink(config::InfluxUplink influx, std::unique_ptr<HttpClient> client)
    : influx_(std::move(influx)), client_(std::move(client)) {
  const std::string& url = influx_.url;
  if (url.find("precision=ms") != std::string::npos) {
    per_ms_ = 1;
  } else if (url.find("precision=s") != std::string::npos) {
    per_ms_ = 0;
  } else if (url.find("precision=u") != std::string::npos) {
    per_ms_ = 1000;
  }
}

Result<std::unique_ptr<Sink>> InfluxSink::Create(const config::UplinkConfig& config,
                                                 const config::InfluxUplink& influx) {
  auto client = HttpClient::Create(config, influx.headers);
  if (!client.ok()) return Result<std::unique_ptr<Sink>>::Error(client.error());
  return std::unique_ptr<Sink>(new InfluxSink(influx, std::move(client.value())));
}

Verdict InfluxSink::Send(const std::vector<store::OutboxRow>& batch) {
  std::string body;
  std::size_t skipped = 0;  // alerts, and aggregates without a numeric value
  for (const auto& row : batch) {
    std::string line = LineProtocol(row.json, per_ms_);
    if (line.empty()) {
      ++skipped;
      continue;
    }
    body += line;
    body += '\n';
  }
  Verdict v;
  if (body.empty()) {
    v.outcome = Verdict::Outcome::kDelivered;
  } else {
    std::vector<std::string> headers = {"Content-Type: text/plain; charset=utf-8"};
    if (influx_.gzip) {
      body = Gzip(body);
      headers.emplace_back("Content-Encoding: gzip");
    }
    v = client_->Post(influx_.url, body, headers);
  }
  if (v.outcome == Verdict::Outcome::kDelivered) v.skipped = skipped;
  return v;
}

}  // namespace vigil::uplink
