#include "agent/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace vigil::agent {
namespace {

using std::chrono::milliseconds;

TEST(BoundedQueue, PopBatchTakesAtMostMaxInOrder) {
  BoundedQueue<int> q(10);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.Push(i));
  std::vector<int> out;
  EXPECT_EQ(q.PopBatch(&out, 3, milliseconds(0)), 3u);
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(q.PopBatch(&out, 10, milliseconds(0)), 2u);
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(q.size(), 0u);
}

TEST(BoundedQueue, FrontReadsTheOldestItemWithoutTakingIt) {
  BoundedQueue<int> q(10);
  auto twice = [](const int& x) { return 2 * x; };
  EXPECT_EQ(q.Front(twice), std::nullopt);
  ASSERT_TRUE(q.Push(3));
  ASSERT_TRUE(q.Push(4));
  EXPECT_EQ(q.Front(twice), 6);
  EXPECT_EQ(q.size(), 2u);
  std::vector<int> out;
  q.PopBatch(&out, 1, milliseconds(0));
  EXPECT_EQ(q.Front(twice), 8);
}

TEST(BoundedQueue, PopBatchTimesOutWhenEmpty) {
  BoundedQueue<int> q(1);
  std::vector<int> out;
  EXPECT_EQ(q.PopBatch(&out, 1, milliseconds(5)), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(BoundedQueue, PushBlocksWhileFullAndResumesAfterPop) {
  BoundedQueue<int> q(2);
  ASSERT_TRUE(q.Push(1));
  ASSERT_TRUE(q.Push(2));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    q.Push(3);  // blocks: the queue is full
    pushed = true;
  });
  // The producer cannot finish while the queue stays full.
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(pushed.load());
  std::vector<int> out;
  EXPECT_EQ(q.PopBatch(&out, 1, milliseconds(0)), 1u);
  producer.join();
  EXPECT_TRUE(pushed.load());
  out.clear();
  q.PopBatch(&out, 10, milliseconds(0));
  EXPECT_EQ(out, (std::vector<int>{2, 3}));
}

TEST(BoundedQueue, CloseWakesBlockedProducerAndRejectsLaterPushes) {
  BoundedQueue<int> q(1);
  ASSERT_TRUE(q.Push(1));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = q.Push(2) ? 1 : 0; });
  q.Close();
  producer.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_FALSE(q.Push(3));
  EXPECT_TRUE(q.closed());
  std::vector<int> out;
  EXPECT_EQ(q.PopBatch(&out, 10, milliseconds(0)), 1u);  // what was queued still drains
  EXPECT_EQ(out, (std::vector<int>{1}));
}

TEST(BoundedQueue, ByteBudgetBlocksUntilEnoughBytesAreTaken) {
  // Items are strings counted by their length; the budget is 10 bytes.
  BoundedQueue<std::string> q(100, 10, [](const std::string& s) { return s.size(); });
  ASSERT_TRUE(q.Push("abcd"));
  ASSERT_TRUE(q.Push("efgh"));
  EXPECT_EQ(q.bytes(), 8u);
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    q.Push("ijk");  // 8 + 3 > 10: blocks
    pushed = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(pushed.load());
  std::vector<std::string> out;
  EXPECT_EQ(q.PopBatch(&out, 1, milliseconds(0)), 1u);
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_EQ(q.bytes(), 7u);
  q.PopBatch(&out, 10, milliseconds(0));
  EXPECT_EQ(out, (std::vector<std::string>{"abcd", "efgh", "ijk"}));
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(BoundedQueue, AnItemLargerThanTheBudgetStillGoesIntoAnEmptyQueue) {
  BoundedQueue<std::string> q(100, 4, [](const std::string& s) { return s.size(); });
  ASSERT_TRUE(q.Push("larger than four"));  // does not block: nothing else is queued
  EXPECT_EQ(q.size(), 1u);
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    q.Push("x");  // the budget is spent: waits for the large one to go
    pushed = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(pushed.load());
  std::vector<std::string> out;
  q.PopBatch(&out, 1, milliseconds(0));
  producer.join();
  EXPECT_TRUE(pushed.load());
}

}  // namespace
}  // namespace vigil::agent
