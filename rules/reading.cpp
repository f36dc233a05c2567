#include "rules/reading.h"

#include <algorithm>

namespace vigil::rules {

const std::string* FindTag(const Tags& tags, std::string_view name) {
  auto it = std::lower_bound(tags.begin(), tags.end(), name,
                             [](const auto& tag, std::string_view n) { return tag.first < n; });
  if (it == tags.end() || it->first != name) return nullptr;
  return &it->second;
}

}  // namespace vigil::rules
