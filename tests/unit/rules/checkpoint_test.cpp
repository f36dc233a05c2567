// Checkpoints hold any state the engine can reach, overflowed sums included (engine fuzzer
// finding: a checkpoint with an infinite running sum was written as null and did not load).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "rules/aggregate.h"
#include "rules/checkpoint.h"
#include "rules/engine.h"

namespace vigil::rules {
namespace {

constexpr std::int64_t kT0 = 1'795'341'600'000;

double RoundTrip(double x) {
  std::string bytes;
  Packer(&bytes).Double(x);
  return LoadDouble(Packed::Parse(bytes));
}

// What earlier versions wrote through JSON documents, read back.
double Earlier(const nlohmann::json& saved) {
  std::string bytes;
  nlohmann::json::to_msgpack(saved, bytes);
  return LoadDouble(Packed::Parse(bytes));
}

TEST(Checkpoint, NonFiniteDoublesRoundTrip) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(RoundTrip(inf), inf);
  EXPECT_EQ(RoundTrip(-inf), -inf);
  EXPECT_TRUE(std::isnan(RoundTrip(std::nan(""))));
  EXPECT_EQ(RoundTrip(1.5e308), 1.5e308);
  EXPECT_EQ(RoundTrip(0.1), 0.1);
  EXPECT_EQ(Earlier("inf"), inf);
  EXPECT_EQ(Earlier("-inf"), -inf);
  EXPECT_TRUE(std::isnan(Earlier("nan")));
  EXPECT_TRUE(std::isnan(Earlier(nlohmann::json())));  // before that: null
  EXPECT_EQ(Earlier(3), 3);
  EXPECT_EQ(Earlier(2.5), 2.5);  // float32 where it is exact
  EXPECT_THROW(Earlier("lots"), nlohmann::json::exception);
}

// Each aggregate saves the fields of its accumulator it reads, and no others; what earlier
// versions saved (every field) still loads to the same result; a field it reads must be there.
TEST(Checkpoint, AggregatesSaveWhatTheyRead) {
  using Fn = AggregateSpec::Fn;
  const std::pair<Fn, std::set<std::string>> cases[] = {
      {Fn::kCount, {"n"}},
      {Fn::kSum, {"n", "s"}},
      {Fn::kAvg, {"n", "mean"}},
      {Fn::kStddev, {"n", "mean", "m2"}},
      {Fn::kMin, {"n", "min"}},
      {Fn::kMax, {"n", "max"}},
      {Fn::kFirst, {"n", "first"}},
      {Fn::kLast, {"n", "last"}},
      {Fn::kDelta, {"n", "first", "last"}},
      {Fn::kRate, {"n", "first", "last"}},
      {Fn::kPercentile, {"n", "q"}},
  };
  const double xs[] = {4.5, -2, 7.25, 7.25, 0.5};
  for (const auto& [fn, keys] : cases) {
    AggregateSpec spec;
    spec.fn = fn;
    spec.percentile = 90;
    Acc acc;
    for (int i = 0; i < 5; ++i) acc.Add(spec, xs[i], nullptr, kT0 + (i % 3) * 1000, i);
    std::string bytes;
    Packer packer(&bytes);
    acc.Save(spec, packer);
    const auto saved = nlohmann::json::from_msgpack(bytes);
    std::set<std::string> names;
    for (const auto& [name, value] : saved.items()) names.insert(name);
    EXPECT_EQ(names, keys) << saved.dump();
    const Value want = acc.Result(spec);
    EXPECT_EQ(Acc::Load(spec, Packed::Parse(bytes)).Result(spec).number, want.number);

    // Every field, as earlier versions wrote them.
    auto full = nlohmann::json{{"n", 5},
                               {"s", 17.5},
                               {"mean", 3.5},
                               {"m2", 62.875},
                               {"min", -2},
                               {"max", 7.25},
                               {"first", {kT0, 0, 4.5}},
                               {"last", {kT0 + 2000, 2, 7.25}}};
    for (const auto& [name, value] : saved.items()) full[name] = value;
    std::string earlier;
    nlohmann::json::to_msgpack(full, earlier);
    EXPECT_EQ(Acc::Load(spec, Packed::Parse(earlier)).Result(spec).number, want.number)
        << full.dump();

    for (const auto& key : keys) {
      auto lacking = saved;
      lacking.erase(key);
      std::string cut;
      nlohmann::json::to_msgpack(lacking, cut);
      EXPECT_THROW(Acc::Load(spec, Packed::Parse(cut)), nlohmann::json::out_of_range) << key;
    }

    // The 16-byte accumulator, for the functions it serves: the same result and the same
    // bytes, and each restores what the other saved.
    const bool small =
        fn == Fn::kCount || fn == Fn::kSum || fn == Fn::kAvg || fn == Fn::kMin || fn == Fn::kMax;
    EXPECT_EQ(SmallAcc::Fits(spec), small) << bytes;
    if (!small) continue;
    SmallAcc lean;
    for (int i = 0; i < 5; ++i) lean.Add(spec, xs[i], nullptr, kT0 + (i % 3) * 1000, i);
    EXPECT_EQ(lean.Result(spec).number, want.number);
    std::string lean_bytes;
    Packer lean_packer(&lean_bytes);
    lean.Save(spec, lean_packer);
    EXPECT_EQ(lean_bytes, bytes);
    EXPECT_EQ(SmallAcc::Load(spec, Packed::Parse(earlier)).Result(spec).number, want.number);
    SmallAcc merged = SmallAcc::Load(spec, Packed::Parse(bytes));
    merged.Merge(spec, lean);
    Acc twice = acc;
    twice.Merge(spec, acc);
    EXPECT_EQ(merged.Result(spec).number, twice.Result(spec).number);
  }
  AggregateSpec distinct;
  distinct.fn = Fn::kDistinct;
  EXPECT_FALSE(SmallAcc::Fits(distinct));
}

class OverflowingState : public ::testing::TestWithParam<const char*> {};

TEST_P(OverflowingState, RestoresAndGoesOnExactly) {
  LoadResult loaded = ParseRules(GetParam(), "r.json");
  ASSERT_TRUE(loaded.rules) << loaded.diagnostics.at(0).ToString();
  Engine a("gw", loaded.rules);
  std::vector<Event> ea, eb;
  auto reading = [](int i, double v) {
    return Reading{"t", {{"device", "d"}, {"metric", "t"}}, Millis(kT0 + i * 1000), v};
  };
  const double values[] = {1.7e308, 1.7e308, -1.7e308, 0, 1e300, -1e300, 5, 7};
  for (int i = 0; i < 8; ++i) a.Process(reading(i, values[i]), Millis(kT0 + i * 1000), &ea);
  std::vector<StateChange> state;
  a.SnapshotAll(&state);
  ASSERT_FALSE(state.empty());
  Engine b("gw", loaded.rules);
  for (const auto& s : state) ASSERT_TRUE(b.Restore(s.rule, s.key, *s.bytes)) << *s.bytes;
  ea.clear();
  for (int i = 8; i < 140; ++i) {
    const double v = i % 3 == 0 ? 1.7e308 : i;
    a.Process(reading(i, v), Millis(kT0 + i * 1000), &ea);
    b.Process(reading(i, v), Millis(kT0 + i * 1000), &eb);
  }
  a.Finish(&ea);
  b.Finish(&eb);
  ASSERT_EQ(ea.size(), eb.size());
  for (std::size_t i = 0; i < ea.size(); ++i) EXPECT_EQ(ToJson(ea[i]), ToJson(eb[i]));
}

INSTANTIATE_TEST_SUITE_P(
    Rules, OverflowingState,
    ::testing::Values(
        R"json({ "id": "w", "source": { "metric": "t" }, "window": { "type": "tumbling", "size": "1m" },
                 "aggregates": { "s": "sum(value)", "a": "avg(value)", "sd": "stddev(value)" },
                 "emit": ["aggregate"] })json",
        R"json({ "id": "s", "source": { "metric": "t" }, "window": { "type": "sliding", "size": "10s" },
                 "aggregates": { "s": "sum(value)", "sd": "stddev(value)" }, "emit": ["aggregate"] })json",
        R"json({ "id": "z", "source": { "metric": "t" },
                 "detector": { "method": "zscore", "window": 5, "min_samples": 2 } })json",
        R"json({ "id": "e", "source": { "metric": "t" },
                 "detector": { "method": "ewma", "min_samples": 2 } })json",
        // A detector over an aggregate that overflows to inf: not scored, not added.
        R"json({ "id": "d", "source": { "metric": "t" }, "window": { "type": "count", "count": 2 },
                 "aggregates": { "s": "sum(value)" },
                 "detector": { "method": "mad", "window": 5, "min_samples": 2, "input": "s" } })json"));

// A sliding window keeps no entry orders in memory: they are consecutive up to next_order, as
// every version saved them. A checkpoint whose orders are not is refused, not misread.
TEST(Checkpoint, SlidingWindowOrdersMustBeConsecutive) {
  LoadResult loaded = ParseRules(R"json([{ "id": "s", "source": { "metric": "t" },
      "group_by": ["device"], "window": { "type": "sliding", "size": "10s" },
      "aggregates": { "lo": "min(value)", "hi": "max(value)" } }])json",
                                 "r.json");
  ASSERT_TRUE(loaded.rules) << loaded.diagnostics.at(0).ToString();
  Engine a("gw", loaded.rules);
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) {
    a.Process(Reading{"t", {{"device", "d"}, {"metric", "t"}}, Millis(kT0 + i * 1000), i * 1.5},
              Millis(kT0 + i * 1000), &events);
  }
  std::vector<StateChange> state;
  a.SnapshotAll(&state);
  ASSERT_EQ(state.size(), 1u);
  auto saved = nlohmann::json::from_msgpack(*state[0].bytes);
  auto& entries = saved["windows"]["entries"];
  ASSERT_EQ(entries.size(), 5u);
  const std::uint64_t next = saved["windows"]["next_order"].get<std::uint64_t>();
  for (std::size_t k = 0; k < entries.size(); ++k) {
    EXPECT_EQ(entries[k][2].get<std::uint64_t>(), next - 5 + k);  // all five in the window
  }
  Engine b("gw", loaded.rules);
  EXPECT_TRUE(b.Restore(state[0].rule, state[0].key, *state[0].bytes));
  entries[3][2] = next + 7;
  std::string bad;
  nlohmann::json::to_msgpack(saved, bad);
  Engine c("gw", loaded.rules);
  EXPECT_FALSE(c.Restore(state[0].rule, state[0].key, bad));
}

// A tumbling or hopping key's open windows are saved by start, increasing; a checkpoint whose
// windows are out of order, repeat a start or start at the smallest int64 (which no reading's
// window does: the window object's "none open") is refused, not misread.
TEST(Checkpoint, OpenWindowsMustBeInOrder) {
  LoadResult loaded = ParseRules(R"json([{ "id": "h", "source": { "metric": "t" },
      "group_by": ["device"], "window": { "type": "hopping", "size": "10s", "slide": "5s" },
      "aggregates": { "n": "count()" } }])json",
                                 "r.json");
  ASSERT_TRUE(loaded.rules) << loaded.diagnostics.at(0).ToString();
  Engine a("gw", loaded.rules);
  std::vector<Event> events;
  a.Process(Reading{"t", {{"device", "d"}, {"metric", "t"}}, Millis(kT0 + 7000), 1.0},
            Millis(kT0 + 7000), &events);
  std::vector<StateChange> state;
  a.SnapshotAll(&state);
  ASSERT_EQ(state.size(), 1u);
  auto saved = nlohmann::json::from_msgpack(*state[0].bytes);
  auto& open = saved["windows"]["open"];
  ASSERT_EQ(open.size(), 2u);  // [kT0, kT0 + 10 s) and [kT0 + 5 s, kT0 + 15 s)
  Engine b("gw", loaded.rules);
  EXPECT_TRUE(b.Restore(state[0].rule, state[0].key, *state[0].bytes));
  for (const int fault : {0, 1, 2}) {
    auto bad_state = saved;
    auto& windows = bad_state["windows"]["open"];
    if (fault == 0) {
      std::swap(windows[0], windows[1]);
    } else if (fault == 1) {
      windows[1][0] = windows[0][0];
    } else {
      windows[0][0] = std::numeric_limits<std::int64_t>::min();
    }
    std::string bad;
    nlohmann::json::to_msgpack(bad_state, bad);
    Engine c("gw", loaded.rules);
    EXPECT_FALSE(c.Restore(state[0].rule, state[0].key, bad)) << fault;
  }
}

// Earlier versions kept the monotonic queues of a sliding window for every aggregate, and the
// times of a detector's window by count; checkpoints holding them restore, and the restored
// engine goes on exactly as the one that wrote them.
TEST(Checkpoint, StateWrittenWithQueuesAndTimesNoLongerKeptRestores) {
  LoadResult loaded = ParseRules(R"json([
      { "id": "one", "source": { "metric": "t" }, "group_by": ["device"],
        "window": { "type": "sliding", "size": "10s" }, "aggregates": { "a": "avg(value)" },
        "emit": ["aggregate"] },
      { "id": "many", "source": { "metric": "t" }, "group_by": ["device"],
        "window": { "type": "sliding", "size": "10s" },
        "aggregates": { "a": "avg(value)", "hi": "max(value)", "f": "first(value)",
                        "r": "rate(value)", "p": "percentile(value, 50)" },
        "emit": ["aggregate"] },
      { "id": "z", "source": { "metric": "t" }, "group_by": ["device"],
        "detector": { "method": "zscore", "window": 5, "min_samples": 2, "threshold": 1 } }
    ])json",
                                 "r.json");
  ASSERT_TRUE(loaded.rules) << loaded.diagnostics.at(0).ToString();
  auto reading = [](int i) {
    return Reading{"t",
                   {{"device", "d"}, {"metric", "t"}},
                   Millis(kT0 + i * 700),
                   static_cast<double>((i * 37) % 11)};
  };
  Engine a("gw", loaded.rules);
  std::vector<Event> ea, eb;
  for (int i = 0; i < 30; ++i) a.Process(reading(i), Millis(kT0 + i * 700), &ea);
  std::vector<StateChange> state;
  a.SnapshotAll(&state);
  ASSERT_EQ(state.size(), 3u);
  Engine b("gw", loaded.rules);
  int edited = 0;
  for (const auto& s : state) {
    auto saved = nlohmann::json::from_msgpack(*s.bytes);
    if (saved["windows"].is_object()) {
      // What the max queue holds, as every aggregate's min and max queue.
      auto& aggs = saved["windows"]["aggs"];
      nlohmann::json queue = nlohmann::json::array();
      for (const auto& agg : aggs) {
        if (!agg["max"].empty()) queue = agg["max"];  // max(value) of "many"
      }
      if (s.rule == "one") queue.push_back({saved["windows"]["next_order"].get<int>() - 1, 3.0});
      ASSERT_FALSE(queue.empty());
      for (auto& agg : aggs) agg["min"] = agg["max"] = queue;
      ++edited;
    }
    if (saved["detector"].is_object()) {
      auto& values = saved["detector"]["values"];
      ASSERT_EQ(values.size(), 5u);
      for (std::size_t k = 0; k < values.size(); ++k) {
        EXPECT_EQ(values[k][0], 0);  // a window by count keeps no times
        values[k][0] = kT0 + static_cast<std::int64_t>(k) * 700;
      }
      ++edited;
    }
    std::string bytes;
    nlohmann::json::to_msgpack(saved, bytes);
    ASSERT_TRUE(b.Restore(s.rule, s.key, bytes)) << s.rule;
  }
  EXPECT_EQ(edited, 3);
  ea.clear();
  for (int i = 30; i < 90; ++i) {
    a.Process(reading(i), Millis(kT0 + i * 700), &ea);
    b.Process(reading(i), Millis(kT0 + i * 700), &eb);
  }
  a.Finish(&ea);
  b.Finish(&eb);
  ASSERT_GT(ea.size(), 100u);
  ASSERT_EQ(ea.size(), eb.size());
  for (std::size_t i = 0; i < ea.size(); ++i) EXPECT_EQ(ToJson(ea[i]), ToJson(eb[i]));
}

}  // namespace
}  // namespace vigil::rules
