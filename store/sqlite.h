#pragma once

// SQLite helpers shared by the state database and the journal. Internal to store/.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "store/access.h"

namespace vigil::store {

// A prepared statement, finalized on destruction. Bind errors are kept and reported by ok().
class Statement {
 public:
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK || rc_ == SQLITE_ROW || rc_ == SQLITE_DONE; }
  // Bind copies the text; BindRef and BindBlobRef do not: the string must stay unchanged until
  // the statement is stepped and reset (the per-row writes of commits and journal appends).
  Statement& Bind(int i, const std::string& s) { return BindBytes(i, s, false, true); }
  Statement& BindBlob(int i, const std::string& s) { return BindBytes(i, s, true, true); }
  Statement& BindRef(int i, const std::string& s) { return BindBytes(i, s, false, false); }
  Statement& BindBlobRef(int i, const std::string& s) { return BindBytes(i, s, true, false); }
  Statement& Bind(int i, std::int64_t v);
  // True while a row is available; false at the end or on error (see ok()).
  bool Step();
  void Reset();
  // Reset after an error, for a statement kept and used again.
  void Clear();
  std::string Text(int col) const;
  std::int64_t Int(int col) const;
  std::string error() const { return sqlite3_errmsg(db_); }
  // The SQLite result code of the failure ok() reports (SQLITE_OK when none).
  int code() const { return ok() ? SQLITE_OK : rc_; }

 private:
  Statement& BindBytes(int i, const std::string& s, bool blob, bool copy);
  void Check(int rc) {
    if (rc != SQLITE_OK && ok()) rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

Status Exec(sqlite3* db, const char* sql);

struct OpenedDatabase {
  sqlite3* db = nullptr;    // owned by the caller (sqlite3_close)
  std::string moved_aside;  // when the file was damaged: where it was moved, else ""
  std::string damage;       // and why
};

// Forward migrations: migrations[i] is the SQL that takes a file from version i+1 to i+2.
using Migrations = std::vector<std::string>;

// How long a statement waits for another connection's lock before it fails (SQLITE_BUSY).
constexpr std::chrono::milliseconds kBusyTimeout{5000};

// Opens a database file as `access` says (store/access.h).
//
// Access::kAgent opens or creates the file (and its folder) with mode 0600 in WAL mode, with
// `synchronous` from options.sync, incremental auto-vacuum (new files) and a bounded WAL. A
// new file gets `schema` (the current schema, idempotent SQL) at `version`; an existing one
// is brought from its stored version to `version` by `migrations`, each step in its own
// transaction. Only a damaged file — SQLITE_CORRUPT or SQLITE_NOTADB from the open, a read, or
// `PRAGMA quick_check`, or a quick_check answer other than "ok" — is moved aside (renamed with
// its -wal and -shm and a timestamp, never deleted) and a fresh one created. Every other
// failure is an error naming the cause, with the files left as they are: the file is locked by
// another process past `busy_timeout`, the disk is full, the file or its file system is
// read-only, permission denied, cannot open, an I/O error, a schema version newer than
// `version`, a missing or failing migration.
//
// Access::kReadWrite and kReadOnly open an existing file whose schema version is `version`
// (SQLITE_OPEN_READONLY for kReadOnly, with no checkpoint when it closes): no file or folder
// is created, no pragma that writes is run, nothing is migrated or moved; a missing file,
// another version, or damage is an error.
Result<OpenedDatabase> OpenDatabase(const std::string& path, const config::StoreConfig& options,
                                    const char* schema, int version,
                                    const Migrations& migrations = {},
                                    Access access = Access::kAgent,
                                    std::chrono::milliseconds busy_timeout = kBusyTimeout);

// Bytes on disk of a database: its file and WAL.
std::uint64_t DatabaseBytes(const std::string& path);

// One open database file: its connection behind a mutex (SQLite has one writer per file),
// what OpenDatabase found, and the upkeep the state database and the journal share.
struct Database {
  std::string path;
  sqlite3* db = nullptr;
  std::mutex mu;  // guards db
  std::string moved_aside;
  std::string damage;

  ~Database() { sqlite3_close_v2(db); }
  // Takes what OpenDatabase returned.
  void Adopt(const std::string& file, OpenedDatabase opened);
  // One statement with bindings; returns the rows it changed.
  Result<std::int64_t> Change(const char* sql, const std::function<void(Statement&)>& bind);
  int SynchronousLevel();
  // Returns free pages to the file system and truncates the WAL.
  void Vacuum();
  std::uint64_t SizeBytes() const { return DatabaseBytes(path); }
};

}  // namespace vigil::store
