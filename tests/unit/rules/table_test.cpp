#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "rules/table.h"
#include "rules/table_loader.h"
#include "tests/unit/errors.h"

namespace vigil::rules {
namespace {

config::TableConfig Csv(std::string file = "devices.csv") {
  return {"devices", std::move(file), "device", "csv"};
}
config::TableConfig Json(std::string file = "devices.json") {
  return {"devices", std::move(file), "device", "json"};
}

// The table of `text`, which must load.
Table Load(std::string_view text, const config::TableConfig& config) {
  TableLoadResult r = ParseTable(text, config);
  EXPECT_TRUE(r.table.has_value()) << Errors(r.diagnostics);
  return r.table ? *r.table : Table{};
}

// The one error `text` gives, as `vigil check` prints it.
std::string OneError(std::string_view text, const config::TableConfig& config) {
  TableLoadResult r = ParseTable(text, config);
  EXPECT_FALSE(r.table.has_value());
  EXPECT_EQ(r.diagnostics.size(), 1u) << Errors(r.diagnostics);
  return r.diagnostics.empty() ? "" : r.diagnostics[0].ToString();
}

std::string Cell(const Table& t, std::string_view key, std::string_view column) {
  const std::string* cell = t.Find(key, column);
  return cell ? *cell : "<none>";
}

// ---- CSV ----

TEST(CsvTable, HeaderNamesTheColumnsAndEachLineIsARow) {
  Table t = Load("device,max_temp,site\ndev-1,40,north\ndev-2,55.5,south\n", Csv());
  EXPECT_EQ(t.name, "devices");
  EXPECT_EQ(t.key, "device");
  EXPECT_EQ(t.columns, (std::vector<std::string>{"device", "max_temp", "site"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "40");
  EXPECT_EQ(Cell(t, "dev-2", "site"), "south");
  EXPECT_EQ(Cell(t, "dev-2", "device"), "dev-2");
}

TEST(CsvTable, KeyColumnNeedNotBeFirst) {
  Table t = Load("max_temp,device\n40,dev-1\n", Csv());
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "40");
}

TEST(CsvTable, QuotedFieldsHoldCommasQuotesAndLineBreaks) {
  Table t = Load(
      "device,note,max_temp\n"
      "dev-1,\"north, by the \"\"big\"\" door\",40\n"
      "\"dev-2\",\"two\nlines\",\"\"\n",
      Csv());
  EXPECT_EQ(Cell(t, "dev-1", "note"), "north, by the \"big\" door");
  EXPECT_EQ(Cell(t, "dev-2", "note"), "two\nlines");
  EXPECT_EQ(Cell(t, "dev-2", "max_temp"), "<none>");  // an empty cell is missing
}

TEST(CsvTable, CrlfLineEndsAndNoFinalLineBreak) {
  Table t = Load("device,max_temp\r\ndev-1,40\r\ndev-2,50", Csv());
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "40");
  EXPECT_EQ(Cell(t, "dev-2", "max_temp"), "50");
  // A CRLF inside quotes is part of the cell.
  Table q = Load("device,note\r\ndev-1,\"a\r\nb\"\r\n", Csv());
  EXPECT_EQ(Cell(q, "dev-1", "note"), "a\r\nb");
}

TEST(CsvTable, ByteOrderMarkIsSkipped) {
  Table t = Load(
      "\xEF\xBB\xBF"
      "device,max_temp\ndev-1,40\n",
      Csv());
  EXPECT_EQ(t.columns.front(), "device");
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "40");
}

TEST(CsvTable, FewerCellsThanColumnsAreEmptyCells) {
  Table t = Load("device,max_temp,site\ndev-1\ndev-2,40\n", Csv());
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "<none>");  // an empty cell is missing
  EXPECT_EQ(Cell(t, "dev-1", "site"), "<none>");      // an empty cell is missing
  EXPECT_EQ(Cell(t, "dev-2", "site"), "<none>");      // an empty cell is missing
  EXPECT_EQ(t.rows.at("dev-1").size(), 3u);
}

TEST(CsvTable, EmptyFieldsAndSpacesAreKeptAsWritten) {
  Table t = Load("device,a,b\ndev-1,, x \n", Csv());
  EXPECT_EQ(Cell(t, "dev-1", "a"), "<none>");  // an empty cell is missing
  EXPECT_EQ(Cell(t, "dev-1", "b"), " x ");
}

TEST(CsvTable, ACommaAtTheEndOfTheTextIsAnEmptyLastCell) {
  // Found by the table fuzzer: the text ending in a comma was read one byte past its end.
  Table t = Load("device,max_temp\ndev-1,", Csv());
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "<none>");  // an empty cell is missing
  EXPECT_EQ(OneError("device,", Csv()),
            "devices.csv:1: column name \"\" cannot be used in expressions (letters, digits and "
            "_, not starting with a digit)");
}

TEST(CsvTable, EmptyLinesAreSkipped) {
  Table t = Load("device,max_temp\n\ndev-1,40\r\n\r\n\ndev-2,50\n\n", Csv());
  EXPECT_EQ(t.rows.size(), 2u);
}

TEST(CsvTable, HeaderOnlyIsAnEmptyTable) {
  Table t = Load("device,max_temp\n", Csv());
  EXPECT_TRUE(t.rows.empty());
  EXPECT_EQ(t.columns.size(), 2u);
}

TEST(CsvTable, UnicodeCellsAreKept) {
  Table t = Load("device,site\ndev-1,Zürich °C ✓\n", Csv());
  EXPECT_EQ(Cell(t, "dev-1", "site"), "Zürich °C ✓");
}

TEST(CsvTable, MoreCellsThanTheHeaderIsAnErrorNamingTheLine) {
  EXPECT_EQ(OneError("device,max_temp\ndev-1,40\ndev-2,50,extra\n", Csv()),
            "devices.csv:3: 3 cells; the header has 2 columns");
}

TEST(CsvTable, EmptyKeyIsAnError) {
  EXPECT_EQ(OneError("device,max_temp\n,40\n", Csv()),
            "devices.csv:2: the key column \"device\" is empty");
  EXPECT_EQ(OneError("max_temp,device\n40\n", Csv()),
            "devices.csv:2: the key column \"device\" is empty");
}

TEST(CsvTable, DuplicateKeyNamesBothLines) {
  EXPECT_EQ(OneError("device,max_temp\ndev-1,40\ndev-2,41\ndev-1,42\n", Csv()),
            "devices.csv:4: duplicate key \"dev-1\" (first on line 2)");
}

TEST(CsvTable, LinesCountTheLineBreaksInsideQuotedFields) {
  EXPECT_EQ(OneError("device,note\ndev-1,\"a\nb\nc\"\ndev-1,x\n", Csv()),
            "devices.csv:5: duplicate key \"dev-1\" (first on line 2)");
}

TEST(CsvTable, MissingKeyColumnIsAnErrorListingTheColumns) {
  EXPECT_EQ(OneError("name,max_temp\ndev-1,40\n", Csv()),
            "devices.csv:1: no key column \"device\" (columns: name, max_temp)");
}

TEST(CsvTable, ColumnNamesMustBeUsableInExpressions) {
  EXPECT_EQ(OneError("device,max temp\ndev-1,40\n", Csv()),
            "devices.csv:1: column name \"max temp\" cannot be used in expressions (letters, "
            "digits and _, not starting with a digit)");
  EXPECT_EQ(OneError("device,1st\n", Csv()),
            "devices.csv:1: column name \"1st\" cannot be used in expressions (letters, digits "
            "and _, not starting with a digit)");
  EXPECT_EQ(OneError("device,\n", Csv()),
            "devices.csv:1: column name \"\" cannot be used in expressions (letters, digits and "
            "_, not starting with a digit)");
  Load("device,_x,Max_Temp2\n", Csv());
}

TEST(CsvTable, DuplicateColumnIsAnError) {
  EXPECT_EQ(OneError("device,a,a\n", Csv()), "devices.csv:1: column \"a\" appears twice");
}

TEST(CsvTable, UnclosedQuoteNamesWhereItOpens) {
  EXPECT_EQ(OneError("device,note\ndev-1,\"open\ndev-2,x\n", Csv()),
            "devices.csv:2:7: a quoted field is not closed (it opens here)");
}

TEST(CsvTable, TextAfterAClosingQuoteIsAnError) {
  EXPECT_EQ(OneError("device,note\ndev-1,\"a\"b\n", Csv()),
            "devices.csv:2:10: a closing quote must be followed by a comma or the end of the "
            "line");
}

TEST(CsvTable, QuoteInsideAnUnquotedFieldIsAnError) {
  EXPECT_EQ(OneError("device,note\ndev-1,12\" pipe\n", Csv()),
            "devices.csv:2:9: a quote inside an unquoted field (quote the whole field and "
            "double the quote: \"a \"\"b\"\" c\")");
}

TEST(CsvTable, TextMustBeUtf8) {
  EXPECT_EQ(OneError("device,site\ndev-1,ok\ndev-2,\xFF\n", Csv()),
            "devices.csv:3: not UTF-8 text");
  EXPECT_EQ(OneError("device,site\ndev-1,\xC0\xAF\n", Csv()), "devices.csv:2: not UTF-8 text");
}

TEST(CsvTable, EmptyFileIsAnError) {
  EXPECT_EQ(OneError("", Csv()),
            "devices.csv: the file is empty: the first line must name the columns");
  EXPECT_EQ(OneError("\xEF\xBB\xBF\n\n", Csv()),
            "devices.csv: the file is empty: the first line must name the columns");
}

TEST(CsvTable, EveryRowProblemIsReportedUpToALimit) {
  std::string text = "device,max_temp\n";
  for (int i = 0; i < 60; ++i) text += ",1\n";
  TableLoadResult r = ParseTable(text, Csv());
  EXPECT_FALSE(r.table);
  ASSERT_EQ(r.diagnostics.size(), kMaxTableDiagnostics + 1);
  EXPECT_EQ(r.diagnostics.back().ToString(), "devices.csv: … and 10 more problem(s) in this file");
}

TEST(CsvTable, AtMostAMillionRows) {
  std::string text = "device\n";
  text.reserve(8'000'000);
  for (std::size_t i = 0; i < kMaxTableRows; ++i) text += std::to_string(i) + "\n";
  text += "one-more\n";
  // The first 1 000 000 rows were taken: the error is at the one after them.
  EXPECT_EQ(OneError(text, Csv()),
            "devices.csv:1000002: more than 1000000 rows (the limit of a table)");
}

TEST(Table, ACellLongerThanTheLimitIsAnError) {
  const std::string cell(kMaxCellBytes + 1, 'x');
  EXPECT_EQ(OneError("device,note\ndev-1," + cell + "\n", Csv()),
            "devices.csv:2: a cell of 4097 bytes; at most 4096");
  EXPECT_EQ(OneError(R"([{"device": "dev-1", "note": ")" + cell + R"("}])", Json()),
            "devices.json: /0: a cell of 4097 bytes; at most 4096");
  const Table longest = Load("device,note\ndev-1," + std::string(kMaxCellBytes, 'x') + "\n", Csv());
  EXPECT_EQ(Cell(longest, "dev-1", "note").size(), kMaxCellBytes);
}

TEST(CsvTable, AtMost16MiB) {
  std::string text = "device\n" + std::string(kMaxTableBytes, 'x');
  EXPECT_EQ(OneError(text, Csv()),
            "devices.csv: the file is 16777223 bytes; a table file may have at most 16777216 "
            "(16 MiB)");
}

// ---- JSON ----

TEST(JsonTable, RowsAreObjectsAndCellsKeepTheirJsonSpelling) {
  Table t = Load(R"([
    {"device": "dev-1", "max_temp": 40, "ratio": 0.5, "big": 1e3, "on": true, "off": false,
     "note": null, "site": "north"},
    {"site": "south", "device": "dev-2", "extra": "x"}
  ])",
                 Json());
  EXPECT_EQ(t.columns, (std::vector<std::string>{"device", "max_temp", "ratio", "big", "on", "off",
                                                 "note", "site", "extra"}));
  EXPECT_EQ(Cell(t, "dev-1", "max_temp"), "40");
  EXPECT_EQ(Cell(t, "dev-1", "ratio"), "0.5");
  EXPECT_EQ(Cell(t, "dev-1", "big"), "1000.0");
  EXPECT_EQ(Cell(t, "dev-1", "on"), "true");
  EXPECT_EQ(Cell(t, "dev-1", "off"), "false");
  EXPECT_EQ(Cell(t, "dev-1", "note"), "<none>");   // an empty cell is missing
  EXPECT_EQ(Cell(t, "dev-1", "extra"), "<none>");  // an empty cell is missing
  EXPECT_EQ(Cell(t, "dev-2", "site"), "south");
  EXPECT_EQ(Cell(t, "dev-2", "max_temp"), "<none>");  // an empty cell is missing
  EXPECT_EQ(t.rows.at("dev-2").size(), t.columns.size());
}

TEST(JsonTable, NumericKeyIsItsText) {
  Table t = Load(R"([{"device": 17, "max_temp": -3}])", Json());
  EXPECT_EQ(Cell(t, "17", "max_temp"), "-3");
}

TEST(JsonTable, EmptyArrayIsAnEmptyTable) {
  Table t = Load("[]", Json());
  EXPECT_TRUE(t.rows.empty());
  EXPECT_EQ(t.columns, std::vector<std::string>{"device"});
}

TEST(JsonTable, NestedValuesAreErrorsNamingTheCell) {
  EXPECT_EQ(OneError(R"([{"device": "a", "x": [1]}])", Json()),
            "devices.json: /0/x: a cell must be a string, a number, true, false or null");
  EXPECT_EQ(OneError(R"([{"device": "a"}, {"device": "b", "x": {"y": 1}}])", Json()),
            "devices.json: /1/x: a cell must be a string, a number, true, false or null");
}

TEST(JsonTable, MustBeAnArrayOfObjects) {
  EXPECT_EQ(OneError(R"({"device": "a"})", Json()),
            "devices.json: a JSON table must be an array of objects, one per row");
  EXPECT_EQ(OneError(R"([{"device": "a"}, 3])", Json()),
            "devices.json: /1: a row must be an object");
}

TEST(JsonTable, MissingOrEmptyKeyIsAnError) {
  EXPECT_EQ(OneError(R"([{"device": "a"}, {"max_temp": 1}])", Json()),
            "devices.json: /1: the key column \"device\" is missing or empty");
  EXPECT_EQ(OneError(R"([{"device": "a"}, {"device": null}])", Json()),
            "devices.json: /1: the key column \"device\" is missing or empty");
  EXPECT_EQ(OneError(R"([{"device": ""}])", Json()),
            "devices.json: /0: the key column \"device\" is missing or empty");
  EXPECT_EQ(OneError(R"([{"name": "a", "max_temp": 1}])", Json()),
            "devices.json: no key column \"device\" (columns: name, max_temp)");
}

TEST(JsonTable, DuplicateKeyNamesBothIndices) {
  EXPECT_EQ(OneError(R"([{"device": "a"}, {"device": "b"}, {"device": "a"}])", Json()),
            "devices.json: /2/device: duplicate key \"a\" (first at /0)");
}

TEST(JsonTable, ColumnNamesMustBeUsableInExpressions) {
  EXPECT_EQ(OneError(R"([{"device": "a", "max/temp": 1}])", Json()),
            "devices.json: /0/max~1temp: column name \"max/temp\" cannot be used in expressions "
            "(letters, digits and _, not starting with a digit)");
}

TEST(JsonTable, SyntaxErrorNamesLineAndColumn) {
  TableLoadResult r = ParseTable("[\n  {\"device\": \"a\",}\n]", Json());
  ASSERT_FALSE(r.table);
  ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].location, "2:18");
  EXPECT_EQ(r.diagnostics[0].ToString().rfind("devices.json:2:18: invalid JSON", 0), 0u)
      << r.diagnostics[0].ToString();
}

TEST(JsonTable, AtMostAMillionRows) {
  std::string text = "[";
  for (std::size_t i = 0; i <= kMaxTableRows; ++i) text += i == 0 ? "{}" : ",{}";
  text += "]";
  EXPECT_EQ(OneError(text, Json()),
            "devices.json: 1000001 rows: more than 1000000 rows (the limit of a table)");
}

// ---- files ----

class TableFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() /
        ("vigil-table-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(TableFiles, LoadTablesReadsEveryTable) {
  config::TableConfig devices = Csv(Write("devices.csv", "device,max_temp\ndev-1,40\n"));
  config::TableConfig sites = {"sites", Write("sites.json", R"([{"site": "north", "lat": 52}])"),
                               "site", "json"};
  TablesLoadResult r = LoadTables({devices, sites});
  ASSERT_TRUE(r.tables) << Errors(r.diagnostics);
  ASSERT_EQ(r.tables->tables.size(), 2u);
  ASSERT_NE(r.tables->Find("sites"), nullptr);
  EXPECT_EQ(Cell(*r.tables->Find("sites"), "north", "lat"), "52");
  EXPECT_EQ(Cell(*r.tables->Find("devices"), "dev-1", "max_temp"), "40");
}

TEST_F(TableFiles, NoTablesIsAnEmptySet) {
  TablesLoadResult r = LoadTables({});
  ASSERT_TRUE(r.tables);
  EXPECT_TRUE(r.tables->tables.empty());
}

TEST_F(TableFiles, EveryBadFileIsReported) {
  config::TableConfig missing = Csv((dir_ / "nope.csv").string());
  config::TableConfig bad = {"sites", Write("sites.csv", "site\n\"x\n"), "site", "csv"};
  TablesLoadResult r = LoadTables({missing, bad});
  EXPECT_FALSE(r.tables);
  ASSERT_EQ(r.diagnostics.size(), 2u) << Errors(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].ToString(), (dir_ / "nope.csv").string() + ": no such table file");
  EXPECT_EQ(r.diagnostics[1].ToString(),
            (dir_ / "sites.csv").string() + ":2:1: a quoted field is not closed (it opens here)");
}

TEST_F(TableFiles, AFolderIsNotATableFile) {
  TableLoadResult r = LoadTable(Csv(dir_.string()));
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].message, "cannot read the table file (not a regular file)");
}

TEST_F(TableFiles, ALargerFileIsRefusedUnread) {
  const std::string path = Write("big.csv", "device\n");
  std::filesystem::resize_file(path, kMaxTableBytes + 1);
  TableLoadResult r = LoadTable(Csv(path));
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].ToString(),
            path + ": the file is 16777217 bytes; a table file may have at most 16777216 (16 MiB)");
}

// ---- Lookup ----

Tables DeviceTables() {
  Table t = Load("device,max_temp,site\ndev-1,40,north\ndev-2,,south\n", Csv());
  Tables tables;
  tables.tables.push_back(std::move(t));
  return tables;
}

TEST(TableLookup, FindsTheCellOfTheRowTheKeyTagSelects) {
  Tables tables = DeviceTables();
  Tags tags = {{"device", "dev-1"}, {"metric", "temperature"}};
  const std::string* cell = tables.Lookup(tags, "devices.max_temp");
  ASSERT_NE(cell, nullptr);
  EXPECT_EQ(*cell, "40");
  EXPECT_EQ(*tables.Lookup(tags, "devices.site"), "north");
  EXPECT_EQ(*tables.Lookup(tags, "devices.device"), "dev-1");
  // An empty cell is missing, as a tag the reading lacks.
  Tags two = {{"device", "dev-2"}};
  EXPECT_EQ(tables.Lookup(two, "devices.max_temp"), nullptr);
  EXPECT_EQ(*tables.Lookup(two, "devices.site"), "south");
}

TEST(TableLookup, NothingWithoutTheKeyTagTheRowOrTheColumn) {
  Tables tables = DeviceTables();
  EXPECT_EQ(tables.Lookup({{"metric", "temperature"}}, "devices.max_temp"), nullptr);
  EXPECT_EQ(tables.Lookup({{"device", "dev-9"}}, "devices.max_temp"), nullptr);
  EXPECT_EQ(tables.Lookup({{"device", "dev-1"}}, "devices.min_temp"), nullptr);
  EXPECT_EQ(tables.Lookup({{"device", "dev-1"}}, "sites.max_temp"), nullptr);
  EXPECT_EQ(tables.Lookup({{"device", "dev-1"}}, "max_temp"), nullptr);
  EXPECT_EQ(Tables{}.Lookup({{"device", "dev-1"}}, "devices.max_temp"), nullptr);
}

}  // namespace
}  // namespace vigil::rules
