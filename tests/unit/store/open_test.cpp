// OpenDatabase tells damage from everything else: only SQLITE_CORRUPT / SQLITE_NOTADB or a
// failed quick_check moves a file aside; a lock, a read-only or full file system, a newer
// schema or a missing migration is an error that leaves every file as it was. The read-only
// and read-write accesses never create, migrate, move or (read-only) write anything.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "store/sqlite.h"
#include "store/store.h"

namespace vigil::store {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr const char* kSchema = "CREATE TABLE IF NOT EXISTS t (a INTEGER)";
constexpr milliseconds kShortBusy{50};  // a lock is waited for this long in these tests

// A file's bytes and modification time.
struct Snapshot {
  std::string bytes;
  std::int64_t mtime_ns = 0;
  bool operator==(const Snapshot&) const = default;
};

std::optional<Snapshot> Take(const fs::path& p) {
  struct stat st {};
  if (stat(p.c_str(), &st) != 0) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return Snapshot{out.str(), st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
}

// Every file in `dir` by name, with its bytes and mtime.
std::map<std::string, std::optional<Snapshot>> TakeAll(const fs::path& dir) {
  std::map<std::string, std::optional<Snapshot>> all;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) all[e.path().filename().string()] = Take(e.path());
  }
  return all;
}

bool AnyMovedAside(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".damaged-") != std::string::npos) return true;
  }
  return false;
}

void Sql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

class OpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil_open_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "x.db").string();
  }
  void TearDown() override {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  Result<OpenedDatabase> Open(Access access = Access::kAgent, int version = 1,
                              const Migrations& migrations = {}) {
    return OpenDatabase(path_, options_, kSchema, version, migrations, access, kShortBusy);
  }

  // A version-1 file with one row, closed (its WAL checkpointed and removed).
  void MakeFile() {
    auto made = Open();
    ASSERT_TRUE(made.ok()) << made.error();
    ASSERT_TRUE(Exec(made.value().db, "INSERT INTO t (a) VALUES (7)").ok());
    sqlite3_close_v2(made.value().db);
  }

  void SetVersion(int version) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    Sql(db,
        ("UPDATE meta SET value = '" + std::to_string(version) + "' WHERE name = 'schema_version'")
            .c_str());
    sqlite3_close(db);
  }

  // Mounts a tmpfs of `size` on the test's folder (root only); false when that is not possible.
  bool MountTmpfs(const std::string& size) {
    if (geteuid() != 0) return false;
    if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) return false;
    mounted_ = true;
    return true;
  }
  bool RemountReadOnly() {
    return mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }

  fs::path dir_;
  std::string path_;
  config::StoreConfig options_;
  bool mounted_ = false;
  std::int64_t root_page_ = 0;
};

TEST_F(OpenTest, AFileLockedByAnotherConnectionIsAnErrorAndStaysInPlace) {
  MakeFile();
  // Another connection holds an EXCLUSIVE lock (exclusive locking mode: readers wait too).
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  Sql(other, "PRAGMA locking_mode = EXCLUSIVE");
  Sql(other, "BEGIN EXCLUSIVE");
  Sql(other, "INSERT INTO t (a) VALUES (8)");
  const auto before = TakeAll(dir_);
  for (Access access : {Access::kAgent, Access::kReadWrite, Access::kReadOnly}) {
    auto opened = Open(access);
    ASSERT_FALSE(opened.ok()) << static_cast<int>(access);
    EXPECT_NE(opened.error().find("database is locked by another process"), std::string::npos)
        << opened.error();
  }
  EXPECT_FALSE(AnyMovedAside(dir_));
  EXPECT_EQ(TakeAll(dir_), before) << "no file written, made or moved";
  Sql(other, "ROLLBACK");
  sqlite3_close(other);
}

TEST_F(OpenTest, AWriterHoldingTheWriteLockStopsTheAgentOpenNotTheReaders) {
  MakeFile();
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  Sql(other, "BEGIN IMMEDIATE");  // WAL: the write lock; readers go on
  const auto db_before = Take(path_);
  auto agent = Open(Access::kAgent);
  ASSERT_FALSE(agent.ok()) << "vigil run needs to write: it says so at once";
  EXPECT_NE(agent.error().find("locked by another process"), std::string::npos) << agent.error();
  auto reader = Open(Access::kReadOnly);
  ASSERT_TRUE(reader.ok()) << reader.error();
  Statement st(reader.value().db, "SELECT a FROM t");
  ASSERT_TRUE(st.Step());
  EXPECT_EQ(st.Int(0), 7);
  sqlite3_close_v2(reader.value().db);
  EXPECT_FALSE(AnyMovedAside(dir_));
  EXPECT_EQ(Take(path_), db_before);
  Sql(other, "ROLLBACK");
  sqlite3_close(other);
}

TEST_F(OpenTest, ANewerSchemaIsAnErrorForEveryAccessAndTheFileIsKept) {
  MakeFile();
  SetVersion(3);
  const auto before = TakeAll(dir_);
  for (Access access : {Access::kAgent, Access::kReadWrite, Access::kReadOnly}) {
    auto opened = Open(access);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error(),
              "schema version 3 is newer than this vigil's (1): upgrade vigil or move the file "
              "away");
  }
  EXPECT_FALSE(AnyMovedAside(dir_));
  // A read-only reader of a WAL file may leave an empty -wal and -shm (SQLite's reader does);
  // the database file itself is untouched.
  EXPECT_EQ(Take(path_), before.at("x.db"));
}

TEST_F(OpenTest, AMissingOrFailingMigrationIsAnErrorAndTheFileStaysAtItsVersion) {
  MakeFile();
  const auto before = Take(path_);
  auto missing = Open(Access::kAgent, 3, {"ALTER TABLE t ADD COLUMN b TEXT"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("no migration from schema version 1 to 3"), std::string::npos)
      << missing.error();
  EXPECT_EQ(Take(path_), before);
  auto failing = Open(Access::kAgent, 2, {"THIS IS NOT SQL"});
  ASSERT_FALSE(failing.ok());
  EXPECT_NE(failing.error().find("migration to schema version 2 failed"), std::string::npos)
      << failing.error();
  EXPECT_FALSE(AnyMovedAside(dir_));
  auto again = Open(Access::kReadOnly);  // still a readable version-1 file, with its row
  ASSERT_TRUE(again.ok()) << again.error();
  Statement st(again.value().db, "SELECT a FROM t");
  ASSERT_TRUE(st.Step());
  EXPECT_EQ(st.Int(0), 7);
  sqlite3_close_v2(again.value().db);
}

TEST_F(OpenTest, AnOlderSchemaIsNotMigratedByTheOtherAccesses) {
  MakeFile();
  auto ro = Open(Access::kReadOnly, 2, {"ALTER TABLE t ADD COLUMN b TEXT"});
  ASSERT_FALSE(ro.ok());
  EXPECT_NE(ro.error().find("schema version 1 is older than this vigil's (2)"), std::string::npos)
      << ro.error();
  auto rw = Open(Access::kReadWrite, 2, {"ALTER TABLE t ADD COLUMN b TEXT"});
  ASSERT_FALSE(rw.ok());
  auto v = Open(Access::kReadOnly, 1);
  ASSERT_TRUE(v.ok()) << v.error();
  Statement st(v.value().db, "SELECT value FROM meta WHERE name = 'schema_version'");
  ASSERT_TRUE(st.Step());
  EXPECT_EQ(st.Text(0), "1");
  sqlite3_close_v2(v.value().db);
}

TEST_F(OpenTest, GarbageIsMovedAsideByTheAgentOnlyAndAnErrorForTheOthers) {
  { std::ofstream(path_) << std::string(5000, 'g'); }
  for (Access access : {Access::kReadWrite, Access::kReadOnly}) {
    auto opened = Open(access);
    ASSERT_FALSE(opened.ok());
    EXPECT_NE(opened.error().find("damaged"), std::string::npos) << opened.error();
    EXPECT_NE(opened.error().find("left as it is"), std::string::npos) << opened.error();
    EXPECT_FALSE(AnyMovedAside(dir_));
  }
  auto agent = Open(Access::kAgent);
  ASSERT_TRUE(agent.ok()) << agent.error();
  EXPECT_NE(agent.value().damage.find("file is not a database"), std::string::npos)
      << agent.value().damage;
  EXPECT_TRUE(fs::exists(agent.value().moved_aside));
  sqlite3_close_v2(agent.value().db);
}

TEST_F(OpenTest, ACorruptPageIsMovedAside) {
  {
    auto made = Open();
    ASSERT_TRUE(made.ok()) << made.error();
    sqlite3* db = made.value().db;
    Sql(db, "CREATE INDEX IF NOT EXISTS t_a ON t (a)");
    Sql(db, "BEGIN");
    for (int i = 0; i < 2000; ++i) {
      Sql(db, ("INSERT INTO t (a) VALUES (" + std::to_string(i * 7919 % 2000) + ")").c_str());
    }
    Sql(db, "COMMIT");
    Sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    Statement root(db, "SELECT rootpage FROM sqlite_master WHERE name = 't'");
    ASSERT_TRUE(root.Step());
    root_page_ = root.Int(0);
    sqlite3_close_v2(db);
  }
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 4u * 4096u);
  ASSERT_GT(root_page_, 1);
  {
    // Scribble over the table's root page: its header and cell pointers become nonsense.
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((root_page_ - 1) * 4096);
    const std::string junk(64, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto opened = Open();
  ASSERT_TRUE(opened.ok()) << opened.error();
  EXPECT_FALSE(opened.value().moved_aside.empty()) << "a corrupt page fails quick_check";
  EXPECT_EQ(fs::file_size(opened.value().moved_aside), size) << "kept as it was";
  sqlite3_close_v2(opened.value().db);
}

TEST_F(OpenTest, TheReadOnlyAccessWritesNothingAndSeesARunningWritersRows) {
  MakeFile();
  // A running agent: an open connection, committed rows in the WAL.
  sqlite3* agent = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &agent), SQLITE_OK);
  Sql(agent, "INSERT INTO t (a) VALUES (8)");
  const auto before = TakeAll(dir_);
  ASSERT_TRUE(before.count("x.db-wal"));
  for (int i = 0; i < 2; ++i) {
    auto ro = Open(Access::kReadOnly);
    ASSERT_TRUE(ro.ok()) << ro.error();
    Statement st(ro.value().db, "SELECT COUNT(*) FROM t");
    ASSERT_TRUE(st.Step());
    EXPECT_EQ(st.Int(0), 2) << "the WAL's rows too";
    EXPECT_NE(
        sqlite3_exec(ro.value().db, "INSERT INTO t (a) VALUES (9)", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close_v2(ro.value().db);
  }
  auto after = TakeAll(dir_);
  EXPECT_EQ(after.at("x.db"), before.at("x.db"));
  EXPECT_EQ(after.at("x.db-wal"), before.at("x.db-wal"));
  sqlite3_close(agent);
}

TEST_F(OpenTest, EveryAccessUsesASmallPageCache) {
  MakeFile();
  for (Access access : {Access::kAgent, Access::kReadWrite, Access::kReadOnly}) {
    auto opened = Open(access);
    ASSERT_TRUE(opened.ok()) << opened.error();
    Statement st(opened.value().db, "PRAGMA cache_size");
    ASSERT_TRUE(st.Step());
    EXPECT_EQ(st.Int(0), -512) << "512 KiB, not SQLite's default 2 MiB";
    sqlite3_close_v2(opened.value().db);
  }
}

TEST_F(OpenTest, TheOtherAccessesCreateNothing) {
  for (Access access : {Access::kReadWrite, Access::kReadOnly}) {
    auto opened = OpenDatabase((dir_ / "none" / "x.db").string(), options_, kSchema, 1, {}, access,
                               kShortBusy);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error(), "no such file");
  }
  EXPECT_FALSE(fs::exists(dir_ / "none"));
  auto store = Store::Open((dir_ / "vigil.db").string(), options_, Access::kReadOnly);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(OpenTest, AReadOnlyFileSystemIsAnErrorAndItsFilesAreKept) {
  if (!MountTmpfs("4m")) GTEST_SKIP() << "needs root to mount a tmpfs";
  MakeFile();
  const auto before = TakeAll(dir_);
  ASSERT_TRUE(RemountReadOnly());
  for (Access access : {Access::kAgent, Access::kReadWrite}) {
    auto opened = Open(access);
    ASSERT_FALSE(opened.ok());
    EXPECT_NE(opened.error().find("read-only"), std::string::npos) << opened.error();
  }
  // A new file cannot be made there either: an error, not a crash or a move.
  auto fresh = OpenDatabase((dir_ / "new.db").string(), options_, kSchema, 1, {}, Access::kAgent,
                            kShortBusy);
  ASSERT_FALSE(fresh.ok());
  EXPECT_NE(fresh.error().find("cannot"), std::string::npos) << fresh.error();
  // Reading still works (the outbox can be listed from a read-only state folder).
  auto ro = Open(Access::kReadOnly);
  ASSERT_TRUE(ro.ok()) << ro.error();
  Statement st(ro.value().db, "SELECT a FROM t");
  ASSERT_TRUE(st.Step());
  EXPECT_EQ(st.Int(0), 7);
  sqlite3_close_v2(ro.value().db);
  EXPECT_EQ(TakeAll(dir_), before);
}

TEST_F(OpenTest, AFullDiskIsAnErrorAndMovesNothing) {
  if (!MountTmpfs("256k")) GTEST_SKIP() << "needs root to mount a tmpfs";
  MakeFile();
  const auto db_before = Take(path_);
  {
    // Fill the file system.
    std::ofstream fill(dir_ / "fill", std::ios::binary);
    const std::string block(4096, 'f');
    for (int i = 0; i < 1024 && fill.write(block.data(), 4096); ++i) fill.flush();
  }
  auto fresh = OpenDatabase((dir_ / "new.db").string(), options_, kSchema, 1, {}, Access::kAgent,
                            kShortBusy);
  ASSERT_FALSE(fresh.ok());
  EXPECT_NE(fresh.error().find("disk full"), std::string::npos) << fresh.error();
  // The existing file opens or says why; it is never moved.
  auto existing = Open();
  if (existing.ok()) sqlite3_close_v2(existing.value().db);
  EXPECT_FALSE(AnyMovedAside(dir_));
  EXPECT_EQ(Take(path_), db_before);
}

}  // namespace
}  // namespace vigil::store
