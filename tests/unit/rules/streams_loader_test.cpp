// Loading derived streams (`output`), joins (`source.join`) and table columns: what is
// accepted, the order rules are put in, and the error for each mistake.

#include <gtest/gtest.h>

#include "rules/rule.h"
#include "rules/rule_loader.h"
#include "tests/unit/errors.h"

namespace vigil::rules {
namespace {

// A rule over `in` that publishes its average as `out` (no output when `out` is empty).
std::string Stage(const std::string& id, const std::string& in, const std::string& out) {
  std::string rule = R"({"id": ")" + id + R"(", "source": {"metric": ")" + in +
                     R"json("}, "window": {"type": "tumbling", "size": "1m"},
                      "aggregates": {"avg": "avg(value)"})json";
  if (!out.empty()) rule += R"(, "output": {"metric": ")" + out + R"("})";
  return rule + "}";
}

TEST(DerivedStreams, RulesAreOrderedAfterTheRulesWhoseOutputTheyRead) {
  LoadResult r = ParseRules("[" + Stage("c", "m2", "") + "," + Stage("b", "m1", "m2") + "," +
                                Stage("a", "raw", "m1") + "," + Stage("d", "raw", "") + "]",
                            "stages.json");
  ASSERT_TRUE(r.rules) << Errors(r);
  EXPECT_EQ(r.rules->ids(), (std::vector<std::string>{"a", "b", "c", "d"}));
  ASSERT_TRUE(r.rules->rules[0]->output);
  EXPECT_EQ(r.rules->rules[0]->output->metric, "m1");
}

TEST(DerivedStreams, ACycleIsALoadErrorNamingItsRules) {
  LoadResult r = ParseRules("[" + Stage("a", "m2", "m1") + "," + Stage("b", "m1", "m3") + "," +
                                Stage("c", "m3", "m2") + "," + Stage("d", "raw", "m1") + "]",
                            "loop.json");
  ASSERT_FALSE(r.rules);
  ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
  EXPECT_EQ(r.diagnostics[0].ToString(),
            "loop.json: /0/output/metric: rules read each other's output in a cycle: "
            "a (m1) → b (m3) → c (m2) → a");
}

TEST(DerivedStreams, OutputMistakes) {
  LoadResult r = ParseRules(R"json([
    { "id": "self", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
      "aggregates": { "avg": "avg(value)" }, "output": { "metric": "t" } },
    { "id": "which", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
      "aggregates": { "avg": "avg(value)", "max": "max(value)" }, "output": { "metric": "u" } },
    { "id": "unknown", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
      "aggregates": { "avg": "avg(value)" }, "output": { "metric": "u", "value": "mean" } },
    { "id": "nowindow", "source": { "metric": "t" }, "detector": { "method": "range", "max": 1 },
      "output": { "metric": "u" } },
    { "id": "nometric", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
      "aggregates": { "avg": "avg(value)" }, "output": { "value": "avg", "topic": "x" } }
  ])json",
                            "out.json");
  ASSERT_FALSE(r.rules);
  EXPECT_EQ(Errors(r),
            "out.json: /0/output/metric: \"t\" is the rule's own source (a cycle)\n"
            "out.json: /1/output/value: missing: which aggregate is the metric's value (avg, "
            "max)\n"
            "out.json: /2/output/value: unknown aggregate \"mean\" (avg)\n"
            "out.json: /3/output: only a window's aggregates can be published as a metric\n"
            "out.json: /4/output/topic: unknown key \"topic\"\n"
            "out.json: /4/output/metric: missing (the name of the derived metric)\n");
}

TEST(DerivedStreams, AnIntermediateRuleMayEmitNothing) {
  LoadResult r = ParseRules(R"json([
    { "id": "quiet", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
      "aggregates": { "avg": "avg(value)" }, "output": { "metric": "u" }, "emit": [] },
    { "id": "mute", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
      "aggregates": { "avg": "avg(value)" }, "emit": [] }
  ])json",
                            "emit.json");
  ASSERT_FALSE(r.rules);
  EXPECT_EQ(Errors(r),
            "emit.json: /1/emit: must list \"alert\" and/or \"aggregate\" (or be [] beside "
            "output)\n");
}

constexpr const char* kDew = R"json({
  "id": "dew",
  "source": { "join": { "metrics": ["temperature", "humidity"], "on": ["device"], "within": "10s" },
              "where": "humidity > 0 && device != \"x\"" },
  "window": { "type": "tumbling", "size": "1m", "lateness": "5s" },
  "aggregates": { "dew": "avg(temperature - (100 - humidity) / 5)" },
  "alert": { "when": "dew > 20", "summary": "{device}: dew point {dew:.1f}" }
})json";

TEST(Joins, AJoinRuleLoadsWithItsMetricsAsNames) {
  LoadResult r = ParseRules(kDew, "dew.json");
  ASSERT_TRUE(r.rules) << Errors(r);
  const CompiledRule& rule = *r.rules->rules[0];
  ASSERT_TRUE(rule.join);
  EXPECT_EQ(rule.metrics, (std::vector<std::string>{"temperature", "humidity"}));
  EXPECT_EQ(rule.group_by, std::vector<std::string>{"device"});
  EXPECT_FALSE(rule.group_by_all);
  EXPECT_EQ(rule.join->within, Millis(10'000));
  EXPECT_EQ(rule.join->lateness, Millis(5'000)) << "the window's lateness by default";
}

TEST(Joins, JoinMistakes) {
  LoadResult r = ParseRules(R"json([
    { "id": "one", "source": { "join": { "metrics": ["t"], "on": ["device"], "within": "1s" } },
      "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } },
    { "id": "same", "source": { "join": { "metrics": ["t", "t"], "on": ["device"], "within": "1s" } },
      "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } },
    { "id": "names", "source": { "join": { "metrics": ["boiler-temp", "value"], "on": ["device"],
      "within": "1s" } }, "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } },
    { "id": "bounds", "source": { "join": { "metrics": ["t", "h"], "on": [], "within": "0s" } },
      "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } },
    { "id": "both", "source": { "metric": "t", "join": { "metrics": ["t", "h"], "on": ["device"],
      "within": "1s" } }, "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } },
    { "id": "group", "source": { "join": { "metrics": ["t", "h"], "on": ["device"], "within": "1s" } },
      "group_by": ["room"], "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } },
    { "id": "value", "source": { "join": { "metrics": ["t", "h"], "on": ["device"], "within": "1s" } },
      "window": { "type": "count", "count": 1 }, "aggregates": { "a": "avg(value)" } },
    { "id": "alone", "source": { "join": { "metrics": ["t", "h"], "on": ["device"], "within": "1s" } },
      "detector": { "method": "range", "max": 1 } }
  ])json",
                            "join.json");
  ASSERT_FALSE(r.rules);
  EXPECT_EQ(Errors(r),
            "join.json: /0/source/join/metrics: must name two different metrics\n"
            "join.json: /1/source/join/metrics: must name two different metrics\n"
            "join.json: /2/source/join/metrics/0: \"boiler-temp\" cannot be joined: expressions "
            "name a join's values by metric, so it must be a name such as humidity "
            "([A-Za-z_][A-Za-z0-9_]*)\n"
            "join.json: /2/source/join/metrics/1: \"value\" cannot be joined: expressions name a "
            "join's values by metric, so it must be a name such as humidity "
            "([A-Za-z_][A-Za-z0-9_]*)\n"
            "join.json: /3/source/join/on: must list the tags both metrics share, e.g. "
            "[\"device\"]\n"
            "join.json: /3/source/join/within: must be more than 0\n"
            "join.json: /4/source/join: a source has a metric or a join, not both\n"
            "join.json: /5/group_by: a join's rule groups by its `on` tags (leave group_by out)\n"
            "join.json: /6/aggregates/a: col 5: unknown name \"value\" (a join's values are t "
            "and h)\n"
            "join.json: /7/window: a join's pairs go into a window (a join needs one)\n");
}

TEST(Tables, ColumnsOfConfiguredTablesAreNamesAndOthersAreNot) {
  const char* rule = R"json({
    "id": "hot", "source": { "metric": "t", "where": "devices.site == \"berlin\"" },
    "group_by": ["device"], "window": { "type": "count", "count": 1 },
    "aggregates": { "v": "last(value - devices.offset)" },
    "alert": { "when": "v > devices.max_temp - 2", "summary": "{device} above {devices.max_temp}" }
  })json";
  config::RuleLimits limits;
  limits.tables = {"devices"};
  LoadResult r = ParseRules(rule, "hot.json", limits);
  EXPECT_TRUE(r.rules) << Errors(r);

  LoadResult without = ParseRules(rule, "hot.json");
  ASSERT_FALSE(without.rules);
  EXPECT_EQ(Errors(without),
            "hot.json: /aggregates/v: col 14: unknown name \"devices.offset\" (an aggregate's "
            "argument is an expression over value)\n"
            "hot.json: /alert/when: col 5: unknown name \"devices.max_temp\" (aggregates: v; "
            "tags: those in group_by)\n"
            "hot.json: /alert/summary: col 16: unknown name \"devices.max_temp\" (not an "
            "aggregate, a group_by tag or a table's column)\n");
}

}  // namespace
}  // namespace vigil::rules
