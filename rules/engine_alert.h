#pragma once

// The alert lifecycle of a rule's keys (SPEC §5, rules/README.md "Semantics"): inactive →
// pending → firing → resolved, the episode each alert keeps (since, fired at, last
// notification, alert_id, summary), repeats, and the summary template. Internal to rules/
// (the engine's); not installed.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/text_template.h"
#include "rules/engine.h"
#include "rules/event.h"
#include "rules/expr.h"

namespace vigil::rules::internal {

struct KeyState;   // engine_keys.h
struct RuleState;  // engine_keys.h
struct TagSource;  // engine_keys.h

enum class AlertState : std::uint8_t { kInactive = 0, kPending = 1, kFiring = 2 };

// What a key's alert keeps between evaluations (KeyState::episode): made when the alert first
// turns pending.
struct AlertEpisode {
  std::int64_t since = 0;        // event time the condition was first seen true
  std::int64_t fired_at = 0;     // event time of the firing event
  std::int64_t last_notify = 0;  // event time of the last firing notification
  std::string alert_id;
  std::string summary;
};

using Values = std::vector<std::pair<std::string, Value>>;

// `alert.summary` (parsed at load, config::TextTemplate's kFormat syntax) rendered: `{name}`
// is a value of `values` (an aggregate, or a detector's value / score / anomaly), else a tag
// or table column of `key`; `{name:.N}` prints a number (a numeric cell too) with N decimals;
// an unknown name is left as written.
std::string RenderSummary(const config::TextTemplate& summary, const Values& values,
                          const TagSource& key);

// Runs the lifecycle for the engine's keys. Holds only scratch (one per engine thread).
class AlertLifecycle {
 public:
  explicit AlertLifecycle(std::string agent) : agent_(std::move(agent)) {}

  // Evaluates the rule's alert for the key at event time `t` (a window's end, or a reading's
  // time) over `values`, whose expression names read `key` (the key's tags and tables):
  // moves the key's state (rs.firing counts the firing keys) and appends the firing,
  // repeated and resolved events (with `rule.emit_alert`) to *out.
  void Evaluate(RuleState& rs, const std::string& key_str, KeyState& ks, const TagSource& key,
                const Values& values, std::optional<WindowBounds> window, std::int64_t t,
                std::vector<Event>* out);
  // Resolves every firing key of the rule (removed or changed by a reload) at processing time
  // `now`: one resolved event each, with the last summary and no values, in key order.
  void ResolveAll(RuleState& rs, Millis now, std::vector<Event>* out) const;
  // Appends the rule's firing alerts, in key order.
  static void ListFiring(const RuleState& rs, std::vector<FiringAlert>* out);

 private:
  // An alert event of the key's current episode (its alert_id and last summary), at `t`.
  Event MakeEvent(const RuleState& rs, const std::string& key_str, const KeyState& ks,
                  EventState state, const Values& values, std::optional<WindowBounds> window,
                  std::int64_t t) const;

  std::string agent_;
  std::vector<double> numbers_;  // scratch: no allocation per evaluation once grown
};

}  // namespace vigil::rules::internal
