#include "store/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>

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
constexpr const char* kCounts =
    "SELECT uplink, SUM(dead = 0), SUM(dead = 1), MIN(CASE WHEN dead = 0 THEN created END) "
    "FROM outbox GROUP BY uplink ORDER BY uplink";

// A prepared statement, finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK || rc_ == SQLITE_ROW || rc_ == SQLITE_DONE; }
  Statement& Bind(int i, const std::string& s) {
    Check(sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& BindBlob(int i, const std::string& s) {
    Check(sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& Bind(int i, std::int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  // True while a row is available; false at the end or on error (see ok()).
  bool Step() {
    if (!ok()) return false;
    rc_ = sqlite3_step(stmt_);
    return rc_ == SQLITE_ROW;
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (rc_ == SQLITE_DONE || rc_ == SQLITE_ROW) rc_ = SQLITE_OK;
  }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string error() const { return sqlite3_errmsg(db_); }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && ok()) rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

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

struct Store::Impl {
  sqlite3* db = nullptr;
  std::mutex mu;  // guards db: one writer, and every reader on the same connection

  ~Impl() { sqlite3_close(db); }

  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string message = err != nullptr ? err : sqlite3_errmsg(db);
      sqlite3_free(err);
      return Status::Error(message);
    }
    return Status::Ok();
  }

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
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                           const config::StoreConfig& options) {
  using R = Result<std::unique_ptr<Store>>;
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return R::Error("cannot create " + dir.string() + ": " + ec.message());
  auto impl = std::make_unique<Impl>();
  mode_t old_mask = umask(077);  // the database and its -wal/-shm files: mode 0600
  int rc =
      sqlite3_open_v2(path.c_str(), &impl->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  umask(old_mask);
  if (rc != SQLITE_OK) {
    return R::Error(impl->db != nullptr ? sqlite3_errmsg(impl->db) : "cannot open database");
  }
  chmod(path.c_str(), 0600);
  sqlite3_busy_timeout(impl->db, 5000);
  const char* sync = options.sync == config::StoreConfig::Sync::kFull
                         ? "PRAGMA synchronous = FULL"
                         : "PRAGMA synchronous = NORMAL";
  for (const char* sql : {"PRAGMA journal_mode = WAL", sync, "PRAGMA foreign_keys = ON", kSchema}) {
    if (Status s = impl->Exec(sql); !s.ok()) return R::Error(s.message());
  }
  {
    Statement version(impl->db, "SELECT value FROM meta WHERE name = 'schema_version'");
    if (version.Step()) {
      int v = std::atoi(version.Text(0).c_str());
      if (v > kSchemaVersion) {
        return R::Error("the database has schema version " + std::to_string(v) +
                        ", newer than this vigil understands (" + std::to_string(kSchemaVersion) +
                        ")");
      }
    } else if (!version.ok()) {
      return R::Error(version.error());
    }
  }
  Statement set_version(impl->db,
                        "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?1)");
  set_version.Bind(1, std::to_string(kSchemaVersion)).Step();
  if (!set_version.ok()) return R::Error(set_version.error());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

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
    for (const StateRow& row : batch.state) {
      Statement& st = row.bytes ? upsert : erase;
      st.Bind(1, row.rule).Bind(2, row.key);
      if (row.bytes) st.BindBlob(3, *row.bytes);
      st.Step();
      if (!st.ok()) return fail(st);
      st.Reset();
    }
    Statement insert(db, kInsertOutbox);
    for (const OutboxEvent& e : batch.events) {
      for (const std::string& uplink : e.uplinks) {
        insert.Bind(1, uplink)
            .Bind(2, e.event_id)
            .Bind(3, e.kind)
            .Bind(4, e.rule)
            .Bind(5, e.json)
            .Bind(6, static_cast<std::int64_t>(e.time.count()))
            .Bind(7, static_cast<std::int64_t>(now.count()));
        insert.Step();
        if (!insert.ok()) return fail(insert);
        insert.Reset();
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
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kRetryDead);
  st.Bind(1, uplink).Step();
  if (!st.ok()) return Result<std::int64_t>::Error(st.error());
  return static_cast<std::int64_t>(sqlite3_changes(impl_->db));
}

Result<std::int64_t> Store::Purge(bool dead, const std::string& uplink) {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kPurge);
  st.Bind(1, std::int64_t{dead ? 1 : 0}).Bind(2, uplink).Step();
  if (!st.ok()) return Result<std::int64_t>::Error(st.error());
  return static_cast<std::int64_t>(sqlite3_changes(impl_->db));
}

Result<std::vector<OutboxCounts>> Store::Counts() {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kCounts);
  std::vector<OutboxCounts> out;
  while (st.Step()) out.push_back({st.Text(0), st.Int(1), st.Int(2), Millis(st.Int(3))});
  if (!st.ok()) return Result<std::vector<OutboxCounts>>::Error(st.error());
  return out;
}

}  // namespace vigil::store
