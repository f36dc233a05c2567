// The dispatcher's timing by a clock moved by hand (tests/unit/fake_clock.h): how long a
// partial batch waits, the backoff between retries and Retry-After, with a real SQLite outbox
// and a sink that answers as the test scripts it. Time stands still until the test moves it,
// so every deadline the dispatcher waits for is seen exactly (FakeClock::waiting_until).

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <mutex>

#include "tests/unit/fake_clock.h"
#include "tests/unit/test_support.h"
#include "uplink/dispatcher.h"

namespace vigil::uplink {
namespace {

// Answers each batch with the next scripted verdict (delivered once the script is done).
class ScriptedSink final : public Sink {
 public:
  explicit ScriptedSink(std::deque<Verdict> script) : script_(std::move(script)) {}
  Verdict Send(const std::vector<store::OutboxRow>& batch) override {
    std::lock_guard lock(mu_);
    sent_rows_ += static_cast<int>(batch.size());
    ++sends_;
    if (script_.empty()) return {Verdict::Outcome::kDelivered, std::nullopt, ""};
    Verdict v = script_.front();
    script_.pop_front();
    return v;
  }
  int sends() const {
    std::lock_guard lock(mu_);
    return sends_;
  }
  int sent_rows() const {
    std::lock_guard lock(mu_);
    return sent_rows_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<Verdict> script_;
  int sends_ = 0;
  int sent_rows_ = 0;
};

Verdict Retry(std::optional<Millis> after = std::nullopt) {
  return {Verdict::Outcome::kRetry, after, "503 from the test"};
}

class DispatcherClock : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_dispatcher_clock");
    auto s = store::Store::Open((dir_ / "vigil.db").string(), config::StoreConfig{});
    ASSERT_TRUE(s.ok()) << s.error();
    store_ = std::move(s.value());
    uplink_.name = "cloud";
    uplink_.type = config::HttpUplink{};
    uplink_.batch_max_events = 10;
    uplink_.batch_max_delay = Millis(0);
    uplink_.retry_initial = Millis(1000);
    uplink_.retry_max = Millis(6000);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `n` events for the uplink, committed at processing time `at`.
  void Commit(int n, Millis at) {
    store::CommitBatch batch;
    for (int i = 0; i < n; ++i) {
      std::string id = "e" + std::to_string(i);
      batch.events.push_back(
          {id, rules::EventKind::kAlert, "r", "{\"id\":\"" + id + "\"}", at, {"cloud"}});
    }
    ASSERT_TRUE(store_->Commit(batch, at).ok());
  }

  // Waits (bounded, real time) until the dispatcher waits for a deadline after now; returns
  // how far ahead it is.
  Millis NextWait() {
    EXPECT_TRUE(WaitFor([&] { return clock_.waiting_until() > clock_.Now(); }))
        << "the dispatcher waits for nothing ahead";
    return clock_.waiting_until() - clock_.Now();
  }

  FakeClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  config::UplinkConfig uplink_;
};

TEST_F(DispatcherClock, PartialBatchWaitsBatchMaxDelayFromItsOldestRow) {
  uplink_.batch_max_delay = Millis(5000);
  const Millis t0 = clock_.Now();
  Commit(2, t0 - Millis(1000));  // 1 s old when the dispatcher starts
  auto sink = std::make_unique<ScriptedSink>(std::deque<Verdict>{});
  ScriptedSink* s = sink.get();
  Dispatcher d(uplink_, store_.get(), std::move(sink), clock_);
  d.Start();
  EXPECT_EQ(NextWait(), Millis(4000)) << "batch_max_delay after the oldest row was committed";
  EXPECT_EQ(s->sends(), 0) << "nothing is sent while the clock stands still";
  clock_.Set(t0 + Millis(3999));
  EXPECT_EQ(NextWait(), Millis(1)) << "still waiting one ms before the deadline";
  EXPECT_EQ(s->sends(), 0);
  clock_.Set(t0 + Millis(4000));
  ASSERT_TRUE(WaitFor([&] { return d.Stats().delivered == 2; }));
  EXPECT_EQ(s->sends(), 1) << "one batch of both rows";
  EXPECT_EQ(s->sent_rows(), 2);
}

TEST_F(DispatcherClock, FullBatchGoesAtOnce) {
  uplink_.batch_max_delay = Millis(60'000);
  uplink_.batch_max_events = 3;
  Commit(3, clock_.Now());
  auto sink = std::make_unique<ScriptedSink>(std::deque<Verdict>{});
  Dispatcher d(uplink_, store_.get(), std::move(sink), clock_);
  d.Start();
  ASSERT_TRUE(WaitFor([&] { return d.Stats().delivered == 3; }))
      << "a full batch does not wait for batch_max_delay";
}

TEST_F(DispatcherClock, BackoffDoublesWithJitterUpToRetryMaxAndResetsAfterDelivery) {
  Commit(1, clock_.Now());
  auto sink = std::make_unique<ScriptedSink>(
      std::deque<Verdict>{Retry(), Retry(), Retry(), Retry(), Retry()});
  ScriptedSink* s = sink.get();
  Dispatcher d(uplink_, store_.get(), std::move(sink), clock_);
  d.Start();
  for (int k = 1; k <= 5; ++k) {
    ASSERT_TRUE(WaitFor([&] { return s->sends() == k; })) << "attempt " << k;
    const Millis delay = NextWait();
    // Full jitter between retry_initial and min(retry_max, retry_initial · 2^(k-1)).
    const Millis cap = std::min(uplink_.retry_max, uplink_.retry_initial * (1 << (k - 1)));
    EXPECT_GE(delay, uplink_.retry_initial) << "attempt " << k;
    EXPECT_LE(delay, cap) << "attempt " << k;
    EXPECT_EQ(s->sends(), k) << "no attempt before the backoff ends";
    EXPECT_EQ(d.Stats().retried, static_cast<std::uint64_t>(k));
    clock_.Set(clock_.waiting_until());
  }
  ASSERT_TRUE(WaitFor([&] { return d.Stats().delivered == 1; }));
  EXPECT_EQ(s->sends(), 6);
  EXPECT_EQ(d.Stats().last_error, "503 from the test");
}

TEST_F(DispatcherClock, FailuresCountAgainFromTheStartAfterADelivery) {
  uplink_.retry_initial = Millis(1500);  // told apart from the idle poll's 1 s
  uplink_.retry_max = Millis(600'000);
  Commit(1, clock_.Now());
  const Verdict delivered{Verdict::Outcome::kDelivered, std::nullopt, ""};
  auto sink = std::make_unique<ScriptedSink>(
      std::deque<Verdict>{Retry(), Retry(), Retry(), delivered, Retry()});
  ScriptedSink* s = sink.get();
  Dispatcher d(uplink_, store_.get(), std::move(sink), clock_);
  d.Start();
  for (int k = 1; k <= 3; ++k) {
    ASSERT_TRUE(WaitFor([&] { return s->sends() == k; }));
    NextWait();
    clock_.Set(clock_.waiting_until());
  }
  ASSERT_TRUE(WaitFor([&] { return d.Stats().delivered == 1; }));
  // A failure after the delivery backs off as the first one did: retry_initial exactly (the
  // jitter's range is [retry_initial, retry_initial]), not up to 16 × retry_initial.
  Commit(1, clock_.Now());
  d.Notify();
  ASSERT_TRUE(WaitFor([&] { return s->sends() == 5; }));
  ASSERT_TRUE(WaitFor([&] { return clock_.waiting_until() - clock_.Now() != Millis(1000); }));
  EXPECT_EQ(clock_.waiting_until() - clock_.Now(), uplink_.retry_initial);
  EXPECT_EQ(d.Stats().retried, 4u);
}

TEST_F(DispatcherClock, RetryAfterIsHonouredUpToRetryMax) {
  uplink_.retry_initial = Millis(100);
  uplink_.retry_max = Millis(3000);
  Commit(1, clock_.Now());
  auto sink = std::make_unique<ScriptedSink>(
      std::deque<Verdict>{Retry(Millis(2500)), Retry(Millis(9000)), Retry(Millis(10))});
  ScriptedSink* s = sink.get();
  Dispatcher d(uplink_, store_.get(), std::move(sink), clock_);
  d.Start();
  ASSERT_TRUE(WaitFor([&] { return s->sends() == 1; }));
  EXPECT_EQ(NextWait(), Millis(2500)) << "Retry-After over the backoff";
  clock_.Set(clock_.waiting_until());
  ASSERT_TRUE(WaitFor([&] { return s->sends() == 2; }));
  EXPECT_EQ(NextWait(), Millis(3000)) << "Retry-After beyond retry_max: retry_max";
  clock_.Set(clock_.waiting_until());
  ASSERT_TRUE(WaitFor([&] { return s->sends() == 3; }));
  const Millis third = NextWait();
  EXPECT_GE(third, Millis(100)) << "a Retry-After shorter than the backoff: the backoff";
  EXPECT_LE(third, Millis(400));
  clock_.Set(clock_.waiting_until());
  ASSERT_TRUE(WaitFor([&] { return d.Stats().delivered == 1; }));
}

}  // namespace
}  // namespace vigil::uplink
