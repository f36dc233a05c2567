#include "config/values.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace vigil::config {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Parses a decimal number at the front of `s` ("12", "1.5"); advances `s`.
std::optional<double> TakeNumber(std::string_view& s) {
  std::size_t i = 0;
  while (i < s.size() && IsDigit(s[i])) ++i;
  std::size_t int_digits = i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::size_t frac_start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == frac_start) return std::nullopt;
  }
  if (int_digits == 0 && i == 0) return std::nullopt;
  double v = std::strtod(std::string(s.substr(0, i)).c_str(), nullptr);
  s.remove_prefix(i);
  return v;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
long long DaysFromCivil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

void CivilFromDays(long long z, long long* y, unsigned* m, unsigned* d) {
  z += 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<long long>(yoe) + era * 400 + (*m <= 2);
}

std::optional<int> Digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<Millis> ParseDuration(std::string_view text) {
  if (text == "0") return Millis(0);
  if (text.empty()) return std::nullopt;
  double total = 0;
  std::string_view s = text;
  while (!s.empty()) {
    auto n = TakeNumber(s);
    if (!n) return std::nullopt;
    double scale = 0;
    if (s.substr(0, 2) == "ms") {
      scale = 1;
      s.remove_prefix(2);
    } else if (!s.empty() && s[0] == 's') {
      scale = 1000;
      s.remove_prefix(1);
    } else if (!s.empty() && s[0] == 'm') {
      scale = 60'000;
      s.remove_prefix(1);
    } else if (!s.empty() && s[0] == 'h') {
      scale = 3'600'000;
      s.remove_prefix(1);
    } else if (!s.empty() && s[0] == 'd') {
      scale = 86'400'000;
      s.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    total += *n * scale;
  }
  if (total > 1e15) return std::nullopt;
  return Millis(static_cast<long long>(std::llround(total)));
}

std::optional<std::uint64_t> ParseSize(std::string_view text) {
  std::string_view s = text;
  auto n = TakeNumber(s);
  if (!n) return std::nullopt;
  double scale = 0;
  if (s.empty() || s == "B") {
    scale = 1;
  } else if (s == "KiB") {
    scale = 1024.0;
  } else if (s == "MiB") {
    scale = 1024.0 * 1024;
  } else if (s == "GiB") {
    scale = 1024.0 * 1024 * 1024;
  } else if (s == "kB" || s == "KB") {
    scale = 1e3;
  } else if (s == "MB") {
    scale = 1e6;
  } else if (s == "GB") {
    scale = 1e9;
  } else {
    return std::nullopt;
  }
  double v = *n * scale;
  if (v > 1e18) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(v));
}

std::optional<Millis> ParseRfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  auto year = Digits(s, 0, 4), month = Digits(s, 5, 2), day = Digits(s, 8, 2);
  auto hour = Digits(s, 11, 2), minute = Digits(s, 14, 2), second = Digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 ||
      *second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  long long frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    long long scale = 100;
    while (pos < s.size() && IsDigit(s[pos])) {
      frac_ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  long long offset_min = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    auto oh = Digits(s, pos + 1, 2), om = Digits(s, pos + 4, 2);
    if (!oh || !om || s[pos + 3] != ':') return std::nullopt;
    offset_min = *oh * 60 + *om;
    if (s[pos] == '-') offset_min = -offset_min;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  long long days = DaysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  long long secs = days * 86400 + static_cast<long long>(*hour) * 3600 +
                   static_cast<long long>(*minute) * 60 + *second - offset_min * 60;
  return Millis(secs * 1000 + frac_ms);
}

std::string FormatRfc3339(Millis t) {
  long long ms = t.count();
  long long days = ms >= 0 ? ms / 86'400'000 : -((-ms + 86'399'999) / 86'400'000);
  long long rem = ms - days * 86'400'000;
  long long y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", y, m, d,
                rem / 3'600'000, rem / 60'000 % 60, rem / 1000 % 60, rem % 1000);
  return buf;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<std::string> Substitute(std::string_view text, const std::string& base_dir,
                               std::vector<std::string>* secrets) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    std::size_t open = text.find("${", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      return out;
    }
    out.append(text.substr(pos, open - pos));
    std::size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      return Result<std::string>::Error("unclosed \"${\"");
    }
    std::string_view ref = text.substr(open + 2, close - open - 2);
    if (ref.substr(0, 4) == "env:") {
      std::string name(ref.substr(4));
      const char* v = std::getenv(name.c_str());
      if (v == nullptr) {
        return Result<std::string>::Error("environment variable " + name + " is not set");
      }
      out += v;
      if (secrets != nullptr && *v != '\0') secrets->emplace_back(v);
    } else if (ref.substr(0, 5) == "file:") {
      std::string path(ref.substr(5));
      if (!path.empty() && path[0] != '/' && !base_dir.empty())
        path = std::string(base_dir).append("/").append(path);
      // A secret is a small regular file: a device or a pipe might never end.
      std::error_code ec;
      const auto size = std::filesystem::file_size(path, ec);
      if (ec) return Result<std::string>::Error("cannot read file " + path);
      if (size > kMaxSubstitutedFileBytes) {
        return Result<std::string>::Error("file " + path + " is larger than " +
                                          std::to_string(kMaxSubstitutedFileBytes) + " bytes");
      }
      std::optional<std::string> content = ReadFile(path);
      if (!content) return Result<std::string>::Error("cannot read file " + path);
      std::string c = std::move(*content);
      if (!c.empty() && c.back() == '\n') c.pop_back();
      if (secrets != nullptr && !c.empty()) secrets->push_back(c);
      out += c;
    } else {
      return Result<std::string>::Error("unknown substitution \"${" + std::string(ref) +
                                        "}\" (use ${env:NAME} or ${file:PATH})");
    }
    pos = close + 1;
  }
}

}  // namespace vigil::config
