#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"

namespace vigil {

// Durations, and event/processing times as milliseconds since the Unix epoch (UTC).
using Millis = std::chrono::milliseconds;

namespace config {

// "250ms", "10s", "5m", "2h", "1d", sequences "1m30s" and decimals "1.5s" (SPEC §12.1).
// Units: ms, s, m, h, d. A bare "0" is zero. nullopt when malformed or negative.
std::optional<Millis> ParseDuration(std::string_view text);

// "64KiB", "512MiB", "1GiB", "100B", "10MB" (decimal units kB/MB/GB also accepted), or a
// plain number of bytes. nullopt when malformed.
std::optional<std::uint64_t> ParseSize(std::string_view text);

// RFC 3339 with offsets and fractions ("2026-11-22T10:02:00.5+01:00", "…Z"); the result is
// truncated to milliseconds. nullopt when malformed.
std::optional<Millis> ParseRfc3339(std::string_view text);

// "2026-11-22T10:02:00.000Z" (SPEC §12.21).
std::string FormatRfc3339(Millis t);

// The whole content of a file; nullopt when it cannot be read.
std::optional<std::string> ReadFile(const std::string& path);

// A ${file:} value is a secret or a small setting: larger files are refused.
constexpr std::uint64_t kMaxSubstitutedFileBytes = std::uint64_t{64} * 1024;

// Replaces every ${env:NAME} and ${file:PATH} in `text`. PATH is relative to `base_dir`
// when not absolute; a file's content loses one trailing newline (SPEC §12.23); PATH must be
// a regular file of at most kMaxSubstitutedFileBytes. The error names the missing variable
// or unreadable file, never the substituted value. Each substituted value is appended to
// *secrets when given (config.h: Config::secrets).
Result<std::string> Substitute(std::string_view text, const std::string& base_dir,
                               std::vector<std::string>* secrets = nullptr);

}  // namespace config
}  // namespace vigil
