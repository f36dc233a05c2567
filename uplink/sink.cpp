#include "uplink/sink.h"

#include <algorithm>
#include <variant>

#include "config/log.h"
#include "uplink/alertmanager_sink.h"
#include "uplink/http_sink.h"
#include "uplink/influx_sink.h"
#include "uplink/mqtt_sink.h"

namespace vigil::uplink {
namespace {

using SinkResult = Result<std::unique_ptr<Sink>>;

// Glob match with `*` (any run) and `?` (one character).
bool Glob(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Matches(const std::vector<std::string>& patterns, const std::string& value, bool glob) {
  if (patterns.empty()) return true;
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return glob ? Glob(p, value) : p == value; });
}

}  // namespace

Result<std::unique_ptr<Sink>> MakeSink(const config::UplinkConfig& config,
                                       const SinkContext& context) {
  if (config.tls.insecure_skip_verify) {
    log::Warning("uplink " + config.name +
                 ": tls.insecure_skip_verify is on: the server's certificate is not checked");
  }
  // The switch: each type's sink gets the keys of its type, and only those.
  struct Make {
    const config::UplinkConfig& config;
    const SinkContext& context;
    SinkResult operator()(const config::HttpUplink& http) const {
      return HttpSink::Create(config, http);
    }
    SinkResult operator()(const config::AlertmanagerUplink& alertmanager) const {
      return AlertmanagerSink::Create(config, alertmanager, context);
    }
    SinkResult operator()(const config::InfluxUplink& influx) const {
      return InfluxSink::Create(config, influx);
    }
    SinkResult operator()(const config::MqttUplink& mqtt) const {
      return MqttSink::Create(config, mqtt, context);
    }
  };
  return std::visit(Make{config, context}, config.type);
}

std::vector<std::string> Route(const std::vector<config::RouteConfig>& routes,
                               const std::vector<config::UplinkConfig>& uplinks,
                               rules::EventKind kind, const std::string& rule,
                               const std::string& severity) {
  std::vector<std::string> out;
  if (routes.empty()) {
    for (const auto& u : uplinks) out.push_back(u.name);
    return out;
  }
  for (const auto& route : routes) {
    if (!Matches(route.kinds, rules::EventKindName(kind), false) ||
        !Matches(route.rules, rule, true))
      continue;
    if (!route.severities.empty() && !Matches(route.severities, severity, false)) continue;
    for (const auto& to : route.to) {
      if (std::find(out.begin(), out.end(), to) == out.end()) out.push_back(to);
    }
  }
  // Keep the uplinks' configured order: deterministic outbox rows.
  std::vector<std::string> ordered;
  for (const auto& u : uplinks) {
    if (std::find(out.begin(), out.end(), u.name) != out.end()) ordered.push_back(u.name);
  }
  return ordered;
}

}  // namespace vigil::uplink
