#include "store/sqlite.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
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

bool IsDamage(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

// Why an SQLite call failed, in an operator's words, with SQLite's own message (and the
// system's, for the calls that touch the disk).
std::string Describe(sqlite3* db, int rc, std::chrono::milliseconds busy_timeout) {
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int os_error = db != nullptr ? sqlite3_system_errno(db) : 0;
  std::string what;
  bool system = true;  // whether the system's error says more
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      what = "database is locked by another process (still locked after " +
             std::to_string(busy_timeout.count()) + " ms)";
      system = false;
      break;
    case SQLITE_FULL:
      what = "disk full";
      break;
    case SQLITE_READONLY:
      what = "read-only: the file or its file system cannot be written";
      break;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      what = "permission denied";
      break;
    case SQLITE_CANTOPEN:
      what = "cannot open the file (or its -wal/-shm next to it)";
      break;
    case SQLITE_IOERR:
      what = "I/O error";
      break;
    case SQLITE_NOMEM:
      what = "out of memory";
      system = false;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      what = "damaged";
      system = false;
      break;
    default:
      return detail;
  }
  std::string out = what + " (" + detail;
  if (system && os_error != 0) out += ": " + std::string(std::strerror(os_error));
  return out + ")";
}

bool OnReadOnlyFileSystem(const std::string& path) {
  struct statvfs fs {};
  return statvfs(path.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0;
}

// A file path as the path of a file: URI (RFC 3986 escapes for what is not unreserved or '/').
std::string UriPath(const std::string& path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : std::filesystem::absolute(path).string()) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// What one attempt to open a file gave: the connection, or why not.
struct Attempt {
  sqlite3* db = nullptr;
  bool damaged = false;  // only the file's bytes are to blame: it may be moved aside
  std::string why;
};

// Runs SQL without results; returns SQLite's result code.
int Run(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

// Opens and checks one file as `access` says; on any problem closes it and says why.
Attempt TryOpen(const std::string& path, const config::StoreConfig& options, const char* schema,
                int version, const Migrations& migrations, Access access,
                std::chrono::milliseconds busy_timeout) {
  sqlite3* db = nullptr;
  // _v2: the handle closes once the statements still in scope are finalized; with no
  // checkpoint, so a file that is refused is left exactly as it was.
  auto refuse = [&](std::string why, bool damaged = false) {
    if (db != nullptr) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_close_v2(db);
    return Attempt{nullptr, damaged, std::move(why)};
  };
  auto fail = [&](int rc, const std::string& context = "") {
    std::string why = Describe(db, rc, busy_timeout);
    return refuse(context.empty() ? why : context + ": " + why, IsDamage(rc));
  };
  int flags = SQLITE_OPEN_FULLMUTEX;
  if (access == Access::kReadOnly) {
    flags |= SQLITE_OPEN_READONLY;
  } else {
    flags |= SQLITE_OPEN_READWRITE;
    if (access == Access::kAgent) flags |= SQLITE_OPEN_CREATE;
  }
  std::string name = path;
  std::error_code ec;
  if (access == Access::kReadOnly && OnReadOnlyFileSystem(path) &&
      !std::filesystem::exists(path + "-wal", ec)) {
    // Nothing can change the file, no WAL holds rows it lacks, and SQLite cannot make the -wal
    // and -shm a reader of a WAL database needs there: read it as immutable (no locks, no
    // -wal, no -shm).
    flags |= SQLITE_OPEN_URI;
    name = "file:" + UriPath(path) + "?immutable=1";
  }
  mode_t old_mask = umask(077);  // the database and its -wal/-shm files: mode 0600
  int rc = sqlite3_open_v2(name.c_str(), &db, flags, nullptr);
  umask(old_mask);
  if (rc != SQLITE_OK) return fail(rc);
  sqlite3_extended_result_codes(db, 1);
  if (access == Access::kReadOnly) {
    // A reader never checkpoints, so it never writes the database file or its WAL.
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  } else if (sqlite3_db_readonly(db, "main") == 1) {
    // SQLite opens a file it cannot write read-only instead (a read-only file system).
    return refuse("read-only: the file or its file system cannot be written");
  }
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  // A 512 KiB page cache per connection (SQLite's default is 2 MiB): the agent's connections
  // write mostly appends and read back recent rows, and its memory is the gateway's.
  if (int r = Run(db, "PRAGMA cache_size = -512"); r != SQLITE_OK) return fail(r);
  if (access == Access::kAgent) {
    chmod(path.c_str(), 0600);
    Statement check(db, "PRAGMA quick_check");
    if (!check.Step()) return fail(check.ok() ? SQLITE_ERROR : check.code(), "quick_check");
    if (check.Text(0) != "ok") return refuse("quick_check: " + check.Text(0), /*damaged=*/true);
  }
  // The stored schema version: 0 for a file with no meta table yet (a new one).
  int found = 0;
  {
    Statement meta(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
    if (!meta.Step()) return fail(meta.ok() ? SQLITE_ERROR : meta.code());
    if (meta.Int(0) > 0) {
      Statement v(db, "SELECT value FROM meta WHERE name = 'schema_version'");
      if (v.Step()) {
        found = std::atoi(v.Text(0).c_str());
      } else if (!v.ok()) {
        return fail(v.code());
      }
    }
  }
  const std::string have = std::to_string(found);
  const std::string want = std::to_string(version);
  if (found > version) {
    return refuse("schema version " + have + " is newer than this vigil's (" + want +
                  "): upgrade vigil or move the file away");
  }
  if (access != Access::kAgent) {
    if (found == 0) return refuse("no schema version: not a vigil database");
    if (found < version) {
      return refuse("schema version " + have + " is older than this vigil's (" + want +
                    "): `vigil run` migrates it");
    }
    if (access == Access::kReadWrite) {
      // Settings of this connection only: nothing is written to the file.
      const char* sync = options.sync == config::StoreConfig::Sync::kFull
                             ? "PRAGMA synchronous = FULL"
                             : "PRAGMA synchronous = NORMAL";
      if (int r = Run(db, sync); r != SQLITE_OK) return fail(r);
    }
    return Attempt{db, false, ""};
  }
  if (found > 0 && static_cast<std::size_t>(version - 1) > migrations.size()) {
    return refuse("no migration from schema version " + have + " to " + want +
                  " in this vigil: use the vigil that wrote it, or move the file away");
  }
  const char* sync = options.sync == config::StoreConfig::Sync::kFull
                         ? "PRAGMA synchronous = FULL"
                         : "PRAGMA synchronous = NORMAL";
  // The WAL is part of the quota: keep it to about a sixteenth of store.max_bytes.
  const std::uint64_t wal_bytes = std::clamp<std::uint64_t>(
      options.max_bytes / 16, std::uint64_t{64} * 1024, std::uint64_t{4} * 1024 * 1024);
  const std::string wal_limit = "PRAGMA journal_size_limit = " + std::to_string(wal_bytes);
  const std::string wal_pages = "PRAGMA wal_autocheckpoint = " + std::to_string(wal_bytes / 4096);
  // On an existing file in WAL mode none of these writes (nor waits for a lock).
  for (const char* sql : {"PRAGMA auto_vacuum = INCREMENTAL", "PRAGMA journal_mode = WAL", sync,
                          wal_limit.c_str(), wal_pages.c_str()}) {
    if (int r = Run(db, sql); r != SQLITE_OK) return fail(r);
  }
  // Forward migrations from the stored version, each in its own transaction.
  for (int v = found; v < version && found > 0; ++v) {
    const std::string step = "BEGIN IMMEDIATE; " + migrations[static_cast<std::size_t>(v - 1)] +
                             "; UPDATE meta SET value = '" + std::to_string(v + 1) +
                             "' WHERE name = 'schema_version'; COMMIT;";
    if (int r = Run(db, step.c_str()); r != SQLITE_OK) {
      std::string why = Describe(db, r, busy_timeout);
      (void)Run(db, "ROLLBACK");
      return refuse("migration to schema version " + std::to_string(v + 1) +
                        " failed, the file is left at version " + std::to_string(v) + ": " + why,
                    IsDamage(r));
    }
  }
  // The schema (a no-op on a file that has it) and its version, in one transaction that takes
  // the write lock even when it writes nothing: a file another process keeps locked is an
  // error here, at start, not at the first commit.
  if (int r = Run(db, "BEGIN IMMEDIATE"); r != SQLITE_OK) return fail(r);
  auto abort = [&](int r) {
    std::string why = Describe(db, r, busy_timeout);
    (void)Run(db, "ROLLBACK");
    return refuse(std::move(why), IsDamage(r));
  };
  if (int r = Run(db,
                  "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) "
                  "WITHOUT ROWID");
      r != SQLITE_OK) {
    return abort(r);
  }
  if (int r = Run(db, schema); r != SQLITE_OK) return abort(r);
  if (found != version) {
    Statement set(db, "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?1)");
    set.Bind(1, want).Step();
    if (!set.ok()) return abort(set.code());
  }
  if (int r = Run(db, "COMMIT"); r != SQLITE_OK) return abort(r);
  return Attempt{db, false, ""};
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
                                    const char* schema, int version, const Migrations& migrations,
                                    Access access, std::chrono::milliseconds busy_timeout) {
  using R = Result<OpenedDatabase>;
  std::error_code ec;
  OpenedDatabase opened;
  if (access != Access::kAgent) {
    if (!std::filesystem::exists(path, ec)) return R::Error("no such file");
    Attempt a = TryOpen(path, options, schema, version, migrations, access, busy_timeout);
    if (a.db == nullptr) {
      return R::Error(a.damaged ? a.why + "; left as it is (`vigil run` moves a damaged file aside)"
                                : a.why);
    }
    opened.db = a.db;
    return opened;
  }
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return R::Error("cannot create " + dir.string() + ": " + ec.message());
  Attempt first = TryOpen(path, options, schema, version, migrations, access, busy_timeout);
  if (first.db != nullptr) {
    opened.db = first.db;
    return opened;
  }
  // Anything but damage leaves the files as they are.
  if (!first.damaged || !std::filesystem::exists(path, ec)) return R::Error(first.why);
  // Damaged: keep it for inspection, start afresh.
  opened.damage = first.why;
  opened.moved_aside = path + ".damaged-" + Timestamp();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::path from = path + suffix;
    if (std::filesystem::exists(from, ec)) {
      std::filesystem::rename(from, opened.moved_aside + suffix, ec);
      if (ec) return R::Error("cannot move damaged " + from.string() + " aside: " + ec.message());
    }
  }
  Attempt fresh = TryOpen(path, options, schema, version, migrations, access, busy_timeout);
  if (fresh.db == nullptr) {
    return R::Error(first.why + "; moved aside to " + opened.moved_aside +
                    ", but a fresh file cannot be made: " + fresh.why);
  }
  opened.db = fresh.db;
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
