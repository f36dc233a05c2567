// `source` (a metric, a list of metrics or a join, and `where`) and `group_by`.

#include <algorithm>
#include <regex>
#include <string>

#include "rules/rule_parse.h"

namespace vigil::rules::parse {
namespace {

// `source.join` (JoinSpec). The window's lateness is filled in later, if not given.
void ParseJoin(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule,
               bool* lateness_given) {
  if (!r.CheckObject(o, p, {"metrics", "on", "within", "lateness", "max_buffer"})) return;
  JoinSpec join;
  static const std::regex kName("^[A-Za-z_][A-Za-z0-9_]*$");
  auto metrics = o.find("metrics");
  if (metrics != o.end() && metrics->is_array()) {
    for (const auto& m : *metrics) {
      if (m.is_string()) join.metrics.push_back(m.get<std::string>());
    }
  }
  if (join.metrics.size() != 2 || metrics->size() != 2 || join.metrics[0] == join.metrics[1]) {
    r.Error(p + "/metrics", "must name two different metrics");
    return;
  }
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string& m = join.metrics[i];
    if (!std::regex_match(m, kName) || m == "value" || m == "true" || m == "false") {
      r.Error(p + "/metrics/" + std::to_string(i),
              "\"" + m + "\" cannot be joined: expressions name a join's values by metric, so " +
                  "it must be a name such as humidity ([A-Za-z_][A-Za-z0-9_]*)");
    }
  }
  auto on = o.find("on");
  if (on != o.end() && on->is_array()) {
    for (const auto& t : *on) {
      if (t.is_string() && !t.get<std::string>().empty()) join.on.push_back(t.get<std::string>());
    }
  }
  if (on == o.end() || !on->is_array() || join.on.empty() || join.on.size() != on->size()) {
    r.Error(p + "/on", "must list the tags both metrics share, e.g. [\"device\"]");
  }
  std::sort(join.on.begin(), join.on.end());
  join.on.erase(std::unique(join.on.begin(), join.on.end()), join.on.end());
  if (!o.contains("within")) r.Error(p + "/within", "missing (the time bound of a pair)");
  r.Duration(o, "within", p, &join.within);
  if (o.contains("within") && join.within.count() <= 0)
    r.Error(p + "/within", "must be more than 0");
  *lateness_given = o.contains("lateness");
  r.Duration(o, "lateness", p, &join.lateness);
  auto max_buffer = static_cast<std::int64_t>(join.max_buffer);
  r.Int(o, "max_buffer", p, 1, 1'000'000, &max_buffer);
  join.max_buffer = static_cast<std::size_t>(max_buffer);
  rule->metrics = join.metrics;
  rule->join = std::move(join);
}

}  // namespace

void ParseSource(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                 CompiledRule* rule, bool* join_lateness_given) {
  auto src = o.find("source");
  if (src == o.end()) {
    r.Error(p + "/source", "missing (a rule needs source.metric)");
  } else if (r.CheckObject(*src, p + "/source", {"metric", "join", "where"})) {
    auto metric = src->find("metric");
    auto join = src->find("join");
    if (join != src->end() && metric != src->end()) {
      r.Error(p + "/source/join", "a source has a metric or a join, not both");
    } else if (join != src->end()) {
      ParseJoin(r, *join, p + "/source/join", rule, join_lateness_given);
    } else if (metric != src->end() && metric->is_string()) {
      rule->metrics.push_back(metric->get<std::string>());
    } else if (metric != src->end() && metric->is_array()) {
      for (const auto& m : *metric) {
        if (m.is_string()) rule->metrics.push_back(m.get<std::string>());
      }
    }
    if (rule->metrics.empty() && join == src->end()) {
      r.Error(p + "/source/metric", "must be a metric name or a list of names");
    }
    std::string where;
    if (r.String(*src, "where", p + "/source", &where) && !where.empty()) {
      Scope scope = ReadingScope(*rule, limits);
      // A join's pairs carry only the `on` tags.
      scope.unknown_names_are_tags = !rule->join;
      if (rule->join) scope.tags = rule->join->on;
      rule->where = CompileAt(r, where, p + "/source/where", scope, true, limits);
    }
  }
}

void ParseGroupBy(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  if (auto g = o.find("group_by"); g != o.end()) {
    rule->group_by_all = false;
    if (!g->is_array()) r.Error(p + "/group_by", "must be a list of tag names");
    for (std::size_t i = 0; g->is_array() && i < g->size(); ++i) {
      if (!(*g)[i].is_string()) {
        r.Error(p + "/group_by/" + std::to_string(i), "must be a tag name");
      } else {
        rule->group_by.push_back((*g)[i].get<std::string>());
      }
    }
    std::sort(rule->group_by.begin(), rule->group_by.end());
    rule->group_by.erase(std::unique(rule->group_by.begin(), rule->group_by.end()),
                         rule->group_by.end());
  }
  if (rule->join) {
    // A pair's key is its `on` tags: the rule's state is per joined key.
    if (o.contains("group_by") && rule->group_by != rule->join->on) {
      r.Error(p + "/group_by", "a join's rule groups by its `on` tags (leave group_by out)");
    }
    rule->group_by_all = false;
    rule->group_by = rule->join->on;
  }
}

}  // namespace vigil::rules::parse
