#include "uplink/influx_sink.h"

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace vigil::uplink {
namespace {

using nlohmann::json;

// Line protocol escaping: `chars` get a backslash.
std::string Escape(const std::string& s, const char* chars) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (std::strchr(chars, c) != nullptr) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string Measurement(const std::string& s) { return Escape(s, ", "); }
std::string Key(const std::string& s) { return Escape(s, ",= "); }

}  // namespace

std::string LineProtocol(const std::string& event_json, long long units_per_ms) {
  json e = json::parse(event_json, nullptr, false);
  if (!e.is_object() || e.value("kind", "") != "aggregate") return "";
  std::string line = Measurement(e.value("rule", ""));
  json tags = e.value("key", json::object());
  tags["agent"] = e.value("agent", "");
  for (const auto& [name, value] : tags.items()) {  // nlohmann objects iterate sorted by key
    if (!value.is_string() || value.get<std::string>().empty()) continue;
    line += "," + Key(name) + "=" + Key(value.get<std::string>());
  }
  std::string fields;
  const json values = e.value("values", json::object());
  for (const auto& [name, value] : values.items()) {
    if (!value.is_number()) continue;  // null: left out
    if (!fields.empty()) fields += ",";
    fields += Key(name) + "=";
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

InfluxSink::InfluxSink(config::UplinkConfig config, std::unique_ptr<HttpClient> client)
    : config_(std::move(config)), client_(std::move(client)) {
  const std::string& url = config_.url;
  if (url.find("precision=ms") != std::string::npos) {
    per_ms_ = 1;
  } else if (url.find("precision=s") != std::string::npos) {
    per_ms_ = 0;
  } else if (url.find("precision=u") != std::string::npos) {
    per_ms_ = 1000;
  }
}

Result<std::unique_ptr<Sink>> InfluxSink::Create(const config::UplinkConfig& config) {
  auto client = HttpClient::Create(config);
  if (!client.ok()) return Result<std::unique_ptr<Sink>>::Error(client.error());
  return std::unique_ptr<Sink>(new InfluxSink(config, std::move(client.value())));
}

Verdict InfluxSink::Send(const std::vector<store::OutboxRow>& batch) {
  std::string body;
  for (const auto& row : batch) {
    std::string line = LineProtocol(row.json, per_ms_);
    if (line.empty()) continue;
    body += line;
    body += '\n';
  }
  if (body.empty()) return {Verdict::Outcome::kDelivered, std::nullopt, ""};
  std::vector<std::string> headers = {"Content-Type: text/plain; charset=utf-8"};
  if (config_.gzip) {
    body = Gzip(body);
    headers.push_back("Content-Encoding: gzip");
  }
  return client_->Post(config_.url, body, headers);
}

}  // namespace vigil::uplink
