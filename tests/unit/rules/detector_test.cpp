#include "rules/detector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

namespace vigil::rules {
namespace {

using M = DetectorSpec::Method;

DetectorSpec Spec(M method) {
  DetectorSpec s;
  s.method = method;
  switch (method) {
    case M::kZscore:
      s.window_count = 100;
      s.min_samples = 30;
      break;
    case M::kMad:
      s.window_count = 100;
      s.threshold = 3.5;
      s.min_samples = 30;
      break;
    case M::kEwma:
      s.min_samples = 30;
      break;
    case M::kSpike:
      s.max_rate = 5;
      break;
    case M::kFlatline:
      s.for_duration = Millis(60'000);
      s.tolerance = 0.001;
      break;
    case M::kRange:
      s.min = -2;
      s.max = 2;
      break;
    case M::kAdaptive:
      s.min_samples = 200;
      s.threshold = 5;
      s.suppress_count = 10;
      break;
    case M::kAbsent:
      break;
  }
  return s;
}

// A clean stationary series: uniform noise in [-1, 1], one reading a second.
class Clean {
 public:
  explicit Clean(unsigned seed) : rng_(seed) {}
  double Next() { return dist_(rng_); }

 private:
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> dist_{-1.0, 1.0};
};

class DetectorMethods : public ::testing::TestWithParam<M> {};

TEST_P(DetectorMethods, CleanSeriesNeverFiresOver100000Readings) {
  DetectorSpec spec = Spec(GetParam());
  auto d = MakeDetector(spec);
  Clean clean(42);
  int fired = 0;
  for (int i = 0; i < 100'000; ++i) fired += d->Observe(clean.Next(), i * 1000LL).anomaly ? 1 : 0;
  EXPECT_EQ(fired, 0);
}

TEST_P(DetectorMethods, RestoredStateGivesIdenticalResults) {
  DetectorSpec spec = Spec(GetParam());
  auto a = MakeDetector(spec);
  Clean clean(7);
  for (int i = 0; i < 500; ++i) a->Observe(clean.Next(), i * 1000LL);
  auto b = MakeDetector(spec);
  std::string bytes;
  Packer packer(&bytes);
  a->Save(packer);
  b->Load(Packed::Parse(bytes));
  for (int i = 500; i < 1500; ++i) {
    double x = i % 97 == 0 ? 40.0 : clean.Next();
    Detection da = a->Observe(x, i * 1000LL), db = b->Observe(x, i * 1000LL);
    ASSERT_EQ(da.ready, db.ready) << i;
    ASSERT_EQ(da.anomaly, db.anomaly) << i;
    if (da.ready) {
      ASSERT_DOUBLE_EQ(da.score, db.score) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, DetectorMethods,
                         ::testing::Values(M::kZscore, M::kEwma, M::kMad, M::kSpike, M::kFlatline,
                                           M::kRange, M::kAdaptive));

TEST(Detectors, WarmUpNeverFires) {
  for (M m : {M::kZscore, M::kEwma, M::kMad}) {
    const DetectorSpec spec = Spec(m);
    auto d = MakeDetector(spec);
    for (int i = 0; i < 30; ++i) {
      Detection r = d->Observe(i % 2 == 0 ? 0 : 1000, i * 1000LL);  // wild values
      EXPECT_FALSE(r.ready) << i;
      EXPECT_FALSE(r.anomaly) << i;
    }
    EXPECT_TRUE(d->Observe(0, 31'000).ready);
  }
}

TEST(Detectors, LevelShiftCaughtAtTheFirstShiftedReading) {
  for (M m : {M::kZscore, M::kEwma, M::kMad}) {
    const DetectorSpec spec = Spec(m);
    auto d = MakeDetector(spec);
    Clean clean(3);
    for (int i = 0; i < 200; ++i) d->Observe(clean.Next(), i * 1000LL);
    Detection r = d->Observe(10 + clean.Next(), 200'000);
    EXPECT_TRUE(r.anomaly) << static_cast<int>(m);
    EXPECT_GT(r.score, 5) << static_cast<int>(m);
  }
}

TEST(Detectors, SpikeIsARateBetweenConsecutiveReadings) {
  const DetectorSpec spec = Spec(M::kSpike);
  auto d = MakeDetector(spec);
  EXPECT_FALSE(d->Observe(10, 0).ready) << "needs one previous reading";
  Detection calm = d->Observe(12, 1000);
  EXPECT_TRUE(calm.ready);
  EXPECT_DOUBLE_EQ(calm.score, 2);
  EXPECT_FALSE(calm.anomaly);
  Detection spike = d->Observe(18, 2000);
  EXPECT_DOUBLE_EQ(spike.score, 6);
  EXPECT_TRUE(spike.anomaly);
  EXPECT_DOUBLE_EQ(d->Observe(19, 2500).score, 2);  // per second: 1 unit in 0.5 s
}

TEST(Detectors, FlatlineFiresOnceTheRunLastsFor) {
  const DetectorSpec spec = Spec(M::kFlatline);
  auto d = MakeDetector(spec);
  d->Observe(5.0, 0);
  for (int s = 1; s < 60; ++s) EXPECT_FALSE(d->Observe(5.0005, s * 1000LL).anomaly) << s;
  Detection r = d->Observe(5.0, 60'000);
  EXPECT_TRUE(r.anomaly);
  EXPECT_DOUBLE_EQ(r.score, 60);
  EXPECT_FALSE(d->Observe(7, 61'000).anomaly) << "a change starts a new run";
}

TEST(Detectors, RangeScoresTheDistanceOutside) {
  const DetectorSpec spec = Spec(M::kRange);
  auto d = MakeDetector(spec);
  EXPECT_FALSE(d->Observe(1.5, 0).anomaly);
  Detection r = d->Observe(3.5, 1000);
  EXPECT_TRUE(r.anomaly);
  EXPECT_DOUBLE_EQ(r.score, 1.5);
  EXPECT_DOUBLE_EQ(d->Observe(-4, 2000).score, 2);
}

TEST(Detectors, ZscoreOverADurationWindowForgetsOldValues) {
  DetectorSpec spec = Spec(M::kZscore);
  spec.window_count = 0;
  spec.window_duration = Millis(10'000);
  spec.min_samples = 5;
  auto d = MakeDetector(spec);
  for (int i = 0; i < 10; ++i) d->Observe(100 + (i % 2), i * 1000LL);
  // 30 s later the old level is out of the window: a new level is the baseline.
  for (int i = 40; i < 50; ++i) d->Observe(5 + (i % 2), i * 1000LL);
  EXPECT_FALSE(d->Observe(5.5, 50'000).anomaly);
}

}  // namespace
}  // namespace vigil::rules

namespace vigil::rules {
namespace {

// Counts the episodes (runs of anomalous values) of `d` over `n` values of `f(i)`, one a
// second from `start`.
template <typename F>
int Episodes(Detector& d, int from, int to, F f, std::int64_t step_ms = 1000) {
  int episodes = 0;
  bool in = false;
  for (int i = from; i < to; ++i) {
    const bool a = d.Observe(f(i), i * step_ms).anomaly;
    if (a && !in) ++episodes;
    in = a;
  }
  return episodes;
}

TEST(Adaptive, WarmUpNeverFires) {
  const DetectorSpec spec = Spec(M::kAdaptive);
  auto d = MakeDetector(spec);
  for (int i = 0; i < 199; ++i) {
    Detection r = d->Observe(i % 2 == 0 ? 0 : 1000 * i, i * 1000LL);  // wild values
    EXPECT_FALSE(r.ready) << i;
    EXPECT_FALSE(r.anomaly) << i;
  }
  EXPECT_FALSE(d->Warm());
  d->Observe(0, 199'000);
  EXPECT_TRUE(d->Warm());
  EXPECT_TRUE(d->Observe(0, 200'000).ready);
}

TEST(Adaptive, LevelShiftFiresOnceThenTheLevelIsTheNewNormal) {
  const DetectorSpec spec = Spec(M::kAdaptive);
  auto d = MakeDetector(spec);
  Clean clean(11);
  EXPECT_EQ(Episodes(*d, 0, 2000, [&](int) { return clean.Next(); }), 0);
  // A lasting shift of 10 (five times the noise's full range): one episode, caught within its
  // first readings, that lasts until the long run has taken the new level in.
  int first = -1, last = -1;
  for (int i = 2000; i < 12'000; ++i) {
    const bool a = d->Observe(10 + clean.Next(), i * 1000LL).anomaly;
    if (a && first < 0) first = i;
    if (a) last = i;
    if (!a && first >= 0) break;  // the episode is over
  }
  EXPECT_GE(first, 2000);
  EXPECT_LE(first, 2002);
  EXPECT_GT(last, first);
  EXPECT_LT(last, 2000 + 5000);  // within the long run (5 000 readings)
  // The rest of the shifted series: no new episode (the level is the new normal).
  EXPECT_EQ(Episodes(*d, last + 1, 30'000, [&](int) { return 10 + clean.Next(); }), 0);
}

TEST(Adaptive, SlowSlideOutOfTheUsualRangeFiresOnce) {
  const DetectorSpec spec = Spec(M::kAdaptive);
  auto d = MakeDetector(spec);
  Clean clean(3);
  EXPECT_EQ(Episodes(*d, 0, 3000, [&](int) { return 20 + clean.Next(); }), 0);
  // A machine cooling down: 0.02 a reading, well inside the noise from one reading to the
  // next, for 500 readings (to 10 below), then holding there for a day's worth of readings.
  auto slide = [&](int i) { return 20 - 0.02 * std::min(i - 3000, 500) + clean.Next(); };
  int first = -1;
  for (int i = 3000; i < 4000 && first < 0; ++i) {
    if (d->Observe(slide(i), i * 1000LL).anomaly) first = i;
  }
  EXPECT_GT(first, 3000);
  EXPECT_LT(first, 3500);  // before the slide is over
  int quiet = 0;           // the episode goes on, unbroken, while the value stays out of its range
  for (int i = first + 1; i < 3800; ++i) quiet += d->Observe(slide(i), i * 1000LL).anomaly ? 0 : 1;
  EXPECT_EQ(quiet, 0);
}

TEST(Adaptive, DailyCycleIsLearnedAndALeapOutOfItsRangeIsCaught) {
  const DetectorSpec spec = Spec(M::kAdaptive);
  auto d = MakeDetector(spec);
  Clean clean(5);
  // Every 5 minutes, 288 a day: a daily swing of ±20 around 50 with noise in [-1, 1].
  auto daily = [&](int i) { return 50 + 20 * std::sin(2 * M_PI * i / 288.0) + clean.Next(); };
  constexpr std::int64_t kStep = 300'000;
  EXPECT_EQ(Episodes(*d, 0, 288 * 30, daily, kStep), 0);  // thirty days, no alert
  // Half an hour 15 above the cycle at its steepest stays inside the key's usual range (30 to
  // 70): not flagged, by design (rules/README.md, "adaptive").
  EXPECT_EQ(Episodes(
                *d, 288 * 30, 288 * 30 + 6, [&](int i) { return daily(i) + 15; }, kStep),
            0);
  // Half an hour 40 above the cycle at its peak leaves that range: caught, once.
  const int peak = 288 * 31 + 72;
  for (int i = 288 * 30 + 6; i < peak; ++i) d->Observe(daily(i), i * kStep);
  EXPECT_EQ(Episodes(
                *d, peak, peak + 6, [&](int i) { return daily(i) + 40; }, kStep),
            1);
  for (int i = peak + 6; i < peak + 30; ++i) d->Observe(daily(i), i * kStep);  // its end
  EXPECT_EQ(Episodes(*d, peak + 30, 288 * 41, daily, kStep), 0);
}

TEST(Adaptive, SuppressMutesANewEpisodeButNeverCutsOne) {
  DetectorSpec spec;
  spec.method = M::kRange;
  spec.max = 10;
  spec.suppress_count = 5;
  auto d = MakeDetector(spec);
  std::vector<bool> got;
  // 3 flagged (one episode, not cut), 1 normal, 1 flagged within 5 readings of the last
  // flagged one (muted), 5 normal, 1 flagged after the quiet time (a new episode).
  for (double x : {20, 20, 20, 0, 20, 0, 0, 0, 0, 0, 20}) {
    got.push_back(d->Observe(x, 0).anomaly);
  }
  EXPECT_EQ(got, (std::vector<bool>{true, true, true, false, false, false, false, false, false,
                                    false, true}));

  // The same by event time: quiet for 60 s after the episode's last flagged value.
  spec.suppress_count = 0;
  spec.suppress = Millis(60'000);
  auto t = MakeDetector(spec);
  EXPECT_TRUE(t->Observe(20, 0).anomaly);
  EXPECT_FALSE(t->Observe(0, 1'000).anomaly);
  EXPECT_FALSE(t->Observe(20, 59'999).anomaly);  // muted; and it does not extend the quiet
  EXPECT_FALSE(t->Observe(0, 60'000).anomaly);
  EXPECT_TRUE(t->Observe(20, 60'001).anomaly);
}

TEST(Adaptive, RestoredSuppressedStateGivesIdenticalResults) {
  const DetectorSpec spec = Spec(M::kAdaptive);
  auto a = MakeDetector(spec);
  Clean clean(9);
  for (int i = 0; i < 600; ++i) a->Observe(i == 500 ? 30 : clean.Next(), i * 1000LL);
  std::string bytes;
  Packer packer(&bytes);
  a->Save(packer);
  auto b = MakeDetector(spec);
  b->Load(Packed::Parse(bytes));
  for (int i = 600; i < 3000; ++i) {
    const double x = i % 250 == 0 ? 30 : clean.Next();
    Detection da = a->Observe(x, i * 1000LL), db = b->Observe(x, i * 1000LL);
    ASSERT_EQ(da.anomaly, db.anomaly) << i;
    ASSERT_EQ(da.score, db.score) << i;
  }
}

TEST(Adaptive, RestoresACheckpointOfTheFirstForm) {
  // The state as it was saved before the departure was added: 10 elements.
  const DetectorSpec spec = Spec(M::kAdaptive);
  std::string bytes;
  Packer p(&bytes);
  p.Array(5);  // the suppression around it: never active yet
  p.Array(10).Uint(1000).Uint(970).Double(0.1).Double(0.5).Double(1.0).Double(1.0);
  p.Double(0.04).Double(0).Bool(false);
  p.Array(3).Bool(true).Double(0.2).Double(0.001);
  p.Bool(false).Bool(false).Int(0).Uint(0);
  auto d = MakeDetector(spec);
  d->Load(Packed::Parse(bytes));
  EXPECT_TRUE(d->Warm());
  Clean clean(8);
  EXPECT_EQ(Episodes(*d, 1000, 5000, [&](int) { return clean.Next(); }), 0);
  EXPECT_EQ(Episodes(*d, 5000, 5010, [&](int) { return 30 + clean.Next(); }), 1);
}

TEST(SpreadFloor, QuantizedSensorScoresInStepsNotInBillions) {
  for (M m : {M::kZscore, M::kEwma, M::kMad, M::kAdaptive}) {
    const DetectorSpec spec = Spec(m);
    auto d = MakeDetector(spec);
    // An integer sensor that holds 65 and now and then reads 66.
    for (int i = 0; i < 1000; ++i) d->Observe(i % 50 == 0 ? 66 : 65, i * 1000LL);
    for (int i = 1000; i < 1100; ++i) d->Observe(65, i * 1000LL);  // a window with no spread
    Detection one = d->Observe(66, 1'100'000);
    EXPECT_FALSE(one.anomaly) << static_cast<int>(m);
    // One step scores 2 sigmas (half a step is the floor); adaptive scores its own scale.
    if (m != M::kAdaptive) {
      EXPECT_NEAR(one.score, m == M::kMad ? 0.6745 * 2 : 2.0, 0.01) << static_cast<int>(m);
    }
    Detection far = d->Observe(80, 1'101'000);
    EXPECT_TRUE(far.anomaly) << static_cast<int>(m);
    EXPECT_LE(far.score, 100) << static_cast<int>(m);
  }
}

TEST(SpreadFloor, StuckThenMovingScoresAgainstItsMagnitude) {
  for (M m : {M::kZscore, M::kEwma, M::kMad}) {
    const DetectorSpec spec = Spec(m);
    auto d = MakeDetector(spec);
    for (int i = 0; i < 100; ++i) d->Observe(20, i * 1000LL);  // never moved
    Detection r = d->Observe(20.5, 100'000);
    EXPECT_TRUE(r.anomaly) << static_cast<int>(m);
    EXPECT_LE(r.score, 2000) << static_cast<int>(m);  // 0.5 / (0.1% of 20.5), not 10⁹
  }
}

}  // namespace
}  // namespace vigil::rules
