// Fuzz target: the config loader (config/config.h) on arbitrary text.
// Checks: no crash, no exception, no unbounded time or memory; either a config or at
// least one diagnostic, never both; every diagnostic names the file.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // A folder that does not exist: relative ${file:} references fail cleanly.
  const std::string path = "/nonexistent/vigil-fuzz/vigil.json";
  vigil::config::ConfigResult r = vigil::config::ParseConfig(text, path);
  if (r.config.has_value() == !r.diagnostics.empty()) std::abort();
  for (const auto& d : r.diagnostics) {
    if (d.file != path || d.message.empty()) std::abort();
    (void)d.ToString();
  }
  if (r.config) {
    if (r.config->mqtt.subscriptions.empty()) std::abort();
    for (const auto& s : r.config->mqtt.subscriptions) (void)s.topic.Filter();
  }
  return 0;
}
