#pragma once

#include <string>
#include <vector>

namespace vigil::config {

// One problem found while loading a config or rule file. Loading never stops at the first
// problem: it returns every Diagnostic it found, so `vigil check` can list them all.
struct Diagnostic {
  std::string file;  // the path as the user gave it (or as resolved from the config)
  // Either a JSON pointer into the document ("/alert/when"), or, for JSON syntax errors,
  // "line:col" (1-based), or, in a CSV table, "line" or "line:col". Empty when the problem
  // concerns the whole file.
  std::string location;
  std::string message;  // e.g. `col 1: unknown name "avgg" (aggregates: avg, max, n)`

  // "file: /pointer: message", "file:line:col: message" ("file:line: message"), or
  // "file: message".
  std::string ToString() const;
};

using Diagnostics = std::vector<Diagnostic>;

}  // namespace vigil::config
