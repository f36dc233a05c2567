#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::config {

// One piece of a text with `{name}` placeholders: literal text, or a placeholder's name.
struct TextPiece {
  enum class Kind { kLiteral, kPlaceholder };
  Kind kind = Kind::kLiteral;
  std::string text;  // the literal text (braces unescaped), or the placeholder's name
};

// Splits a string of an mqtt uplink's payload template (uplink/README.md) into literal
// text and placeholders: `{name}` is a placeholder, `{{` and `}}` stand for `{` and `}`.
// Adjacent literal text is one piece; an empty text gives no pieces. Which names exist is
// the renderer's business (any name may be a key tag): this checks only the syntax.
// nullopt with *error set for a `{` without its `}`, a `}` without its `{`, an empty name,
// or a name with a brace, a space or a control character.
std::optional<std::vector<TextPiece>> ParseTextTemplate(std::string_view text, std::string* error);

}  // namespace vigil::config
