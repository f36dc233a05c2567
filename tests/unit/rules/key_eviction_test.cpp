// Key eviction and the key budget (rules/README.md "Key eviction"): which keys go and when,
// which never do, what a checkpoint keeps of them, and that evicting changes no output.

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "config/config.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "rules/rule_loader.h"
#include "tests/unit/errors.h"

namespace vigil::rules {
namespace {

constexpr std::int64_t kT0 = 1'795'341'600'000;
constexpr std::int64_t kSec = 1000;

std::shared_ptr<const RuleSet> Load(const std::string& text, config::RuleLimits limits = {}) {
  LoadResult r = ParseRules(text, "r.json", limits);
  EXPECT_TRUE(r.rules) << Errors(r);
  return r.rules;
}

config::RuleLimits Budget(std::size_t keys) {
  config::RuleLimits limits;
  limits.max_keys_total = keys;
  return limits;
}

Reading At(const std::string& device, std::int64_t t, double value = 20, std::string metric = "t") {
  return Reading{metric, {{"device", device}, {"metric", metric}}, Millis(t), value};
}

// A 10 s tumbling window (idle_timeout 10 s): quiet 20 s.
std::string Tumbling(const std::string& id, const std::string& extra = "") {
  return R"json({ "id": ")json" + id + R"json(", "source": { "metric": "t" },
    "group_by": ["device"], "window": { "type": "tumbling", "size": "10s" },
    "aggregates": { "avg": "avg(value)", "n": "count()" }, "emit": ["aggregate"])json" +
         extra + "}";
}

std::map<std::string, std::uint64_t> Keys(const Engine& engine) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& s : engine.Stats()) out[s.rule] = s.keys;
  return out;
}

RuleStats StatsOf(const Engine& engine, const std::string& rule) {
  for (const auto& s : engine.Stats()) {
    if (s.rule == rule) return s;
  }
  ADD_FAILURE() << "no rule " << rule;
  return {};
}

// The state table a checkpoint writes: (rule, key) → bytes.
using StateTable = std::map<std::pair<std::string, std::string>, std::string>;

// A checkpoint as the agent takes it (`chunk` rows at a time) applied to `table`; returns how
// many of its rows it deleted.
std::size_t Checkpoint(Engine& engine, std::size_t chunk, StateTable* table) {
  std::vector<StateChange> changes;
  while (engine.TakeChanges(&changes, chunk)) {
  }
  std::size_t deleted = 0;
  for (const auto& c : changes) {
    if (c.bytes) {
      (*table)[{c.rule, c.key}] = *c.bytes;
    } else {
      deleted += table->erase({c.rule, c.key});
    }
  }
  return deleted;
}

// The process of one reading at its own time as the processing time.
void Feed(Engine& engine, const Reading& r, std::vector<Event>* events) {
  engine.Process(r, r.time, events);
}

TEST(KeyEviction, LoaderDerivesQuietTimeAndHorizon) {
  auto quiet_and_after = [](const std::string& text, config::RuleLimits limits = {}) {
    auto rules = Load(text, limits);
    const CompiledRule& r = *rules->rules.at(0);
    return std::tuple(r.quiet.count() / kSec, r.evict_after.count() / kSec, r.evictable);
  };
  // size + lateness + idle_timeout; the horizon is rules.key_idle_evict (24h) by default.
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "window": { "type": "tumbling", "size": "1m", "lateness": "10s" },
      "aggregates": { "n": "count()" } })json"),
            std::tuple(130, 86'400, true));
  config::RuleLimits short_idle;
  short_idle.key_idle_evict = Millis(60'000);
  // At least twice the quiet time.
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "window": { "type": "hopping", "size": "2m", "slide": "1m", "idle_timeout": "30s" },
      "aggregates": { "n": "count()" } })json",
                            short_idle),
            std::tuple(150, 300, true));
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "window": { "type": "session", "gap": "5m" }, "aggregates": { "n": "count()" } })json",
                            short_idle),
            std::tuple(600, 1200, true));
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "window": { "type": "count", "count": 10 }, "aggregates": { "n": "count()" } })json",
                            short_idle),
            std::tuple(0, 60, true));
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "detector": { "method": "zscore", "window": "10m" } })json",
                            short_idle),
            std::tuple(600, 1200, true));
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "detector": { "method": "ewma" } })json",
                            short_idle),
            std::tuple(0, 60, true));
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "detector": { "method": "flatline", "for": "15m" } })json",
                            short_idle),
            std::tuple(900, 1800, true));
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a",
      "source": { "join": { "metrics": ["x", "y"], "on": ["device"], "within": "2m" } },
      "window": { "type": "count", "count": 1 }, "aggregates": { "n": "count()" } })json",
                            short_idle),
            std::tuple(120, 240, true));
  // Explicit: kept as written; "0s": never, not even under a key limit.
  EXPECT_EQ(quiet_and_after(Tumbling("a", R"json(, "evict_after": "90s")json")),
            std::tuple(20, 90, true));
  EXPECT_EQ(quiet_and_after(Tumbling("a", R"json(, "evict_after": "0s")json")),
            std::tuple(20, 0, false));
  // rules.key_idle_evict 0s: not for idleness, but still under a key limit.
  config::RuleLimits never;
  never.key_idle_evict = Millis(0);
  EXPECT_EQ(quiet_and_after(Tumbling("a"), never), std::tuple(20, 0, true));
  // An absent rule's keys stay: their silence is what it watches.
  EXPECT_EQ(quiet_and_after(R"json({ "id": "a", "source": { "metric": "t" },
      "detector": { "method": "absent", "for": "5m" } })json"),
            std::tuple(0, 0, false));

  LoadResult bad = ParseRules(Tumbling("a", R"json(, "evict_after": "15s")json"), "r.json");
  EXPECT_EQ(Errors(bad),
            "r.json: /evict_after: must be 0s (never) or at least 20s, what the rule's keys need "
            "(window size or gap + lateness + idle_timeout, join, detector window)\n");
  bad = ParseRules(R"json({ "id": "a", "source": { "metric": "t" }, "evict_after": "1h",
      "detector": { "method": "absent", "for": "5m" } })json",
                   "r.json");
  EXPECT_EQ(Errors(bad),
            "r.json: /evict_after: an absent rule's keys are never evicted (their silence is "
            "what it watches)\n");
  bad = ParseRules(Tumbling("a", R"json(, "evict_after": 5)json"), "r.json");
  EXPECT_NE(Errors(bad).find("/evict_after: must be a duration"), std::string::npos) << Errors(bad);

  EXPECT_EQ(Load(Tumbling("a"), Budget(123))->max_keys_total, 123u);
}

TEST(KeyEviction, AKeySilentPastItsHorizonIsEvictedAndItsRowDeleted) {
  Engine engine("gw", Load(Tumbling("r", R"json(, "evict_after": "1m")json")));
  std::vector<Event> events;
  std::vector<StateChange> changes;
  Feed(engine, At("a", kT0), &events);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 10 * kSec), &events));  // a's window closes (idle)
  ASSERT_EQ(events.size(), 1u);
  Feed(engine, At("b", kT0 + 30 * kSec), &events);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 40 * kSec), &events));  // b's
  engine.TakeChanges(&changes);
  ASSERT_EQ(changes.size(), 2u);
  changes.clear();
  EXPECT_FALSE(engine.Advance(Millis(kT0 + 59 * kSec), &events));  // closed, not silent enough
  EXPECT_EQ(Keys(engine)["r"], 2u);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 60 * kSec), &events));
  EXPECT_EQ(Keys(engine)["r"], 1u);
  EXPECT_EQ(StatsOf(engine, "r").evicted, 1u);
  EXPECT_FALSE(engine.Advance(Millis(kT0 + 61 * kSec), &events));
  engine.TakeChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);  // a's row goes
  EXPECT_EQ(changes[0].key,
            "device\x1f"
            "a\x1e");
  EXPECT_FALSE(changes[0].bytes.has_value());
  // b in its turn; the engine then holds nothing, and a returning device starts afresh.
  EXPECT_FALSE(engine.Advance(Millis(kT0 + 89 * kSec), &events));
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 90 * kSec), &events));
  EXPECT_EQ(Keys(engine)["r"], 0u);
  events.clear();
  Feed(engine, At("a", kT0 + 100 * kSec, 7), &events);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 110 * kSec), &events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].values.at(0).second.number, 7);
}

TEST(KeyEviction, AnOpenWindowKeepsItsKey) {
  // No idle timeout: a silent key's window closes only by the watermark, so it waits.
  Engine engine("gw", Load(R"json([{ "id": "never-idle", "source": { "metric": "t" },
      "group_by": ["device"], "evict_after": "1m",
      "window": { "type": "tumbling", "size": "10s", "idle_timeout": "0s" },
      "aggregates": { "n": "count()" } },
    { "id": "partial-count", "source": { "metric": "t" }, "group_by": ["device"],
      "evict_after": "1m", "window": { "type": "count", "count": 5 },
      "aggregates": { "n": "count()" } }])json"));
  std::vector<Event> events;
  Feed(engine, At("a", kT0), &events);
  EXPECT_FALSE(engine.Advance(Millis(kT0 + 48 * 3'600 * kSec), &events));
  EXPECT_EQ(Keys(engine),
            (std::map<std::string, std::uint64_t>{{"never-idle", 1}, {"partial-count", 1}}));
  // Only the watermark (a later reading) closes it.
  Feed(engine, At("a", kT0 + 48 * 3'600 * kSec + 20 * kSec), &events);
  EXPECT_EQ(events.size(), 1u);
  // Under a key limit too, such a key stays.
  Engine limited("gw", Load(R"json({ "id": "never-idle", "source": { "metric": "t" },
      "group_by": ["device"], "max_keys": 1,
      "window": { "type": "tumbling", "size": "10s", "idle_timeout": "0s" },
      "aggregates": { "n": "count()" } })json"));
  Feed(limited, At("a", kT0), &events);
  Feed(limited, At("b", kT0), &events);
  EXPECT_FALSE(limited.Advance(Millis(kT0 + 48 * 3'600 * kSec), &events));
  EXPECT_EQ(StatsOf(limited, "never-idle").dropped_keys, 1u);
  EXPECT_EQ(StatsOf(limited, "never-idle").evicted, 0u);
}

TEST(KeyEviction, APendingOrFiringAlertKeepsItsKey) {
  const std::string alert = R"json(, "evict_after": "1m", "alert": { "when": "avg > 50" )json";
  Engine engine("gw", Load("[" + Tumbling("firing", alert + "}") + "," +
                           Tumbling("pending", alert + R"json(, "for": "1h" })json") + "," +
                           Tumbling("calm", R"json(, "evict_after": "1m",
                               "alert": { "when": "avg > 500" })json") +
                           "]"));
  std::vector<Event> events;
  Feed(engine, At("a", kT0, 100), &events);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 10 * kSec), &events));
  EXPECT_EQ(engine.Firing().size(), 1u);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 24 * 3'600 * kSec), &events));
  EXPECT_EQ(Keys(engine),
            (std::map<std::string, std::uint64_t>{{"firing", 1}, {"pending", 1}, {"calm", 0}}));
  EXPECT_EQ(engine.Firing().size(), 1u);
  // Nor under a key limit: a new device is refused rather than either of them evicted.
  Engine limited("gw", Load("[" + Tumbling("firing", alert + "}") + "," +
                                Tumbling("pending", alert + R"json(, "for": "1h" })json") + "]",
                            Budget(2)));
  Feed(limited, At("a", kT0, 100), &events);
  EXPECT_TRUE(limited.Advance(Millis(kT0 + 10 * kSec), &events));
  Feed(limited, At("b", kT0 + 3'600 * kSec), &events);
  EXPECT_FALSE(limited.Advance(Millis(kT0 + 3'600 * kSec), &events));
  EXPECT_EQ(StatsOf(limited, "firing").budget_dropped, 1u);
  EXPECT_EQ(Keys(limited), (std::map<std::string, std::uint64_t>{{"firing", 1}, {"pending", 1}}));
}

TEST(KeyEviction, AbsentKeysAreNeverEvicted) {
  Engine engine("gw", Load(R"json({ "id": "silent", "source": { "metric": "t" },
      "group_by": ["device"], "detector": { "method": "absent", "for": "1m" } })json",
                           Budget(1)));
  std::vector<Event> events;
  Feed(engine, At("a", kT0), &events);
  Feed(engine, At("b", kT0), &events);  // the budget refuses it
  EXPECT_FALSE(engine.Advance(Millis(kT0 + 30 * kSec), &events));
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 60 * kSec), &events));  // fires
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state, EventState::kFiring);
  engine.Advance(Millis(kT0 + 30LL * 24 * 3'600 * kSec), &events);
  const RuleStats s = StatsOf(engine, "silent");
  EXPECT_EQ(s.keys, 1u);
  EXPECT_EQ(s.evicted, 0u);
  EXPECT_EQ(s.budget_dropped, 1u);
}

TEST(KeyEviction, TheBudgetRefusesNewKeysAndCountsThem) {
  Engine engine("gw", Load("[" + Tumbling("x") + "," + Tumbling("y") + "]", Budget(3)));
  std::vector<Event> events;
  Feed(engine, At("a", kT0), &events);      // x/a, y/a
  Feed(engine, At("b", kT0), &events);      // x/b; y/b refused
  Feed(engine, At("b", kT0 + 1), &events);  // y/b refused again; x/b takes it
  Feed(engine, At("a", kT0 + 2), &events);  // existing keys go on
  const RuleStats x = StatsOf(engine, "x"), y = StatsOf(engine, "y");
  EXPECT_EQ(x.keys, 2u);
  EXPECT_EQ(x.evaluations, 4u);
  EXPECT_EQ(x.budget_dropped, 0u);
  EXPECT_EQ(y.keys, 1u);
  EXPECT_EQ(y.evaluations, 2u);
  EXPECT_EQ(y.budget_dropped, 2u);
  EXPECT_EQ(y.dropped_keys, 0u);  // max_keys is a different limit
}

TEST(KeyEviction, EvictionUnderTheBudgetAdmitsANewKey) {
  Engine engine("gw", Load(Tumbling("r"), Budget(2)));  // quiet: 20 s
  std::vector<Event> events;
  Feed(engine, At("a", kT0), &events);
  Feed(engine, At("b", kT0), &events);
  Feed(engine, At("c", kT0), &events);                            // refused
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 10 * kSec), &events));  // idle: windows close
  Feed(engine, At("c", kT0 + 10 * kSec), &events);                // refused: not quiet yet
  EXPECT_FALSE(engine.Advance(Millis(kT0 + 19 * kSec), &events));
  EXPECT_EQ(StatsOf(engine, "r").evicted, 0u);
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 20 * kSec), &events));
  RuleStats s = StatsOf(engine, "r");
  EXPECT_EQ(s.evicted, 1u);  // down to the low-water mark: one key of two
  EXPECT_EQ(s.keys, 1u);
  EXPECT_EQ(s.budget_dropped, 2u);
  // The oldest silent goes first; ties by key: a.
  std::vector<StateChange> changes;
  engine.TakeChanges(&changes);
  std::set<std::string> deleted;
  for (const auto& c : changes) {
    if (!c.bytes) deleted.insert(c.key);
  }
  EXPECT_EQ(deleted, std::set<std::string>{"device\x1f"
                                           "a\x1e"});
  Feed(engine, At("c", kT0 + 20 * kSec, 5), &events);
  EXPECT_EQ(StatsOf(engine, "r").keys, 2u);
  events.clear();
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 30 * kSec), &events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].key.at(0).second, "c");
}

TEST(KeyEviction, AKeyLimitTakesOneOffKeysFirstAndSparesWarmDetectors) {
  // Budget 4: an established device, then three one-off ids; a fifth device is refused.
  Engine engine("gw", Load(Tumbling("r"), Budget(4)));
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) Feed(engine, At("real", kT0 + i), &events);
  for (const char* d : {"f1", "f2", "f3"}) Feed(engine, At(d, kT0 + 5 * kSec), &events);
  Feed(engine, At("new", kT0 + 30 * kSec), &events);  // refused
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 30 * kSec), &events));
  std::vector<StateChange> changes;
  engine.TakeChanges(&changes);
  std::set<std::string> deleted;
  for (const auto& c : changes) {
    if (!c.bytes) deleted.insert(c.key);
  }
  // "real" is the oldest silent, but a one-off key goes first.
  EXPECT_EQ(deleted, std::set<std::string>{"device\x1f"
                                           "f1\x1e"});

  // A detector that has its baseline is never evicted early; a cold one is, even one past
  // its first reading once the limit is reached.
  Engine detector("gw", Load(R"json({ "id": "d", "source": { "metric": "t" },
      "group_by": ["device"], "detector": { "method": "ewma", "min_samples": 3 } })json",
                             Budget(2)));
  for (int i = 0; i < 5; ++i) Feed(detector, At("warm", kT0 + i * kSec, 20 + i % 2), &events);
  Feed(detector, At("cold", kT0 + 5 * kSec), &events);
  EXPECT_TRUE(detector.Advance(Millis(kT0 + 5 * kSec), &events));
  EXPECT_EQ(StatsOf(detector, "d").evicted, 1u);
  Feed(detector, At("x", kT0 + 6 * kSec), &events);
  Feed(detector, At("x", kT0 + 6500), &events);
  EXPECT_FALSE(detector.Advance(Millis(kT0 + 6900), &events));  // quiet (0) to the second
  EXPECT_TRUE(detector.Advance(Millis(kT0 + 7 * kSec), &events));
  EXPECT_EQ(StatsOf(detector, "d").evicted, 2u);
  for (int i = 0; i < 100; ++i) {
    Feed(detector, At("z" + std::to_string(i), kT0 + (20 + i) * kSec), &events);
    detector.Advance(Millis(kT0 + (20 + i) * kSec), &events);
  }
  const RuleStats s = StatsOf(detector, "d");
  EXPECT_EQ(s.budget_dropped, 0u);
  EXPECT_EQ(s.evicted, 102u);
  std::vector<StateChange> rows;
  detector.SnapshotAll(&rows);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key,
            "device\x1f"
            "warm\x1e");
}

TEST(KeyEviction, AMaxKeysRuleEvictsItsOwnIdleKeys) {
  Engine engine("gw", Load(Tumbling("r", R"json(, "max_keys": 2)json")));
  std::vector<Event> events;
  Feed(engine, At("a", kT0), &events);
  Feed(engine, At("b", kT0), &events);
  Feed(engine, At("c", kT0), &events);  // refused by max_keys
  EXPECT_TRUE(engine.Advance(Millis(kT0 + 20 * kSec), &events));
  Feed(engine, At("c", kT0 + 20 * kSec), &events);
  const RuleStats s = StatsOf(engine, "r");
  EXPECT_EQ(s.dropped_keys, 1u);
  EXPECT_EQ(s.evicted, 1u);
  EXPECT_EQ(s.keys, 2u);
  EXPECT_EQ(s.evaluations, 3u);
}

// A flood of one-off ids: the budget holds, memory is bounded, and a real device that comes
// after it has a key within the rule's quiet time (plus at most a second).
TEST(KeyEviction, AFloodOfOneOffIdsDoesNotLockOutARealDeviceForGood) {
  Engine engine("gw", Load(Tumbling("r"), Budget(1000)));
  std::vector<Event> events;
  std::int64_t now = kT0;
  for (int i = 0; i < 100'000; ++i) {
    if (i % 1000 == 0) {
      now += 100;  // 10 000 new ids a second for 10 s
      engine.Advance(Millis(now), &events);
    }
    Feed(engine, At("fake-" + std::to_string(i), now), &events);
  }
  RuleStats s = StatsOf(engine, "r");
  EXPECT_LE(s.keys, 1000u);
  EXPECT_GT(s.budget_dropped, 90'000u);
  EXPECT_EQ(s.evaluations + s.budget_dropped, 100'000u);  // each reading taken or counted
  // The real device keeps trying once a second; it is served within quiet (20 s) + 1 s.
  const std::int64_t flood_end = now;
  std::int64_t served = 0;
  for (int i = 1; i <= 60 && served == 0; ++i) {
    now = flood_end + i * kSec;
    engine.Advance(Millis(now), &events);
    const std::uint64_t before = StatsOf(engine, "r").evaluations;
    Feed(engine, At("real", now), &events);
    if (StatsOf(engine, "r").evaluations > before) served = now - flood_end;
  }
  EXPECT_GT(served, 0);
  EXPECT_LE(served, 21 * kSec);
}

// Two engines fed the same readings and Advance calls evict the same keys and end in the
// same state.
TEST(KeyEviction, EvictionIsDeterministic) {
  const std::string rules = "[" + Tumbling("r", R"json(, "evict_after": "30s")json") + "," +
                            Tumbling("s", R"json(, "max_keys": 40)json") + "]";
  Engine one("gw", Load(rules, Budget(60)));
  Engine two("gw", Load(rules, Budget(60)));
  std::vector<Event> events_one, events_two;
  std::vector<StateChange> changes_one, changes_two;
  std::uint32_t seed = 7;
  auto next = [&seed] {
    seed = seed * 1'664'525u + 1'013'904'223u;
    return seed >> 8;
  };
  bool changed_one = false, changed_two = false;
  for (int step = 0; step < 3000; ++step) {
    const std::int64_t now = kT0 + step * 250;
    const Reading r = At("d" + std::to_string(next() % 90), now, next() % 100);
    one.Process(r, Millis(now), &events_one);
    two.Process(r, Millis(now), &events_two);
    if (step % 3 == 0) {
      changed_one = one.Advance(Millis(now), &events_one);
      changed_two = two.Advance(Millis(now), &events_two);
      ASSERT_EQ(changed_one, changed_two) << step;
    }
    if (step % 100 == 0) {
      one.TakeChanges(&changes_one);
      two.TakeChanges(&changes_two);
    }
  }
  std::uint64_t evicted = 0, refused = 0;
  for (const auto& s : one.Stats()) {
    evicted += s.evicted;
    refused += s.budget_dropped + s.dropped_keys;
  }
  EXPECT_GT(evicted, 100u);
  EXPECT_GT(refused, 0u);
  ASSERT_EQ(events_one.size(), events_two.size());
  for (std::size_t i = 0; i < events_one.size(); ++i)
    EXPECT_EQ(ToJson(events_one[i]), ToJson(events_two[i]));
  ASSERT_EQ(changes_one.size(), changes_two.size());
  for (std::size_t i = 0; i < changes_one.size(); ++i) {
    EXPECT_EQ(changes_one[i].key, changes_two[i].key);
    EXPECT_EQ(changes_one[i].bytes, changes_two[i].bytes);
  }
  const auto a = one.Stats(), b = two.Stats();
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].keys, b[i].keys);
    EXPECT_EQ(a[i].evicted, b[i].evicted);
    EXPECT_EQ(a[i].budget_dropped, b[i].budget_dropped);
  }
}

// Keys evicted once their quiet time has passed change no output: an engine evicting as early
// as it may (devices coming and going, rules sharing a group_by and not) emits exactly the
// events of one that never evicts.
TEST(KeyEviction, EvictingQuietKeysChangesNoOutput) {
  auto rules = [](const std::string& after) {
    const std::string evict = R"json(, "evict_after": ")json" + after + "\"";
    return "[" + Tumbling("tumbling", evict) + "," +
           R"json({ "id": "hopping", "source": { "metric": "t" }, "group_by": ["device"],
             "window": { "type": "hopping", "size": "20s", "slide": "5s", "lateness": "2s" },
             "aggregates": { "max": "max(value)" }, "emit": ["aggregate"])json" +
           evict + "}," +
           R"json({ "id": "session", "source": { "metric": "t" }, "group_by": ["device", "site"],
             "window": { "type": "session", "gap": "4s" },
             "aggregates": { "n": "count()", "sum": "sum(value)" }, "emit": ["aggregate"])json" +
           evict + "}," +
           R"json({ "id": "alerting", "source": { "metric": "t" }, "group_by": ["device"],
             "window": { "type": "tumbling", "size": "5s" }, "aggregates": { "avg": "avg(value)" },
             "alert": { "when": "avg > 80", "clear_when": "avg < 50" })json" +
           evict + "}]";
  };
  Engine evicting("gw", Load(rules("1m")));  // every quiet time here is under a minute
  Engine keeping("gw", Load(rules("0s")));
  std::vector<Event> a, b;
  std::uint32_t seed = 11;
  auto next = [&seed] {
    seed = seed * 1'664'525u + 1'013'904'223u;
    return seed >> 8;
  };
  for (int step = 0; step < 20'000; ++step) {
    const std::int64_t now = kT0 + step * 100;
    // 200 devices, each active for a few minutes at a time, then silent for minutes.
    const int device = static_cast<int>(next() % 200);
    const bool active = ((now - kT0) / 60'000 + device) % 3 == 0;
    if (active) {
      Reading r = At("d" + std::to_string(device), now - static_cast<std::int64_t>(next() % 1500),
                     static_cast<double>(next() % 100));
      r.tags.push_back({"site", device % 2 ? "x" : "y"});
      evicting.Process(r, Millis(now), &a);
      keeping.Process(r, Millis(now), &b);
    }
    if (step % 5 == 0) {
      evicting.Advance(Millis(now), &a);
      keeping.Advance(Millis(now), &b);
    }
  }
  std::uint64_t evicted = 0;
  for (const auto& s : evicting.Stats()) evicted += s.evicted;
  EXPECT_GT(evicted, 500u);
  for (const auto& s : keeping.Stats()) EXPECT_EQ(s.evicted, 0u);
  ASSERT_EQ(a.size(), b.size());
  std::size_t alerts = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(ToJson(a[i]), ToJson(b[i])) << i;
    alerts += a[i].kind == EventKind::kAlert;
  }
  EXPECT_GT(alerts, 0u);
}

// Rules grouping alike share their keys' numbers (KeyGroup): one rule evicting a key that
// another keeps, then taking the key again, and new keys taking the numbers of keys that
// every rule let go, leave each rule's keys as they were.
TEST(KeyEviction, RulesOfOneGroupEvictingApartKeepTheirOwnState) {
  auto rules = [](const std::string& after) {
    return "[" + Tumbling("a", R"json(, "evict_after": ")json" + after + "\"") + "," +
           Tumbling("b", R"json(, "evict_after": "0s")json") + "," +
           R"json({ "id": "c", "source": { "metric": "t" }, "group_by": ["device"],
             "window": { "type": "tumbling", "size": "3s" }, "aggregates": { "max": "max(value)" },
             "emit": ["aggregate"], "evict_after": ")json" +
           after + "\"}]";
  };
  Engine evicting("gw", Load(rules("30s")));
  Engine keeping("gw", Load(rules("0s")));
  std::vector<Event> a, b;
  std::set<std::string> devices;
  for (int step = 0; step < 6'000; ++step) {
    const std::int64_t now = kT0 + step * 250;
    // Devices come and go in waves: 40 at a time, 120 over the run, each coming back.
    const int device = (step / 400) % 3 * 40 + step % 40;
    const Reading r = At("d" + std::to_string(device), now, static_cast<double>(step % 97));
    devices.insert(r.tags[0].second);
    evicting.Process(r, Millis(now), &a);
    keeping.Process(r, Millis(now), &b);
    if (step % 4 == 0) {
      evicting.Advance(Millis(now), &a);
      keeping.Advance(Millis(now), &b);
    }
  }
  EXPECT_GT(StatsOf(evicting, "a").evicted, 100u);
  EXPECT_GT(StatsOf(evicting, "c").evicted, 100u);
  EXPECT_EQ(StatsOf(evicting, "b").evicted, 0u);
  EXPECT_EQ(StatsOf(evicting, "b").keys, devices.size());
  EXPECT_LT(StatsOf(evicting, "a").keys, devices.size());
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(ToJson(a[i]), ToJson(b[i])) << i;
  // The checkpoint of what is left names each remaining key once, under its own rule.
  std::vector<StateChange> snapshot;
  evicting.SnapshotAll(&snapshot);
  std::map<std::string, std::set<std::string>> rows;
  for (const auto& c : snapshot) EXPECT_TRUE(rows[c.rule].insert(c.key).second) << c.key;
  for (const auto& s : evicting.Stats()) EXPECT_EQ(rows[s.rule].size(), s.keys) << s.rule;
}

// Keys evicted and new ones coming between checkpoints, in waves: a changed or evicted key
// keeps its name until the checkpoint takes it (its number in the group is not given to a
// new key before), so that the rows the checkpoints leave are exactly the engine's keys.
TEST(KeyEviction, TheCheckpointsRowsFollowKeysComingAndGoing) {
  const std::string text = "[" + Tumbling("a", R"json(, "evict_after": "20s")json") + "," +
                           Tumbling("b", R"json(, "evict_after": "45s")json") + "]";
  Engine engine("gw", Load(text));
  StateTable store;
  std::size_t deleted = 0;
  auto checkpoint = [&] { deleted += Checkpoint(engine, 5, &store); };
  std::vector<Event> events;
  for (int step = 0; step < 4'000; ++step) {
    const std::int64_t now = kT0 + step * 250;
    // 20 devices at a time, a new wave every 25 s, each device back every third wave.
    const int device = (step / 100) % 3 * 20 + step % 20;
    Feed(engine, At("d" + std::to_string(device), now), &events);
    if (step % 8 == 0) engine.Advance(Millis(now), &events);
    if (step % 300 == 299) checkpoint();
  }
  checkpoint();
  EXPECT_GT(StatsOf(engine, "a").evicted, 50u);
  EXPECT_GT(StatsOf(engine, "b").evicted, 20u);
  EXPECT_GT(deleted, 30u);
  std::vector<StateChange> snapshot;
  engine.SnapshotAll(&snapshot);
  StateTable expected;
  for (const auto& c : snapshot) expected[{c.rule, c.key}] = *c.bytes;
  EXPECT_EQ(store, expected);
}

// A checkpoint after evictions: the evicted keys' rows are deleted, the others restore into an
// engine that then goes on exactly as the original.
TEST(KeyEviction, CheckpointRoundTripAfterEvictions) {
  const std::string text = "[" + Tumbling("r", R"json(, "evict_after": "1m")json") + "," +
                           R"json({ "id": "z", "source": { "metric": "t" }, "group_by": ["device"],
                             "detector": { "method": "zscore", "window": 20, "min_samples": 5 },
                             "evict_after": "1m" })json" +
                           "]";
  auto rules = Load(text, Budget(100));
  Engine original("gw", rules);
  StateTable store;
  auto checkpoint = [&store](Engine& engine) { Checkpoint(engine, 7, &store); };
  std::vector<Event> events;
  for (int i = 0; i < 30; ++i) {
    for (const char* d : {"gone", "stays", "late"}) {
      if (std::string(d) == "late" && i < 20) continue;
      Feed(original, At(d, kT0 + i * kSec, 20 + i % 3), &events);
    }
    original.Advance(Millis(kT0 + i * kSec), &events);
  }
  checkpoint(original);
  EXPECT_EQ(store.size(), 6u);
  // "gone" is silent from 30 s; the others go on.
  for (int i = 30; i < 120; ++i) {
    for (const char* d : {"stays", "late"})
      Feed(original, At(d, kT0 + i * kSec, 20 + i % 3), &events);
    original.Advance(Millis(kT0 + i * kSec), &events);
  }
  EXPECT_EQ(StatsOf(original, "r").evicted, 1u);
  EXPECT_EQ(StatsOf(original, "z").evicted, 1u);
  checkpoint(original);
  std::set<std::string> keys;
  for (const auto& [rule_key, bytes] : store) keys.insert(rule_key.first + "/" + rule_key.second);
  EXPECT_EQ(keys, (std::set<std::string>{"r/device\x1f"
                                         "late\x1e",
                                         "r/device\x1f"
                                         "stays\x1e",
                                         "z/device\x1f"
                                         "late\x1e",
                                         "z/device\x1f"
                                         "stays\x1e"}));

  Engine restored("gw", rules);
  for (const auto& [rule_key, bytes] : store) {
    ASSERT_TRUE(restored.Restore(rule_key.first, rule_key.second, bytes));
  }
  EXPECT_EQ(Keys(restored), Keys(original));
  std::vector<Event> from_original, from_restored;
  for (int i = 120; i < 300; ++i) {
    const std::int64_t t = kT0 + i * kSec;
    // "gone" returns: a fresh key in both; "late" stops at 200 s and is evicted in both.
    for (const char* d : {"stays", "late", "gone"}) {
      if (std::string(d) == "late" && i >= 200) continue;
      if (std::string(d) == "gone" && i < 150) continue;
      const Reading r = At(d, t, i % 7 == 0 ? 90 : 20 + i % 3);
      original.Process(r, Millis(t), &from_original);
      restored.Process(r, Millis(t), &from_restored);
    }
    EXPECT_EQ(original.Advance(Millis(t), &from_original),
              restored.Advance(Millis(t), &from_restored));
  }
  ASSERT_EQ(from_original.size(), from_restored.size());
  for (std::size_t i = 0; i < from_original.size(); ++i) {
    EXPECT_EQ(ToJson(from_original[i]), ToJson(from_restored[i]));
  }
  EXPECT_EQ(StatsOf(restored, "r").evicted, 1u);  // "late"
  std::vector<StateChange> x, y;
  original.TakeChanges(&x);
  restored.TakeChanges(&y);
  std::map<std::string, std::optional<std::string>> xs, ys;
  for (const auto& c : x) xs[c.rule + "/" + c.key] = c.bytes;
  for (const auto& c : y) ys[c.rule + "/" + c.key] = c.bytes;
  for (const auto& [key, bytes] : ys) EXPECT_EQ(xs[key], bytes) << key;
}

// Crash recovery restores a checkpoint and replays the readings after it, with Advance only
// at the moments it returned true: what was evicted then must not depend on anything but the
// keys' state and `now` (not on Advance calls that changed nothing, nor on what the
// checkpoint does not hold).
TEST(KeyEviction, ARecoveredEngineEvictsAsTheOriginal) {
  const std::string text = "[" + Tumbling("r", R"json(, "evict_after": "30s")json") + "," +
                           Tumbling("s", R"json(, "max_keys": 25)json") + "," +
                           R"json({ "id": "d", "source": { "metric": "t" }, "group_by": ["device"],
                             "detector": { "method": "ewma", "min_samples": 4 } })json" +
                           "]";
  auto rules = Load(text, Budget(70));
  Engine original("gw", rules);
  std::uint32_t seed = 3;
  auto next = [&seed] {
    seed = seed * 1'664'525u + 1'013'904'223u;
    return seed >> 8;
  };
  auto reading = [&](int step) {
    // 120 devices, a few busy, most seldom: keys come and go under all three limits.
    const std::uint32_t pick = next() % 100;
    const int device = pick < 60 ? static_cast<int>(pick % 6) : static_cast<int>(6 + next() % 114);
    return At("d" + std::to_string(device), kT0 + step * 200, static_cast<double>(next() % 50));
  };
  std::vector<Event> ignored;
  for (int step = 0; step < 2000; ++step) {
    const Reading r = reading(step);
    original.Process(r, r.time, &ignored);
    if (step % 4 == 0) original.Advance(r.time, &ignored);
  }
  std::vector<StateChange> changes;
  original.TakeChanges(&changes);
  std::map<std::pair<std::string, std::string>, std::string> store;
  for (const auto& c : changes) {
    if (c.bytes) store[{c.rule, c.key}] = *c.bytes;
  }
  Engine recovered("gw", rules);
  for (const auto& [rule_key, bytes] : store) {
    ASSERT_TRUE(recovered.Restore(rule_key.first, rule_key.second, bytes));
  }
  std::vector<Event> a, b;
  int moments = 0;
  for (int step = 2000; step < 6000; ++step) {
    const Reading r = reading(step);
    original.Process(r, r.time, &a);
    recovered.Process(r, r.time, &b);
    if (step % 4 == 0 && original.Advance(r.time, &a)) {
      ++moments;
      recovered.Advance(r.time, &b);
    }
  }
  std::uint64_t evicted = 0, refused = 0;
  for (const auto& st : original.Stats()) {
    evicted += st.evicted;
    refused += st.budget_dropped + st.dropped_keys;
  }
  EXPECT_GT(evicted, 200u);
  EXPECT_GT(refused, 0u);
  EXPECT_LT(moments, 1000);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(ToJson(a[i]), ToJson(b[i])) << i;
  std::vector<StateChange> x, y;
  original.SnapshotAll(&x);
  recovered.SnapshotAll(&y);
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].rule + "/" + x[i].key, y[i].rule + "/" + y[i].key);
    EXPECT_EQ(x[i].bytes, y[i].bytes);
  }
}

// Restoring more keys than the budget keeps them all (nothing is lost at a restart); new keys
// then wait for room.
TEST(KeyEviction, ARestoreBeyondTheBudgetKeepsEveryKey) {
  auto wide = Load(Tumbling("r"));
  Engine before("gw", wide);
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) Feed(before, At("d" + std::to_string(i), kT0), &events);
  std::vector<StateChange> rows;
  before.SnapshotAll(&rows);
  Engine after("gw", Load(Tumbling("r"), Budget(3)));
  int restored = 0;
  for (const auto& row : rows) restored += after.Restore(row.rule, row.key, *row.bytes) ? 1 : 0;
  EXPECT_EQ(restored, 5);
  EXPECT_EQ(StatsOf(after, "r").keys, 5u);
  Feed(after, At("new", kT0 + 1), &events);
  EXPECT_EQ(StatsOf(after, "r").budget_dropped, 1u);
  // Once they are quiet, enough go for the new key (down to the low-water mark, 2 of 3).
  EXPECT_TRUE(after.Advance(Millis(kT0 + 20 * kSec), &events));
  EXPECT_EQ(StatsOf(after, "r").keys, 2u);
  Feed(after, At("new", kT0 + 20 * kSec), &events);
  EXPECT_EQ(StatsOf(after, "r").keys, 3u);
}

}  // namespace
}  // namespace vigil::rules
