// store::Policy: the quota and retention policy the engine thread asks the store to apply at a
// processing time (journal retention, the outbox TTL and its ages across a clock step, the
// quota's thresholds, when a checkpoint is due and when rule state is measured). Real files;
// every time is given, none is read.

#include <gtest/gtest.h>

#include <filesystem>

#include "store/quota.h"
#include "tests/unit/test_support.h"

namespace vigil::store {
namespace {

constexpr Millis kHour{3'600'000};
constexpr Millis kT0{1'800'000'000'000};

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_policy_test");
    config_.journal_retention = kHour;
    config_.ttl = 24 * kHour;
    auto s = Store::Open((dir_ / "vigil.db").string(), config_);
    ASSERT_TRUE(s.ok()) << s.error();
    store_ = std::move(s.value());
    auto j = Journal::Open((dir_ / "journal.db").string(), config_);
    ASSERT_TRUE(j.ok()) << j.error();
    journal_ = std::move(j.value());
  }
  void TearDown() override {
    store_.reset();
    journal_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One journal message received at `at`; returns its seq.
  std::int64_t Journal(Millis at) {
    JournalMessage m{0, at, "s/d/t", "{}"};
    EXPECT_TRUE(journal_->Append({&m}).ok());
    return m.seq;
  }
  std::vector<std::int64_t> JournalSeqs() {
    std::vector<std::int64_t> seqs;
    EXPECT_TRUE(journal_
                    ->Read(0, Millis(0),
                           [&](const JournalMessage& m) {
                             seqs.push_back(m.seq);
                             return true;
                           })
                    .ok());
    return seqs;
  }
  // One event for uplink "cloud", committed at `at`.
  void Event(const std::string& id, Millis at) {
    CommitBatch batch;
    batch.events.push_back(
        {id, rules::EventKind::kAlert, "r", "{\"id\":\"" + id + "\"}", at, {"cloud"}});
    ASSERT_TRUE(store_->Commit(batch, at).ok());
  }
  std::vector<OutboxRow> Outbox() {
    auto rows = store_->List(false, 100);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? rows.value() : std::vector<OutboxRow>{};
  }

  std::filesystem::path dir_;
  config::StoreConfig config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<store::Journal> journal_;
};

TEST_F(PolicyTest, ThresholdsFloorAndCommitSizesFollowMaxBytes) {
  config_.max_bytes = 1'000'000;
  Policy policy(config_, store_.get(), journal_.get());
  EXPECT_EQ(policy.Threshold(), 750'000u);
  EXPECT_EQ(policy.Target(), 600'000u);
  EXPECT_EQ(policy.OutboxFloor(), 125'000u);
  EXPECT_EQ(policy.EventsPerCommit(4096), 1'000'000u / 16 / 512);
  EXPECT_FALSE(policy.CheckpointDue(125'000));
  EXPECT_TRUE(policy.CheckpointDue(125'001)) << "the journal since the checkpoint: an eighth";
  config_.max_bytes = 512ull << 20;
  EXPECT_EQ(Policy(config_, store_.get(), journal_.get()).EventsPerCommit(4096), 4096u);
  config_.max_bytes = 10'000;
  EXPECT_EQ(Policy(config_, store_.get(), journal_.get()).EventsPerCommit(4096), 16u);
}

TEST_F(PolicyTest, RetireTrimsTheJournalPastRetentionOnlyUpToTheCheckpoint) {
  Policy policy(config_, store_.get(), journal_.get());
  const std::int64_t a = Journal(kT0);
  const std::int64_t b = Journal(kT0 + Millis(1000));
  const std::int64_t c = Journal(kT0 + Millis(2000));
  const std::int64_t d = Journal(kT0 + kHour + Millis(10'000));  // within the retention
  // At kT0 + 1 h + 5 s, a, b and c are past the retention; the checkpoint covers a and b.
  auto retired = policy.Retire(kT0 + kHour + Millis(5000), b, Millis(0));
  EXPECT_TRUE(retired.errors.empty());
  EXPECT_EQ(JournalSeqs(), (std::vector<std::int64_t>{c, d}))
      << "c is past the retention but not in the checkpoint: recovery needs it";
  (void)a;
  retired = policy.Retire(kT0 + 3 * kHour, d, Millis(0));
  EXPECT_TRUE(JournalSeqs().empty());
}

TEST_F(PolicyTest, RetireDropsOutboxRowsPastTheTtlAndIsDueOnceASecond) {
  Policy policy(config_, store_.get(), journal_.get());
  Event("old", kT0);
  Event("new", kT0 + kHour);
  const Millis now = kT0 + 24 * kHour + Millis(1);
  EXPECT_TRUE(policy.RetireDue(now)) << "never run: due";
  auto retired = policy.Retire(now, 0, Millis(0));
  EXPECT_EQ(retired.expired, 1);
  ASSERT_EQ(Outbox().size(), 1u);
  EXPECT_EQ(Outbox()[0].event_id, "new");
  EXPECT_FALSE(policy.RetireDue(now + Millis(999)));
  EXPECT_TRUE(policy.RetireDue(now + Policy::kRetireInterval));
}

TEST_F(PolicyTest, AForwardStepOfTheClockMovesOutboxAgesBeforeTheTtl) {
  Policy policy(config_, store_.get(), journal_.get());
  Event("e", kT0);
  // The clock stepped forward by two days: by the processing clock the row is 2 days and 1 s
  // old, by what passed it is 1 s old. It stays, and its commit time moves with the step.
  const Millis step = 48 * kHour;
  auto retired = policy.Retire(kT0 + step + Millis(1000), 0, step);
  EXPECT_TRUE(retired.shifted.ok());
  EXPECT_EQ(retired.expired, 0);
  ASSERT_EQ(Outbox().size(), 1u);
  EXPECT_EQ(Outbox()[0].created, kT0 + step);
}

TEST_F(PolicyTest, QuotaTrimsOnlyPastTheThreshold) {
  for (int i = 0; i < 200; ++i) Journal(kT0 + Millis(i));
  const std::int64_t last = JournalSeqs().back();
  {
    config_.max_bytes = 1ull << 30;  // far away
    Policy policy(config_, store_.get(), journal_.get());
    auto q = policy.EnforceQuota(kT0, 0, last, false);
    EXPECT_FALSE(q.trimmed);
    EXPECT_EQ(q.drops.journal, 0u);
    EXPECT_EQ(JournalSeqs().size(), 200u);
    EXPECT_FALSE(q.exceeded_by_state) << "said only after a checkpoint";
  }
  // A quota the files are past (without their WAL, which a trim truncates first): the journal
  // the checkpoint covers goes first.
  store_->Vacuum();
  journal_->Vacuum();
  config_.max_bytes = (store_->SizeBytes() + journal_->SizeBytes()) / 2;
  Policy policy(config_, store_.get(), journal_.get());
  auto q = policy.EnforceQuota(kT0, 0, last, false);
  EXPECT_TRUE(q.trimmed);
  EXPECT_GT(q.drops.journal, 0u);
  EXPECT_LT(JournalSeqs().size(), 200u);
}

TEST_F(PolicyTest, AfterACheckpointStateIsMeasuredAtMostEveryTenSeconds) {
  CommitBatch batch;
  batch.state.push_back({"r", "k", std::string(20'000, 's')});
  batch.journal_position = 0;
  ASSERT_TRUE(store_->Commit(batch, kT0).ok());
  config_.max_bytes = 10'000;  // the state alone is past it
  Policy policy(config_, store_.get(), journal_.get());
  auto q = policy.EnforceQuota(kT0, 0, 0, true);
  ASSERT_TRUE(q.exceeded_by_state);
  EXPECT_TRUE(*q.exceeded_by_state) << "rule state leaves the outbox no room";
  ASSERT_TRUE(q.state_bytes);
  EXPECT_GE(*q.state_bytes, 20'000u);
  EXPECT_GT(q.fixed_bytes, 0u);
  q = policy.EnforceQuota(kT0 + Millis(9'999), 0, 0, true);
  EXPECT_FALSE(q.state_bytes) << "measured at most every 10 s";
  q = policy.EnforceQuota(kT0 + Policy::kStateMeasureInterval, 0, 0, true);
  EXPECT_TRUE(q.state_bytes);
  // Without a checkpoint nothing is said about the state.
  EXPECT_FALSE(policy.EnforceQuota(kT0 + kHour, 0, 0, false).exceeded_by_state);
}

}  // namespace
}  // namespace vigil::store
