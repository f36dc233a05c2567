// Checkpoints: an engine restored from another engine's state produces exactly what the
// uninterrupted engine would have (same events, same ids).

#include <gtest/gtest.h>

#include <map>

#include "rules/engine.h"

namespace vigil::rules {
namespace {

constexpr const char* kRule = R"json({
  "id": "hot", "source": { "metric": "t" }, "group_by": ["device"],
  "window": { "type": "tumbling", "size": "10s" },
  "aggregates": { "avg": "avg(value)", "n": "count()", "sd": "stddev(value)" },
  "alert": { "when": "avg > 45", "clear_when": "avg < 40" },
  "emit": ["alert", "aggregate"]
})json";

std::shared_ptr<const RuleSet> Load(const std::string& text) {
  LoadResult r = ParseRules(text, "r.json");
  EXPECT_TRUE(r.rules);
  return r.rules;
}

std::vector<Reading> Readings() {
  std::vector<Reading> out;
  for (int i = 0; i < 60; ++i) {
    for (const char* dev : {"a", "b"}) {
      Reading r{"t",
                {{"device", dev}, {"metric", "t"}},
                Millis(1'795'341'720'000 + i * 1000),
                (i / 20) % 2 == 0 ? 50.0 + i % 3 : 30.0 - i % 5};
      out.push_back(r);
    }
  }
  return out;
}

std::vector<std::string> Ids(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(ToJson(e));
  return out;
}

TEST(EngineState, RestoredEngineContinuesExactly) {
  auto rules = Load(kRule);
  std::vector<Reading> readings = Readings();

  Engine whole("gw", rules);
  std::vector<Event> expected;
  for (const auto& r : readings) whole.Process(r, r.time, &expected);
  whole.Finish(&expected);

  for (std::size_t cut : {1u, 17u, 45u, 64u, 119u}) {
    Engine first("gw", rules);
    std::vector<Event> got;
    for (std::size_t i = 0; i < cut; ++i) first.Process(readings[i], readings[i].time, &got);
    std::vector<StateChange> changes;
    first.TakeChanges(&changes);
    ASSERT_FALSE(changes.empty());

    Engine second("gw", rules);
    for (const auto& c : changes) {
      ASSERT_TRUE(c.bytes.has_value());
      ASSERT_TRUE(second.Restore(c.rule, c.key, *c.bytes)) << c.key;
    }
    for (std::size_t i = cut; i < readings.size(); ++i) {
      second.Process(readings[i], readings[i].time, &got);
    }
    second.Finish(&got);
    EXPECT_EQ(Ids(got), Ids(expected)) << "cut at " << cut;
  }
}

TEST(EngineState, ChangedRuleOrBadBytesAreNotRestored) {
  auto rules = Load(kRule);
  Engine engine("gw", rules);
  std::vector<Event> events;
  engine.Process(Readings()[0], Millis(0), &events);
  std::vector<StateChange> changes;
  engine.TakeChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);

  std::string changed = kRule;
  changed.replace(changed.find("avg > 45"), 8, "avg > 46");
  Engine other("gw", Load(changed));
  EXPECT_FALSE(other.Restore(changes[0].rule, changes[0].key, *changes[0].bytes));
  Engine same("gw", rules);
  EXPECT_FALSE(same.Restore("unknown-rule", changes[0].key, *changes[0].bytes));
  EXPECT_FALSE(same.Restore(changes[0].rule, changes[0].key, "{not json"));
  EXPECT_FALSE(same.Restore(changes[0].rule, changes[0].key, R"json({"fp": 1})json"));
  EXPECT_TRUE(same.Restore(changes[0].rule, changes[0].key, *changes[0].bytes));
}

TEST(EngineState, FiringAlertsAreListed) {
  Engine engine("gw", Load(kRule));
  std::vector<Event> events;
  for (const auto& r : Readings()) {
    if (r.time < Millis(1'795'341'732'000)) engine.Process(r, r.time, &events);
  }
  auto firing = engine.Firing();
  ASSERT_EQ(firing.size(), 2u);
  EXPECT_EQ(firing[0].rule, "hot");
  EXPECT_EQ(firing[0].severity, "warning");
  EXPECT_FALSE(firing[0].alert_id.empty());
}

}  // namespace
}  // namespace vigil::rules
