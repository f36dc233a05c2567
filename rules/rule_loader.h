#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "rules/engine.h"

namespace vigil::rules {

// LoadRules and ParseRules (engine.h) within the limits of `rules.*` (config::RuleLimits,
// README "Limits"): more rule files than max_files, a file larger than max_file_bytes (it is
// not read) or an expression longer than max_expression_bytes is an error that names the
// limit, like any other load error. The overloads in engine.h apply the default limits.
LoadResult LoadRules(const std::vector<std::string>& paths, const config::RuleLimits& limits);
LoadResult ParseRules(std::string_view text, const std::string& file,
                      const config::RuleLimits& limits);

}  // namespace vigil::rules
