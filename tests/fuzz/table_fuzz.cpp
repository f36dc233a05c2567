// Fuzz target: the reference table loader (rules/table_loader.h) on arbitrary text.
// Input: a flags byte (bit 0: JSON, else CSV; bit 1: the key column is "k", else "device"),
// then the file's text.
// Checks: no crash, no exception, no unbounded time or memory; either a table or at least one
// diagnostic, never both; every diagnostic names the file; a table's columns are unique
// names expressions can use and hold the key column; every row has one cell per column and
// its key cell is its (non-empty) key.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_bytes.h"
#include "rules/table_loader.h"

namespace {

bool IsColumnName(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vigil::fuzz::Bytes bytes(data, size);
  const std::uint8_t flags = bytes.U8();
  const bool json = (flags & 1) != 0;
  vigil::config::TableConfig config{"devices", json ? "devices.json" : "devices.csv",
                                    (flags & 2) != 0 ? "k" : "device", json ? "json" : "csv"};
  vigil::rules::TableLoadResult r = vigil::rules::ParseTable(bytes.Rest(), config);
  if (r.table.has_value() == !r.diagnostics.empty()) std::abort();
  if (r.diagnostics.size() > vigil::rules::kMaxTableDiagnostics + 1) std::abort();
  for (const auto& d : r.diagnostics) {
    if (d.file != config.file || d.message.empty()) std::abort();
    (void)d.ToString();
  }
  if (!r.table) return 0;
  const vigil::rules::Table& t = *r.table;
  if (t.name != config.name || t.key != config.key) std::abort();
  auto key = std::find(t.columns.begin(), t.columns.end(), t.key);
  if (key == t.columns.end()) std::abort();
  const auto key_index = static_cast<std::size_t>(key - t.columns.begin());
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    if (!IsColumnName(t.columns[i])) std::abort();
    for (std::size_t j = 0; j < i; ++j) {
      if (t.columns[i] == t.columns[j]) std::abort();
    }
  }
  if (t.rows.size() > vigil::rules::kMaxTableRows) std::abort();
  for (const auto& [k, cells] : t.rows) {
    if (k.empty() || cells.size() != t.columns.size() || cells[key_index] != k) std::abort();
    if (t.Find(k, t.key) == nullptr) std::abort();
  }
  return 0;
}
