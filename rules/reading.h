#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/values.h"

namespace vigil::rules {

// Tags: (name, value) pairs sorted by name, names unique.
using Tags = std::vector<std::pair<std::string, std::string>>;

// One sensor reading after decoding. `tags` always contains ("metric", metric) besides the
// topic captures and payload tags (SPEC §12.13: the default group_by includes metric).
// `value` is finite (NaN/Inf are rejected at ingest).
struct Reading {
  std::string metric;
  Tags tags;
  Millis time{0};  // event time
  double value = 0;
};

// Looks a tag up in sorted tags; nullptr when absent.
const std::string* FindTag(const Tags& tags, std::string_view name);

}  // namespace vigil::rules
