#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/errors.h"

namespace vigil::config {
namespace {

// A minimal config with `tables` set to `tables` (JSON text).
ConfigResult WithTables(const std::string& tables) {
  return ParseConfig(R"({
    "mqtt": { "subscriptions": [ { "topic": "sensors/{device}/{metric}" } ] },
    "tables": )" + tables +
                         "\n}",
                     "/etc/vigil/vigil.json");
}

TEST(ConfigTables, NoTablesByDefault) {
  ConfigResult r = ParseConfig(R"({"mqtt": {"subscriptions": [{"topic": "s/{device}/{metric}"}]}})",
                               "/etc/vigil/vigil.json");
  ASSERT_TRUE(r.config) << Errors(r);
  EXPECT_TRUE(r.config->tables.empty());
  EXPECT_TRUE(r.config->rule_limits.tables.empty());
}

TEST(ConfigTables, ReadsEveryTableInNameOrderWithPathsRelativeToTheConfig) {
  ConfigResult r = WithTables(R"({
    "sites": { "file": "/srv/sites.JSON", "key": "site" },
    "devices": { "file": "devices.csv", "key": "device" },
    "meta_2": { "file": "tables/meta.txt", "key": "Serial_No", "format": "csv" }
  })");
  ASSERT_TRUE(r.config) << Errors(r);
  const auto& t = r.config->tables;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "devices");
  EXPECT_EQ(t[0].file, "/etc/vigil/devices.csv");
  EXPECT_EQ(t[0].key, "device");
  EXPECT_EQ(t[0].format, "csv");
  EXPECT_EQ(t[1].name, "meta_2");
  EXPECT_EQ(t[1].file, "/etc/vigil/tables/meta.txt");
  EXPECT_EQ(t[1].format, "csv");
  EXPECT_EQ(t[1].key, "Serial_No");
  EXPECT_EQ(t[2].name, "sites");
  EXPECT_EQ(t[2].file, "/srv/sites.JSON");
  EXPECT_EQ(t[2].format, "json");
  EXPECT_EQ(r.config->rule_limits.tables, (std::vector<std::string>{"devices", "meta_2", "sites"}));
}

TEST(ConfigTables, FormatOverridesTheExtension) {
  ConfigResult r =
      WithTables(R"({"devices": {"file": "d.csv", "key": "device", "format": "json"}})");
  ASSERT_TRUE(r.config) << Errors(r);
  EXPECT_EQ(r.config->tables[0].format, "json");
}

TEST(ConfigTables, FileAndKeyAreRequired) {
  ConfigResult r = WithTables(R"({"devices": {}})");
  ASSERT_FALSE(r.config);
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /tables/devices/file: missing (the table's CSV or JSON file)\n"
            "/etc/vigil/vigil.json: /tables/devices/key: missing (the column matched against the "
            "reading's tag of that name)\n");
}

TEST(ConfigTables, FormatMustBeKnownOrTellable) {
  ConfigResult r = WithTables(R"({
    "a": {"file": "a.txt", "key": "device"},
    "b": {"file": "b.csv", "key": "device", "format": "xml"},
    "c": {"file": "", "key": "device"}
  })");
  ASSERT_FALSE(r.config);
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /tables/a/format: missing, and the file name \"a.txt\" ends "
            "in neither .csv nor .json (csv, json)\n"
            "/etc/vigil/vigil.json: /tables/b/format: unknown format \"xml\" (csv, json)\n"
            "/etc/vigil/vigil.json: /tables/c/file: must not be empty\n");
}

TEST(ConfigTables, NamesAreLowerCaseIdentifiersAndNotValue) {
  for (const char* name : {"Devices", "1st", "dev-ices", "value", "", "_x"}) {
    ConfigResult r =
        WithTables(std::string(R"({")") + name + R"(": {"file": "d.csv", "key": "device"}})");
    ASSERT_FALSE(r.config) << name;
    ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
    EXPECT_EQ(r.diagnostics[0].location, std::string("/tables/") + name);
    EXPECT_NE(r.diagnostics[0].message.find("must be lower-case letters, digits and _"),
              std::string::npos)
        << r.diagnostics[0].message;
  }
  ConfigResult ok = WithTables(R"({"d2_x": {"file": "d.csv", "key": "device"}})");
  EXPECT_TRUE(ok.config) << Errors(ok);
}

TEST(ConfigTables, KeyMustBeAColumnName) {
  ConfigResult r = WithTables(R"({"devices": {"file": "d.csv", "key": "the device"}})");
  ASSERT_FALSE(r.config);
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /tables/devices/key: \"the device\" cannot be a column name "
            "(letters, digits and _, not starting with a digit)\n");
}

TEST(ConfigTables, UnknownKeysAndWrongTypesAreErrors) {
  ConfigResult r = WithTables(R"({
    "devices": {"file": "d.csv", "key": "device", "fromat": "csv"},
    "sites": {"file": 3, "key": ["site"]},
    "other": "o.csv"
  })");
  ASSERT_FALSE(r.config);
  const std::string all = Errors(r);
  EXPECT_NE(all.find("/tables/devices/fromat: unknown key \"fromat\" (did you mean \"format\"?)"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("/tables/sites/file: must be a string"), std::string::npos) << all;
  EXPECT_NE(all.find("/tables/sites/key: must be a string"), std::string::npos) << all;
  EXPECT_NE(all.find("/tables/other: must be an object"), std::string::npos) << all;
  EXPECT_EQ(r.diagnostics.size(), 4u) << all;
}

TEST(ConfigTables, TablesMustBeAnObject) {
  ConfigResult r = WithTables(R"([{"file": "d.csv"}])");
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
  EXPECT_EQ(r.diagnostics[0].location, "/tables");
}

TEST(ConfigTables, TopLevelTypoSuggestsTables) {
  ConfigResult r = ParseConfig(R"({
    "mqtt": { "subscriptions": [ { "topic": "s/{device}/{metric}" } ] },
    "tabels": {}
  })",
                               "/x/vigil.json");
  ASSERT_FALSE(r.config);
  EXPECT_EQ(Errors(r),
            "/x/vigil.json: /tabels: unknown key \"tabels\" (did you mean \"tables\"?)\n");
}

}  // namespace
}  // namespace vigil::config
