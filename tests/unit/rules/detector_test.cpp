#include "rules/detector.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

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
                                           M::kRange));

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
