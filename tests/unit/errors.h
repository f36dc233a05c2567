#pragma once

// The unit tests' view of load errors: every diagnostic, one a line, as `vigil check` prints
// them (for assertions on messages and for failure output).

#include <string>

#include "config/diagnostic.h"

namespace vigil {

inline std::string Errors(const config::Diagnostics& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) out += d.ToString() + "\n";
  return out;
}

// Of a load result (ConfigResult, LoadResult, TablesLoadResult…): its diagnostics.
template <class Result>
std::string Errors(const Result& result) {
  return Errors(result.diagnostics);
}

}  // namespace vigil
