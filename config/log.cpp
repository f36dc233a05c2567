#include "config/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

namespace vigil::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;  // guards stderr writes and g_limited

struct Limited {
  std::chrono::steady_clock::time_point last;
  long suppressed = 0;
};
std::map<std::string, Limited, std::less<>> g_limited;

const char* Word(Level level) {
  switch (level) {
    case Level::kError:
      return "error";
    case Level::kWarning:
      return "warning";
    case Level::kInfo:
      return "info";
    case Level::kDebug:
      return "debug";
  }
  return "info";
}

void WriteLocked(Level level, std::string_view message) {
  std::string line = "<" + std::to_string(static_cast<int>(level)) + ">" + Word(level) + ": ";
  line.append(message);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }

bool SetLevel(std::string_view name) {
  for (Level l : {Level::kError, Level::kWarning, Level::kInfo, Level::kDebug}) {
    if (name == Word(l)) {
      SetLevel(l);
      return true;
    }
  }
  return false;
}

bool Enabled(Level level) { return static_cast<int>(level) <= g_level.load(); }

void Write(Level level, std::string_view message) {
  if (!Enabled(level)) return;
  std::lock_guard lock(g_mu);
  WriteLocked(level, message);
}

void WriteLimited(Level level, std::string_view key, std::string_view message, int interval_s) {
  if (!Enabled(level)) return;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(g_mu);
  auto it = g_limited.find(key);
  if (it != g_limited.end() && now - it->second.last < std::chrono::seconds(interval_s)) {
    ++it->second.suppressed;
    return;
  }
  long suppressed = 0;
  if (it == g_limited.end()) {
    it = g_limited.emplace(std::string(key), Limited{}).first;
  } else {
    suppressed = it->second.suppressed;
  }
  it->second.last = now;
  it->second.suppressed = 0;
  if (suppressed > 0) {
    std::string m(message);
    m += " (" + std::to_string(suppressed) + " more like it suppressed)";
    WriteLocked(level, m);
  } else {
    WriteLocked(level, message);
  }
}

}  // namespace vigil::log
