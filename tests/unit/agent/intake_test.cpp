#include "agent/intake.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "agent/bounded_queue.h"
#include "tests/unit/test_support.h"

namespace vigil::agent {
namespace {

constexpr Millis kNow{1'795'341'720'000};  // 2026-11-22T10:02:00Z

config::MqttConfig Mqtt() {
  auto r = config::ParseConfig(R"({ "mqtt": { "subscriptions": [
      { "topic": "sensors/{device}/{metric}", "payload": { "format": "number" } } ] } })",
                               "v.json");
  EXPECT_TRUE(r.config.has_value());
  return r.config->mqtt;
}

// A real journal file; the queue is what the intake pushes to.
class IntakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_intake_test");
    auto j = store::Journal::Open((dir_ / "journal.db").string(), config::StoreConfig{});
    ASSERT_TRUE(j.ok()) << j.error();
    journal_ = std::move(j.value());
    intake_ = std::make_unique<MessageIntake>(
        mqtt_, journal_.get(), &metrics_,
        [this](IngestMessage m) {
          // Queued only once journaled: the seq is the journal's newest.
          EXPECT_GT(m.seq, 0);
          EXPECT_EQ(m.seq, journal_->LastSeq());
          return queue_.Push(std::move(m));
        },
        [] { return kNow; });
  }
  void TearDown() override {
    intake_.reset();
    journal_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<IngestMessage> Queued() {
    std::vector<IngestMessage> out;
    queue_.PopBatch(&out, 1000, Millis(0));
    return out;
  }
  // Renames the journal's table from another connection: appends fail until Restore.
  void BreakJournal(const char* sql = "ALTER TABLE journal RENAME TO away") {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "journal.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  void RestoreJournal() { BreakJournal("ALTER TABLE away RENAME TO journal"); }

  std::filesystem::path dir_;
  config::MqttConfig mqtt_ = Mqtt();
  Metrics metrics_;
  std::unique_ptr<store::Journal> journal_;
  BoundedQueue<IngestMessage> queue_{4};
  std::unique_ptr<MessageIntake> intake_;
};

TEST_F(IntakeTest, AMessageIsJournaledBeforeItIsQueuedAndBeforeOnMessageReturns) {
  intake_->OnConnecting();
  intake_->OnMessage("sensors/d1/t", "21.5", 1, false);
  EXPECT_EQ(journal_->LastSeq(), 1);
  auto q = Queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].seq, 1);
  EXPECT_EQ(q[0].received, kNow);
  ASSERT_EQ(q[0].readings.size(), 1u);
  EXPECT_EQ(q[0].readings[0].value, 21.5);
  EXPECT_EQ(metrics_.readings_total.load(), 1u);
}

TEST_F(IntakeTest, AMessageWithoutReadingsIsCountedAndNotJournaled) {
  intake_->OnConnecting();
  intake_->OnMessage("sensors/d1/t", "warm", 1, false);
  EXPECT_EQ(journal_->LastSeq(), 0);
  EXPECT_TRUE(Queued().empty());
  EXPECT_EQ(metrics_.Rejected(RejectReason::kValue), 1u);
}

// Sensors repeat payloads all the time: a redelivery is skipped only when it repeats, by
// packet id, topic and payload, a message journaled before its connection; and only once.
TEST_F(IntakeTest, RepeatedPayloadsAreNewReadingsUnlessARedeliveryRepeatsAJournaledPacket) {
  intake_->OnConnecting();
  for (int pid = 1; pid <= 3; ++pid) intake_->OnMessage("sensors/d1/t", "21.5", pid, false);
  ASSERT_EQ(Queued().size(), 3u);
  intake_->OnConnecting();  // a new connection: the broker redelivers what it had no ack for

  intake_->OnMessage("sensors/d1/t", "21.5", 9, true);  // never journaled: new
  EXPECT_EQ(Queued().size(), 1u);
  EXPECT_EQ(metrics_.redelivered_new.load(), 1u);

  intake_->OnMessage("sensors/d1/t", "21.5", 3, true);  // journaled before the connection
  EXPECT_TRUE(Queued().empty());
  EXPECT_EQ(metrics_.duplicates.load(), 1u);

  intake_->OnMessage("sensors/d1/t", "21.5", 3, true);  // that message matched once already
  EXPECT_EQ(Queued().size(), 1u);
  intake_->OnMessage("sensors/d2/t", "21.5", 2, true);  // another topic
  EXPECT_EQ(Queued().size(), 1u);
  intake_->OnMessage("sensors/d1/t", "21.6", 2, true);  // another payload
  EXPECT_EQ(Queued().size(), 1u);
  EXPECT_EQ(metrics_.duplicates.load(), 1u);
  EXPECT_EQ(metrics_.redelivered_new.load(), 4u);
  EXPECT_EQ(journal_->LastSeq(), 7);
}

TEST_F(IntakeTest, ARedeliveryMatchesOnlyTheWindowBeforeItsConnection) {
  intake_->OnConnecting();
  const int total = static_cast<int>(MessageIntake::kRedeliveryWindow) + 2;
  for (int pid = 1; pid <= total; ++pid) {
    intake_->OnMessage("sensors/d1/t", std::to_string(pid), pid, false);
    Queued();
  }
  intake_->OnConnecting();
  intake_->OnMessage("sensors/d1/t", "1", 1, true);  // older than the window: new
  EXPECT_EQ(Queued().size(), 1u);
  intake_->OnMessage("sensors/d1/t", "3", 3, true);  // the window's first
  EXPECT_TRUE(Queued().empty());
  // Journaled on this connection (seq total + 1, packet id 1): a redelivery on this same
  // connection cannot repeat it.
  intake_->OnMessage("sensors/d1/t", "1", 1, true);
  EXPECT_EQ(Queued().size(), 1u);
  EXPECT_EQ(metrics_.duplicates.load(), 1u);
}

TEST_F(IntakeTest, AFullQueueHoldsTheCallback) {
  intake_->OnConnecting();
  for (int pid = 1; pid <= 4; ++pid) intake_->OnMessage("sensors/d1/t", "1", pid, false);
  std::atomic<bool> returned{false};
  std::thread paho([&] {
    intake_->OnMessage("sensors/d1/t", "5", 5, false);
    returned = true;
  });
  ASSERT_TRUE(WaitFor([&] { return journal_->LastSeq() == 5; }));
  EXPECT_FALSE(returned.load()) << "the fifth message waits for room in the queue";
  EXPECT_EQ(Queued().size(), 4u);
  paho.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(Queued().size(), 1u);
}

// The journal cannot take the message: it is held (Paho would acknowledge it on return). On
// SIGTERM, Stop says so and the message stays held until the connection is lost, so the broker
// delivers it again.
TEST_F(IntakeTest, AMessageTheJournalCannotTakeIsHeldUntilTheConnectionIsLost) {
  intake_->OnConnecting();
  BreakJournal();
  std::atomic<bool> returned{false};
  std::thread paho([&] {
    intake_->OnMessage("sensors/d1/t", "21.5", 1, false);
    returned = true;
  });
  ASSERT_TRUE(WaitFor([&] { return metrics_.journal_failures.load() >= 2; }));
  EXPECT_FALSE(returned.load()) << "held while the journal fails";
  EXPECT_TRUE(intake_->Stop()) << "a message is held: the connection must not be closed";
  EXPECT_FALSE(returned.load()) << "stopping, but the connection is open: an ack would go out";
  intake_->OnConnectionClosed();
  paho.join();
  EXPECT_TRUE(Queued().empty());
  EXPECT_EQ(metrics_.readings_total.load(), 0u);
  RestoreJournal();
  EXPECT_EQ(journal_->LastSeq(), 0);
}

TEST_F(IntakeTest, StopWithNothingHeldLetsTheConnectionClose) {
  intake_->OnConnecting();
  intake_->OnMessage("sensors/d1/t", "21.5", 1, false);
  EXPECT_FALSE(intake_->Stop());
  // Until the connection is closed, what arrives is journaled and queued as before.
  intake_->OnMessage("sensors/d1/t", "21.5", 2, false);
  EXPECT_EQ(journal_->LastSeq(), 2);
  EXPECT_EQ(Queued().size(), 2u);
}

TEST_F(IntakeTest, AMessageHeldWhenTheConnectionIsLostIsLetGoAndTheNextOneIsJournaled) {
  intake_->OnConnecting();
  BreakJournal();
  std::thread paho([&] { intake_->OnMessage("sensors/d1/t", "21.5", 1, false); });
  ASSERT_TRUE(WaitFor([&] { return metrics_.journal_failures.load() >= 1; }));
  intake_->OnConnectionClosed();
  paho.join();
  EXPECT_TRUE(Queued().empty());
  RestoreJournal();
  intake_->OnConnecting();
  intake_->OnMessage("sensors/d1/t", "21.5", 1, true);  // the broker's redelivery
  EXPECT_EQ(Queued().size(), 1u);
  EXPECT_EQ(journal_->LastSeq(), 1);
}

}  // namespace
}  // namespace vigil::agent
