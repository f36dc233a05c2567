#include "rules/event.h"

#include <cstdint>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace vigil::rules {
namespace {

// 64-bit FNV-1a followed by a murmur-style finaliser; two seeds give 128 bits.
std::uint64_t Hash64(const std::vector<std::string>& parts, std::uint64_t seed) {
  std::uint64_t h = seed;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ull;
  };
  for (const auto& part : parts) {
    std::uint64_t n = part.size();
    for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(n >> (8 * i)));
    for (char c : part) mix(static_cast<unsigned char>(c));
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

const std::string& EventKindName(EventKind kind) {
  static const std::string kAlert = "alert";
  static const std::string kAggregate = "aggregate";
  return kind == EventKind::kAlert ? kAlert : kAggregate;
}

const std::string& EventStateName(EventState state) {
  static const std::string kNone;
  static const std::string kFiring = "firing";
  static const std::string kResolved = "resolved";
  switch (state) {
    case EventState::kFiring:
      return kFiring;
    case EventState::kResolved:
      return kResolved;
    case EventState::kNone:
      break;
  }
  return kNone;
}

std::optional<EventKind> ParseEventKind(std::string_view name) {
  for (EventKind kind : {EventKind::kAlert, EventKind::kAggregate}) {
    if (name == EventKindName(kind)) return kind;
  }
  return std::nullopt;
}

std::optional<EventState> ParseEventState(std::string_view name) {
  for (EventState state : {EventState::kFiring, EventState::kResolved}) {
    if (name == EventStateName(state)) return state;
  }
  return std::nullopt;
}

std::string StableHash(const std::vector<std::string>& parts) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx",
                static_cast<unsigned long long>(Hash64(parts, 0xcbf29ce484222325ull)),
                static_cast<unsigned long long>(Hash64(parts, 0x84222325cbf29ce4ull)));
  return buf;
}

std::string ToJson(const Event& e) {
  // nlohmann::ordered_json keeps insertion order: the order of SPEC §6.
  nlohmann::ordered_json j;
  j["id"] = e.id;
  j["kind"] = EventKindName(e.kind);
  j["agent"] = e.agent;
  j["rule"] = e.rule;
  nlohmann::ordered_json key = nlohmann::ordered_json::object();
  for (const auto& [name, value] : e.key) key[name] = value;
  j["key"] = std::move(key);
  if (e.kind == EventKind::kAlert) {
    j["state"] = EventStateName(e.state);
    j["severity"] = e.severity;
    j["summary"] = e.summary;
    nlohmann::ordered_json labels = nlohmann::ordered_json::object();
    for (const auto& [name, value] : e.labels) labels[name] = value;
    j["labels"] = std::move(labels);
  }
  nlohmann::ordered_json values = nlohmann::ordered_json::object();
  for (const auto& [name, v] : e.values) {
    switch (v.kind) {
      case Value::Kind::kNull:
        values[name] = nullptr;
        break;
      case Value::Kind::kInt:
        values[name] = static_cast<std::int64_t>(v.number);
        break;
      case Value::Kind::kDouble:
        values[name] = v.number;
        break;
      case Value::Kind::kBool:
        values[name] = v.number != 0;
        break;
    }
  }
  j["values"] = std::move(values);
  if (e.window) {
    j["window"] = {{"start", config::FormatRfc3339(e.window->start)},
                   {"end", config::FormatRfc3339(e.window->end)}};
  }
  j["time"] = config::FormatRfc3339(e.time);
  if (e.kind == EventKind::kAlert) j["alert_id"] = e.alert_id;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace vigil::rules
