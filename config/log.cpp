#include "config/log.h"

#include <algorithm>
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

std::mutex g_secrets_mu;  // guards g_secrets
std::vector<std::string> g_secrets;
constexpr std::size_t kMinSecret = 4;

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
  line.append(Redact(message));
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetSecrets(const std::vector<std::string>& secrets) {
  std::vector<std::string> kept;
  for (const auto& s : secrets) {
    if (s.size() >= kMinSecret) kept.push_back(s);
  }
  // Longest first: a secret that contains another is replaced whole.
  std::sort(kept.begin(), kept.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::lock_guard lock(g_secrets_mu);
  g_secrets = std::move(kept);
}

std::string Redact(std::string_view text) {
  std::string out(text);
  {
    std::lock_guard lock(g_secrets_mu);
    for (const auto& secret : g_secrets) {
      for (std::size_t at = out.find(secret); at != std::string::npos;
           at = out.find(secret, at + 3)) {
        out.replace(at, secret.size(), "***");
      }
    }
  }
  std::string escaped;
  for (char c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      escaped.push_back(c);
    } else if (c == '\n') {
      escaped += "\\n";
    } else if (c == '\r') {
      escaped += "\\r";
    } else if (c == '\t') {
      escaped += "\\t";
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      escaped += buf;
    }
  }
  return escaped;
}

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
