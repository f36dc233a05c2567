#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "rules/packed.h"

namespace vigil::rules {

// Doubles in checkpoints. JSON has no NaN or infinity, and running sums of finite readings
// can overflow (two readings of 1.7e308), so a non-finite value is written as a string
// ("inf", "-inf", "nan") and read back as it was: a checkpoint of any state restores.
// Checkpoints written before this (null for NaN) still load.
nlohmann::json SaveDouble(double x);
// Throws nlohmann::json::exception when `j` is none of what SaveDouble writes (or null).
double LoadDouble(const Packed& j);
// A map of strings to counts (distinct()'s state), as nlohmann::json saves a std::map.
void LoadCounts(const Packed& j, std::map<std::string, std::uint64_t>* out);

}  // namespace vigil::rules
