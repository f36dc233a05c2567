// `emit`, `alert` (with its summary template) and `output`: what a rule sends.

#include <algorithm>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "rules/event.h"
#include "rules/rule_parse.h"

namespace vigil::rules::parse {
namespace {

// Checks `{name}` / `{name:.Nf}` placeholders of a summary template.
void CheckSummary(JsonReader& r, const std::string& summary, const std::string& pointer,
                  const CompiledRule& rule, const RuleLimits& limits) {
  static const std::regex kPlaceholder(R"(\{([^{}]*)\})");
  static const std::regex kValid(R"(^([A-Za-z_][A-Za-z0-9_.]*)(:\.[0-9]f)?$)");
  for (auto it = std::sregex_iterator(summary.begin(), summary.end(), kPlaceholder);
       it != std::sregex_iterator(); ++it) {
    std::string inner = (*it)[1].str();
    std::smatch m;
    int col = static_cast<int>(it->position(0)) + 1;
    if (!std::regex_match(inner, m, kValid)) {
      r.Error(pointer, "col " + std::to_string(col) + ": placeholder {" + inner +
                           "} must be {name} or {name:.Nf}");
      continue;
    }
    std::string name = m[1].str();
    if (IsTableColumn(name, limits.tables)) continue;
    const bool detector_output =
        rule.detector && (name == "value" || name == "score" || name == "anomaly");
    bool known = std::any_of(rule.aggregates.begin(), rule.aggregates.end(),
                             [&](const AggregateSpec& a) { return a.name == name; }) ||
                 detector_output || rule.group_by_all ||
                 std::find(rule.group_by.begin(), rule.group_by.end(), name) != rule.group_by.end();
    if (!known) {
      r.Error(pointer, "col " + std::to_string(col) + ": unknown name \"" + name +
                           "\" (not an aggregate, a group_by tag or a table's column)");
    }
  }
}

// The names of `alert.when` and `clear_when`: the aggregates, a detector's value, score and
// anomaly, and the key's tags (every tag without group_by, else the group_by tags that no
// aggregate's name hides); the configured tables' columns.
Scope AlertScope(const CompiledRule& rule, const RuleLimits& limits) {
  Scope scope;
  std::string names;
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
    scope.names.push_back({rule.aggregates[i].name, Type::kNumber, static_cast<int>(i)});
    names += (i ? ", " : "") + rule.aggregates[i].name;
  }
  if (rule.detector) {
    const int n = static_cast<int>(rule.aggregates.size());
    scope.names.push_back({"value", Type::kNumber, n});
    scope.names.push_back({"score", Type::kNumber, n + 1});
    scope.names.push_back({"anomaly", Type::kBool, n + 2});
    names += std::string(names.empty() ? "" : ", ") + "value, score, anomaly";
  }
  scope.unknown_names_are_tags = rule.group_by_all;
  scope.tables = limits.tables;
  scope.hint = "(aggregates: " + (names.empty() ? std::string("none") : names) +
               (rule.group_by_all ? ")" : "; tags: those in group_by)");
  if (!rule.group_by_all) {
    for (const auto& tag : rule.group_by) {
      bool clash = std::any_of(rule.aggregates.begin(), rule.aggregates.end(),
                               [&](const AggregateSpec& a) { return a.name == tag; });
      if (!clash) scope.tags.push_back(tag);
    }
  }
  return scope;
}

// The alert section `al` at pointer `ap`.
void ParseAlertObject(JsonReader& r, const json& al, const std::string& ap,
                      const RuleLimits& limits, CompiledRule* rule) {
  if (!r.CheckObject(al, ap,
                     {"when", "clear_when", "for", "repeat", "severity", "summary", "labels"})) {
    return;
  }
  AlertSpec spec;
  const Scope scope = AlertScope(*rule, limits);
  std::string when, clear;
  r.String(al, "when", ap, &when);
  if (when.empty() && rule->detector) when = "anomaly";  // SPEC §4 default
  if (when.empty()) {
    r.Error(ap + "/when", "missing");
  } else {
    spec.when = CompileAt(r, when, ap + "/when", scope, true, limits);
  }
  if (r.String(al, "clear_when", ap, &clear) && !clear.empty()) {
    spec.clear_when = CompileAt(r, clear, ap + "/clear_when", scope, true, limits);
  }
  r.Duration(al, "for", ap, &spec.for_duration);
  r.Duration(al, "repeat", ap, &spec.repeat);
  r.String(al, "severity", ap, &spec.severity);
  std::string summary;
  r.String(al, "summary", ap, &summary);
  spec.summary =
      config::TextTemplate::Parse(summary, config::TextTemplate::Syntax::kFormat).value();
  if (auto l = al.find("labels"); l != al.end()) {
    if (!l->is_object()) r.Error(ap + "/labels", "must be an object of strings");
    for (auto it = l->begin(); l->is_object() && it != l->end(); ++it) {
      if (it->is_string()) {
        spec.labels.emplace_back(it.key(), it->get<std::string>());
      } else {
        r.Error(ap + "/labels/" + it.key(), "must be a string");
      }
    }
  }
  CheckSummary(r, summary, ap + "/summary", *rule, limits);
  rule->alert = std::move(spec);
}

}  // namespace

bool ParseEmit(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  bool emit_given = false;
  if (auto e = o.find("emit"); e != o.end()) {
    emit_given = true;
    rule->emit_alert = rule->emit_aggregate = false;
    std::vector<std::string> kinds;
    if (e->is_string()) kinds.push_back(e->get<std::string>());
    if (e->is_array()) {
      for (const auto& k : *e) kinds.push_back(k.is_string() ? k.get<std::string>() : "?");
    }
    // Nothing leaves a purely intermediate rule: only its derived stream (`output`).
    if (kinds.empty() && !(e->is_array() && o.contains("output"))) {
      r.Error(p + "/emit", "must list \"alert\" and/or \"aggregate\" (or be [] beside output)");
    }
    for (const auto& k : kinds) {
      const std::optional<EventKind> kind = ParseEventKind(k);
      if (!kind) {
        r.Error(p + "/emit", "unknown kind \"" + k + "\" (alert, aggregate)");
      } else if (*kind == EventKind::kAlert) {
        rule->emit_alert = true;
      } else {
        rule->emit_aggregate = true;
      }
    }
  }
  return emit_given;
}

void ParseAlert(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                bool emit_given, CompiledRule* rule) {
  if (auto al = o.find("alert"); al != o.end()) {
    ParseAlertObject(r, *al, p + "/alert", limits, rule);
  } else if (rule->detector) {
    // A detector alone alerts on `anomaly` with the defaults.
    Scope scope;
    const int n = static_cast<int>(rule->aggregates.size());
    scope.names = {{"anomaly", Type::kBool, n + 2}};
    CompileError error;
    AlertSpec spec;
    spec.when = Expr::Compile("anomaly", scope, &error);
    rule->alert = std::move(spec);
    if (!emit_given) rule->emit_alert = true;
  } else {
    if (emit_given && rule->emit_alert) {
      r.Error(p + "/emit", "\"alert\" needs an alert section");
    }
    if (!emit_given) {
      rule->emit_alert = false;
      rule->emit_aggregate = true;
    }
  }
}

void ParseOutput(JsonReader& r, const json& rule_object, const std::string& rule_pointer,
                 CompiledRule* rule) {
  auto found = rule_object.find("output");
  if (found == rule_object.end()) return;
  const json& o = *found;
  const std::string p = rule_pointer + "/output";
  if (!r.CheckObject(o, p, {"metric", "value"})) return;
  OutputSpec out;
  r.String(o, "metric", p, &out.metric);
  if (out.metric.empty()) {
    r.Error(p + "/metric", "missing (the name of the derived metric)");
  } else if (std::find(rule->metrics.begin(), rule->metrics.end(), out.metric) !=
             rule->metrics.end()) {
    r.Error(p + "/metric", "\"" + out.metric + "\" is the rule's own source (a cycle)");
  }
  if (!rule->has_window) {
    r.Error(p, "only a window's aggregates can be published as a metric");
    return;
  }
  std::string value;
  std::string names;
  for (const auto& a : rule->aggregates) names += (names.empty() ? "" : ", ") + a.name;
  if (!r.String(o, "value", p, &value) || value.empty()) {
    if (rule->aggregates.size() > 1) {
      r.Error(p + "/value", "missing: which aggregate is the metric's value (" + names + ")");
      return;
    }
  } else {
    auto it = std::find_if(rule->aggregates.begin(), rule->aggregates.end(),
                           [&](const AggregateSpec& a) { return a.name == value; });
    if (it == rule->aggregates.end()) {
      r.Error(p + "/value", "unknown aggregate \"" + value + "\" (" + names + ")");
      return;
    }
    out.aggregate = static_cast<std::size_t>(it - rule->aggregates.begin());
  }
  rule->output = std::move(out);
}

}  // namespace vigil::rules::parse
