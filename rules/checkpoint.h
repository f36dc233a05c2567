#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "rules/packed.h"

namespace vigil::rules {

// Doubles in checkpoints: float64, NaN and infinities included (running sums of finite
// readings can overflow: two readings of 1.7e308), so a checkpoint of any state restores.
// Checkpoints of earlier versions, written through JSON, hold a non-finite value as a string
// ("inf", "-inf", "nan") or null (NaN); they still load. Throws nlohmann::json::exception
// when `j` is none of these.
double LoadDouble(const Packed& j);
// A map of strings to counts (distinct()'s state); nullptr saves an empty map.
void SaveCounts(const std::map<std::string, std::uint64_t>* counts, Packer& p);
void LoadCounts(const Packed& j, std::map<std::string, std::uint64_t>* out);

}  // namespace vigil::rules
