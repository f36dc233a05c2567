#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "rules/detector.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "tests/unit/errors.h"

namespace vigil::rules {
namespace {

constexpr const char* kBoiler = R"json({
  "id": "boiler-overheat",
  "description": "Boiler running hot",
  "source": { "metric": "temperature", "where": "device =~ \"^boiler-\"" },
  "group_by": ["device"],
  "window": { "type": "tumbling", "size": "1m", "lateness": "10s" },
  "aggregates": { "avg": "avg(value)", "max": "max(value)", "n": "count()" },
  "alert": {
    "when": "avg > 90 && n >= 3", "clear_when": "avg < 85", "for": "2m",
    "severity": "critical", "summary": "{device}: average {avg:.1f} °C", "labels": { "team": "heating" }
  },
  "emit": ["alert", "aggregate"]
})json";

TEST(RuleLoader, LoadsTheSpecExample) {
  LoadResult r = ParseRules(kBoiler, "boiler.json");
  ASSERT_TRUE(r.rules) << Errors(r);
  EXPECT_EQ(r.rules->ids(), std::vector<std::string>{"boiler-overheat"});
}

TEST(RuleLoader, UnknownNameInWhenNamesFilePointerAndColumn) {
  std::string text = kBoiler;
  text.replace(text.find("avg > 90"), 3, "avgg");
  LoadResult r = ParseRules(text, "rules.d/boiler.json");
  ASSERT_FALSE(r.rules);
  ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
  EXPECT_EQ(r.diagnostics[0].ToString(),
            "rules.d/boiler.json: /alert/when: col 1: unknown name \"avgg\" (aggregates: avg, "
            "max, n; tags: those in group_by)");
}

TEST(RuleLoader, EveryProblemIsReported) {
  LoadResult r = ParseRules(R"json([
    { "id": "Bad Id", "source": { "metric": "t" },
      "window": { "type": "tumbling", "size": "forever" },
      "aggregates": { "a": "avgg(value)", "b": "avg(value +)", "c": "percentile(value, 101)" },
      "alert": { "when": "a > 1 && ", "summary": "{nope}" }, "emitt": [] },
    { "id": "ok-but-no-window", "source": { "metric": "t" }, "aggregates": { "n": "count()" } },
    { "id": "x", "source": { "metric": "t" }, "window": { "type": "session", "size": "1m" },
      "aggregates": { "n": "count()" } },
    { "id": "y", "source": { "metric": "t" }, "window": { "type": "count", "count": 0, "lateness": "1s" },
      "aggregates": { "n": "count()" } },
    { "id": "z", "source": { "metric": "t" }, "window": { "type": "rolling" },
      "aggregates": { "n": "count()" } }
  ])json",
                            "r.json");
  ASSERT_FALSE(r.rules);
  std::string all = Errors(r);
  for (const char* want : {
           "r.json: /0/emitt: unknown key \"emitt\" (did you mean \"emit\"?)",
           "r.json: /0/id: \"Bad Id\" is not a valid id",
           "r.json: /0/window/size: must be a duration",
           "r.json: /0/aggregates/a: col 1: unknown aggregate \"avgg\"",
           "r.json: /0/aggregates/b: col 12: unexpected end of expression",
           "r.json: /0/aggregates/c: col 12: percentile takes (value, P) with P from 0 to 100",
           "r.json: /0/alert/when: col 10: unexpected end of expression",
           "r.json: /1/window: missing",
           "r.json: /2/window/gap: missing (a session window needs it)",
           "r.json: /2/window/size: a session window has no size",
           "r.json: /3/window/count: must be an integer from 1 to 1000000",
           "r.json: /3/window/lateness: a count window has no lateness",
           "r.json: /4/window/type: unknown window type \"rolling\" (tumbling, hopping, sliding, "
           "session, count)",
       }) {
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nall:\n" << all;
  }
}

TEST(RuleLoader, WrongTypesAreReportedWithTheirPointer) {
  LoadResult r = ParseRules(R"json({
    "id": 7, "source": { "metric": 5, "where": "value > 1" }, "group_by": "device",
    "window": { "type": "tumbling", "size": 10 }, "aggregates": { "n": 1 },
    "alert": { "when": "n > 1", "severity": 3, "labels": { "team": 1 }, "for": "soon" },
    "max_keys": "many", "emit": ["alerts"]
  })json",
                            "r.json");
  std::string all = Errors(r);
  for (const char* want : {
           "r.json: /id: must be a string",
           "r.json: /source/metric: must be a metric name or a list of names",
           "r.json: /group_by: must be a list of tag names",
           "r.json: /window/size: must be a duration such as \"250ms\", \"10s\", \"1m30s\"",
           "r.json: /aggregates/n: must be a string such as \"avg(value)\"",
           "r.json: /alert/severity: must be a string",
           "r.json: /alert/labels/team: must be a string",
           "r.json: /alert/for: must be a duration",
           "r.json: /max_keys: must be an integer from 1 to 100000000",
           "r.json: /emit: unknown kind \"alerts\" (alert, aggregate)",
       }) {
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nall:\n" << all;
  }
}

TEST(RuleLoader, DetectorErrors) {
  LoadResult r = ParseRules(R"json([
    { "id": "a", "source": { "metric": "t" }, "detector": { "method": "zscorr" } },
    { "id": "b", "source": { "metric": "t" }, "detector": { "method": "spike" } },
    { "id": "c", "source": { "metric": "t" }, "detector": { "method": "range" } },
    { "id": "d", "source": { "metric": "t" }, "detector": { "method": "zscore", "window": 1 } },
    { "id": "e", "source": { "metric": "t" }, "window": { "type": "tumbling", "size": "1m" },
      "aggregates": { "avg": "avg(value)" }, "detector": { "method": "ewma", "input": "mean" } },
    { "id": "f", "source": { "metric": "t" }, "group_by": ["device"],
      "detector": { "method": "absent", "for": "1m" },
      "alert": { "when": "scor > 1" } }
  ])json",
                            "r.json");
  std::string all = Errors(r);
  for (const char* want : {
           "r.json: /0/detector/method: unknown method \"zscorr\" (adaptive, zscore, ewma, mad, "
           "spike, "
           "flatline, absent, range)",
           "r.json: /1/detector/max_rate: missing (spike needs it)",
           "r.json: /2/detector: range needs min, max or both",
           "r.json: /3/detector/window: must be a count of readings (an integer ≥ 2) or a duration",
           "r.json: /4/detector/input: unknown aggregate \"mean\"",
           "r.json: /5/alert/when: col 1: unknown name \"scor\"",
       }) {
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nall:\n" << all;
  }
}

TEST(RuleLoader, AdaptiveDefaultsAndSuppress) {
  LoadResult r = ParseRules(R"json([
    { "id": "a", "source": { "metric": "t" }, "detector": { "method": "adaptive" } },
    { "id": "b", "source": { "metric": "t" }, "detector": { "method": "zscore", "suppress": "5m" } },
    { "id": "c", "source": { "metric": "t" }, "detector": { "method": "adaptive", "suppress": 0 } }
  ])json",
                            "r.json");
  ASSERT_TRUE(r.rules) << Errors(r);
  const DetectorSpec& a = *r.rules->rules[0]->detector;
  EXPECT_EQ(a.method, DetectorSpec::Method::kAdaptive);
  EXPECT_EQ(a.threshold, 5);
  EXPECT_EQ(a.min_samples, 200u);
  EXPECT_EQ(a.suppress_count, 10u);
  const DetectorSpec& b = *r.rules->rules[1]->detector;
  EXPECT_EQ(b.threshold, 3);  // SPEC's defaults stay
  EXPECT_EQ(b.min_samples, 30u);
  EXPECT_EQ(b.suppress, Millis(300'000));
  EXPECT_EQ(b.suppress_count, 0u);
  EXPECT_EQ(r.rules->rules[2]->detector->suppress_count, 0u);

  LoadResult bad = ParseRules(R"json([
    { "id": "a", "source": { "metric": "t" }, "detector": { "method": "ewma", "suppress": -1 } },
    { "id": "b", "source": { "metric": "t" },
      "detector": { "method": "absent", "for": "1m", "suppress": "1m" } }
  ])json",
                              "r.json");
  std::string all = Errors(bad);
  for (const char* want : {
           "r.json: /0/detector/suppress: must be a count of readings (an integer ≥ 0) or a "
           "duration",
           "r.json: /1/detector/suppress: absent has no suppress",
       }) {
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nall:\n" << all;
  }
}

TEST(RuleLoader, JsonSyntaxErrorNamesLineAndColumn) {
  LoadResult r = ParseRules("{\n  \"id\": \"x\"\n  \"source\": {}\n}", "r.json");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].location, "3:3");
}

TEST(RuleLoader, DuplicateIdsAcrossFilesAndMissingPaths) {
  auto dir = std::filesystem::temp_directory_path() / "vigil_rule_loader_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "a.json") << kBoiler;
  std::ofstream(dir / "b.json") << kBoiler;
  std::ofstream(dir / "notes.txt") << "not a rule";
  LoadResult r = LoadRules({dir.string(), (dir / "missing.json").string()});
  std::string all = Errors(r);
  EXPECT_NE(all.find("b.json: /id: duplicate rule id \"boiler-overheat\""), std::string::npos)
      << all;
  EXPECT_NE(all.find("missing.json: no such rule file or folder"), std::string::npos) << all;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil::rules
