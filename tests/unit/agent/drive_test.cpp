// Drive (agent/drive.h): the one way the live loop, recovery and replay drive the engine.
// An `absent` detector is the timer: it fires by processing time, with no reading.

#include "agent/drive.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "rules/rule_loader.h"

namespace vigil::agent {
namespace {

constexpr Millis kT0{1'800'000'000'000};

std::shared_ptr<const rules::RuleSet> SilentRule() {
  const std::string text = R"({"id": "silent", "source": {"metric": "t"}, "group_by": ["device"],
    "detector": {"method": "absent", "for": "30s"},
    "alert": {"summary": "{device} silent"}})";
  rules::LoadResult loaded = rules::ParseRules(text, "silent.json", config::RuleLimits{});
  EXPECT_TRUE(loaded.rules) << (loaded.diagnostics.empty() ? "" : loaded.diagnostics[0].ToString());
  return loaded.rules;
}

std::vector<rules::Reading> Reading(Millis at) { return {{"t", {{"device", "d1"}}, at, 1.0}}; }

TEST(Drive, TickReturnsTheMomentOnlyWhenATimerWasDue) {
  rules::Engine engine("a", SilentRule());
  Drive drive(&engine);
  std::vector<rules::Event> events;
  drive.Feed(Reading(kT0), kT0, &events);
  EXPECT_TRUE(events.empty());
  // Nothing is due before `for` has passed; at 31 s the alert fires, and that moment (after
  // journal message 7) is what recovery must fire again.
  std::optional<store::Tick> due;
  for (Millis t = kT0 + Millis(1000); t <= kT0 + Millis(31'000) && !due; t += Millis(1000)) {
    due = drive.Tick(t, 7, &events);
    if (!due) {
      EXPECT_TRUE(events.empty()) << "an event without a tick at " << (t - kT0).count();
    }
  }
  ASSERT_TRUE(due);
  EXPECT_EQ(due->after, 7);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state, rules::EventState::kFiring);
  EXPECT_EQ(events[0].time, due->now);
}

// A run with a timer between two messages, then recovery of the same messages with the tick
// that was committed: the tick fires between them again, its event dropped (committed then),
// and the second message gives the same event, with the same id, as the first time.
TEST(Drive, RecoveryFiresRecordedTicksBetweenTheMessagesTheyCameAfter) {
  auto rules = SilentRule();
  rules::Engine live_engine("a", rules);
  Drive live(&live_engine);
  std::vector<rules::Event> live_events;
  live.Feed(Reading(kT0), kT0, &live_events);  // journal message 1
  auto tick = live.Tick(kT0 + Millis(31'000), 1, &live_events);
  ASSERT_TRUE(tick);
  live.Feed(Reading(kT0 + Millis(41'000)), kT0 + Millis(41'000), &live_events);  // message 2
  ASSERT_EQ(live_events.size(), 2u);
  EXPECT_EQ(live_events[1].state, rules::EventState::kResolved);

  rules::Engine engine("a", rules);
  Drive recovery(&engine);
  recovery.Recorded({*tick});
  std::vector<rules::Event> events;
  EXPECT_EQ(recovery.CatchUp(1), 0u) << "the tick came after message 1";
  recovery.Feed(Reading(kT0), kT0, &events);
  EXPECT_EQ(recovery.CatchUp(2), 1u);
  EXPECT_EQ(recovery.recorded_left(), 0u);
  EXPECT_TRUE(events.empty()) << "a recorded tick's events were committed before the crash";
  recovery.Feed(Reading(kT0 + Millis(41'000)), kT0 + Millis(41'000), &events);
  ASSERT_EQ(events.size(), 1u) << "without the tick the alert never fired: nothing resolves";
  EXPECT_EQ(events[0].id, live_events[1].id);
  EXPECT_EQ(events[0].state, rules::EventState::kResolved);
  EXPECT_EQ(recovery.CatchUp(std::numeric_limits<std::int64_t>::max()), 0u);
}

TEST(Drive, ResetDrivesTheNewEngine) {
  auto rules = SilentRule();
  rules::Engine first("a", rules);
  rules::Engine second("a", rules);
  Drive drive(&first);
  std::vector<rules::Event> events;
  drive.Reset(&second);
  drive.Feed(Reading(kT0), kT0, &events);
  EXPECT_EQ(second.Stats().at(0).keys, 1u);
  EXPECT_EQ(first.Stats().at(0).keys, 0u);
}

}  // namespace
}  // namespace vigil::agent
