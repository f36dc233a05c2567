#include "rules/checkpoint.h"

#include <cmath>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace vigil::rules {

nlohmann::json SaveDouble(double x) {
  if (std::isfinite(x)) return x;
  if (std::isnan(x)) return "nan";
  return x > 0 ? "inf" : "-inf";
}

double LoadDouble(const nlohmann::json& j) {
  if (j.is_null()) return std::nan("");
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "nan") return std::nan("");
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw nlohmann::json::type_error::create(302, "not a number: " + s.substr(0, 32), nullptr);
  }
  return j.get<double>();
}

}  // namespace vigil::rules
