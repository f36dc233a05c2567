// The dispatcher when the store cannot delete delivered rows (Store::Ack fails): a real SQLite
// outbox made to refuse deletes by a trigger that a second connection adds, and a sink that
// accepts everything. The dispatcher must back off instead of spinning, must not send the
// rows again while the store refuses, and must delete them once the store accepts.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/unit/test_support.h"
#include "uplink/dispatcher.h"

namespace vigil::uplink {
namespace {

using namespace std::chrono_literals;

// Accepts every batch; counts the attempts.
class AcceptingSink final : public Sink {
 public:
  explicit AcceptingSink(std::atomic<int>* sends) : sends_(sends) {}
  Verdict Send(const std::vector<store::OutboxRow>& batch) override {
    (void)batch;
    sends_->fetch_add(1);
    return {Verdict::Outcome::kDelivered, std::nullopt, ""};
  }

 private:
  std::atomic<int>* sends_;
};

// A second connection to the state database, as another process would have.
class OtherConnection {
 public:
  explicit OtherConnection(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~OtherConnection() { sqlite3_close(db_); }
  void Exec(const char* sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql, nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "") << " in " << sql;
    sqlite3_free(error);
  }

 private:
  sqlite3* db_ = nullptr;
};

class DispatcherAck : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_dispatcher_ack");
    auto s = store::Store::Open(db_path(), config::StoreConfig{});
    ASSERT_TRUE(s.ok()) << s.error();
    store_ = std::move(s.value());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string db_path() const { return (dir_ / "vigil.db").string(); }

  void Commit(int n) {
    store::CommitBatch batch;
    for (int i = 0; i < n; ++i) {
      std::string id = "e" + std::to_string(i);
      batch.events.push_back(
          {id, rules::EventKind::kAlert, "r", "{\"id\":\"" + id + "\"}", Millis(i), {"cloud"}});
    }
    ASSERT_TRUE(store_->Commit(batch, Millis(0)).ok());
  }

  std::int64_t Pending() {
    auto counts = store_->Counts();
    if (!counts.ok()) return -1;
    for (const auto& c : counts.value()) {
      if (c.uplink == "cloud") return c.pending;
    }
    return 0;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(DispatcherAck, FailedAckBacksOffWithoutResendingAndDeletesOnceTheStoreAccepts) {
  Commit(3);
  OtherConnection other(db_path());
  other.Exec(
      "CREATE TRIGGER refuse_ack BEFORE DELETE ON outbox "
      "BEGIN SELECT RAISE(ABORT, 'delete refused by the test'); END");

  config::UplinkConfig u;
  u.name = "cloud";
  u.type = config::HttpUplink{};
  u.batch_max_events = 10;
  u.batch_max_delay = Millis(0);
  u.retry_initial = Millis(40);
  u.retry_max = Millis(160);
  std::atomic<int> sends{0};
  Dispatcher d(u, store_.get(), std::make_unique<AcceptingSink>(&sends));
  const auto started = std::chrono::steady_clock::now();
  d.Start();

  // Failed deletes are retried after a backoff of at least retry_initial each: reaching
  // four takes at least three backoffs. (A dispatcher that sends the batch again at once
  // ends the wait too, and fails below.)
  ASSERT_TRUE(WaitFor([&] { return d.Stats().ack_failures >= 4 || sends.load() > 1; }));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  const DispatcherStats st = d.Stats();
  ASSERT_EQ(sends.load(), 1) << "the delivered batch is not sent again while its ack fails";
  EXPECT_GE(elapsed, 3 * u.retry_initial) << st.ack_failures << " failed acks";
  // At most one attempt per retry_initial since the start, plus the first.
  const auto most = 2 + std::chrono::duration_cast<Millis>(elapsed) / u.retry_initial;
  EXPECT_LE(static_cast<std::int64_t>(st.ack_failures), most);
  EXPECT_EQ(st.delivered, 3u);
  EXPECT_NE(st.last_error.find("delete refused by the test"), std::string::npos) << st.last_error;
  EXPECT_EQ(Pending(), 3) << "nothing is lost";

  // The store accepts deletes again: the rows leave the outbox without a second send.
  other.Exec("DROP TRIGGER refuse_ack");
  ASSERT_TRUE(WaitFor([&] { return Pending() == 0; }));
  EXPECT_EQ(sends.load(), 1);

  // And delivery goes on as usual.
  Commit(2);
  d.Notify();
  ASSERT_TRUE(WaitFor([&] { return d.Stats().delivered == 5; }));
  ASSERT_TRUE(WaitFor([&] { return Pending() == 0; }));
  EXPECT_EQ(sends.load(), 2);
  d.Stop(Millis(0));
}

TEST_F(DispatcherAck, StopsWhileTheAckKeepsFailingAndKeepsTheRows) {
  Commit(2);
  OtherConnection other(db_path());
  other.Exec(
      "CREATE TRIGGER refuse_ack BEFORE DELETE ON outbox "
      "BEGIN SELECT RAISE(ABORT, 'delete refused by the test'); END");
  config::UplinkConfig u;
  u.name = "cloud";
  u.type = config::HttpUplink{};
  u.batch_max_delay = Millis(0);
  u.retry_initial = Millis(50);
  u.retry_max = Millis(60'000);
  std::atomic<int> sends{0};
  Dispatcher d(u, store_.get(), std::make_unique<AcceptingSink>(&sends));
  d.Start();
  ASSERT_TRUE(WaitFor([&] { return d.Stats().ack_failures >= 2 || sends.load() > 1; }));
  EXPECT_EQ(sends.load(), 1);
  const auto before = std::chrono::steady_clock::now();
  d.Stop(Millis(0));
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s) << "a backoff does not hold Stop";
  EXPECT_EQ(Pending(), 2) << "sent again at the next start (at least once)";
}

}  // namespace
}  // namespace vigil::uplink
