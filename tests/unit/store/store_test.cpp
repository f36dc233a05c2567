#include "store/store.h"
#include "store/journal.h"

#include <sqlite3.h>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace vigil::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    path_ = (dir_ / "sub" / "vigil.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> Open() {
    auto r = Store::Open(path_, config::StoreConfig{});
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error());
    return r.ok() ? std::move(r.value()) : nullptr;
  }

  static OutboxEvent Event(const std::string& id, std::vector<std::string> uplinks) {
    return {id,        rules::EventKind::kAlert, "r", "{\"id\":\"" + id + "\"}",
            Millis(5), std::move(uplinks)};
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(StoreTest, CreatesFolderAndPrivateFile) {
  auto store = Open();
  ASSERT_TRUE(store);
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(StoreTest, SyncSettingReachesSqlite) {
  EXPECT_EQ(Open()->SynchronousLevel(), 1);  // NORMAL
  config::StoreConfig full;
  full.sync = config::StoreConfig::Sync::kFull;
  auto store = Store::Open(path_, full);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store.value()->SynchronousLevel(), 2);  // FULL
  auto journal = Journal::Open(dir_.string() + "/journal.db", full);
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ(journal.value()->SynchronousLevel(), 2);
}

TEST_F(StoreTest, StateAndOutboxSurviveReopen) {
  {
    auto store = Open();
    CommitBatch batch;
    batch.state = {{"r", "k1", std::string("bytes-1")}, {"r", "k2", std::string("bytes-2")}};
    batch.events = {Event("e1", {"cloud", "am"}), Event("e2", {"cloud"})};
    ASSERT_TRUE(store->Commit(batch, Millis(1000)).ok());
    CommitBatch second;
    second.state = {{"r", "k1", std::nullopt}, {"r", "k2", std::string("bytes-2b")}};
    ASSERT_TRUE(store->Commit(second, Millis(2000)).ok());
  }
  auto store = Open();
  std::map<std::string, std::string> state;
  ASSERT_TRUE(store
                  ->LoadState([&](const std::string& rule, const std::string& key,
                                  const std::string& bytes) { state[rule + "/" + key] = bytes; })
                  .ok());
  EXPECT_EQ(state, (std::map<std::string, std::string>{{"r/k2", "bytes-2b"}}));

  auto cloud = store->Pending("cloud", 10);
  ASSERT_TRUE(cloud.ok());
  ASSERT_EQ(cloud.value().size(), 2u);
  EXPECT_EQ(cloud.value()[0].event_id, "e1");
  EXPECT_EQ(cloud.value()[1].event_id, "e2");
  EXPECT_LT(cloud.value()[0].seq, cloud.value()[1].seq);
  EXPECT_EQ(cloud.value()[0].created, Millis(1000));
  EXPECT_EQ(store->Pending("am", 10).value().size(), 1u);
}

TEST_F(StoreTest, AckFailureDeadLettersRetryAndPurge) {
  auto store = Open();
  CommitBatch batch;
  batch.events = {Event("e1", {"u"}), Event("e2", {"u"}), Event("e3", {"u"})};
  ASSERT_TRUE(store->Commit(batch, Millis(1)).ok());
  auto rows = store->Pending("u", 2).value();
  ASSERT_EQ(rows.size(), 2u);  // limit respected

  ASSERT_TRUE(store->RecordFailure("u", {rows[0].seq}, "HTTP 503").ok());
  auto again = store->Pending("u", 10).value();
  EXPECT_EQ(again[0].attempts, 1);
  EXPECT_EQ(again[0].last_error, "HTTP 503");

  ASSERT_TRUE(store->Ack("u", {rows[0].seq}).ok());
  ASSERT_TRUE(store->MoveToDead("u", {rows[1].seq}, "HTTP 400: bad").ok());
  auto pending = store->Pending("u", 10).value();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].event_id, "e3");

  auto dead = store->List(true, 10).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event_id, "e2");
  EXPECT_EQ(dead[0].last_error, "HTTP 400: bad");

  auto counts = store->Counts().value();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].pending, 1);
  EXPECT_EQ(counts[0].dead, 1);
  EXPECT_EQ(counts[0].oldest_pending, Millis(1));

  EXPECT_EQ(store->RetryDead().value(), 1);
  auto back = store->Pending("u", 10).value();
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].event_id, "e2");  // back in its original place: order kept
  EXPECT_EQ(store->Purge(false).value(), 2);
  EXPECT_TRUE(store->Pending("u", 10).value().empty());
}

TEST_F(StoreTest, ADamagedFileIsMovedAsideAndAFreshOneStarted) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  { std::ofstream(path_) << "this is not a database, just text that goes on for a while......"; }
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_NE(store->damage().find("not a database"), std::string::npos) << store->damage();
  ASSERT_FALSE(store->moved_aside().empty());
  EXPECT_EQ(store->moved_aside().rfind(path_ + ".damaged-", 0), 0u);
  std::ifstream kept(store->moved_aside());
  std::string text((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("this is not a database", 0), 0u) << "the damaged file is kept";
  // The fresh database works.
  CommitBatch batch;
  batch.events = {Event("e1", {"u"})};
  EXPECT_TRUE(store->Commit(batch, Millis(1)).ok());
}

TEST_F(StoreTest, ATruncatedFileIsMovedAside) {
  {
    auto store = Open();
    CommitBatch batch;
    for (int i = 0; i < 200; ++i) batch.events.push_back(Event("e" + std::to_string(i), {"u"}));
    ASSERT_TRUE(store->Commit(batch, Millis(1)).ok());
    store->Vacuum();  // everything into the main file
  }
  std::filesystem::resize_file(path_, std::filesystem::file_size(path_) / 2);
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->moved_aside().empty()) << "a truncated file fails quick_check";
  EXPECT_TRUE(store->Pending("u", 10).value().empty());
}

TEST_F(StoreTest, ANewerSchemaIsAnErrorAndTheFileIsKept) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE name = 'schema_version'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = Store::Open(path_, config::StoreConfig{});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error(),
            "schema version 99 is newer than this vigil's (1): upgrade vigil or move the file "
            "away");
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "sub")) {
    EXPECT_EQ(e.path().filename().string().find(".damaged-"), std::string::npos) << e.path();
  }
}

TEST_F(StoreTest, JournalPositionTtlAndQuotaDrops) {
  auto store = Open();
  CommitBatch batch;
  batch.events = {Event("a1", {"u", "v"}), Event("a2", {"u"})};
  batch.events[0].kind = batch.events[1].kind = rules::EventKind::kAggregate;
  batch.events.push_back(Event("x1", {"u"}));
  batch.journal_position = 42;
  ASSERT_TRUE(store->Commit(batch, Millis(1000)).ok());
  EXPECT_EQ(store->JournalPosition().value(), 42);
  CommitBatch later;
  later.events = {Event("x2", {"u"})};
  ASSERT_TRUE(store->Commit(later, Millis(5000)).ok());
  EXPECT_EQ(store->JournalPosition().value(), 42) << "unset position leaves it";

  // Quota: the oldest aggregate event goes first, from every uplink.
  EXPECT_EQ(store->DropOldest(rules::EventKind::kAggregate, 1).value().rows, 2);
  auto left = store->Pending("u", 10).value();
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0].event_id, "a2");
  // TTL: rows committed before the cut-off.
  EXPECT_EQ(store->DropExpired(Millis(2000)).value(), 2);
  left = store->Pending("u", 10).value();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].event_id, "x2");
  EXPECT_GT(store->SizeBytes(), 0u);
}

}  // namespace
}  // namespace vigil::store
