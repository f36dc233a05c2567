#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/values.h"
#include "rules/reading.h"

namespace vigil::rules {

// An aggregate's value in an event: null (undefined, SPEC §12.9), an integer (count(),
// distinct()), a double, or a boolean (a detector's `anomaly`). Integers print without a
// fraction in JSON.
struct Value {
  enum class Kind { kNull, kInt, kDouble, kBool };
  Kind kind = Kind::kNull;
  double number = 0;

  static Value Null() { return {}; }
  static Value Int(double v) { return {Kind::kInt, v}; }
  static Value Double(double v) { return {Kind::kDouble, v}; }
  static Value Bool(bool v) { return {Kind::kBool, v ? 1.0 : 0.0}; }
  bool is_null() const { return kind == Kind::kNull; }
};

struct WindowBounds {
  Millis start{0};
  Millis end{0};
};

// What an event is (SPEC §6 `kind`).
enum class EventKind { kAlert, kAggregate };
// An alert event's state (SPEC §6 `state`); aggregate events have none.
enum class EventState { kNone, kFiring, kResolved };

// The SPEC §6 spelling, wherever an event's kind or state is text (the event's JSON, the
// outbox's `kind` column, event ids, logs): "alert", "aggregate"; "firing", "resolved", and ""
// for kNone.
const std::string& EventKindName(EventKind kind);
const std::string& EventStateName(EventState state);
// The reverse, for text that says what an event is (an outbox row's JSON, a rule's `emit`):
// nullopt for any other text ("" included).
std::optional<EventKind> ParseEventKind(std::string_view name);
std::optional<EventState> ParseEventState(std::string_view name);

// One output event (SPEC §6). Aggregate events have no state, severity, summary, alert_id.
struct Event {
  std::string id;  // deterministic, see MakeEventId
  EventKind kind = EventKind::kAggregate;
  std::string agent;
  std::string rule;
  Tags key;                              // the group_by tags of the key
  EventState state = EventState::kNone;  // alerts: kFiring or kResolved
  std::string severity;
  std::string summary;
  std::vector<std::pair<std::string, std::string>> labels;  // in rule order
  std::vector<std::pair<std::string, Value>> values;        // aggregates in rule order
  std::optional<WindowBounds> window;
  Millis time{0};
  std::string alert_id;  // alerts: shared by one firing episode's events
};

// The event as one line of JSON (no trailing newline), keys in the order of SPEC §6:
// id, kind, agent, rule, key, state, severity, summary, labels, values, window, time,
// alert_id; absent optional members are left out. Times per SPEC §12.21.
std::string ToJson(const Event& event);

// A 128-bit hash, as 32 lowercase hex digits, of the parts (each length-prefixed, so
// ("ab","c") and ("a","bc") differ). Stable across versions and platforms: receivers
// deduplicate on the ids built from it.
std::string StableHash(const std::vector<std::string>& parts);

}  // namespace vigil::rules
