#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/reading.h"

namespace vigil::rules {

// Reference data for enrichment (stream–table join): per-device metadata that rules read
// as `<table>.<column>`, e.g. `devices.max_temp`. A table is keyed by one column (`key`);
// a reading or alert key finds its row through its tag of the same name. Cells are text,
// like tags (a number in a cell compares as a number, SPEC §12.14).
struct Table {
  std::string name;                  // e.g. "devices"
  std::string key;                   // the key column, matched against the tag of that name
  std::vector<std::string> columns;  // in file order, the key column included
  // key value → cells, one per column (an empty string for a missing cell).
  std::unordered_map<std::string, std::vector<std::string>> rows;

  // The cell of `column` in the row whose key is `key_value`; nullptr when there is no such
  // row or column, or the cell is empty.
  const std::string* Find(std::string_view key_value, std::string_view column) const;
};

// Every configured table; immutable once loaded, swapped whole when a file changes.
struct Tables {
  std::vector<Table> tables;

  const Table* Find(std::string_view name) const;
  // `<table>.<column>` of the row that `tags` select: the table's key column is looked up by
  // the tag of the same name. nullptr when `name` has no configured table prefix, the tags
  // lack the key tag, or there is no such row or column.
  const std::string* Lookup(const Tags& tags, std::string_view name) const;
};

}  // namespace vigil::rules
