#include "agent/clock.h"

#include <gtest/gtest.h>

namespace vigil::agent {
namespace {

// A system clock and a monotonic one the test moves by hand.
struct FakeClocks {
  Millis system{1'795'341'600'000};
  Millis steady{5'000};
  void Pass(Millis d) {
    system += d;
    steady += d;
  }
  ProcessingClock Clock() {
    return ProcessingClock([this] { return std::pair{system, steady}; });
  }
};

TEST(ProcessingClock, FollowsTheSystemClock) {
  FakeClocks c;
  ProcessingClock clock = c.Clock();
  EXPECT_EQ(clock.Now(), c.system);
  c.Pass(Millis(1500));
  EXPECT_EQ(clock.Now(), c.system);
  EXPECT_EQ(clock.TakeSteps().forward, Millis(0));
  EXPECT_EQ(clock.TakeSteps().back, Millis(0));
}

TEST(ProcessingClock, AStepBackIsAbsorbedAndTimeGoesOnAtItsRate) {
  FakeClocks c;
  ProcessingClock clock = c.Clock();
  const Millis before = clock.Now();
  c.system -= Millis(3'600'000);  // NTP steps the clock back an hour
  EXPECT_EQ(clock.Now(), before) << "never back";
  c.Pass(Millis(2000));
  EXPECT_EQ(clock.Now(), before + Millis(2000)) << "goes on from where it was";
  c.Pass(Millis(500));
  EXPECT_EQ(clock.Now(), before + Millis(2500));
  const auto steps = clock.TakeSteps();
  EXPECT_EQ(steps.back, Millis(3'600'000));
  EXPECT_EQ(steps.forward, Millis(0));
  EXPECT_EQ(clock.TakeSteps().back, Millis(0)) << "taken";
}

TEST(ProcessingClock, AStepForwardIsFollowedAndTold) {
  FakeClocks c;
  ProcessingClock clock = c.Clock();
  clock.Now();
  c.Pass(Millis(100));
  c.system += Millis(7'200'000);
  EXPECT_EQ(clock.Now(), c.system);
  EXPECT_EQ(clock.TakeSteps().forward, Millis(7'200'000));
  // A slow round (the thread was not scheduled for a while) is no step: both clocks moved.
  c.Pass(Millis(5000));
  EXPECT_EQ(clock.Now(), c.system);
  EXPECT_EQ(clock.TakeSteps().forward, Millis(0));
}

TEST(ProcessingClock, AStepForwardAfterAStepBackStartsFromTheAbsorbedTime) {
  FakeClocks c;
  ProcessingClock clock = c.Clock();
  const Millis start = clock.Now();
  c.system -= Millis(60'000);
  clock.Now();
  c.system += Millis(120'000);  // corrected again, past where it was
  EXPECT_EQ(clock.Now(), start + Millis(60'000));
  const auto steps = clock.TakeSteps();
  EXPECT_EQ(steps.back, Millis(60'000));
  EXPECT_EQ(steps.forward, Millis(60'000));
}

}  // namespace
}  // namespace vigil::agent
