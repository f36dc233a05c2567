// Rule files (SPEC §3) → CompiledRule. Every problem is reported with file, JSON pointer and,
// inside an expression, the column.

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "config/json_reader.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "rules/rule_loader.h"

namespace vigil::rules {
namespace {

using config::JsonReader;
using config::RuleLimits;
using nlohmann::json;

// A reading belongs to size / slide hopping windows, each with its own accumulators.
constexpr std::int64_t kMaxWindowsPerReading = 1000;

// An expression longer than rules.max_expression_bytes is an error (true).
bool TooLong(JsonReader& r, const std::string& text, const std::string& pointer,
             const RuleLimits& limits) {
  if (text.size() <= limits.max_expression_bytes) return false;
  r.Error(pointer, "col 1: the expression is " + std::to_string(text.size()) +
                       " bytes; rules.max_expression_bytes is " +
                       std::to_string(limits.max_expression_bytes));
  return true;
}

bool ValidId(const std::string& id) {
  static const std::regex kId("^[a-z0-9][a-z0-9_.-]*$");
  return std::regex_match(id, kId);
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

// "avg(value)", "count()", "percentile(value, 95)", "distinct(device)".
void ParseAggregate(JsonReader& r, const std::string& name, const std::string& text,
                    const std::string& pointer, const RuleLimits& limits, const Scope& scope,
                    AggregateSpec* out) {
  if (TooLong(r, text, pointer, limits)) return;
  static const std::regex kCall(R"(^\s*([a-z_]+)\s*\((.*)\)\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, kCall)) {
    r.Error(pointer, "col 1: an aggregate is a call such as avg(value) or count()");
    return;
  }
  struct Known {
    const char* name;
    AggregateSpec::Fn fn;
  };
  static const Known kFns[] = {
      {"count", AggregateSpec::Fn::kCount},
      {"sum", AggregateSpec::Fn::kSum},
      {"avg", AggregateSpec::Fn::kAvg},
      {"min", AggregateSpec::Fn::kMin},
      {"max", AggregateSpec::Fn::kMax},
      {"stddev", AggregateSpec::Fn::kStddev},
      {"first", AggregateSpec::Fn::kFirst},
      {"last", AggregateSpec::Fn::kLast},
      {"delta", AggregateSpec::Fn::kDelta},
      {"rate", AggregateSpec::Fn::kRate},
      {"percentile", AggregateSpec::Fn::kPercentile},
      {"distinct", AggregateSpec::Fn::kDistinct},
  };
  std::string fn = m[1].str();
  std::string args = m[2].str();
  const Known* known = nullptr;
  for (const Known& k : kFns) {
    if (fn == k.name) known = &k;
  }
  if (known == nullptr) {
    r.Error(pointer, "col 1: unknown aggregate \"" + fn +
                         "\" (count, sum, avg, min, max, stddev, first, last, delta, rate, "
                         "percentile, distinct)");
    return;
  }
  out->name = name;
  out->fn = known->fn;
  const int arg_column = static_cast<int>(m.position(2)) + 1;
  auto blank = [](const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; };
  if (out->fn == AggregateSpec::Fn::kCount) {
    if (!blank(args))
      r.Error(pointer, "col " + std::to_string(arg_column) + ": count() takes no argument");
    return;
  }
  if (out->fn == AggregateSpec::Fn::kDistinct) {
    static const std::regex kTag(R"(^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*$)");
    std::smatch t;
    if (!std::regex_match(args, t, kTag)) {
      r.Error(pointer, "col " + std::to_string(arg_column) + ": distinct() takes a tag name");
      return;
    }
    out->tag = t[1].str();
    return;
  }
  std::string value_expr = args;
  if (out->fn == AggregateSpec::Fn::kPercentile) {
    std::size_t comma = args.rfind(',');
    double p = -1;
    if (comma != std::string::npos) {
      std::string ptext = args.substr(comma + 1);
      char* end = nullptr;
      p = std::strtod(ptext.c_str(), &end);
      if (!blank(end)) p = -1;
      value_expr = args.substr(0, comma);
    }
    if (p < 0 || p > 100) {
      r.Error(pointer, "col " + std::to_string(arg_column) +
                           ": percentile takes (value, P) with P from 0 to 100");
      return;
    }
    out->percentile = p;
  }
  CompileError error;
  Scope numeric = scope;
  numeric.numeric = true;
  out->arg = Expr::Compile(value_expr, numeric, &error);
  if (!out->arg) {
    r.Error(pointer, "col " + std::to_string(arg_column + error.column - 1) + ": " + error.message);
  } else if (out->arg->type() != Type::kNumber) {
    r.Error(pointer, "col " + std::to_string(arg_column) + ": the argument must be a number");
    out->arg = nullptr;
  }
}

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

// `adaptive`'s defaults, chosen from detector_bench's table (README, Performance).
constexpr std::uint64_t kAdaptiveMinSamples = 200;
constexpr double kAdaptiveThreshold = 5;
constexpr std::uint64_t kAdaptiveSuppress = 10;  // readings

// SPEC §4 and §12.19–12.20: methods, parameters and defaults.
void ParseDetector(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  if (!r.CheckObject(o, p,
                     {"method", "window", "threshold", "alpha", "max_rate", "for", "tolerance",
                      "min", "max", "min_samples", "input", "suppress"})) {
    return;
  }
  using M = DetectorSpec::Method;
  static const std::pair<const char*, M> kMethods[] = {
      {"zscore", M::kZscore}, {"ewma", M::kEwma},         {"mad", M::kMad},
      {"spike", M::kSpike},   {"flatline", M::kFlatline}, {"absent", M::kAbsent},
      {"range", M::kRange},   {"adaptive", M::kAdaptive}};
  DetectorSpec d;
  r.String(o, "method", p, &d.name);
  bool known = false;
  for (const auto& [name, method] : kMethods) {
    if (d.name == name) {
      d.method = method;
      known = true;
    }
  }
  if (!known) {
    r.Error(p + "/method",
            (d.name.empty() ? std::string("missing") : "unknown method \"" + d.name + "\"") +
                " (adaptive, zscore, ewma, mad, spike, flatline, absent, range)");
    return;
  }
  auto number = [&](const char* key, double* out) {
    auto it = o.find(key);
    if (it == o.end()) return false;
    if (!it->is_number()) {
      r.Error(p + "/" + key, "must be a number");
      return false;
    }
    *out = it->get<double>();
    return true;
  };
  auto need = [&](const char* key) {
    if (!o.contains(key)) r.Error(p + "/" + key, "missing (" + d.name + " needs it)");
  };
  d.min_samples = (d.method == M::kZscore || d.method == M::kEwma || d.method == M::kMad) ? 30 : 0;
  d.threshold = d.method == M::kMad ? 3.5 : 3;
  if (d.method == M::kAdaptive) {
    // Chosen from detector_bench (rules/README.md, "adaptive"); not SPEC defaults.
    d.min_samples = kAdaptiveMinSamples;
    d.threshold = kAdaptiveThreshold;
    d.suppress_count = kAdaptiveSuppress;
  }
  if (auto it = o.find("suppress"); it != o.end()) {
    d.suppress_count = 0;
    d.suppress = Millis(0);
    if (d.method == M::kAbsent) {
      r.Error(p + "/suppress",
              "absent has no suppress (its alert lasts while readings are missing)");
    } else if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
      d.suppress_count = it->get<std::uint64_t>();
    } else if (it->is_string() && config::ParseDuration(it->get<std::string>())) {
      d.suppress = *config::ParseDuration(it->get<std::string>());
    } else {
      r.Error(p + "/suppress", "must be a count of readings (an integer ≥ 0) or a duration");
    }
  }
  std::int64_t min_samples = static_cast<std::int64_t>(d.min_samples);
  r.Int(o, "min_samples", p, 0, 100'000'000, &min_samples);
  d.min_samples = static_cast<std::uint64_t>(min_samples);
  number("threshold", &d.threshold);
  if (d.threshold <= 0) r.Error(p + "/threshold", "must be more than 0");
  if (d.method == M::kZscore || d.method == M::kMad) {
    d.window_count = 100;
    if (auto it = o.find("window"); it != o.end()) {
      d.window_count = 0;
      if (it->is_number_integer() && it->get<std::int64_t>() >= 2) {
        d.window_count = it->get<std::uint64_t>();
      } else if (it->is_string() && config::ParseDuration(it->get<std::string>()) &&
                 config::ParseDuration(it->get<std::string>())->count() > 0) {
        d.window_duration = *config::ParseDuration(it->get<std::string>());
      } else {
        r.Error(p + "/window", "must be a count of readings (an integer ≥ 2) or a duration");
      }
    }
  }
  if (d.method == M::kEwma) {
    number("alpha", &d.alpha);
    if (d.alpha <= 0 || d.alpha > 1) r.Error(p + "/alpha", "must be in (0, 1]");
  }
  if (d.method == M::kSpike) {
    need("max_rate");
    number("max_rate", &d.max_rate);
    if (o.contains("max_rate") && d.max_rate <= 0) r.Error(p + "/max_rate", "must be more than 0");
  }
  if (d.method == M::kFlatline || d.method == M::kAbsent) {
    need("for");
    r.Duration(o, "for", p, &d.for_duration);
    if (o.contains("for") && d.for_duration.count() <= 0)
      r.Error(p + "/for", "must be more than 0");
  }
  if (d.method == M::kFlatline) number("tolerance", &d.tolerance);
  if (d.method == M::kRange) {
    double v = 0;
    if (number("min", &v)) d.min = v;
    if (number("max", &v)) d.max = v;
    if (!d.min && !d.max) r.Error(p, "range needs min, max or both");
    if (d.min && d.max && *d.min > *d.max) r.Error(p + "/max", "must be at least min");
  }
  r.String(o, "input", p, &d.input);
  rule->detector = std::move(d);
}

// `output` (OutputSpec): a closed window's aggregate as a reading of a derived metric.
void ParseOutput(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
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

void ParseRule(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
               RuleSet* set) {
  if (!r.CheckObject(o, p,
                     {"id", "description", "source", "group_by", "window", "aggregates", "alert",
                      "detector", "emit", "output", "max_keys", "evict_after"})) {
    return;
  }
  const int errors_before = r.errors();
  CompiledRule rule;
  bool join_lateness_given = false;
  rule.file = r.file();
  rule.pointer = p;
  rule.fingerprint = StableHash({o.dump()});
  r.String(o, "id", p, &rule.id);
  r.String(o, "description", p, &rule.description);
  if (rule.id.empty()) {
    r.Error(p + "/id", "a rule needs an id");
  } else if (!ValidId(rule.id)) {
    r.Error(p + "/id", "\"" + rule.id + "\" is not a valid id ([a-z0-9][a-z0-9_.-]*)");
  }

  // source
  auto src = o.find("source");
  if (src == o.end()) {
    r.Error(p + "/source", "missing (a rule needs source.metric)");
  } else if (r.CheckObject(*src, p + "/source", {"metric", "join", "where"})) {
    auto metric = src->find("metric");
    auto join = src->find("join");
    if (join != src->end() && metric != src->end()) {
      r.Error(p + "/source/join", "a source has a metric or a join, not both");
    } else if (join != src->end()) {
      ParseJoin(r, *join, p + "/source/join", &rule, &join_lateness_given);
    } else if (metric != src->end() && metric->is_string()) {
      rule.metrics.push_back(metric->get<std::string>());
    } else if (metric != src->end() && metric->is_array()) {
      for (const auto& m : *metric) {
        if (m.is_string()) rule.metrics.push_back(m.get<std::string>());
      }
    }
    if (rule.metrics.empty() && join == src->end()) {
      r.Error(p + "/source/metric", "must be a metric name or a list of names");
    }
    std::string where;
    if (r.String(*src, "where", p + "/source", &where) && !where.empty()) {
      Scope scope = ReadingScope(rule, limits);
      // A join's pairs carry only the `on` tags.
      scope.unknown_names_are_tags = !rule.join;
      if (rule.join) scope.tags = rule.join->on;
      rule.where = CompileAt(r, where, p + "/source/where", scope, true, limits);
    }
  }

  // group_by
  if (auto g = o.find("group_by"); g != o.end()) {
    rule.group_by_all = false;
    if (!g->is_array()) r.Error(p + "/group_by", "must be a list of tag names");
    for (std::size_t i = 0; g->is_array() && i < g->size(); ++i) {
      if (!(*g)[i].is_string()) {
        r.Error(p + "/group_by/" + std::to_string(i), "must be a tag name");
      } else {
        rule.group_by.push_back((*g)[i].get<std::string>());
      }
    }
    std::sort(rule.group_by.begin(), rule.group_by.end());
    rule.group_by.erase(std::unique(rule.group_by.begin(), rule.group_by.end()),
                        rule.group_by.end());
  }
  if (rule.join) {
    // A pair's key is its `on` tags: the rule's state is per joined key.
    if (o.contains("group_by") && rule.group_by != rule.join->on) {
      r.Error(p + "/group_by", "a join's rule groups by its `on` tags (leave group_by out)");
    }
    rule.group_by_all = false;
    rule.group_by = rule.join->on;
  }

  // detector and window
  if (auto d = o.find("detector"); d != o.end()) ParseDetector(r, *d, p + "/detector", &rule);
  auto w = o.find("window");
  if (w == o.end()) {
    rule.has_window = false;
    if (!rule.detector && !o.contains("detector")) {
      r.Error(p + "/window", "missing (a rule needs a window or a detector)");
    }
  } else if (r.CheckObject(*w, p + "/window",
                           {"type", "size", "slide", "lateness", "idle_timeout", "gap", "count"})) {
    const std::string wp = p + "/window";
    std::string type;
    r.String(*w, "type", wp, &type);
    auto need = [&](const char* key) {
      if (!w->contains(key)) r.Error(wp + "/" + key, "missing (a " + type + " window needs it)");
    };
    auto refuse = [&](const char* key) {
      if (w->contains(key)) r.Error(wp + "/" + key, "a " + type + " window has no " + key);
    };
    auto positive = [&](const char* key, Millis* out) {
      r.Duration(*w, key, wp, out);
      if (out->count() <= 0) r.Error(wp + "/" + key, "must be more than 0");
    };
    if (type == "tumbling" || type == "hopping" || type == "sliding") {
      rule.window.type = type == "tumbling"  ? WindowSpec::Type::kTumbling
                         : type == "hopping" ? WindowSpec::Type::kHopping
                                             : WindowSpec::Type::kSliding;
      need("size");
      positive("size", &rule.window.size);
      rule.window.slide = rule.window.size;
      if (type == "hopping") {
        need("slide");
        r.Duration(*w, "slide", wp, &rule.window.slide);
        if (rule.window.slide.count() <= 0 || rule.window.slide > rule.window.size) {
          r.Error(wp + "/slide", "must be more than 0 and at most size");
        } else if (rule.window.size.count() / rule.window.slide.count() > kMaxWindowsPerReading) {
          r.Error(wp + "/slide",
                  "a reading would belong to " +
                      std::to_string(rule.window.size.count() / rule.window.slide.count()) +
                      " windows (size / slide); at most " + std::to_string(kMaxWindowsPerReading));
        }
      } else {
        refuse("slide");
      }
      refuse("gap");
      refuse("count");
      rule.window.idle_timeout = rule.window.size;
    } else if (type == "session") {
      rule.window.type = WindowSpec::Type::kSession;
      need("gap");
      positive("gap", &rule.window.gap);
      refuse("size");
      refuse("slide");
      refuse("count");
      rule.window.idle_timeout = rule.window.gap;
    } else if (type == "count") {
      rule.window.type = WindowSpec::Type::kCount;
      need("count");
      std::int64_t n = 0;
      r.Int(*w, "count", wp, 1, 1'000'000, &n);
      rule.window.count = static_cast<std::uint64_t>(n);
      refuse("size");
      refuse("slide");
      refuse("gap");
      refuse("lateness");
      rule.window.idle_timeout = Millis(0);
    } else if (type.empty()) {
      r.Error(wp + "/type", "missing (tumbling, hopping, sliding, session, count)");
    } else {
      r.Error(wp + "/type",
              "unknown window type \"" + type + "\" (tumbling, hopping, sliding, session, count)");
    }
    r.Duration(*w, "lateness", wp, &rule.window.lateness);
    r.Duration(*w, "idle_timeout", wp, &rule.window.idle_timeout);
  }

  // aggregates
  if (auto a = o.find("aggregates"); a != o.end()) {
    if (!a->is_object()) r.Error(p + "/aggregates", "must be an object of name → aggregate");
    for (auto it = a->begin(); a->is_object() && it != a->end(); ++it) {
      std::string ap = p + "/aggregates/" + it.key();
      static const std::regex kName("^[A-Za-z_][A-Za-z0-9_]*$");
      if (!std::regex_match(it.key(), kName) || it.key() == "value" || it.key() == "true" ||
          it.key() == "false") {
        r.Error(ap, "\"" + it.key() + "\" cannot name an aggregate");
        continue;
      }
      if (!it->is_string()) {
        r.Error(ap, "must be a string such as \"avg(value)\"");
        continue;
      }
      AggregateSpec spec;
      ParseAggregate(r, it.key(), it->get<std::string>(), ap, limits, ReadingScope(rule, limits),
                     &spec);
      rule.aggregates.push_back(std::move(spec));
    }
  }

  // emit
  bool emit_given = false;
  if (auto e = o.find("emit"); e != o.end()) {
    emit_given = true;
    rule.emit_alert = rule.emit_aggregate = false;
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
      if (k == "alert") {
        rule.emit_alert = true;
      } else if (k == "aggregate") {
        rule.emit_aggregate = true;
      } else {
        r.Error(p + "/emit", "unknown kind \"" + k + "\" (alert, aggregate)");
      }
    }
  }

  // alert
  if (auto al = o.find("alert"); al != o.end()) {
    const std::string ap = p + "/alert";
    if (r.CheckObject(*al, ap,
                      {"when", "clear_when", "for", "repeat", "severity", "summary", "labels"})) {
      AlertSpec spec;
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
      std::string when, clear;
      r.String(*al, "when", ap, &when);
      if (when.empty() && rule.detector) when = "anomaly";  // SPEC §4 default
      if (when.empty()) {
        r.Error(ap + "/when", "missing");
      } else {
        spec.when = CompileAt(r, when, ap + "/when", scope, true, limits);
      }
      if (r.String(*al, "clear_when", ap, &clear) && !clear.empty()) {
        spec.clear_when = CompileAt(r, clear, ap + "/clear_when", scope, true, limits);
      }
      r.Duration(*al, "for", ap, &spec.for_duration);
      r.Duration(*al, "repeat", ap, &spec.repeat);
      r.String(*al, "severity", ap, &spec.severity);
      r.String(*al, "summary", ap, &spec.summary);
      if (auto l = al->find("labels"); l != al->end()) {
        if (!l->is_object()) r.Error(ap + "/labels", "must be an object of strings");
        for (auto it = l->begin(); l->is_object() && it != l->end(); ++it) {
          if (it->is_string()) {
            spec.labels.emplace_back(it.key(), it->get<std::string>());
          } else {
            r.Error(ap + "/labels/" + it.key(), "must be a string");
          }
        }
      }
      CheckSummary(r, spec.summary, ap + "/summary", rule, limits);
      rule.alert = std::move(spec);
    }
  } else if (rule.detector) {
    // A detector alone alerts on `anomaly` with the defaults.
    Scope scope;
    const int n = static_cast<int>(rule.aggregates.size());
    scope.names = {{"anomaly", Type::kBool, n + 2}};
    CompileError error;
    AlertSpec spec;
    spec.when = Expr::Compile("anomaly", scope, &error);
    rule.alert = std::move(spec);
    if (!emit_given) rule.emit_alert = true;
  } else {
    if (emit_given && rule.emit_alert) {
      r.Error(p + "/emit", "\"alert\" needs an alert section");
    }
    if (!emit_given) {
      rule.emit_alert = false;
      rule.emit_aggregate = true;
    }
  }
  if (rule.aggregates.empty() && rule.has_window) {
    r.Error(p + "/aggregates", "a window rule needs at least one aggregate");
  }
  if (!rule.aggregates.empty() && !rule.has_window) {
    // A detector alone scores each reading: there is no window to aggregate over (and its
    // alert would look for aggregates it never gets).
    r.Error(p + "/aggregates", "aggregates need a window (a detector alone scores each reading)");
  }
  if (rule.detector && rule.has_window && rule.detector->method == DetectorSpec::Method::kAbsent) {
    // `absent` judges silence by processing time, reading by reading; over closed windows
    // it has nothing to judge (and its alert would see none of the aggregates).
    r.Error(p + "/detector/method",
            "absent watches readings, not windows: use it without a window");
  } else if (rule.detector && rule.has_window) {
    const std::string& input = rule.detector->input;
    bool known = std::any_of(rule.aggregates.begin(), rule.aggregates.end(),
                             [&](const AggregateSpec& a) { return a.name == input; });
    if (input.empty()) {
      r.Error(p + "/detector/input", "missing (with a window, the detector watches an aggregate)");
    } else if (!known) {
      r.Error(p + "/detector/input", "unknown aggregate \"" + input + "\"");
    }
  }

  if (rule.join) {
    if (!rule.has_window) {
      r.Error(p + "/window", "a join's pairs go into a window (a join needs one)");
    }
    if (!join_lateness_given) rule.join->lateness = rule.window.lateness;
  }
  if (auto out = o.find("output"); out != o.end()) ParseOutput(r, *out, p + "/output", &rule);

  std::int64_t max_keys = static_cast<std::int64_t>(rule.max_keys);
  r.Int(o, "max_keys", p, 1, 100'000'000, &max_keys);
  rule.max_keys = static_cast<std::size_t>(max_keys);
  if (r.errors() == errors_before) SetEviction(r, o, p, limits, &rule);

  if (r.errors() == errors_before) {
    set->rules.push_back(std::make_shared<const CompiledRule>(std::move(rule)));
  }
}

void ParseInto(std::string_view text, const std::string& file, const RuleLimits& limits,
               RuleSet* set, config::Diagnostics* diagnostics) {
  JsonReader r(file, diagnostics);
  auto doc = r.Parse(text);
  if (!doc) return;
  if (doc->is_array()) {
    for (std::size_t i = 0; i < doc->size(); ++i) {
      ParseRule(r, (*doc)[i], "/" + std::to_string(i), limits, set);
    }
  } else if (doc->is_object()) {
    ParseRule(r, *doc, "", limits, set);
  } else {
    r.Error("", "a rule file holds one rule object or an array of them");
  }
}

// Orders the rules so that a rule comes after every rule whose `output` it reads (file order
// otherwise), which is the order the engine closes windows in at the end of a replay. A
// cycle is an error naming its rules.
void OrderByDerivedStreams(RuleSet* set, config::Diagnostics* diagnostics) {
  const auto& rules = set->rules;
  const std::size_t n = rules.size();
  // inputs[b]: the rules whose output b reads.
  std::vector<std::vector<std::size_t>> inputs(n);
  bool any = false;
  for (std::size_t a = 0; a < n; ++a) {
    if (!rules[a]->output) continue;
    any = true;
    for (std::size_t b = 0; b < n; ++b) {
      const auto& metrics = rules[b]->metrics;
      if (std::find(metrics.begin(), metrics.end(), rules[a]->output->metric) != metrics.end()) {
        inputs[b].push_back(a);
      }
    }
  }
  if (!any) return;
  std::vector<std::shared_ptr<const CompiledRule>> ordered;
  std::vector<bool> placed(n, false);
  while (ordered.size() < n) {
    std::size_t next = n;
    for (std::size_t b = 0; b < n && next == n; ++b) {
      if (placed[b]) continue;
      if (std::all_of(inputs[b].begin(), inputs[b].end(),
                      [&](std::size_t a) { return placed[a]; })) {
        next = b;
      }
    }
    if (next == n) break;  // every rule left waits for another: a cycle
    placed[next] = true;
    ordered.push_back(rules[next]);
  }
  if (ordered.size() == n) {
    set->rules = std::move(ordered);
    return;
  }
  // Walk back from a rule left over through inputs left over until one repeats.
  std::size_t at = 0;
  while (placed[at]) ++at;
  std::vector<std::size_t> path;
  while (std::find(path.begin(), path.end(), at) == path.end()) {
    path.push_back(at);
    for (std::size_t a : inputs[at]) {
      if (!placed[a]) {
        at = a;
        break;
      }
    }
  }
  // path ends in the cycle: from `at` back to `at`, as producer → consumer.
  std::vector<std::size_t> cycle(std::find(path.begin(), path.end(), at), path.end());
  std::reverse(cycle.begin(), cycle.end());
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
  std::string text;
  for (std::size_t i : cycle) {
    text += rules[i]->id + " (" + rules[i]->output->metric + ") → ";
  }
  text += rules[cycle.front()]->id;
  diagnostics->push_back({rules[cycle.front()]->file,
                          rules[cycle.front()]->pointer + "/output/metric",
                          "rules read each other's output in a cycle: " + text});
}

LoadResult Finish(RuleSet set, config::Diagnostics diagnostics, const RuleLimits& limits) {
  set.max_keys_total = limits.max_keys_total;
  std::set<std::string> seen;
  for (const auto& rule : set.rules) {
    if (!seen.insert(rule->id).second) {
      diagnostics.push_back(
          {rule->file, rule->pointer + "/id", "duplicate rule id \"" + rule->id + "\""});
    }
  }
  if (diagnostics.empty()) OrderByDerivedStreams(&set, &diagnostics);
  LoadResult result;
  result.diagnostics = std::move(diagnostics);
  if (result.diagnostics.empty()) result.rules = std::make_shared<const RuleSet>(std::move(set));
  return result;
}

}  // namespace

std::vector<std::string> RuleSet::ids() const {
  std::vector<std::string> out;
  for (const auto& r : rules) out.push_back(r->id);
  return out;
}

LoadResult ParseRules(std::string_view text, const std::string& file) {
  return ParseRules(text, file, RuleLimits{});
}

LoadResult ParseRules(std::string_view text, const std::string& file, const RuleLimits& limits) {
  RuleSet set;
  config::Diagnostics diagnostics;
  if (text.size() > limits.max_file_bytes) {
    diagnostics.push_back({file, "",
                           "the file is " + std::to_string(text.size()) +
                               " bytes; rules.max_file_bytes is " +
                               std::to_string(limits.max_file_bytes)});
  } else {
    ParseInto(text, file, limits, &set, &diagnostics);
  }
  return Finish(std::move(set), std::move(diagnostics), limits);
}

LoadResult LoadRules(const std::vector<std::string>& paths) {
  return LoadRules(paths, RuleLimits{});
}

LoadResult LoadRules(const std::vector<std::string>& paths, const RuleLimits& limits) {
  namespace fs = std::filesystem;
  RuleSet set;
  config::Diagnostics diagnostics;
  std::size_t files_read = 0;
  for (const auto& path : paths) {
    std::error_code ec;
    std::vector<std::string> files;
    if (fs::is_directory(path, ec)) {
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.path().extension() == ".json" && !entry.is_directory()) {
          files.push_back(entry.path().string());
        }
      }
      std::sort(files.begin(), files.end());
    } else if (fs::exists(path, ec)) {
      files.push_back(path);
    } else {
      diagnostics.push_back({path, "", "no such rule file or folder"});
      continue;
    }
    for (const auto& file : files) {
      if (++files_read > limits.max_files) {
        diagnostics.push_back(
            {path, "",
             "more than " + std::to_string(limits.max_files) + " rule files (rules.max_files)"});
        return Finish(std::move(set), std::move(diagnostics), limits);
      }
      // The size first: a huge file is refused without being read, and so is anything but
      // a regular file (a device or a pipe might never end).
      std::error_code size_error;
      const auto size = fs::file_size(file, size_error);
      if (size_error) {
        diagnostics.push_back({file, "", "cannot read the rule file (not a regular file)"});
        continue;
      }
      if (size > limits.max_file_bytes) {
        diagnostics.push_back({file, "",
                               "the file is " + std::to_string(size) +
                                   " bytes; rules.max_file_bytes is " +
                                   std::to_string(limits.max_file_bytes)});
        continue;
      }
      std::optional<std::string> text = config::ReadFile(file);
      if (!text) {
        diagnostics.push_back({file, "", "cannot read the rule file"});
        continue;
      }
      if (text->size() > limits.max_file_bytes) {
        diagnostics.push_back({file, "",
                               "the file is " + std::to_string(text->size()) +
                                   " bytes; rules.max_file_bytes is " +
                                   std::to_string(limits.max_file_bytes)});
        continue;
      }
      ParseInto(*text, file, limits, &set, &diagnostics);
    }
  }
  return Finish(std::move(set), std::move(diagnostics), limits);
}

}  // namespace vigil::rules
