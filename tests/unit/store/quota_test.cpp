// TrimToQuota's order: the journal the checkpoint covers, then dead letters (oldest first, only
// as many as needed), then the oldest undelivered aggregates, then alerts, never below the
// outbox's floor. `used` is counted from the rows here (no file sizes), so every figure is exact.

#include "store/quota.h"
#include "tests/unit/test_support.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace vigil::store {
namespace {

constexpr std::uint64_t kRowBytes = 200;      // each outbox row: 136 bytes of JSON + the overhead
constexpr std::uint64_t kMessageBytes = 100;  // each journal message, as `used` counts it
constexpr std::uint64_t kState = 10'000;      // what cannot be dropped

class QuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_quota_test");
    auto s = Store::Open((dir_ / "vigil.db").string(), config::StoreConfig{});
    ASSERT_TRUE(s.ok()) << s.error();
    store_ = std::move(s.value());
    auto j = Journal::Open((dir_ / "journal.db").string(), config::StoreConfig{});
    ASSERT_TRUE(j.ok()) << j.error();
    journal_ = std::move(j.value());

    // 10 dead letters d0..d9 (uplink "bad"), then 10 aggregates a0..a9 for "bad" and "good"
    // (20 rows), then 5 alerts x0..x4 for "bad".
    Commit("d", 10, rules::EventKind::kAggregate, {"bad"});
    auto dead = store_->Pending("bad", 100);
    ASSERT_TRUE(dead.ok());
    std::vector<std::int64_t> seqs;
    for (const auto& r : dead.value()) seqs.push_back(r.seq);
    ASSERT_TRUE(store_->MoveToDead("bad", seqs, "HTTP 400").ok());
    Commit("a", 10, rules::EventKind::kAggregate, {"bad", "good"});
    Commit("x", 5, rules::EventKind::kAlert, {"bad"});
    // 10 journal messages; the checkpoint covers the first 4.
    std::vector<JournalMessage> ms(10, JournalMessage{0, Millis(1), "s/d/t", "{}"});
    std::vector<JournalMessage*> ptrs;
    for (auto& m : ms) ptrs.push_back(&m);
    ASSERT_TRUE(journal_->Append(ptrs).ok());
    up_to_ = ms[3].seq;
    ASSERT_EQ(Used(), kState + 10 * kRowBytes + 25 * kRowBytes + 10 * kMessageBytes);
  }
  void TearDown() override {
    store_.reset();
    journal_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Commit(const std::string& prefix, int n, rules::EventKind kind,
              std::vector<std::string> uplinks) {
    CommitBatch batch;
    for (int i = 0; i < n; ++i) {
      std::string id = prefix + std::to_string(i);
      std::string json = "{\"id\":\"" + id + "\",\"pad\":\"";
      json += std::string(136 - json.size() - 2, 'p') + "\"}";
      ASSERT_EQ(json.size() + kOutboxRowOverhead, kRowBytes);
      batch.events.push_back({id, kind, "r", json, Millis(i), uplinks});
    }
    ASSERT_TRUE(store_->Commit(batch, Millis(1)).ok());
  }

  std::uint64_t JournalRows() {
    std::uint64_t n = 0;
    EXPECT_TRUE(journal_
                    ->Read(0, Millis(0),
                           [&](const JournalMessage&) {
                             ++n;
                             return true;
                           })
                    .ok());
    return n;
  }

  // State, plus the outbox as MeasureOutbox counts it, plus the journal's messages.
  std::uint64_t Used() {
    auto size = store_->MeasureOutbox();
    EXPECT_TRUE(size.ok());
    return kState + size.value().pending_bytes + size.value().dead_bytes +
           JournalRows() * kMessageBytes;
  }

  QuotaDrops Trim(std::uint64_t target, std::uint64_t floor) {
    return TrimToQuota(*store_, *journal_, {target, floor, up_to_}, [this] { return Used(); });
  }

  std::vector<std::string> Ids(bool dead, const std::string& uplink = "") {
    std::vector<std::string> ids;
    auto rows = store_->List(dead, 1000);
    EXPECT_TRUE(rows.ok());
    if (!rows.ok()) return ids;
    for (const auto& r : rows.value()) {
      if (uplink.empty() || r.uplink == uplink) ids.push_back(r.event_id);
    }
    return ids;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Journal> journal_;
  std::int64_t up_to_ = 0;
};

TEST_F(QuotaTest, TheCoveredJournalThenOnlyTheOldestDeadLettersNeeded) {
  const std::uint64_t start = Used();
  // 4 covered journal messages (400) and 3 dead letters (600) make the room.
  QuotaDrops drops = Trim(start - 1000, 0);
  EXPECT_EQ(drops.journal, 4u);
  EXPECT_EQ(drops.dead_letters, 3u);
  EXPECT_EQ(drops.aggregates, 0u);
  EXPECT_EQ(drops.alerts, 0u);
  EXPECT_FALSE(drops.at_floor);
  EXPECT_TRUE(drops.errors.empty());
  EXPECT_EQ(Ids(true), (std::vector<std::string>{"d3", "d4", "d5", "d6", "d7", "d8", "d9"}));
  EXPECT_EQ(Ids(false).size(), 25u) << "no undelivered event touched";
  EXPECT_EQ(JournalRows(), 6u) << "the journal after the checkpoint stays";
}

TEST_F(QuotaTest, EveryDeadLetterGoesBeforeTheFirstUndeliveredEvent) {
  const std::uint64_t start = Used();
  // The journal (400), every dead letter (2000), then a0, a1, a2 (two rows each: 1200).
  QuotaDrops drops = Trim(start - 3600, 0);
  EXPECT_EQ(drops.journal, 4u);
  EXPECT_EQ(drops.dead_letters, 10u);
  EXPECT_EQ(drops.aggregates, 6u) << "three events, every routed uplink's row";
  EXPECT_EQ(drops.alerts, 0u);
  EXPECT_TRUE(Ids(true).empty());
  EXPECT_EQ(Ids(false, "good"),
            (std::vector<std::string>{"a3", "a4", "a5", "a6", "a7", "a8", "a9"}));
  EXPECT_EQ(Ids(false, "bad").front(), "a3");
  EXPECT_EQ(Ids(false, "bad").size(), 12u) << "a3..a9 and the five alerts";
}

TEST_F(QuotaTest, AlertsGoOnlyAfterEveryAggregate) {
  // Room for the state, the 6 journal messages the checkpoint does not cover (600) and three
  // outbox rows (600): every aggregate (4 000) and two of the five alerts go.
  QuotaDrops drops = Trim(kState + 1200, 0);
  EXPECT_EQ(drops.dead_letters, 10u);
  EXPECT_EQ(drops.aggregates, 20u);
  EXPECT_EQ(drops.alerts, 2u);
  EXPECT_EQ(Ids(false), (std::vector<std::string>{"x2", "x3", "x4"}));
}

TEST_F(QuotaTest, TheOutboxKeepsItsFloorOfTheNewestEvents) {
  // A target below what cannot be dropped (state alone takes more): everything droppable goes
  // but the newest 3 000 bytes of undelivered events.
  QuotaDrops drops = Trim(kState / 2, 3000);
  EXPECT_EQ(drops.journal, 4u);
  EXPECT_EQ(drops.dead_letters, 10u);
  EXPECT_EQ(drops.aggregates, 10u) << "a0..a4, both rows each";
  EXPECT_EQ(drops.alerts, 0u);
  EXPECT_TRUE(drops.at_floor) << "the state alone is over the target: said so";
  EXPECT_EQ(store_->MeasureOutbox().value().pending_bytes, 3000u);
  EXPECT_EQ(Ids(false, "good"), (std::vector<std::string>{"a5", "a6", "a7", "a8", "a9"}));
  // A second trim (the next commit) drops nothing more.
  QuotaDrops again = Trim(kState / 2, 3000);
  EXPECT_EQ(again.aggregates + again.alerts + again.dead_letters + again.journal, 0u);
  EXPECT_TRUE(again.at_floor);
}

}  // namespace
}  // namespace vigil::store
