#include "rules/table.h"

#include <algorithm>

namespace vigil::rules {

const std::string* Table::Find(std::string_view key_value, std::string_view column) const {
  auto row = rows.find(std::string(key_value));
  if (row == rows.end()) return nullptr;
  auto col = std::find(columns.begin(), columns.end(), column);
  if (col == columns.end()) return nullptr;
  const auto index = static_cast<std::size_t>(col - columns.begin());
  // An empty cell (JSON null, a short CSV row) is missing, like a tag the reading lacks.
  return index < row->second.size() && !row->second[index].empty() ? &row->second[index] : nullptr;
}

const Table* Tables::Find(std::string_view name) const {
  for (const Table& t : tables) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const std::string* Tables::Lookup(const Tags& tags, std::string_view name) const {
  const std::size_t dot = name.find('.');
  if (dot == std::string_view::npos) return nullptr;
  const Table* table = Find(name.substr(0, dot));
  if (table == nullptr) return nullptr;
  const std::string* key_value = FindTag(tags, table->key);
  if (key_value == nullptr) return nullptr;
  return table->Find(*key_value, name.substr(dot + 1));
}

}  // namespace vigil::rules
