#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "store/sqlite.h"

namespace vigil::store {
namespace {

std::string Query(sqlite3* db, const char* sql) {
  Statement st(db, sql);
  return st.Step() ? st.Text(0) : "(none: " + st.error() + ")";
}

TEST(Migrations, AnOlderFileIsMigratedForwardStepByStep) {
  auto dir = std::filesystem::temp_directory_path() /
             ("vigil_migration_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string path = (dir / "x.db").string();
  config::StoreConfig options;
  {
    auto v1 = OpenDatabase(path, options, "CREATE TABLE IF NOT EXISTS t (a INTEGER)", 1);
    ASSERT_TRUE(v1.ok()) << v1.error();
    ASSERT_TRUE(Exec(v1.value().db, "INSERT INTO t (a) VALUES (7)").ok());
    sqlite3_close_v2(v1.value().db);
  }
  const Migrations migrations = {"ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'",
                                 "UPDATE t SET b = 'migrated'"};
  auto v3 = OpenDatabase(
      path, options, "CREATE TABLE IF NOT EXISTS t (a INTEGER, b TEXT DEFAULT 'x')", 3, migrations);
  ASSERT_TRUE(v3.ok()) << v3.error();
  EXPECT_TRUE(v3.value().moved_aside.empty()) << v3.value().damage;
  EXPECT_EQ(Query(v3.value().db, "SELECT a || ':' || b FROM t"), "7:migrated");
  EXPECT_EQ(Query(v3.value().db, "SELECT value FROM meta WHERE name = 'schema_version'"), "3");
  sqlite3_close_v2(v3.value().db);

  // A failing migration is an error: the file stays where it is, at its version.
  auto bad = OpenDatabase(path, options, "SELECT 1", 4, {"", "", "THIS IS NOT SQL"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("migration to schema version 4 failed, the file is left at version 3"),
            std::string::npos)
      << bad.error();
  auto kept = OpenDatabase(path, options, "SELECT 1", 3, migrations, Access::kReadOnly);
  ASSERT_TRUE(kept.ok()) << kept.error();
  EXPECT_EQ(Query(kept.value().db, "SELECT a || ':' || b FROM t"), "7:migrated");
  sqlite3_close_v2(kept.value().db);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil::store
