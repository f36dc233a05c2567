// Checkpoints: an engine restored from another engine's state produces exactly what the
// uninterrupted engine would have (same events, same ids).

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include <nlohmann/json.hpp>

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
                Millis(1'795'341'720'000 + i * 1000 + (i / 7) * 5000),
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

std::string WithWindow(const std::string& window) {
  std::string rule = kRule;
  const std::string tumbling = R"json({ "type": "tumbling", "size": "10s" })json";
  rule.replace(rule.find(tumbling), tumbling.size(), window);
  return rule;
}

class RestoreEveryWindowType : public ::testing::TestWithParam<std::string> {};

TEST_P(RestoreEveryWindowType, RestoredEngineContinuesExactly) {
  auto rules = Load(WithWindow(GetParam()));
  ASSERT_TRUE(rules);
  std::vector<Reading> readings = Readings();
  // Some disorder within the lateness of the lateness-aware variants.
  std::swap(readings[30], readings[33]);
  std::swap(readings[71], readings[75]);

  Engine whole("gw", rules);
  std::vector<Event> expected;
  for (const auto& r : readings) whole.Process(r, r.time, &expected);
  whole.Finish(&expected);
  ASSERT_GT(expected.size(), 4u);

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
      // Odd cuts restore from JSON text, the form earlier versions checkpointed in.
      const std::string bytes =
          cut % 2 == 1 ? nlohmann::json::from_msgpack(*c.bytes).dump() : *c.bytes;
      ASSERT_TRUE(second.Restore(c.rule, c.key, bytes)) << c.key;
    }
    for (std::size_t i = cut; i < readings.size(); ++i) {
      second.Process(readings[i], readings[i].time, &got);
    }
    second.Finish(&got);
    std::vector<std::string> a = Ids(got), b = Ids(expected);
    ASSERT_EQ(a.size(), b.size()) << "cut at " << cut;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i], b[i]) << "cut at " << cut << ", event " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Windows, RestoreEveryWindowType,
    ::testing::Values(
        R"json({ "type": "tumbling", "size": "10s" })json",
        R"json({ "type": "hopping", "size": "10s", "slide": "5s", "lateness": "5s" })json",
        R"json({ "type": "sliding", "size": "10s", "lateness": "5s" })json",
        R"json({ "type": "session", "gap": "3s", "lateness": "5s" })json",
        R"json({ "type": "count", "count": 7 })json"));

// Percentiles (exact up to 256 values, a sketch beyond) and distinct() keep more than running
// sums: their state restores exactly too.
class RestoreCollections : public ::testing::TestWithParam<std::string> {};

TEST_P(RestoreCollections, RestoredEngineContinuesExactly) {
  const std::string rule = R"json({ "id": "c", "source": { "metric": "t" }, "group_by": ["device"],
      "window": )json" + GetParam() +
                           R"json(,
      "aggregates": { "p90": "percentile(value, 90)", "sites": "distinct(site)",
                      "first": "first(value)", "rate": "rate(value)" },
      "emit": ["aggregate"] })json";
  auto rules = Load(rule);
  ASSERT_TRUE(rules);
  std::vector<Reading> readings;
  for (int i = 0; i < 900; ++i) {
    for (const char* dev : {"a", "b"}) {
      readings.push_back({"t",
                          {{"device", dev}, {"metric", "t"}, {"site", "s" + std::to_string(i % 7)}},
                          Millis(1'795'341'720'000 + i * 1000),
                          (i * 37 % 101) * 0.25 + (dev[0] == 'a' ? 0 : 100)});
    }
  }
  Engine whole("gw", rules);
  std::vector<Event> expected;
  for (const auto& r : readings) whole.Process(r, r.time, &expected);
  whole.Finish(&expected);
  ASSERT_GT(expected.size(), 2u);
  for (std::size_t cut : {3u, 600u, 1100u}) {  // exact, then sketched percentiles
    Engine first("gw", rules);
    std::vector<Event> got;
    for (std::size_t i = 0; i < cut; ++i) first.Process(readings[i], readings[i].time, &got);
    std::vector<StateChange> changes;
    first.TakeChanges(&changes);
    Engine second("gw", rules);
    for (const auto& c : changes) ASSERT_TRUE(second.Restore(c.rule, c.key, *c.bytes)) << c.key;
    for (std::size_t i = cut; i < readings.size(); ++i) {
      second.Process(readings[i], readings[i].time, &got);
    }
    second.Finish(&got);
    ASSERT_EQ(Ids(got), Ids(expected)) << "cut at " << cut;
  }
}

INSTANTIATE_TEST_SUITE_P(Windows, RestoreCollections,
                         ::testing::Values(R"json({ "type": "tumbling", "size": "10m" })json",
                                           R"json({ "type": "sliding", "size": "5m" })json"));

TEST(EngineState, NewKeysPastMaxKeysAreDroppedAndCounted) {
  std::string rule = kRule;
  rule.replace(rule.find(R"json("emit")json"), 0, R"json("max_keys": 1, )json");
  Engine engine("gw", Load(rule));
  std::vector<Event> events;
  for (const auto& r : Readings()) engine.Process(r, r.time, &events);
  auto stats = engine.Stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].keys, 1u);
  EXPECT_EQ(stats[0].dropped_keys, 60u);  // every reading of device "b"
  EXPECT_EQ(stats[0].evaluations, 60u);
}

// Rules with the same group_by share the lookup of a reading's key: one rule's max_keys does
// not hide the key from the others, and each keeps its own states.
TEST(EngineState, RulesSharingAGroupByKeepTheirOwnKeys) {
  std::string limited = kRule;
  limited.replace(limited.find(R"json("emit")json"), 0, R"json("max_keys": 1, )json");
  std::string other = kRule;
  other.replace(other.find(R"json("hot")json"), 5, R"json("warm")json");
  Engine engine("gw", Load("[" + limited + "," + other + "]"));
  std::vector<Event> events;
  for (const auto& r : Readings()) engine.Process(r, r.time, &events);
  auto stats = engine.Stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].keys, 1u);
  EXPECT_EQ(stats[0].dropped_keys, 60u);
  EXPECT_EQ(stats[0].evaluations, 60u);
  EXPECT_EQ(stats[1].keys, 2u);
  EXPECT_EQ(stats[1].dropped_keys, 0u);
  EXPECT_EQ(stats[1].evaluations, 120u);
  std::map<std::string, int> per_rule_device;
  for (const auto& e : events) ++per_rule_device[e.rule + "/" + e.key.at(0).second];
  EXPECT_EQ(per_rule_device.count("hot/b"), 0u);
  EXPECT_GT(per_rule_device["hot/a"], 0);
  EXPECT_EQ(per_rule_device["warm/a"], per_rule_device["hot/a"]);
  EXPECT_EQ(per_rule_device["warm/b"], per_rule_device["warm/a"]);
}

// A restart decodes checkpoints on several threads (Engine::Decode, as agent/pipeline.cpp
// does) and adopts them on one: the same states as Restore one at a time, and the rows it
// cannot restore are the ones Restore refuses.
TEST(EngineState, DecodeOnThreadsThenAdoptEqualsRestoreOneByOne) {
  auto rules = Load(kRule);
  Engine source("gw", rules);
  std::vector<Event> events;
  for (int i = 0; i < 40; ++i) {
    for (int d = 0; d < 700; ++d) {
      Reading r{"t",
                {{"device", "d" + std::to_string(d)}, {"metric", "t"}},
                Millis(1'795'341'720'000 + i * 1000),
                40.0 + (i * d) % 13};
      source.Process(r, r.time, &events);
    }
  }
  std::vector<StateChange> rows;
  source.SnapshotAll(&rows);
  ASSERT_EQ(rows.size(), 700u);
  rows[100].bytes->resize(rows[100].bytes->size() / 2);  // damaged
  rows[500].rule = "gone";                               // a removed rule
  rows[600].bytes.reset();                               // no bytes
  Engine many("gw", rules);
  std::vector<DecodedKey> decoded(rows.size());
  auto decode = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      if (rows[i].bytes) decoded[i] = many.Decode(rows[i].rule, rows[i].key, *rows[i].bytes);
    }
  };
  std::thread other(decode, rows.size() / 2, rows.size());
  decode(0, rows.size() / 2);
  other.join();
  std::vector<bool> ok(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ok[i] = decoded[i].ok();
    EXPECT_EQ(many.Adopt(std::move(decoded[i])), ok[i]) << i;
  }
  Engine one("gw", rules);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const bool restored = rows[i].bytes && one.Restore(rows[i].rule, rows[i].key, *rows[i].bytes);
    EXPECT_EQ(ok[i], restored) << i;
    EXPECT_EQ(ok[i], i != 100 && i != 500 && i != 600) << i;
  }
  std::vector<StateChange> a, b;
  many.SnapshotAll(&a);
  one.SnapshotAll(&b);
  ASSERT_EQ(a.size(), 697u);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_EQ(*a[i].bytes, *b[i].bytes) << a[i].key;
  }
  EXPECT_EQ(many.Firing().size(), one.Firing().size());
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
  // Truncated or garbled MessagePack.
  const std::string& good = *changes[0].bytes;
  EXPECT_FALSE(same.Restore(changes[0].rule, changes[0].key, good.substr(0, good.size() / 2)));
  EXPECT_FALSE(same.Restore(changes[0].rule, changes[0].key, std::string("\xde\xff\xff\x01", 4)));
  EXPECT_FALSE(same.Restore(changes[0].rule, changes[0].key, ""));
  EXPECT_TRUE(same.Restore(changes[0].rule, changes[0].key, *changes[0].bytes));
}

TEST(EngineState, FiringAlertsAreListed) {
  Engine engine("gw", Load(kRule));
  std::vector<Event> events;
  for (const auto& r : Readings()) {
    if (r.time < Millis(1'795'341'733'000)) engine.Process(r, r.time, &events);
  }
  auto firing = engine.Firing();
  ASSERT_EQ(firing.size(), 2u);
  EXPECT_EQ(firing[0].rule, "hot");
  EXPECT_EQ(firing[0].severity, "warning");
  EXPECT_FALSE(firing[0].alert_id.empty());
}

// Firing() lists exactly the keys whose last alert event is "firing", through firing,
// resolving, a restore and ResolveFiring (it keeps a count per rule and stops there).
TEST(EngineState, FiringListFollowsTheAlertEvents) {
  auto rules = Load(kRule);
  auto engine = std::make_unique<Engine>("gw", rules);
  std::vector<Event> events;
  std::map<std::string, bool> fires;  // device → last alert event was "firing"
  auto listed = [](const Engine& e) {
    std::map<std::string, bool> out;
    for (const auto& f : e.Firing()) out[f.key.at(0).second] = true;
    return out;
  };
  auto expected = [&fires] {
    std::map<std::string, bool> out;
    for (const auto& [device, firing] : fires) {
      if (firing) out[device] = true;
    }
    return out;
  };
  std::size_t seen = 0;
  int changes = 0;
  const std::vector<Reading> readings = Readings();
  for (std::size_t i = 0; i < readings.size(); ++i) {
    engine->Process(readings[i], readings[i].time, &events);
    for (; seen < events.size(); ++seen) {
      if (events[seen].kind != EventKind::kAlert) continue;
      fires[events[seen].key.at(0).second] = events[seen].state == EventState::kFiring;
      ++changes;
    }
    ASSERT_EQ(listed(*engine), expected()) << "after reading " << i;
    if (i == 50) {  // a restart with alerts firing
      ASSERT_FALSE(expected().empty());
      std::vector<StateChange> state;
      engine->SnapshotAll(&state);
      auto restored = std::make_unique<Engine>("gw", rules);
      for (const auto& c : state) ASSERT_TRUE(restored->Restore(c.rule, c.key, *c.bytes));
      engine = std::move(restored);
      ASSERT_EQ(listed(*engine), expected());
    }
  }
  EXPECT_GE(changes, 4);  // both devices fired and resolved
  engine->ResolveFiring("hot", Millis(1'795'341'900'000), &events);
  EXPECT_TRUE(engine->Firing().empty());
}

}  // namespace
}  // namespace vigil::rules

namespace vigil::rules {
namespace {

constexpr const char* kAbsentRule = R"json({
  "id": "gone", "source": { "metric": "t" }, "group_by": ["device"],
  "detector": { "method": "absent", "for": "1500ms" },
  "alert": { "repeat": "2s" }
})json";

Reading At(const char* device, std::int64_t ms) {
  return {"t", {{"device", device}, {"metric", "t"}}, Millis(ms), 1.0};
}

// Advance's timers are not part of any key's state: a restart restores them beside the keys
// (SaveTimers), so the restored engine looks at its keys at the same moments as the one
// that went on. Without them a firing `absent` key is looked at again too early.
TEST(EngineTimers, RestoredTimersMakeAdvanceLookAtTheSameMoments) {
  auto rules = Load(kAbsentRule);
  Engine live("gw", rules);
  std::vector<Event> events;
  live.Process(At("a", 0), Millis(0), &events);
  EXPECT_FALSE(live.Advance(Millis(1000), &events)) << "nothing due yet";
  EXPECT_TRUE(live.Advance(Millis(2000), &events)) << "a is silent for 1.5 s: fires";
  ASSERT_EQ(events.size(), 1u);
  std::vector<StateChange> state;
  live.TakeChanges(&state);
  const std::string timers = live.SaveTimers();

  auto restore = [&](bool with_timers) {
    auto e = std::make_unique<Engine>("gw", rules);
    for (const auto& c : state) EXPECT_TRUE(e->Restore(c.rule, c.key, *c.bytes));
    if (with_timers) e->RestoreTimers(timers);
    return e;
  };
  auto restored = restore(true);
  auto without = restore(false);
  std::vector<Event> a, b, c;
  // The firing key is looked at again a second after the last look: not at 2.5 s.
  EXPECT_FALSE(live.Advance(Millis(2500), &a));
  EXPECT_FALSE(restored->Advance(Millis(2500), &b));
  EXPECT_TRUE(without->Advance(Millis(2500), &c)) << "timers from the keys alone: too early";
  for (std::int64_t t = 3000; t <= 9000; t += 700) {
    EXPECT_EQ(live.Advance(Millis(t), &a), restored->Advance(Millis(t), &b)) << t;
  }
  EXPECT_FALSE(a.empty()) << "repeats";
  EXPECT_EQ(Ids(a), Ids(b));
}

TEST(EngineTimers, TimersOfAChangedRuleOrUnreadableLinesAreIgnored) {
  auto rules = Load(kAbsentRule);
  Engine live("gw", rules);
  std::vector<Event> events;
  live.Process(At("a", 0), Millis(0), &events);
  live.Advance(Millis(2000), &events);
  std::string timers = live.SaveTimers();
  ASSERT_NE(timers.find("gone "), std::string::npos);

  auto changed =
      Load(std::string(kAbsentRule).replace(std::string(kAbsentRule).find("1500ms"), 6, "1600ms"));
  for (const std::string& saved :
       {timers, std::string("gone x 1\n"), std::string("\n\n"), std::string("gone fp one two\n")}) {
    Engine other("gw", changed);
    other.Process(At("a", 0), Millis(0), &events);
    other.RestoreTimers(saved);  // the rule's fingerprint differs, or the line is unreadable
    EXPECT_TRUE(other.Advance(Millis(1600), &events)) << saved;
  }
}

}  // namespace
}  // namespace vigil::rules
