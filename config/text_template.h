#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/result.h"

namespace vigil::config {

// One piece of a text with `{name}` placeholders: literal text, or a placeholder.
struct TextPiece {
  enum class Kind { kLiteral, kPlaceholder };
  Kind kind = Kind::kLiteral;
  std::string text;  // the literal text (braces unescaped), or the placeholder's name
  // Placeholders of the kFormat syntax: the N of a `:.N` after the name (as atoi reads it, so
  // `{avg:.1f}` is 1); -1 without one, and in the other syntaxes.
  int decimals = -1;
  // Placeholders: as written, braces included (what TextTemplate::Unknown::kAsWritten keeps).
  std::string written;
};

// Splits a string of an mqtt uplink's payload template (uplink/README.md) into literal
// text and placeholders: `{name}` is a placeholder, `{{` and `}}` stand for `{` and `}`.
// Adjacent literal text is one piece; an empty text gives no pieces. Which names exist is
// the renderer's business (any name may be a key tag): this checks only the syntax.
// nullopt with *error set for a `{` without its `}`, a `}` without its `{`, an empty name,
// or a name with a brace, a space or a control character. TextTemplate's kStrict syntax.
std::optional<std::vector<TextPiece>> ParseTextTemplate(std::string_view text, std::string* error);

// A text with `{name}` placeholders, parsed once (at config or rule load) and rendered many
// times: every placeholder's value comes from a lookup the caller gives, and is written as
// an escaping policy says. One type for every template of vigil: an mqtt uplink's payload
// strings (kStrict), its topic (kLenient) and alert summaries (kFormat). Immutable and
// thread-safe after Parse.
class TextTemplate {
 public:
  enum class Syntax {
    // ParseTextTemplate's: `{{` and `}}` are literal braces; an unbalanced brace, an empty
    // name or one with a space is an error. Payload templates.
    kStrict,
    // A `{` up to the next `}` is a placeholder, whatever lies between (a `{` too); any other
    // brace is literal, and so is a `{` that nothing closes. Never an error. Topic templates.
    kLenient,
    // kLenient, and a `:.` in a placeholder ends its name: what follows is its number of
    // decimals (TextPiece::decimals). Alert summaries (`{avg:.1f}`).
    kFormat,
  };
  // How a value (and, for JSON, the whole text) is written into the output.
  enum class Escape {
    kPlain,       // as it is
    kJsonString,  // the whole text, literals too, as the content of a JSON string (as
                  // nlohmann::json writes it: `"`, `\`, control characters escaped, bytes
                  // that are not UTF-8 replaced by U+FFFD); no quotes around it
    kTopicLevel,  // each value as one MQTT topic level: `+`, `#` and `/` become `_`, an
                  // empty value is `_`; literals as they are
  };
  // What a placeholder the lookup has no value for becomes.
  enum class Unknown {
    kEmpty,      // nothing (a value of "")
    kAsWritten,  // the placeholder as written, braces included
  };

  // The empty template: renders "".
  TextTemplate() = default;
  // The template of `text`; an error (ParseTextTemplate's message) only in kStrict syntax.
  static Result<TextTemplate> Parse(std::string_view text, Syntax syntax);
  // The template that is `text` as it is, braces and all.
  static TextTemplate Literal(std::string_view text);

  // Appends the rendered text to *out. `lookup(piece, &value)` is called once per
  // placeholder in order, with `value` empty: it appends the placeholder's value and returns
  // true, or returns false when it has none (then `unknown` applies).
  template <typename Lookup>
  void Render(const Lookup& lookup, Escape escape, Unknown unknown, std::string* out) const;
  template <typename Lookup>
  std::string Render(const Lookup& lookup, Escape escape, Unknown unknown) const {
    std::string out;
    Render(lookup, escape, unknown, &out);
    return out;
  }

  const std::vector<TextPiece>& pieces() const { return pieces_; }
  // The placeholder that is the whole text, or null (a payload string that is exactly one
  // placeholder keeps its value's JSON type).
  const TextPiece* sole_placeholder() const {
    return pieces_.size() == 1 && pieces_[0].kind == TextPiece::Kind::kPlaceholder ? &pieces_[0]
                                                                                   : nullptr;
  }

 private:
  explicit TextTemplate(std::vector<TextPiece> pieces) : pieces_(std::move(pieces)) {}
  // Appends `value` to *out as `escape` says of a value.
  static void AppendValue(std::string_view value, Escape escape, std::string* out);
  // Appends `text` to *out as the content of a JSON string.
  static void AppendJsonString(std::string_view text, std::string* out);

  std::vector<TextPiece> pieces_;
};

template <typename Lookup>
void TextTemplate::Render(const Lookup& lookup, Escape escape, Unknown unknown,
                          std::string* out) const {
  // JSON escapes the whole text at once: exactly what a JSON writer makes of it.
  std::string whole;
  std::string* text = escape == Escape::kJsonString ? &whole : out;
  const Escape per_value = escape == Escape::kJsonString ? Escape::kPlain : escape;
  std::string value;
  for (const TextPiece& piece : pieces_) {
    if (piece.kind == TextPiece::Kind::kLiteral) {
      text->append(piece.text);
      continue;
    }
    value.clear();
    if (!lookup(piece, &value)) {
      value.clear();
      if (unknown == Unknown::kAsWritten) value = piece.written;
    }
    AppendValue(value, per_value, text);
  }
  if (escape == Escape::kJsonString) AppendJsonString(whole, out);
}

}  // namespace vigil::config
