// What the section parsers share, and the checks and settings that span sections: the rule's
// shape (window, aggregates, detector, join together), max_keys and key eviction.

#include <algorithm>
#include <string>

#include "rules/rule_parse.h"

namespace vigil::rules::parse {

// An expression longer than rules.max_expression_bytes is an error (true).
bool TooLong(JsonReader& r, const std::string& text, const std::string& pointer,
             const RuleLimits& limits) {
  if (text.size() <= limits.max_expression_bytes) return false;
  r.Error(pointer, "col 1: the expression is " + std::to_string(text.size()) +
                       " bytes; rules.max_expression_bytes is " +
                       std::to_string(limits.max_expression_bytes));
  return true;
}

std::shared_ptr<const Expr> CompileAt(JsonReader& r, const std::string& text,
                                      const std::string& pointer, const Scope& scope,
                                      bool condition, const RuleLimits& limits) {
  if (TooLong(r, text, pointer, limits)) return nullptr;
  CompileError error;
  auto expr = Expr::Compile(text, scope, &error);
  if (!expr) {
    r.Error(pointer, "col " + std::to_string(error.column) + ": " + error.message);
    return nullptr;
  }
  if (condition && expr->type() != Type::kBool) {
    r.Error(pointer, "col 1: must be a condition (true/false), not a number or string");
    return nullptr;
  }
  if (!condition && expr->type() != Type::kNumber) {
    r.Error(pointer, "col 1: must be a number");
    return nullptr;
  }
  return expr;
}

// The names of a reading's expressions (`where`, aggregate arguments): `value`, or the two
// values of a join by metric name; tags; the configured tables' columns.
Scope ReadingScope(const CompiledRule& rule, const RuleLimits& limits) {
  Scope scope;
  if (rule.join) {
    scope.names.push_back({rule.join->metrics[0], Type::kNumber, 0});
    scope.names.push_back({rule.join->metrics[1], Type::kNumber, 1});
    scope.hint =
        "(a join's values are " + rule.join->metrics[0] + " and " + rule.join->metrics[1] + ")";
  } else {
    scope.names.push_back({"value", Type::kNumber, 0});
    scope.hint = "(an aggregate's argument is an expression over value)";
  }
  scope.tables = limits.tables;
  return scope;
}

void CheckRuleShape(JsonReader& r, const std::string& p, bool join_lateness_given,
                    CompiledRule* rule) {
  if (rule->aggregates.empty() && rule->has_window) {
    r.Error(p + "/aggregates", "a window rule needs at least one aggregate");
  }
  if (!rule->aggregates.empty() && !rule->has_window) {
    // A detector alone scores each reading: there is no window to aggregate over (and its
    // alert would look for aggregates it never gets).
    r.Error(p + "/aggregates", "aggregates need a window (a detector alone scores each reading)");
  }
  if (rule->detector && rule->has_window &&
      rule->detector->method == DetectorSpec::Method::kAbsent) {
    // `absent` judges silence by processing time, reading by reading; over closed windows
    // it has nothing to judge (and its alert would see none of the aggregates).
    r.Error(p + "/detector/method",
            "absent watches readings, not windows: use it without a window");
  } else if (rule->detector && rule->has_window) {
    const std::string& input = rule->detector->input;
    bool known = std::any_of(rule->aggregates.begin(), rule->aggregates.end(),
                             [&](const AggregateSpec& a) { return a.name == input; });
    if (input.empty()) {
      r.Error(p + "/detector/input", "missing (with a window, the detector watches an aggregate)");
    } else if (!known) {
      r.Error(p + "/detector/input", "unknown aggregate \"" + input + "\"");
    }
  }

  if (rule->join) {
    if (!rule->has_window) {
      r.Error(p + "/window", "a join's pairs go into a window (a join needs one)");
    }
    if (!join_lateness_given) rule->join->lateness = rule->window.lateness;
  }
}

void ParseMaxKeys(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  std::int64_t max_keys = static_cast<std::int64_t>(rule->max_keys);
  r.Int(o, "max_keys", p, 1, 100'000'000, &max_keys);
  rule->max_keys = static_cast<std::size_t>(max_keys);
}

namespace {

// How long a key of `rule` must have been silent before dropping it can change no output
// (rules/README.md "Key eviction"): the longest of what its window, join and detector remember.
Millis QuietTime(const CompiledRule& rule) {
  Millis quiet{0};
  if (rule.has_window) {
    const WindowSpec& w = rule.window;
    switch (w.type) {
      case WindowSpec::Type::kTumbling:
      case WindowSpec::Type::kHopping:
      case WindowSpec::Type::kSliding:
        quiet = w.size + w.lateness + w.idle_timeout;
        break;
      case WindowSpec::Type::kSession:
        quiet = w.gap + w.lateness + w.idle_timeout;
        break;
      case WindowSpec::Type::kCount:
        quiet = w.idle_timeout;
        break;
    }
  }
  if (rule.join) quiet = std::max(quiet, rule.join->within + rule.join->lateness);
  if (rule.detector) {
    using M = DetectorSpec::Method;
    const DetectorSpec& d = *rule.detector;
    if (d.method == M::kZscore || d.method == M::kMad) quiet = std::max(quiet, d.window_duration);
    if (d.method == M::kFlatline) quiet = std::max(quiet, d.for_duration);
  }
  return quiet;
}

}  // namespace

// `evict_after` and what it defaults to (`rules.key_idle_evict`, at least twice the quiet time).
void SetEviction(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                 CompiledRule* rule) {
  rule->quiet = QuietTime(*rule);
  const bool absent = rule->detector && rule->detector->method == DetectorSpec::Method::kAbsent;
  if (absent) {
    // Silence is what it watches: an evicted key could never fire (or resolve) again.
    rule->evictable = false;
    if (o.contains("evict_after")) {
      r.Error(p + "/evict_after",
              "an absent rule's keys are never evicted (their silence is what it watches)");
    }
    return;
  }
  if (!o.contains("evict_after")) {
    rule->evict_after = limits.key_idle_evict.count() > 0
                            ? std::max(limits.key_idle_evict, 2 * rule->quiet)
                            : Millis(0);
    return;
  }
  Millis after{0};
  if (!r.Duration(o, "evict_after", p, &after)) return;
  if (after.count() == 0) {
    rule->evictable = false;  // "0s": never, not even when a key limit is reached
  } else if (after < rule->quiet) {
    const std::int64_t ms = rule->quiet.count();
    const std::string quiet =
        ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
    r.Error(p + "/evict_after", "must be 0s (never) or at least " + quiet +
                                    ", what the rule's keys need (window size or gap + "
                                    "lateness + idle_timeout, join, detector window)");
  } else {
    rule->evict_after = after;
  }
}

}  // namespace vigil::rules::parse
