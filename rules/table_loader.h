#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/diagnostic.h"
#include "rules/table.h"

namespace vigil::rules {

// Limits on one table file (README "Limits"); beyond them loading fails with a diagnostic
// that names the limit.
constexpr std::uint64_t kMaxTableBytes =
    std::uint64_t{16} * 1024 * 1024;  // the file, checked before reading
constexpr std::size_t kMaxTableRows = 1'000'000;
// One cell: a cell is read like a tag, and a regex (`=~`) recurses once per character, so its
// length is bounded as `mqtt.max_tag_bytes` bounds a tag's.
constexpr std::size_t kMaxCellBytes = 4096;
// A table with more problems than this reports the first ones and how many more there were.
constexpr std::size_t kMaxTableDiagnostics = 50;

struct TableLoadResult {
  std::optional<Table> table;       // set only when diagnostics is empty
  config::Diagnostics diagnostics;  // every problem found (up to kMaxTableDiagnostics + 1)
};

// Parses the text of a table file in `config.format` ("csv" or "json"); `config.file` names
// it in diagnostics, `config.name` and `config.key` become the Table's.
//
// CSV (RFC 4180): a header row of column names, then one row per record; fields separated
// by commas; a field in double quotes may hold commas, line breaks and `""` (one quote);
// lines end in LF or CRLF; the last line break is optional; a UTF-8 byte order mark is
// skipped; empty lines are skipped. Diagnostics name the line ("devices.csv:7: …").
//
// JSON: an array of objects, one per row; the columns are every key in order of first
// appearance. Cells: strings as they are, numbers as nlohmann prints them (`30`, `30.5`),
// `true`/`false`, null as an empty cell; an array or object is an error. Diagnostics name
// the JSON pointer ("devices.json: /3/max_temp: …"), or line:col for a syntax error.
//
// Either way: column names must be names expressions can use ([A-Za-z_][A-Za-z0-9_]*) and
// unique; the key column must exist; a row's key cell must not be empty and no two rows may
// share a key (the error names both rows); a CSV row with more cells than the header is an
// error, one with fewer gets empty cells; the text must be UTF-8; at most kMaxTableRows rows.
TableLoadResult ParseTable(std::string_view text, const config::TableConfig& config);

// Reads `config.file` and parses it. A file larger than kMaxTableBytes is refused unread, as
// is anything but a regular file.
TableLoadResult LoadTable(const config::TableConfig& config);

struct TablesLoadResult {
  std::shared_ptr<const Tables> tables;  // set only when diagnostics is empty
  config::Diagnostics diagnostics;       // every problem in every table file
};

// Loads every configured table (config::Config::tables), in the order given.
TablesLoadResult LoadTables(const std::vector<config::TableConfig>& configs);

}  // namespace vigil::rules
