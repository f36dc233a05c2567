#include "rules/table_loader.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>

#include "config/json_reader.h"
#include "config/values.h"

namespace vigil::rules {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Records the problems of one table file, up to kMaxTableDiagnostics of them; Finish() adds
// one line saying how many more there were.
class Problems {
 public:
  Problems(std::string file, config::Diagnostics* out) : file_(std::move(file)), out_(out) {}

  void Add(std::string location, std::string message) {
    if (++count_ <= kMaxTableDiagnostics) {
      out_->push_back({file_, std::move(location), std::move(message)});
    }
  }
  void Finish() {
    if (count_ > kMaxTableDiagnostics) {
      out_->push_back({file_, "",
                       "… and " + std::to_string(count_ - kMaxTableDiagnostics) +
                           " more problem(s) in this file"});
    }
  }
  bool any() const { return count_ > 0; }

 private:
  std::string file_;
  config::Diagnostics* out_;
  std::size_t count_ = 0;
};

// [A-Za-z_][A-Za-z0-9_]*: a name an expression can spell as `<table>.<column>`.
bool IsColumnName(std::string_view name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(name[0])) return false;
  for (char c : name) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string BadColumnName(std::string_view name) {
  return "column name \"" + std::string(name) +
         "\" cannot be used in expressions (letters, digits and _, not starting with a digit)";
}

std::string NoKeyColumn(const std::string& key, const std::vector<std::string>& columns) {
  std::string message = "no key column \"" + key + "\"";
  if (columns.empty()) return message;
  message += " (columns: ";
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (i > 0) message += ", ";
    message += columns[i];
  }
  return message + ")";
}

std::string TooManyRows() {
  return "more than " + std::to_string(kMaxTableRows) + " rows (the limit of a table)";
}

// The offset of the first byte that is not part of valid UTF-8, or npos.
std::size_t FirstNonUtf8(std::string_view s, std::size_t from) {
  std::size_t i = from;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return i;
    }
    if (i + n >= s.size()) return i;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Overlong forms, UTF-16 surrogates and code points beyond U+10FFFF are not UTF-8.
    const std::uint32_t min = n == 1 ? 0x80u : (n == 2 ? 0x800u : 0x10000u);
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return i;
    i += n + 1;
  }
  return std::string_view::npos;
}

std::size_t LineOf(std::string_view text, std::size_t offset) {
  std::size_t line = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) line += text[i] == '\n' ? 1 : 0;
  return line;
}

// ---- both ----

const std::string* LongCell(const std::vector<std::string>& cells) {
  for (const std::string& cell : cells) {
    if (cell.size() > kMaxCellBytes) return &cell;
  }
  return nullptr;
}

std::string TooLong(const std::string& cell) {
  return "a cell of " + std::to_string(cell.size()) + " bytes; at most " +
         std::to_string(kMaxCellBytes);
}

// ---- CSV ----

// Splits CSV text into records (RFC 4180). Stops at the first structural error (an unclosed
// quote, text after a closing quote, a quote inside an unquoted field): what follows cannot
// be told apart reliably.
class CsvReader {
 public:
  explicit CsvReader(std::string_view text) : text_(text) {
    if (text_.substr(0, kBom.size()) == kBom) pos_ = line_start_ = kBom.size();
  }

  std::size_t pos() const { return pos_; }

  // The next record into *fields, and the line it starts on. False at the end of the text,
  // or after an error (then *error and *error_location are set).
  bool Next(std::vector<std::string>* fields, std::size_t* line, std::string* error,
            std::string* error_location) {
    fields->clear();
    // Empty lines hold no record.
    while (pos_ < text_.size() && (text_[pos_] == '\n' || text_.substr(pos_, 2) == "\r\n")) {
      pos_ += text_[pos_] == '\n' ? 1 : 2;
      NewLine();
    }
    if (pos_ >= text_.size()) return false;
    *line = line_;
    while (true) {
      std::string field;
      if (pos_ < text_.size() && text_[pos_] == '"') {  // (a comma may end the text)
        const std::string opened = Here();
        ++pos_;
        while (true) {
          if (pos_ >= text_.size()) {
            *error = "a quoted field is not closed (it opens here)";
            *error_location = opened;
            return false;
          }
          const char c = text_[pos_];
          if (c == '"') {
            if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
              field += '"';
              pos_ += 2;
              continue;
            }
            ++pos_;
            break;
          }
          field += c;
          ++pos_;
          if (c == '\n') NewLine();
        }
        if (pos_ < text_.size() && text_[pos_] != ',' && !AtLineEnd()) {
          *error = "a closing quote must be followed by a comma or the end of the line";
          *error_location = Here();
          return false;
        }
      } else {
        const std::size_t start = pos_;
        while (pos_ < text_.size() && text_[pos_] != ',' && !AtLineEnd()) {
          if (text_[pos_] == '"') {
            *error =
                "a quote inside an unquoted field (quote the whole field and double the quote: "
                "\"a \"\"b\"\" c\")";
            *error_location = Here();
            return false;
          }
          ++pos_;
        }
        field.assign(text_.substr(start, pos_ - start));
      }
      fields->push_back(std::move(field));
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size()) {  // the end of the line
        pos_ += text_[pos_] == '\n' ? 1 : 2;
        NewLine();
      }
      return true;
    }
  }

 private:
  bool AtLineEnd() const { return text_[pos_] == '\n' || text_.substr(pos_, 2) == "\r\n"; }
  void NewLine() {
    ++line_;
    line_start_ = pos_;
  }
  std::string Here() const {
    return std::to_string(line_) + ":" + std::to_string(pos_ - line_start_ + 1);
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::size_t line_start_ = 0;
};

void ParseCsv(std::string_view text, Table* table, Problems* problems) {
  CsvReader reader(text);
  if (const std::size_t bad = FirstNonUtf8(text, reader.pos()); bad != std::string_view::npos) {
    problems->Add(std::to_string(LineOf(text, bad)), "not UTF-8 text");
    return;
  }
  std::vector<std::string> fields;
  std::size_t line = 0;
  std::string error;
  std::string where;
  if (!reader.Next(&fields, &line, &error, &where)) {
    if (!error.empty()) {
      problems->Add(where, error);
    } else {
      problems->Add("", "the file is empty: the first line must name the columns");
    }
    return;
  }
  table->columns = fields;
  std::size_t key_index = fields.size();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!IsColumnName(fields[i])) problems->Add(std::to_string(line), BadColumnName(fields[i]));
    for (std::size_t j = 0; j < i; ++j) {
      if (fields[j] == fields[i]) {
        problems->Add(std::to_string(line), "column \"" + fields[i] + "\" appears twice");
      }
    }
    if (fields[i] == table->key && key_index == fields.size()) key_index = i;
  }
  if (key_index == fields.size()) {
    problems->Add(std::to_string(line), NoKeyColumn(table->key, table->columns));
    return;
  }
  // Where each key was first seen; the views point into table->rows' keys, which stay put.
  std::unordered_map<std::string_view, std::size_t> first_line;
  // About one row a line: sized once, the maps are not rehashed as they grow.
  const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  table->rows.reserve(std::min(lines, kMaxTableRows));
  first_line.reserve(std::min(lines, kMaxTableRows));
  while (reader.Next(&fields, &line, &error, &where)) {
    const std::string at = std::to_string(line);
    if (table->rows.size() >= kMaxTableRows) {
      problems->Add(at, TooManyRows());
      return;
    }
    if (fields.size() > table->columns.size()) {
      problems->Add(at, std::to_string(fields.size()) + " cells; the header has " +
                            std::to_string(table->columns.size()) + " columns");
      continue;
    }
    fields.resize(table->columns.size());
    if (const std::string* long_cell = LongCell(fields)) {
      problems->Add(at, TooLong(*long_cell));
      continue;
    }
    std::string key = fields[key_index];
    if (key.empty()) {
      problems->Add(at, "the key column \"" + table->key + "\" is empty");
      continue;
    }
    auto [row, added] = table->rows.try_emplace(std::move(key), std::move(fields));
    if (!added) {
      problems->Add(at, "duplicate key \"" + row->first + "\" (first on line " +
                            std::to_string(first_line.at(row->first)) + ")");
      continue;
    }
    first_line.emplace(row->first, line);
    fields = {};
  }
  if (!error.empty()) problems->Add(where, error);
}

// ---- JSON ----

// One reference token of a JSON pointer (RFC 6901: "~" → "~0", "/" → "~1").
std::string PointerToken(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

void ParseJson(std::string_view text, const std::string& file, Table* table, Problems* problems) {
  // ordered_json keeps the keys in file order: the columns' order.
  nlohmann::ordered_json doc =
      nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // JsonReader says where and why, as for any JSON file of the agent.
    config::Diagnostics syntax;
    config::JsonReader reader(file, &syntax);
    (void)reader.Parse(text);
    if (syntax.empty()) syntax.push_back({file, "", "invalid JSON"});
    for (auto& d : syntax) problems->Add(std::move(d.location), std::move(d.message));
    return;
  }
  if (!doc.is_array()) {
    problems->Add("", "a JSON table must be an array of objects, one per row");
    return;
  }
  if (doc.size() > kMaxTableRows) {
    problems->Add("", std::to_string(doc.size()) + " rows: " + TooManyRows());
    return;
  }
  // The columns: every key, in order of first appearance.
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& row = doc[i];
    if (!row.is_object()) {
      problems->Add("/" + std::to_string(i), "a row must be an object");
      continue;
    }
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (index.count(it.key()) > 0) continue;
      if (!IsColumnName(it.key())) {
        problems->Add("/" + std::to_string(i) + "/" + PointerToken(it.key()),
                      BadColumnName(it.key()));
      }
      index.emplace(it.key(), table->columns.size());
      table->columns.push_back(it.key());
    }
  }
  if (doc.empty()) table->columns.push_back(table->key);
  auto key_column = index.find(table->key);
  if (!doc.empty() && key_column == index.end()) {
    problems->Add("", NoKeyColumn(table->key, table->columns));
    return;
  }
  std::unordered_map<std::string_view, std::size_t> first_index;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& row = doc[i];
    if (!row.is_object()) continue;
    const std::string at = "/" + std::to_string(i);
    std::vector<std::string> cells(table->columns.size());
    bool ok = true;
    for (auto it = row.begin(); it != row.end(); ++it) {
      const auto& v = it.value();
      std::string& cell = cells[index.at(it.key())];
      if (v.is_string()) {
        cell = v.get<std::string>();
      } else if (v.is_number() || v.is_boolean()) {
        cell = v.dump();
      } else if (!v.is_null()) {
        problems->Add(at + "/" + PointerToken(it.key()),
                      "a cell must be a string, a number, true, false or null");
        ok = false;
      }
    }
    if (const std::string* long_cell = LongCell(cells); ok && long_cell != nullptr) {
      problems->Add(at, TooLong(*long_cell));
      ok = false;
    }
    if (!ok) continue;
    std::string key = cells[key_column->second];
    if (key.empty()) {
      problems->Add(at, "the key column \"" + table->key + "\" is missing or empty");
      continue;
    }
    auto [entry, added] = table->rows.try_emplace(std::move(key), std::move(cells));
    if (!added) {
      problems->Add(at + "/" + PointerToken(table->key),
                    "duplicate key \"" + entry->first + "\" (first at /" +
                        std::to_string(first_index.at(entry->first)) + ")");
      continue;
    }
    first_index.emplace(entry->first, i);
  }
}

}  // namespace

TableLoadResult ParseTable(std::string_view text, const config::TableConfig& config) {
  TableLoadResult result;
  Problems problems(config.file, &result.diagnostics);
  if (text.size() > kMaxTableBytes) {
    problems.Add("", "the file is " + std::to_string(text.size()) +
                         " bytes; a table file may have at most " + std::to_string(kMaxTableBytes) +
                         " (16 MiB)");
    return result;
  }
  Table table;
  table.name = config.name;
  table.key = config.key;
  if (config.format == "csv") {
    ParseCsv(text, &table, &problems);
  } else if (config.format == "json") {
    ParseJson(text, config.file, &table, &problems);
  } else {
    problems.Add("", "unknown table format \"" + config.format + "\" (csv, json)");
  }
  problems.Finish();
  if (!problems.any()) result.table = std::move(table);
  return result;
}

TableLoadResult LoadTable(const config::TableConfig& config) {
  namespace fs = std::filesystem;
  TableLoadResult result;
  std::error_code ec;
  if (!fs::exists(config.file, ec)) {
    result.diagnostics.push_back({config.file, "", "no such table file"});
    return result;
  }
  // The size first: a huge file is refused without being read, and so is anything but a
  // regular file (a device or a pipe might never end).
  const bool regular = fs::is_regular_file(config.file, ec);
  const auto size = regular ? fs::file_size(config.file, ec) : 0;
  if (!regular || ec) {
    result.diagnostics.push_back(
        {config.file, "", "cannot read the table file (not a regular file)"});
    return result;
  }
  if (size > kMaxTableBytes) {
    result.diagnostics.push_back({config.file, "",
                                  "the file is " + std::to_string(size) +
                                      " bytes; a table file may have at most " +
                                      std::to_string(kMaxTableBytes) + " (16 MiB)"});
    return result;
  }
  std::optional<std::string> text = config::ReadFile(config.file);
  if (!text) {
    result.diagnostics.push_back({config.file, "", "cannot read the table file"});
    return result;
  }
  return ParseTable(*text, config);
}

TablesLoadResult LoadTables(const std::vector<config::TableConfig>& configs) {
  TablesLoadResult result;
  auto tables = std::make_shared<Tables>();
  for (const auto& c : configs) {
    TableLoadResult one = LoadTable(c);
    result.diagnostics.insert(result.diagnostics.end(), one.diagnostics.begin(),
                              one.diagnostics.end());
    if (one.table) tables->tables.push_back(std::move(*one.table));
  }
  if (result.diagnostics.empty()) result.tables = std::move(tables);
  return result;
}

}  // namespace vigil::rules
