// Sliding windows keep each entry's time as a 32-bit offset from a base, and whole times once
// the entries span more than an offset reaches (about 24.8 days): the results are those of
// the readings' exact times either way, before and after a checkpoint.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rules/engine.h"

namespace vigil::rules {
namespace {

constexpr std::int64_t kT0 = 1'795'341'600'000;
constexpr std::int64_t kDay = 86'400'000;

std::shared_ptr<const RuleSet> SlidingRule(const std::string& size, const std::string& lateness) {
  LoadResult loaded = ParseRules(R"json([{ "id": "s", "source": { "metric": "t" },
      "group_by": ["device"], "window": { "type": "sliding", "size": ")json" +
                                     size + R"json(", "lateness": ")json" + lateness +
                                     R"json(" },
      "aggregates": { "n": "count()", "sum": "sum(value)", "first": "first(value)",
                      "rate": "rate(value)", "hi": "max(value)" },
      "emit": ["aggregate"] }])json",
                                 "r.json");
  EXPECT_TRUE(loaded.rules) << loaded.diagnostics.at(0).ToString();
  return loaded.rules;
}

Reading At(std::int64_t t, double v) { return Reading{"t", {{"device", "d"}}, Millis(t), v}; }

double ValueOf(const Event& e, const std::string& name) {
  for (const auto& [n, v] : e.values) {
    if (n == name) return v.number;
  }
  ADD_FAILURE() << "no " << name;
  return 0;
}

struct Expected {
  std::int64_t end;
  double n, sum, first, hi;
};

void ExpectWindows(const std::vector<Event>& events, const std::vector<Expected>& want) {
  ASSERT_EQ(events.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const Event& e = events[i];
    ASSERT_TRUE(e.window) << i;
    EXPECT_EQ(e.window->end.count(), want[i].end) << i;
    ASSERT_EQ(e.values.size(), 5u);
    EXPECT_EQ(ValueOf(e, "n"), want[i].n) << i;
    EXPECT_EQ(ValueOf(e, "sum"), want[i].sum) << i;
    EXPECT_EQ(ValueOf(e, "first"), want[i].first) << i;
    EXPECT_EQ(ValueOf(e, "hi"), want[i].hi) << i;
  }
}

// Readings weeks apart in a 60-day window: the entries span more than 2^31 ms, then the
// window empties and the offsets serve again; checkpointed and restored at every step.
TEST(SlidingWindowTimes, SpansBeyondOffsetsAreExact) {
  auto rules = SlidingRule("60d", "0s");
  const std::int64_t days[] = {0, 20, 40, 50, 100, 200, 200};
  const double values[] = {1, 2, 4, 8, 16, 32, 64};
  Engine engine("gw", rules);
  std::vector<Event> events;
  for (std::size_t i = 0; i < std::size(days); ++i) {
    // A second apart on the last day: the same time base after the window emptied.
    const std::int64_t t = kT0 + days[i] * kDay + (i == 6 ? 1000 : 0);
    engine.Process(At(t, values[i]), Millis(t), &events);
    std::vector<StateChange> state;
    engine.SnapshotAll(&state);
    ASSERT_EQ(state.size(), 1u);
    Engine restored("gw", rules);
    ASSERT_TRUE(restored.Restore(state[0].rule, state[0].key, *state[0].bytes));
    std::vector<StateChange> again;
    restored.SnapshotAll(&again);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(*again[0].bytes, *state[0].bytes) << i;  // the same state, saved alike
  }
  ExpectWindows(events, {
                            {kT0, 1, 1, 1, 1},
                            {kT0 + 20 * kDay, 2, 3, 1, 2},
                            {kT0 + 40 * kDay, 3, 7, 1, 4},
                            {kT0 + 50 * kDay, 4, 15, 1, 8},
                            {kT0 + 100 * kDay, 2, 24, 8, 16},  // (40 d, 100 d]
                            {kT0 + 200 * kDay, 1, 32, 32, 32},
                            {kT0 + 200 * kDay + 1000, 2, 96, 32, 64},
                        });
  EXPECT_EQ(ValueOf(events[6], "rate"), 32.0);  // rate: 32 units in 1 s
}

// Out of order within the lateness: a reading earlier than every entry held moves the time
// base down; one more than 2^31 ms later than the earliest makes the times whole.
TEST(SlidingWindowTimes, EarlierAndFarLaterReadingsInTheLateness) {
  auto rules = SlidingRule("40d", "40d");
  Engine engine("gw", rules);
  std::vector<Event> events;
  const std::int64_t times[] = {kT0 + 10'000, kT0 + 5'000, kT0 + 7'000, kT0 + 30 * kDay};
  const double values[] = {1, 2, 4, 8};
  for (std::size_t i = 0; i < std::size(times); ++i) {
    engine.Process(At(times[i], values[i]), Millis(times[i]), &events);
  }
  EXPECT_TRUE(events.empty());  // the watermark is 40 days behind
  std::vector<StateChange> state;
  engine.SnapshotAll(&state);
  ASSERT_EQ(state.size(), 1u);
  Engine restored("gw", rules);
  ASSERT_TRUE(restored.Restore(state[0].rule, state[0].key, *state[0].bytes));
  std::vector<Event> restored_events;
  engine.Finish(&events);
  restored.Finish(&restored_events);
  const std::vector<Expected> want = {
      {kT0 + 5'000, 1, 2, 2, 2},
      {kT0 + 7'000, 2, 6, 2, 4},
      {kT0 + 10'000, 3, 7, 2, 4},
      {kT0 + 30 * kDay, 4, 15, 2, 8},
  };
  ExpectWindows(events, want);
  ExpectWindows(restored_events, want);
}

}  // namespace
}  // namespace vigil::rules
