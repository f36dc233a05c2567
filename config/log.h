#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vigil::log {

// Logging to stderr, one line a message, prefixed with a syslog level in angle brackets
// (journald reads it) and a level word: "<4>warning: uplink cloud: HTTP 503, retry in 2s".
// Thread-safe. Callers never pass secrets; as a second line of defence every secret given to
// SetSecrets is replaced by "***" in whatever is written. Control characters (a newline in
// a topic or in an upstream answer) are written escaped (\n, \x1b), so a message is one line
// and cannot forge another.
enum class Level { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

// The values never to write (config::Config::secrets). Secrets shorter than 4 bytes are not
// replaced (they would mangle ordinary words). Replaces the previous set.
void SetSecrets(const std::vector<std::string>& secrets);
// `text` with every secret replaced by "***" and control characters escaped: for what is
// shown elsewhere than the log (vigil status, errors on stderr).
std::string Redact(std::string_view text);

void SetLevel(Level level);
// "error", "warning", "info", "debug"; false for anything else.
bool SetLevel(std::string_view name);
bool Enabled(Level level);

void Write(Level level, std::string_view message);
inline void Error(std::string_view m) { Write(Level::kError, m); }
inline void Warning(std::string_view m) { Write(Level::kWarning, m); }
inline void Info(std::string_view m) { Write(Level::kInfo, m); }
inline void Debug(std::string_view m) { Write(Level::kDebug, m); }

// Like Write, but a message with the same `key` is written at most once per `interval_s`
// seconds (processing time); the suppressed count is appended to the next one written.
void WriteLimited(Level level, std::string_view key, std::string_view message, int interval_s = 60);

}  // namespace vigil::log
