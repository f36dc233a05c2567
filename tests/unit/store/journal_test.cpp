#include "store/journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace vigil::store {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil_journal_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto j = Journal::Open((dir_ / "journal.db").string(), config::StoreConfig{});
    ASSERT_TRUE(j.ok()) << j.error();
    journal_ = std::move(j.value());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Append(int from, int to, Millis received) {
    std::vector<JournalMessage> ms;
    for (int i = from; i < to; ++i)
      ms.push_back({0, received, "s/d/t", "{\"value\":" + std::to_string(i) + "}"});
    std::vector<JournalMessage*> ptrs;
    for (auto& m : ms) ptrs.push_back(&m);
    ASSERT_TRUE(journal_->Append(ptrs).ok());
    for (std::size_t k = 1; k < ms.size(); ++k) EXPECT_EQ(ms[k].seq, ms[k - 1].seq + 1);
  }

  std::vector<std::int64_t> Seqs(std::int64_t after, Millis since = Millis(0)) {
    std::vector<std::int64_t> out;
    EXPECT_TRUE(journal_
                    ->Read(after, since,
                           [&](const JournalMessage& m) {
                             out.push_back(m.seq);
                             return true;
                           })
                    .ok());
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(JournalTest, AppendsInOrderAndReadsAfterAPosition) {
  Append(0, 3, Millis(100));
  Append(3, 2500, Millis(200));  // more than one read page
  EXPECT_EQ(journal_->LastSeq(), 2500);
  auto all = Seqs(0);
  ASSERT_EQ(all.size(), 2500u);
  EXPECT_EQ(all.front(), 1);
  EXPECT_EQ(all.back(), 2500);
  EXPECT_EQ(Seqs(2498), (std::vector<std::int64_t>{2499, 2500}));
  EXPECT_EQ(Seqs(0, Millis(150)).size(), 2497u);
  std::string payload;
  ASSERT_TRUE(journal_
                  ->Read(0, Millis(0),
                         [&](const JournalMessage& m) {
                           payload = m.payload;
                           return false;  // stop at the first
                         })
                  .ok());
  EXPECT_EQ(payload, "{\"value\":0}");
}

TEST_F(JournalTest, RecognisesARecentRedelivery) {
  Append(0, 10, Millis(1));
  EXPECT_TRUE(journal_->RecentlyAppended("s/d/t", "{\"value\":9}", 100).value());
  EXPECT_FALSE(journal_->RecentlyAppended("s/d/t", "{\"value\":10}", 100).value());
  EXPECT_FALSE(journal_->RecentlyAppended("s/other", "{\"value\":9}", 100).value());
  EXPECT_FALSE(journal_->RecentlyAppended("s/d/t", "{\"value\":0}", 5).value())
      << "outside the window";
}

TEST_F(JournalTest, TrimsOnlyWhatTheCheckpointCovers) {
  Append(0, 10, Millis(100));
  Append(10, 20, Millis(200));
  // Retention: older than 300 but only up to the committed position 5.
  EXPECT_EQ(journal_->TrimBefore(Millis(300), 5).value(), 5);
  EXPECT_EQ(Seqs(0).front(), 6);
  EXPECT_EQ(journal_->TrimOldest(3, 100).value(), 3);
  EXPECT_EQ(Seqs(0).front(), 9);
  EXPECT_EQ(journal_->TrimBefore(Millis(150), 100).value(), 2);  // 9, 10
  EXPECT_EQ(Seqs(0).size(), 10u);
  journal_->Vacuum();
  EXPECT_GT(journal_->SizeBytes(), 0u);
}

}  // namespace
}  // namespace vigil::store
