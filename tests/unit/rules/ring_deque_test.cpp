#include "rules/ring_deque.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>

namespace vigil::rules {
namespace {

// Random operations against std::deque: same contents after each, across wrap-around,
// growth and shrinking; elements that own memory (unique_ptr) are moved, never copied.
TEST(RingDequeTest, BehavesAsADeque) {
  std::mt19937 rng(7);
  RingDeque<std::unique_ptr<int>> ring;
  std::deque<int> want;
  for (int step = 0; step < 200000; ++step) {
    const auto op = rng() % 10;
    if (op < 4) {
      ring.push_back(std::make_unique<int>(step));
      want.push_back(step);
    } else if (op < 5) {
      // Sorted-position insert, as a sliding window places a late reading.
      const std::size_t at = want.empty() ? 0 : rng() % (want.size() + 1);
      ring.insert(ring.begin() + static_cast<std::ptrdiff_t>(at), std::make_unique<int>(-step));
      want.insert(want.begin() + static_cast<std::ptrdiff_t>(at), -step);
    } else if (op == 5 && step % 8 == 0) {  // room made ahead, as a detector's ring by count
      const std::size_t room = want.size() + rng() % 50;
      ring.reserve(room);
      ASSERT_GE(ring.capacity(), room);
    } else if (op < 8 && !want.empty()) {
      ring.pop_front();
      want.pop_front();
    } else if (!want.empty()) {
      ring.pop_back();
      want.pop_back();
    }
    ASSERT_EQ(ring.size(), want.size());
    if (!want.empty()) {
      ASSERT_EQ(*ring.front(), want.front());
      ASSERT_EQ(*ring.back(), want.back());
      const std::size_t i = rng() % want.size();
      ASSERT_EQ(*ring[i], want[i]);
    }
  }
  std::size_t i = 0;
  for (const auto& p : ring) EXPECT_EQ(*p, want[i++]);
  EXPECT_EQ(i, want.size());
}

// A ring whose final size is known is made once: no growth until it holds that many.
TEST(RingDequeTest, ReserveMakesRoomOnce) {
  RingDeque<double> ring;
  ring.reserve(61);
  EXPECT_EQ(ring.capacity(), 64u);
  for (int i = 0; i < 61; ++i) ring.push_back(i);
  EXPECT_EQ(ring.capacity(), 64u);
  ring.reserve(10);  // never less room than it has
  EXPECT_EQ(ring.capacity(), 64u);
  EXPECT_EQ(ring.front(), 0);
  EXPECT_EQ(ring.back(), 60);
}

TEST(RingDequeTest, IteratorsServeBinarySearch) {
  RingDeque<int> ring;
  for (int i = 0; i < 6; ++i) ring.push_back(i);
  for (int i = 0; i < 4; ++i) ring.pop_front();  // wraps the next pushes
  for (int i = 6; i < 12; ++i) ring.push_back(i * 10);
  // 4 5 60 70 80 90 100 110
  const RingDeque<int>& c = ring;
  auto it = std::upper_bound(c.begin(), c.end(), 75);
  EXPECT_EQ(it - c.begin(), 4);
  EXPECT_EQ(*it, 80);
  ring.insert(std::upper_bound(ring.begin(), ring.end(), 75), 75);
  EXPECT_TRUE(std::is_sorted(ring.begin(), ring.end()));
  EXPECT_EQ(ring.size(), 9u);
  EXPECT_EQ(ring[4], 75);
}

}  // namespace
}  // namespace vigil::rules
