#include "store/journal.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
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

// Append writes 32 messages a statement while that many are left, then one at a time: every
// batch size around that comes back message for message, in order, each with its own fields.
TEST_F(JournalTest, EveryMessageOfABatchComesBackWithItsOwnFields) {
  std::vector<JournalMessage> written;
  for (int batch : {1, 31, 32, 33, 64, 70}) {
    std::vector<JournalMessage> ms;
    for (int i = 0; i < batch; ++i) {
      const auto n = static_cast<int>(written.size() + ms.size());
      ms.push_back({0, Millis(1000 + n), "s/d" + std::to_string(n % 7) + "/t",
                    std::string(static_cast<std::size_t>(n % 50), 'x') + std::to_string(n), n + 1});
    }
    std::vector<JournalMessage*> ptrs;
    for (auto& m : ms) ptrs.push_back(&m);
    ASSERT_TRUE(journal_->Append(ptrs).ok()) << batch;
    written.insert(written.end(), ms.begin(), ms.end());
  }
  std::vector<JournalMessage> read;
  ASSERT_TRUE(journal_
                  ->Read(0, Millis(0),
                         [&](const JournalMessage& m) {
                           read.push_back(m);
                           return true;
                         })
                  .ok());
  ASSERT_EQ(read.size(), written.size());
  for (std::size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(read[i].seq, written[i].seq);
    EXPECT_EQ(read[i].received, written[i].received) << i;
    EXPECT_EQ(read[i].topic, written[i].topic) << i;
    EXPECT_EQ(read[i].payload, written[i].payload) << i;
  }
  // The packet id and hash of a message in the middle of a 32-row statement are its own.
  const JournalMessage& m = written[50];
  EXPECT_EQ(journal_->FindRedelivered(m.packet_id, m.topic, m.payload, 1, 1000, {}).value(), m.seq);
  EXPECT_EQ(
      journal_->FindRedelivered(m.packet_id, m.topic, written[51].payload, 1, 1000, {}).value(), 0);
  EXPECT_EQ(
      journal_->FindRedelivered(written[51].packet_id, m.topic, m.payload, 1, 1000, {}).value(), 0);
}

// Sensors repeat payloads (a plain number, JSON without a time): only the packet id tells a
// redelivery from a new message with the same topic and payload.
TEST_F(JournalTest, ARedeliveryMatchesPacketIdTopicAndPayloadOnce) {
  std::vector<JournalMessage> ms;
  for (int i = 0; i < 10; ++i) ms.push_back({0, Millis(1), "s/d/t", "21.5", i + 1});
  ms.push_back({0, Millis(1), "s/d/t", "21.5", 3});  // packet ids come round again
  std::vector<JournalMessage*> ptrs;
  for (auto& m : ms) ptrs.push_back(&m);
  ASSERT_TRUE(journal_->Append(ptrs).ok());

  EXPECT_EQ(journal_->FindRedelivered(12, "s/d/t", "21.5", 1, 11, {}).value(), 0)
      << "same topic and payload, another packet id: a new reading";
  EXPECT_EQ(journal_->FindRedelivered(7, "s/d/t", "21.5", 1, 11, {}).value(), 7);
  EXPECT_EQ(journal_->FindRedelivered(7, "s/d/t", "21.6", 1, 11, {}).value(), 0);
  EXPECT_EQ(journal_->FindRedelivered(7, "s/e/t", "21.5", 1, 11, {}).value(), 0);
  EXPECT_EQ(journal_->FindRedelivered(7, "s/d/t", "21.5", 8, 11, {}).value(), 0)
      << "outside the range";
  EXPECT_EQ(journal_->FindRedelivered(7, "s/d/t", "21.5", 1, 11, {7}).value(), 0)
      << "each journaled message matches one redelivery";
  EXPECT_EQ(journal_->FindRedelivered(3, "s/d/t", "21.5", 1, 11, {}).value(), 11) << "newest";
  EXPECT_EQ(journal_->FindRedelivered(3, "s/d/t", "21.5", 1, 11, {11}).value(), 3);
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

// Retention deletes the oldest messages up to the first one received at or after the bound:
// after a clock stepped back, later messages wait for the ones before them.
TEST_F(JournalTest, RetentionTrimsTheOldestInSeqOrder) {
  Append(0, 3, Millis(100));
  Append(3, 4, Millis(300));
  Append(4, 5, Millis(100));
  EXPECT_EQ(journal_->TrimBefore(Millis(200), 100).value(), 3);
  EXPECT_EQ(Seqs(0), (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(journal_->TrimBefore(Millis(400), 4).value(), 1);  // not past the checkpoint
  EXPECT_EQ(Seqs(0), (std::vector<std::int64_t>{5}));
}

TEST_F(JournalTest, SeqsKeepIncreasingWhenTrimsEmptyIt) {
  Append(0, 5, Millis(100));
  EXPECT_EQ(journal_->TrimBefore(Millis(300), 5).value(), 5);
  EXPECT_TRUE(Seqs(0).empty());
  EXPECT_EQ(journal_->LastSeq(), 5);
  Append(5, 6, Millis(400));
  EXPECT_EQ(Seqs(0), (std::vector<std::int64_t>{6}));
  EXPECT_EQ(journal_->TrimOldest(10, 6).value(), 1);
  journal_.reset();  // and after a restart
  journal_ = std::move(Journal::Open((dir_ / "journal.db").string(), {}).value());
  EXPECT_EQ(journal_->LastSeq(), 6);
  Append(6, 7, Millis(500));
  EXPECT_EQ(Seqs(0), (std::vector<std::int64_t>{7}));
}

// Files of earlier versions numbered rows with AUTOINCREMENT: they open, and their seqs go on
// from the largest ever given, also when trims had emptied the table.
TEST_F(JournalTest, FilesWithAutoincrementGoOn) {
  journal_.reset();
  const std::string path = (dir_ / "old.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode = WAL;"
                         "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) "
                         "WITHOUT ROWID;"
                         "INSERT INTO meta VALUES ('schema_version', '1');"
                         "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "received INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, "
                         "hash INTEGER NOT NULL);"
                         "INSERT INTO journal (received, topic, payload, hash) VALUES "
                         "(1, 's/d/t', '1', 0), (1, 's/d/t', '2', 0), (1, 's/d/t', '3', 0);"
                         "DELETE FROM journal;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto opened = Journal::Open(path, {});
  ASSERT_TRUE(opened.ok()) << opened.error();
  journal_ = std::move(opened.value());
  EXPECT_EQ(journal_->LastSeq(), 3);
  Append(0, 2, Millis(100));
  EXPECT_EQ(Seqs(0), (std::vector<std::int64_t>{4, 5}));
}

}  // namespace
}  // namespace vigil::store
