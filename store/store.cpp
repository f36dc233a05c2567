#include "store/store.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>

#include "store/sqlite.h"

namespace vigil::store {
namespace {

// All SQL of vigil, in one place.
constexpr int kSchemaVersion = 1;
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
  rule  TEXT NOT NULL,
  key   TEXT NOT NULL,
  bytes BLOB NOT NULL,
  PRIMARY KEY (rule, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  uplink     TEXT NOT NULL,
  event_id   TEXT NOT NULL,
  kind       TEXT NOT NULL,
  rule       TEXT NOT NULL,
  json       TEXT NOT NULL,
  event_time INTEGER NOT NULL,
  created    INTEGER NOT NULL,
  attempts   INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  dead       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_by_uplink ON outbox (uplink, dead, seq);
CREATE TABLE IF NOT EXISTS ticks (
  seq   INTEGER PRIMARY KEY,
  after INTEGER NOT NULL,
  now   INTEGER NOT NULL
);
)sql";

constexpr const char* kUpsertState =
    "INSERT INTO state (rule, key, bytes) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (rule, key) DO UPDATE SET bytes = excluded.bytes";
constexpr const char* kDeleteState = "DELETE FROM state WHERE rule = ?1 AND key = ?2";
constexpr const char* kSelectState = "SELECT rule, key, bytes FROM state ORDER BY rule, key";
constexpr const char* kInsertOutbox =
    "INSERT INTO outbox (uplink, event_id, kind, rule, json, event_time, created) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* kSelectPending =
    "SELECT seq, uplink, event_id, json, created, attempts, last_error FROM outbox "
    "WHERE uplink = ?1 AND dead = 0 ORDER BY seq LIMIT ?2";
constexpr const char* kDeleteRow = "DELETE FROM outbox WHERE uplink = ?1 AND seq = ?2";
constexpr const char* kFailRow =
    "UPDATE outbox SET attempts = attempts + 1, last_error = ?3 WHERE uplink = ?1 AND seq = ?2";
constexpr const char* kDeadRow =
    "UPDATE outbox SET dead = 1, attempts = attempts + 1, last_error = ?3 "
    "WHERE uplink = ?1 AND seq = ?2";
constexpr const char* kList =
    "SELECT seq, uplink, event_id, json, created, attempts, last_error FROM outbox "
    "WHERE dead = ?1 ORDER BY seq LIMIT ?2";
constexpr const char* kRetryDead =
    "UPDATE outbox SET dead = 0, attempts = 0 WHERE dead = 1 AND (?1 = '' OR uplink = ?1)";
constexpr const char* kPurge = "DELETE FROM outbox WHERE dead = ?1 AND (?2 = '' OR uplink = ?2)";
constexpr const char* kPosition = "SELECT value FROM meta WHERE name = ?1";
constexpr const char* kSetPosition = "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)";
constexpr const char* kInsertTick = "INSERT INTO ticks (after, now) VALUES (?1, ?2)";
constexpr const char* kClearTicks = "DELETE FROM ticks";
constexpr const char* kSelectTicks = "SELECT after, now FROM ticks ORDER BY seq";
constexpr const char* kDropExpired = "DELETE FROM outbox WHERE created < ?1";
constexpr const char* kShiftCreated = "UPDATE outbox SET created = created + ?1";
// The oldest pending events of kind ?1 (by their first row) while the bytes of the events
// before them are below ?2; ?3 is kOutboxRowOverhead. Window functions: SQLite 3.25,
// RETURNING: 3.35.
constexpr const char* kDropOldest =
    "DELETE FROM outbox WHERE dead = 0 AND event_id IN (SELECT event_id FROM ("
    "SELECT event_id, SUM(SUM(LENGTH(CAST(json AS BLOB)) + ?3)) OVER (ORDER BY MIN(seq) ROWS "
    "UNBOUNDED PRECEDING) - SUM(LENGTH(CAST(json AS BLOB)) + ?3) AS before "
    "FROM outbox WHERE kind = ?1 AND dead = 0 GROUP BY event_id) WHERE before < ?2) "
    "RETURNING LENGTH(CAST(json AS BLOB)) + ?3";
// The oldest dead letters (by seq) while the bytes of those before them are below ?1.
constexpr const char* kDropOldestDead =
    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM (SELECT seq, SUM(LENGTH(CAST(json AS "
    "BLOB)) + ?2) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) - (LENGTH(CAST(json AS BLOB)) + "
    "?2) AS before FROM outbox WHERE dead = 1) WHERE before < ?1) "
    "RETURNING LENGTH(CAST(json AS BLOB)) + ?2";
constexpr const char* kMeasureOutbox =
    "SELECT dead, COUNT(*), IFNULL(SUM(LENGTH(CAST(json AS BLOB))), 0) FROM outbox GROUP BY dead";
constexpr const char* kStateBytes =
    "SELECT IFNULL(SUM(LENGTH(CAST(rule AS BLOB)) + LENGTH(CAST(key AS BLOB)) + LENGTH(bytes)), 0) "
    "FROM state";
constexpr const char* kCounts =
    "SELECT uplink, SUM(dead = 0), SUM(dead = 1), MIN(CASE WHEN dead = 0 THEN created END) "
    "FROM outbox GROUP BY uplink ORDER BY uplink";

OutboxRow ReadRow(const Statement& s) {
  OutboxRow r;
  r.seq = s.Int(0);
  r.uplink = s.Text(1);
  r.event_id = s.Text(2);
  r.json = s.Text(3);
  r.created = Millis(s.Int(4));
  r.attempts = static_cast<int>(s.Int(5));
  r.last_error = s.Text(6);
  return r;
}

}  // namespace

struct Store::Impl : Database {
  Status Exec(const char* sql) { return store::Exec(db, sql); }

  // Runs `sql` once per seq of `seqs` in one transaction.
  Status ForEachSeq(const char* sql, const std::string& uplink,
                    const std::vector<std::int64_t>& seqs, const std::string* text) {
    std::lock_guard lock(mu);
    if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    Statement st(db, sql);
    for (std::int64_t seq : seqs) {
      st.Bind(1, uplink).Bind(2, seq);
      if (text != nullptr) st.Bind(3, *text);
      st.Step();
      if (!st.ok()) {
        std::string e = st.error();
        (void)Exec("ROLLBACK");
        return Status::Error(e);
      }
      st.Reset();
    }
    return Exec("COMMIT");
  }

  // A DELETE ... RETURNING <row bytes>: the rows and bytes it removed.
  Result<Dropped> Drop(const char* sql, const std::function<void(Statement&)>& bind) {
    std::lock_guard lock(mu);
    Statement st(db, sql);
    bind(st);
    Dropped dropped;
    while (st.Step()) {
      ++dropped.rows;
      dropped.bytes += static_cast<std::uint64_t>(st.Int(0));
    }
    if (!st.ok()) return Result<Dropped>::Error(st.error());
    return dropped;
  }

  // A journal position kept in meta (0 before any).
  Result<std::int64_t> Position(const char* name) {
    std::lock_guard lock(mu);
    Statement st(db, kPosition);
    st.Bind(1, name);
    if (st.Step()) return static_cast<std::int64_t>(std::atoll(st.Text(0).c_str()));
    if (!st.ok()) return Result<std::int64_t>::Error(st.error());
    return std::int64_t{0};
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                           const config::StoreConfig& options, Access access) {
  using R = Result<std::unique_ptr<Store>>;
  auto opened = OpenDatabase(path, options, kSchema, kSchemaVersion, {}, access);
  if (!opened.ok()) return R::Error(opened.error());
  auto impl = std::make_unique<Impl>();
  impl->Adopt(path, std::move(opened.value()));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

const std::string& Store::moved_aside() const { return impl_->moved_aside; }
const std::string& Store::damage() const { return impl_->damage; }

Status Store::Commit(const CommitBatch& batch, Millis now) {
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db;
  if (Status s = impl_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto fail = [&](const Statement& st) {
    std::string e = st.error();
    (void)impl_->Exec("ROLLBACK");
    return Status::Error(e);
  };
  {
    Statement upsert(db, kUpsertState);
    Statement erase(db, kDeleteState);
    auto write = [&](const std::vector<StateRow>& rows) -> Statement* {
      for (const StateRow& row : rows) {
        Statement& st = row.bytes ? upsert : erase;
        st.BindRef(1, row.rule).BindRef(2, row.key);
        if (row.bytes) st.BindBlobRef(3, *row.bytes);
        st.Step();
        if (!st.ok()) return &st;
        st.Reset();
      }
      return nullptr;
    };
    if (Statement* failed = write(batch.state)) return fail(*failed);
    std::vector<StateRow> chunk;
    while (batch.more_state) {
      chunk.clear();
      if (!batch.more_state(&chunk)) break;
      if (Statement* failed = write(chunk)) return fail(*failed);
    }
    Statement insert(db, kInsertOutbox);
    for (const OutboxEvent& e : batch.events) {
      for (const std::string& uplink : e.uplinks) {
        insert.BindRef(1, uplink)
            .BindRef(2, e.event_id)
            .BindRef(3, rules::EventKindName(e.kind))
            .BindRef(4, e.rule)
            .BindRef(5, e.json)
            .Bind(6, static_cast<std::int64_t>(e.time.count()))
            .Bind(7, static_cast<std::int64_t>(now.count()));
        insert.Step();
        if (!insert.ok()) return fail(insert);
        insert.Reset();
      }
    }
    for (const auto& [name, value] : {std::pair{"journal_position", batch.journal_position},
                                      std::pair{"events_position", batch.events_position}}) {
      if (!value) continue;
      Statement position(db, kSetPosition);
      position.Bind(1, name).Bind(2, std::to_string(*value)).Step();
      if (!position.ok()) return fail(position);
    }
    if (batch.timers) {
      Statement timers(db, kSetPosition);
      timers.Bind(1, "timers").Bind(2, *batch.timers).Step();
      if (!timers.ok()) return fail(timers);
      Statement clear(db, kClearTicks);
      clear.Step();
      if (!clear.ok()) return fail(clear);
    }
    if (!batch.ticks.empty()) {
      Statement tick(db, kInsertTick);
      for (const Tick& t : batch.ticks) {
        tick.Bind(1, t.after).Bind(2, std::int64_t{t.now.count()}).Step();
        if (!tick.ok()) return fail(tick);
        tick.Reset();
      }
    }
  }
  return impl_->Exec("COMMIT");
}

Status Store::LoadState(
    const std::function<void(const std::string&, const std::string&, const std::string&)>& fn) {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kSelectState);
  while (st.Step()) fn(st.Text(0), st.Text(1), st.Text(2));
  return st.ok() ? Status::Ok() : Status::Error(st.error());
}

Result<std::vector<OutboxRow>> Store::Pending(const std::string& uplink, std::size_t limit) {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kSelectPending);
  st.Bind(1, uplink).Bind(2, static_cast<std::int64_t>(limit));
  std::vector<OutboxRow> rows;
  while (st.Step()) rows.push_back(ReadRow(st));
  if (!st.ok()) return Result<std::vector<OutboxRow>>::Error(st.error());
  return rows;
}

Status Store::Ack(const std::string& uplink, const std::vector<std::int64_t>& seqs) {
  return impl_->ForEachSeq(kDeleteRow, uplink, seqs, nullptr);
}

Status Store::RecordFailure(const std::string& uplink, const std::vector<std::int64_t>& seqs,
                            const std::string& error) {
  return impl_->ForEachSeq(kFailRow, uplink, seqs, &error);
}

Status Store::MoveToDead(const std::string& uplink, const std::vector<std::int64_t>& seqs,
                         const std::string& reason) {
  return impl_->ForEachSeq(kDeadRow, uplink, seqs, &reason);
}

Result<std::vector<OutboxRow>> Store::List(bool dead, std::size_t limit) {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kList);
  st.Bind(1, std::int64_t{dead ? 1 : 0}).Bind(2, static_cast<std::int64_t>(limit));
  std::vector<OutboxRow> rows;
  while (st.Step()) rows.push_back(ReadRow(st));
  if (!st.ok()) return Result<std::vector<OutboxRow>>::Error(st.error());
  return rows;
}

Result<std::int64_t> Store::RetryDead(const std::string& uplink) {
  return impl_->Change(kRetryDead, [&](Statement& st) { st.Bind(1, uplink); });
}

Result<std::int64_t> Store::Purge(bool dead, const std::string& uplink) {
  return impl_->Change(
      kPurge, [&](Statement& st) { st.Bind(1, std::int64_t{dead ? 1 : 0}).Bind(2, uplink); });
}

Result<std::int64_t> Store::JournalPosition() { return impl_->Position("journal_position"); }

Result<std::int64_t> Store::EventsPosition() {
  auto state = impl_->Position("journal_position");
  auto events = impl_->Position("events_position");
  if (!state.ok()) return state;
  if (!events.ok()) return events;
  return std::max(state.value(), events.value());
}

Result<std::string> Store::Timers() {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kPosition);
  st.Bind(1, "timers");
  if (st.Step()) return st.Text(0);
  if (!st.ok()) return Result<std::string>::Error(st.error());
  return std::string();
}

Result<std::vector<Tick>> Store::Ticks() {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kSelectTicks);
  std::vector<Tick> ticks;
  while (st.Step()) ticks.push_back({st.Int(0), Millis(st.Int(1))});
  if (!st.ok()) return Result<std::vector<Tick>>::Error(st.error());
  return ticks;
}

Status Store::ShiftCreated(Millis by) {
  auto changed =
      impl_->Change(kShiftCreated, [&](Statement& st) { st.Bind(1, std::int64_t{by.count()}); });
  return changed.ok() ? Status::Ok() : Status::Error(changed.error());
}

Result<std::int64_t> Store::DropExpired(Millis before) {
  return impl_->Change(kDropExpired,
                       [&](Statement& st) { st.Bind(1, std::int64_t{before.count()}); });
}

Result<Dropped> Store::DropOldest(rules::EventKind kind, std::uint64_t bytes) {
  const auto budget = static_cast<std::int64_t>(
      std::min<std::uint64_t>(bytes, std::numeric_limits<std::int64_t>::max()));
  return impl_->Drop(kDropOldest, [&](Statement& st) {
    st.BindRef(1, rules::EventKindName(kind))
        .Bind(2, budget)
        .Bind(3, static_cast<std::int64_t>(kOutboxRowOverhead));
  });
}

Result<Dropped> Store::DropOldestDead(std::uint64_t bytes) {
  const auto budget = static_cast<std::int64_t>(
      std::min<std::uint64_t>(bytes, std::numeric_limits<std::int64_t>::max()));
  return impl_->Drop(kDropOldestDead, [&](Statement& st) {
    st.Bind(1, budget).Bind(2, static_cast<std::int64_t>(kOutboxRowOverhead));
  });
}

Result<OutboxSize> Store::MeasureOutbox() {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kMeasureOutbox);
  OutboxSize size;
  while (st.Step()) {
    const std::int64_t rows = st.Int(1);
    const auto bytes = static_cast<std::uint64_t>(st.Int(2)) +
                       static_cast<std::uint64_t>(rows) * kOutboxRowOverhead;
    if (st.Int(0) != 0) {
      size.dead_rows = rows;
      size.dead_bytes = bytes;
    } else {
      size.pending_rows = rows;
      size.pending_bytes = bytes;
    }
  }
  if (!st.ok()) return Result<OutboxSize>::Error(st.error());
  return size;
}

Result<std::uint64_t> Store::StateBytes() {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kStateBytes);
  if (st.Step()) return static_cast<std::uint64_t>(st.Int(0));
  return Result<std::uint64_t>::Error(st.ok() ? "no answer" : st.error());
}

int Store::SynchronousLevel() { return impl_->SynchronousLevel(); }
std::uint64_t Store::SizeBytes() const { return impl_->SizeBytes(); }
void Store::Vacuum() { impl_->Vacuum(); }

Result<std::vector<OutboxCounts>> Store::Counts() {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kCounts);
  std::vector<OutboxCounts> out;
  while (st.Step()) out.push_back({st.Text(0), st.Int(1), st.Int(2), Millis(st.Int(3))});
  if (!st.ok()) return Result<std::vector<OutboxCounts>>::Error(st.error());
  return out;
}

}  // namespace vigil::store
