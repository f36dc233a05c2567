#include "agent/decode.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "agent/json_fields.h"

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

// A member at a payload mapping's path: read in place, or from a parsed document (`node`,
// which also gives a number's or bool's text as a tag, and a type's name).
struct Field {
  JsonField in;
  const json* node = nullptr;
};

Field FieldOf(const json* v) {
  Field f{{}, v};
  if (v == nullptr) return f;
  using K = JsonField::Kind;
  if (v->is_null()) {
    f.in.kind = K::kNull;
  } else if (v->is_boolean()) {
    f.in.kind = K::kBool;
    f.in.boolean = v->get<bool>();
  } else if (v->is_number()) {
    f.in.kind = K::kNumber;
    f.in.number = v->get<double>();
  } else if (v->is_string()) {
    f.in.kind = K::kString;
    f.in.text = v->get_ref<const std::string&>();
  } else {
    f.in.kind = K::kOther;
  }
  return f;
}

// A JSON value as a reading's value (SPEC §12.11).
std::optional<Reject> ToValue(const Field& v, std::string_view field, double* out) {
  using K = JsonField::Kind;
  switch (v.in.kind) {
    case K::kMissing:
      return Reject{RejectReason::kValue, "field \"" + std::string(field) + "\" missing"};
    case K::kBool:
      *out = v.in.boolean ? 1 : 0;
      break;
    case K::kNumber:
      *out = v.in.number;
      break;
    case K::kString:
      if (!ParseDouble(v.in.text, out)) {
        return Reject{RejectReason::kValue, "field \"" + std::string(field) + "\" is not a number"};
      }
      break;
    case K::kNull:
    case K::kOther:
      return Reject{RejectReason::kValue,
                    "field \"" + std::string(field) + "\" is " +
                        (v.node != nullptr ? std::string(v.node->type_name()) : "null")};
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

std::optional<Reject> ToTime(const Field& v, const config::PayloadMapping& m, Millis* out) {
  std::optional<Millis> t;
  if (v.in.kind == JsonField::Kind::kNumber) {
    t = NumericTime(v.in.number, m.time_unit);
  } else if (v.in.kind == JsonField::Kind::kString) {
    double d = 0;
    if (m.time_unit && *m.time_unit != config::TimeUnit::kRfc3339 && ParseDouble(v.in.text, &d)) {
      t = NumericTime(d, m.time_unit);
    } else {
      t = config::ParseRfc3339(v.in.text);
    }
  }
  if (!t) return Reject{RejectReason::kTime, "field \"" + m.time + "\" is not a valid time"};
  if (t->count() < 0) return Reject{RejectReason::kTime, "time before 1970"};
  *out = *t;
  return std::nullopt;
}

// A tag's text: a string as it is, a number or bool as JSON writes it.
bool IsTag(const Field& f) {
  using K = JsonField::Kind;
  return f.in.kind == K::kString || f.in.kind == K::kBool || f.in.kind == K::kNumber;
}
std::string TagText(const Field& f) {
  if (f.in.kind == JsonField::Kind::kString) return std::string(f.in.text);
  return f.node->dump();  // only documents give numbers and bools as tags (ReadInPlace)
}

// Reads a plain payload (agent/json_fields.h) without building a document and gives one()
// its members. False, having read nothing, when the payload needs the full parse: another
// shape, a dotted path, or a number or bool where a tag is read (a document writes its text).
template <typename One>
bool ReadInPlace(const config::Subscription& sub, std::string_view payload, One& one) {
  constexpr std::size_t kMaxFields = 16;
  const config::PayloadMapping& m = sub.payload;
  std::array<std::string_view, kMaxFields> names;
  std::size_t count = 0;
  auto want = [&](const std::string& path) {
    if (count == kMaxFields || path.find('.') != std::string::npos) return false;
    names[count++] = path;
    return true;
  };
  bool plain = m.time.empty() || want(m.time);
  for (const auto& path : m.tags) plain = plain && want(path);
  if (m.metrics.empty()) plain = plain && want(m.value);
  for (const auto& path : m.metrics) plain = plain && want(path);
  std::array<JsonField, kMaxFields> fields;
  if (!plain || !ScanFlatObject(payload, names.data(), count, fields.data())) return false;
  auto find = [&](std::string_view path) {
    for (std::size_t i = 0; i < count; ++i) {
      if (names[i] == path) return Field{fields[i], nullptr};
    }
    return Field{};
  };
  for (const auto& path : m.tags) {
    if (Field t = find(path); IsTag(t) && t.in.kind != JsonField::Kind::kString) return false;
  }
  one(find);
  return true;
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
  captures.reserve(4);
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
  // Room for the payload's tags and the metric: a reading's tags are not reallocated.
  base.reserve(captures.size() + sub->payload.tags.size() + 1);
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
    // By name, equal names in their order (the first is kept). An insertion sort for the few
    // tags a reading has: std::stable_sort allocates a buffer on every call.
    if (tags.size() <= 16) {
      for (std::size_t i = 1; i < tags.size(); ++i) {
        for (std::size_t j = i; j > 0 && tags[j].first < tags[j - 1].first; --j) {
          std::swap(tags[j], tags[j - 1]);
        }
      }
    } else {
      std::stable_sort(tags.begin(), tags.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
    }
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
      emit(metric, std::move(base), now, v);
    }
    return;
  }

  // One object's readings; find(path) gives its member at a mapping's path.
  auto one = [&](auto&& find) {
    Millis time = now;
    if (!m.time.empty()) {
      if (Field t = find(m.time);
          t.in.kind != JsonField::Kind::kMissing && t.in.kind != JsonField::Kind::kNull) {
        if (auto r = ToTime(t, m, &time)) {
          out->rejects.push_back(*r);
          return;
        }
      }
    }
    rules::Tags tags;
    tags.reserve(base.capacity());
    tags = base;
    for (const auto& path : m.tags) {
      // An object or array is no tag value (and dumping a deeply nested one overflowed the
      // stack): ignored, as null is.
      if (Field t = find(path); IsTag(t)) tags.emplace_back(path, TagText(t));
    }
    if (m.metrics.empty()) {
      double v = 0;
      if (auto r = ToValue(find(m.value), m.value, &v)) {
        out->rejects.push_back(*r);
      } else {
        emit(metric, std::move(tags), time, v);
      }
      return;
    }
    for (const auto& field : m.metrics) {
      Field f = find(field);
      if (f.in.kind == JsonField::Kind::kMissing) continue;  // a device may report a subset
      double v = 0;
      if (auto r = ToValue(f, field, &v)) {
        out->rejects.push_back(*r);
      } else {
        emit(field, tags, time, v);
      }
    }
  };

  if (ReadInPlace(*sub, payload, one)) return;
  json doc = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    out->rejects.push_back({RejectReason::kJson, "payload is not valid JSON"});
    return;
  }
  auto element = [&](const json& obj) {
    if (!obj.is_object()) {
      // A bare JSON number/bool/string is the value itself.
      double v = 0;
      if (auto r = ToValue(FieldOf(&obj), "payload", &v)) {
        out->rejects.push_back(*r);
      } else {
        emit(metric, base, now, v);
      }
      return;
    }
    one([&](std::string_view path) { return FieldOf(FindPath(obj, path)); });
  };
  if (doc.is_array()) {
    for (const json& e : doc) element(e);
  } else {
    element(doc);
  }
}

}  // namespace vigil::agent
