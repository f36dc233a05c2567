#include "rules/checkpoint.h"

#include <cmath>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace vigil::rules {

double LoadDouble(const Packed& j) {
  if (j.is_null()) return std::nan("");
  if (j.is_string()) {
    const std::string_view s = j.Str();
    if (s == "nan") return std::nan("");
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw nlohmann::json::type_error::create(302, "not a number: " + std::string(s.substr(0, 32)),
                                             nullptr);
  }
  return j.get<double>();
}

void SaveCounts(const std::map<std::string, std::uint64_t>* counts, Packer& p) {
  p.Map(counts != nullptr ? counts->size() : 0);
  if (counts == nullptr) return;
  for (const auto& [value, n] : *counts) p.Str(value).Uint(n);
}

void LoadCounts(const Packed& j, std::map<std::string, std::uint64_t>* out) {
  j.ForEachItem([out](std::string_view key, const Packed& count) {
    (*out)[std::string(key)] = count.get<std::uint64_t>();
  });
}

}  // namespace vigil::rules
