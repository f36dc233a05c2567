#include "store/sqlite.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

namespace vigil::store {

Statement::Statement(sqlite3* db, const char* sql) : db_(db) {
  rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
}
Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::BindBytes(int i, const std::string& s, bool blob, bool copy) {
  const int n = static_cast<int>(s.size());
  auto lifetime = copy ? SQLITE_TRANSIENT : SQLITE_STATIC;
  Check(blob ? sqlite3_bind_blob(stmt_, i, s.data(), n, lifetime)
             : sqlite3_bind_text(stmt_, i, s.data(), n, lifetime));
  return *this;
}
Statement& Statement::Bind(int i, std::int64_t v) {
  Check(sqlite3_bind_int64(stmt_, i, v));
  return *this;
}
bool Statement::Step() {
  if (!ok()) return false;
  rc_ = sqlite3_step(stmt_);
  return rc_ == SQLITE_ROW;
}
void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (rc_ == SQLITE_DONE || rc_ == SQLITE_ROW) rc_ = SQLITE_OK;
}
void Statement::Clear() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (stmt_ != nullptr) rc_ = SQLITE_OK;
}
std::string Statement::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string()
                      : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
}
std::int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return Status::Error(message);
  }
  return Status::Ok();
}

namespace {

// Opens and checks one file; on any problem closes it and says why.
Status TryOpen(const std::string& path, const config::StoreConfig& options, const char* schema,
               int version, const Migrations& migrations, sqlite3** out) {
  sqlite3* db = nullptr;
  mode_t old_mask = umask(077);  // the database and its -wal/-shm files: mode 0600
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  umask(old_mask);
  auto fail = [&](std::string why) {
    // _v2: the handle closes once the statements still in scope are finalized.
    sqlite3_close_v2(db);
    return Status::Error(std::move(why));
  };
  if (rc != SQLITE_OK) return fail(db != nullptr ? sqlite3_errmsg(db) : "cannot open");
  chmod(path.c_str(), 0600);
  sqlite3_busy_timeout(db, 5000);
  {
    Statement check(db, "PRAGMA quick_check");
    if (!check.Step()) return fail(check.error());
    if (check.Text(0) != "ok") return fail("quick_check: " + check.Text(0));
  }
  const char* sync = options.sync == config::StoreConfig::Sync::kFull
                         ? "PRAGMA synchronous = FULL"
                         : "PRAGMA synchronous = NORMAL";
  // The WAL is part of the quota: keep it to about a sixteenth of store.max_bytes.
  const std::uint64_t wal_bytes =
      std::clamp<std::uint64_t>(options.max_bytes / 16, 64 * 1024, 4 * 1024 * 1024);
  const std::string wal_limit = "PRAGMA journal_size_limit = " + std::to_string(wal_bytes);
  const std::string wal_pages = "PRAGMA wal_autocheckpoint = " + std::to_string(wal_bytes / 4096);
  for (const char* sql : {"PRAGMA auto_vacuum = INCREMENTAL", "PRAGMA journal_mode = WAL", sync,
                          wal_limit.c_str(), wal_pages.c_str(),
                          "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, "
                          "value TEXT NOT NULL) WITHOUT ROWID"}) {
    if (Status s = Exec(db, sql); !s.ok()) return fail(s.message());
  }
  int found = 0;  // 0: a new file
  {
    Statement v(db, "SELECT value FROM meta WHERE name = 'schema_version'");
    if (v.Step()) {
      found = std::atoi(v.Text(0).c_str());
    } else if (!v.ok()) {
      return fail(v.error());
    }
  }
  if (found > version) {
    return fail("schema version " + std::to_string(found) + " is newer than this vigil's (" +
                std::to_string(version) + ")");
  }
  if (found > 0 && static_cast<std::size_t>(version - 1) > migrations.size()) {
    return fail("no migration from schema version " + std::to_string(found));
  }
  // Forward migrations from the stored version; a new file gets the current schema.
  for (int v = found; v < version && found > 0; ++v) {
    const std::string step = "BEGIN IMMEDIATE; " + migrations[static_cast<std::size_t>(v - 1)] +
                             "; UPDATE meta SET value = '" + std::to_string(v + 1) +
                             "' WHERE name = 'schema_version'; COMMIT;";
    if (Status s = Exec(db, step.c_str()); !s.ok()) {
      (void)Exec(db, "ROLLBACK");
      return fail("migration to schema version " + std::to_string(v + 1) + ": " + s.message());
    }
  }
  if (Status s = Exec(db, schema); !s.ok()) return fail(s.message());
  Statement set(db, "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?1)");
  set.Bind(1, std::to_string(version)).Step();
  if (!set.ok()) return fail(set.error());
  *out = db;
  return Status::Ok();
}

std::string Timestamp() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

Result<OpenedDatabase> OpenDatabase(const std::string& path, const config::StoreConfig& options,
                                    const char* schema, int version, const Migrations& migrations) {
  using R = Result<OpenedDatabase>;
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return R::Error("cannot create " + dir.string() + ": " + ec.message());
  OpenedDatabase opened;
  Status first = TryOpen(path, options, schema, version, migrations, &opened.db);
  if (first.ok()) return opened;
  if (!std::filesystem::exists(path)) return R::Error(first.message());
  // Damaged: keep it for inspection, start afresh.
  opened.damage = first.message();
  opened.moved_aside = path + ".damaged-" + Timestamp();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::path from = path + suffix;
    if (std::filesystem::exists(from, ec)) {
      std::filesystem::rename(from, opened.moved_aside + suffix, ec);
      if (ec) return R::Error("cannot move damaged " + from.string() + " aside: " + ec.message());
    }
  }
  Status fresh = TryOpen(path, options, schema, version, migrations, &opened.db);
  if (!fresh.ok()) return R::Error(fresh.message());
  return opened;
}

void Database::Adopt(const std::string& file, OpenedDatabase opened) {
  path = file;
  db = opened.db;
  moved_aside = std::move(opened.moved_aside);
  damage = std::move(opened.damage);
}

Result<std::int64_t> Database::Change(const char* sql,
                                      const std::function<void(Statement&)>& bind) {
  std::lock_guard lock(mu);
  Statement st(db, sql);
  bind(st);
  st.Step();
  if (!st.ok()) return Result<std::int64_t>::Error(st.error());
  return static_cast<std::int64_t>(sqlite3_changes(db));
}

int Database::SynchronousLevel() {
  std::lock_guard lock(mu);
  Statement st(db, "PRAGMA synchronous");
  return st.Step() ? static_cast<int>(st.Int(0)) : -1;
}

void Database::Vacuum() {
  std::lock_guard lock(mu);
  (void)Exec(db, "PRAGMA incremental_vacuum");
  (void)Exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

std::uint64_t DatabaseBytes(const std::string& path) {
  std::uint64_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    struct stat st {};
    if (stat((path + suffix).c_str(), &st) == 0) total += static_cast<std::uint64_t>(st.st_size);
  }
  return total;
}

}  // namespace vigil::store
