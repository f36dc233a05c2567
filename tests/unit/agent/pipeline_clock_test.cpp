// The engine thread (Pipeline) by a clock moved by hand (tests/unit/fake_clock.h), with real
// store files: when it commits, checkpoints and fires the engine's timers is a matter of the
// injected clock, not of real time. A rule with an `absent` detector gives a timer.

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "agent/pipeline.h"
#include "rules/rule_loader.h"
#include "tests/unit/fake_clock.h"
#include "tests/unit/test_support.h"

namespace vigil::agent {
namespace {

class PipelineClock : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_pipeline_clock");
    std::filesystem::create_directories(dir_);
    config_.agent.id = "edge";
    config_.agent.state_dir = dir_.string();
    config_.store.commit_interval = Millis(1000);
    config_.store.checkpoint_interval = Millis(10'000);
    auto store = store::Store::Open((dir_ / "vigil.db").string(), config_.store);
    ASSERT_TRUE(store.ok()) << store.error();
    store_ = std::move(store.value());
    auto journal = store::Journal::Open((dir_ / "journal.db").string(), config_.store);
    ASSERT_TRUE(journal.ok()) << journal.error();
    journal_ = std::move(journal.value());
    const std::string text = R"({"id": "silent", "source": {"metric": "t"},
      "group_by": ["device"], "detector": {"method": "absent", "for": "30s"},
      "alert": {"summary": "{device} silent"}})";
    rules::LoadResult loaded = rules::ParseRules(text, "silent.json", config::RuleLimits{});
    ASSERT_TRUE(loaded.rules);
    pipeline_ = std::make_unique<Pipeline>(
        config_, loaded.rules, nullptr, store_.get(), journal_.get(), &metrics_,
        [](const std::string&) {}, clock_);
    ASSERT_TRUE(pipeline_->Restore().ok());
    t0_ = clock_.Now();
  }
  void TearDown() override {
    pipeline_.reset();
    journal_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One message (acknowledged on receipt: journaled by the engine thread at its commit) with
  // one reading of `device`, received at `received` (now by default).
  void Push(const std::string& device = "d1", std::optional<Millis> received = std::nullopt) {
    IngestMessage m;
    m.received = received.value_or(clock_.Now());
    m.topic = "t/" + device;
    m.payload = "1";
    m.size = m.topic.size() + m.payload.size();
    m.readings.push_back({"t", {{"device", device}}, m.received, 1.0});
    ASSERT_TRUE(pipeline_->Push(std::move(m)));
  }

  // Moves the clock to `t` and waits until the engine thread went round at `t` and once more
  // after (at t + 1 ms): what the round at `t` decided is then done.
  void Settle(Millis t) {
    for (Millis at : {t, t + Millis(1)}) {
      clock_.Set(at);
      // Alive(x) holds while the last round was less than 10 s before x.
      ASSERT_TRUE(WaitFor([&] { return pipeline_->Alive(at + Millis(9'999)); }))
          << "no round at " << (at - t0_).count() << " ms";
    }
  }

  std::int64_t Pending() {
    auto counts = store_->Counts();
    if (!counts.ok()) return -1;
    for (const auto& c : counts.value()) {
      if (c.uplink == Pipeline::kLogUplink) return c.pending;
    }
    return 0;
  }

  FakeClock clock_;
  std::filesystem::path dir_;
  config::Config config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::Journal> journal_;
  Metrics metrics_;
  std::unique_ptr<Pipeline> pipeline_;
  Millis t0_{0};
};

TEST_F(PipelineClock, CommitsAtCommitIntervalAndChecksAtCheckpointInterval) {
  pipeline_->Start();
  Push();
  ASSERT_TRUE(WaitFor([&] { return pipeline_->queue_depth() == 0; }));
  Settle(t0_ + Millis(998));
  EXPECT_EQ(metrics_.commits.load(), 0u) << "no commit before store.commit_interval";
  EXPECT_EQ(store_->EventsPosition().value(), 0);
  clock_.Set(t0_ + Millis(1000));
  ASSERT_TRUE(WaitFor([&] { return store_->EventsPosition().value() == 1; }))
      << "the message journaled and its position committed at store.commit_interval";
  EXPECT_EQ(store_->JournalPosition().value(), 0) << "the state is not checkpointed yet";
  for (int k = 2; k <= 9; ++k) Settle(t0_ + Millis(1000) * k);
  EXPECT_EQ(store_->JournalPosition().value(), 0) << "no checkpoint before 10 s";
  clock_.Set(t0_ + Millis(10'000));
  ASSERT_TRUE(WaitFor([&] { return store_->JournalPosition().value() == 1; }))
      << "a checkpoint at store.checkpoint_interval";
}

TEST_F(PipelineClock, TimersFireByTheClockAndTheirMomentIsCommitted) {
  pipeline_->Start();
  Push();
  ASSERT_TRUE(WaitFor([&] { return pipeline_->queue_depth() == 0; }));
  Settle(t0_ + Millis(29'000));
  EXPECT_EQ(Pending(), 0) << "the key is silent for 29 s only";
  clock_.Set(t0_ + Millis(31'000));
  ASSERT_TRUE(WaitFor([&] { return Pending() == 1; })) << "absent fires after 30 s of silence";
  auto rows = store_->List(false, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows.value().size(), 1u);
  EXPECT_NE(rows.value()[0].json.find("\"firing\""), std::string::npos) << rows.value()[0].json;
  EXPECT_EQ(rows.value()[0].created, t0_ + Millis(31'000)) << "committed at the clock's time";
  // The moment the timer was due is committed after the message it followed (recovery fires
  // it there again).
  auto ticks = store_->Ticks();
  ASSERT_TRUE(ticks.ok());
  ASSERT_FALSE(ticks.value().empty());
  EXPECT_EQ(ticks.value().back(), (store::Tick{1, t0_ + Millis(31'000)}));
}

TEST_F(PipelineClock, ForwardStepOfTheClockKeepsOutboxAges) {
  pipeline_->Start();
  Push();
  ASSERT_TRUE(WaitFor([&] { return pipeline_->queue_depth() == 0; }));
  clock_.Set(t0_ + Millis(31'000));
  ASSERT_TRUE(WaitFor([&] { return Pending() == 1; }));
  clock_.StepForward(Millis(3'600'000));
  ASSERT_TRUE(WaitFor([&] { return metrics_.clock_steps.load() == 1; }));
  auto rows = store_->List(false, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows.value().size(), 1u);
  EXPECT_EQ(rows.value()[0].created, t0_ + Millis(31'000) + Millis(3'600'000))
      << "the row's age by the processing clock stays what it was";
}

TEST_F(PipelineClock, TimersWaitForTheReadingsStillQueued) {
  // A backlog of more than one round: d1's reading at t0, then a round's worth of d2's and d1's
  // next reading, all received at t0 + 29 s, queued before the engine thread starts at
  // t0 + 31 s. After the first round d1's next reading is still queued: d1 is not silent.
  Push("d1", t0_);
  for (std::size_t i = 0; i < Pipeline::kBatch; ++i) Push("d2", t0_ + Millis(29'000));
  Push("d1", t0_ + Millis(29'000));
  clock_.Set(t0_ + Millis(31'000));
  pipeline_->Start();
  ASSERT_TRUE(WaitFor([&] { return pipeline_->queue_depth() == 0; }));
  Settle(t0_ + Millis(31'000));
  Settle(t0_ + Millis(58'000));
  EXPECT_EQ(Pending(), 0) << "no key was silent for 30 s while its readings were queued";
  clock_.Set(t0_ + Millis(60'000));
  ASSERT_TRUE(WaitFor([&] { return Pending() == 2; })) << "both silent 30 s after their last";
}

}  // namespace
}  // namespace vigil::agent
