#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vigil::config {

// A subscription's topic template, e.g. "sensors/{device}/{metric}" or "plant/{line}/#".
// `{name}` matches exactly one topic level and captures it as a tag; a final `#` matches
// the rest (zero or more levels) without capturing; `+` matches one level without capturing.
// Immutable and thread-safe after Parse.
class TopicTemplate {
 public:
  // nullopt with *error set when malformed (empty level name, `#` not last, duplicate name,
  // `{` not closing a whole level…).
  static std::optional<TopicTemplate> Parse(std::string_view text, std::string* error);

  // True when `topic` matches; then *captures (if not null) receives the captured
  // (name, level) pairs in template order (cleared first).
  bool Match(std::string_view topic,
             std::vector<std::pair<std::string, std::string>>* captures) const;

  // The MQTT subscription filter: every `{name}` becomes `+` ("sensors/+/+").
  std::string Filter() const;
  const std::string& text() const { return text_; }
  // The capture names in template order.
  std::vector<std::string> Names() const;

 private:
  struct Level {
    enum class Kind { kLiteral, kCapture, kPlus, kHash } kind;
    std::string text;  // literal text, or capture name
  };
  std::string text_;
  std::vector<Level> levels_;
};

}  // namespace vigil::config
