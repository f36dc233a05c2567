#include "agent/decode.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace vigil::agent {
namespace {

using nlohmann::json;

const json* FindPath(const json& object, std::string_view path) {
  const json* node = &object;
  while (true) {
    if (!node->is_object()) return nullptr;
    std::size_t dot = path.find('.');
    auto it = node->find(path.substr(0, dot));
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string_view::npos) return node;
    path.remove_prefix(dot + 1);
  }
}

// Parses the whole of `text` as a number; false when it is not one.
bool ParseDouble(std::string_view text, double* out) {
  std::string s(text);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  if (start == s.size()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str() + start, &end);
  if (end != s.c_str() + s.size()) return false;
  if (errno == ERANGE && std::isfinite(v)) v = 0;  // underflow: a tiny number is 0
  *out = v;
  return true;
}

// A JSON value as a reading's value (SPEC §12.11).
std::optional<Reject> ToValue(const json* v, std::string_view field, double* out) {
  if (v == nullptr)
    return Reject{RejectReason::kValue, "field \"" + std::string(field) + "\" missing"};
  if (v->is_boolean()) {
    *out = v->get<bool>() ? 1 : 0;
  } else if (v->is_number()) {
    *out = v->get<double>();
  } else if (v->is_string()) {
    if (!ParseDouble(v->get_ref<const std::string&>(), out)) {
      return Reject{RejectReason::kValue, "field \"" + std::string(field) + "\" is not a number"};
    }
  } else {
    return Reject{RejectReason::kValue,
                  "field \"" + std::string(field) + "\" is " + std::string(v->type_name())};
  }
  if (!std::isfinite(*out)) {
    return Reject{RejectReason::kNaN, "field \"" + std::string(field) + "\" is NaN or infinite"};
  }
  return std::nullopt;
}

std::optional<Millis> NumericTime(double t, std::optional<config::TimeUnit> unit) {
  double ms = t;
  switch (unit.value_or(config::TimeUnit::kMillis)) {
    case config::TimeUnit::kSeconds:
      ms = t * 1e3;
      break;
    case config::TimeUnit::kMillis:
      break;
    case config::TimeUnit::kMicros:
      ms = t / 1e3;
      break;
    case config::TimeUnit::kNanos:
      ms = t / 1e6;
      break;
    case config::TimeUnit::kRfc3339:
      return std::nullopt;
  }
  if (!std::isfinite(ms) || ms > 9e15 || ms < -9e15) return std::nullopt;  // else UB below
  return Millis(static_cast<long long>(std::floor(ms)));
}

std::optional<Reject> ToTime(const json& v, const config::PayloadMapping& m, Millis* out) {
  std::optional<Millis> t;
  if (v.is_number() && !v.is_boolean()) {
    t = NumericTime(v.get<double>(), m.time_unit);
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    double d = 0;
    if (m.time_unit && *m.time_unit != config::TimeUnit::kRfc3339 && ParseDouble(s, &d)) {
      t = NumericTime(d, m.time_unit);
    } else {
      t = config::ParseRfc3339(s);
    }
  }
  if (!t) return Reject{RejectReason::kTime, "field \"" + m.time + "\" is not a valid time"};
  if (t->count() < 0) return Reject{RejectReason::kTime, "time before 1970"};
  *out = *t;
  return std::nullopt;
}

std::string TagText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

const char* ReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNoMatch:
      return "topic";
    case RejectReason::kJson:
      return "json";
    case RejectReason::kValue:
      return "value";
    case RejectReason::kNaN:
      return "nan";
    case RejectReason::kTime:
      return "time";
    case RejectReason::kFuture:
      return "future";
    case RejectReason::kSize:
      return "size";
    case RejectReason::kReadings:
      return "readings";
    case RejectReason::kTags:
      return "tags";
  }
  return "value";
}

Decoder::Decoder(const config::MqttConfig& mqtt) : mqtt_(mqtt) {}

void Decoder::DecodeMessage(std::string_view topic, std::string_view payload, Millis now,
                            Decoded* out) const {
  std::vector<std::pair<std::string, std::string>> captures;
  const config::Subscription* sub = nullptr;
  for (const auto& s : mqtt_.subscriptions) {
    if (s.topic.Match(topic, &captures)) {
      sub = &s;
      break;
    }
  }
  if (sub == nullptr) {
    out->rejects.push_back({RejectReason::kNoMatch, "no subscription matches"});
    return;
  }
  // The metric: a captured {metric}, else the subscription's "metric", else the last level.
  std::string metric = sub->metric;
  rules::Tags base;
  for (auto& [name, level] : captures) {
    if (name == "metric") {
      metric = level;
    } else {
      base.emplace_back(std::move(name), std::move(level));
    }
  }
  if (metric.empty()) {
    std::size_t slash = topic.rfind('/');
    metric = std::string(slash == std::string_view::npos ? topic : topic.substr(slash + 1));
  }
  const config::PayloadMapping& m = sub->payload;

  auto emit = [&](const std::string& name, rules::Tags tags, Millis time, double value) {
    if (time > now + mqtt_.max_clock_skew) {
      out->rejects.push_back({RejectReason::kFuture,
                              "time " + config::FormatRfc3339(time) + " is ahead of the clock"});
      return;
    }
    tags.emplace_back("metric", name);
    std::stable_sort(tags.begin(), tags.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    tags.erase(std::unique(tags.begin(), tags.end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; }),
               tags.end());
    out->readings.push_back(rules::Reading{name, std::move(tags), time, value});
  };

  if (m.format == config::PayloadMapping::Format::kNumber) {
    double v = 0;
    if (!ParseDouble(payload, &v)) {
      out->rejects.push_back({RejectReason::kValue, "payload is not a number"});
    } else if (!std::isfinite(v)) {
      out->rejects.push_back({RejectReason::kNaN, "payload is NaN or infinite"});
    } else {
      emit(metric, base, now, v);
    }
    return;
  }

  json doc = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    out->rejects.push_back({RejectReason::kJson, "payload is not valid JSON"});
    return;
  }
  auto one = [&](const json& obj) {
    if (!obj.is_object()) {
      // A bare JSON number/bool/string is the value itself.
      double v = 0;
      if (auto r = ToValue(&obj, "payload", &v)) {
        out->rejects.push_back(*r);
      } else {
        emit(metric, base, now, v);
      }
      return;
    }
    Millis time = now;
    if (!m.time.empty()) {
      if (const json* t = FindPath(obj, m.time); t != nullptr && !t->is_null()) {
        if (auto r = ToTime(*t, m, &time)) {
          out->rejects.push_back(*r);
          return;
        }
      }
    }
    rules::Tags tags = base;
    for (const auto& path : m.tags) {
      // An object or array is no tag value (and dumping a deeply nested one overflowed the
      // stack): ignored, as null is.
      if (const json* t = FindPath(obj, path); t != nullptr && t->is_primitive() && !t->is_null()) {
        tags.emplace_back(path, TagText(*t));
      }
    }
    if (m.metrics.empty()) {
      double v = 0;
      if (auto r = ToValue(FindPath(obj, m.value), m.value, &v)) {
        out->rejects.push_back(*r);
      } else {
        emit(metric, tags, time, v);
      }
      return;
    }
    for (const auto& field : m.metrics) {
      const json* f = FindPath(obj, field);
      if (f == nullptr) continue;  // a device may report a subset of its metrics
      double v = 0;
      if (auto r = ToValue(f, field, &v)) {
        out->rejects.push_back(*r);
      } else {
        emit(field, tags, time, v);
      }
    }
  };
  if (doc.is_array()) {
    for (const json& element : doc) one(element);
  } else {
    one(doc);
  }
}

}  // namespace vigil::agent
