#include "config/text_template.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

namespace vigil::config {
namespace {

// Appends literal text to the pieces, joining it to a literal piece before it.
void AppendLiteral(std::string_view s, std::vector<TextPiece>* pieces) {
  if (s.empty()) return;
  if (pieces->empty() || pieces->back().kind != TextPiece::Kind::kLiteral) {
    pieces->emplace_back();  // a literal
  }
  pieces->back().text.append(s);
}

// The kLenient and kFormat syntaxes (never an error).
std::vector<TextPiece> ParseLenient(std::string_view text, bool formats) {
  std::vector<TextPiece> pieces;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t open = text.find('{', pos);
    const std::size_t close = open == std::string_view::npos ? open : text.find('}', open);
    if (close == std::string_view::npos) {
      AppendLiteral(text.substr(pos), &pieces);
      break;
    }
    AppendLiteral(text.substr(pos, open - pos), &pieces);
    TextPiece piece;
    piece.kind = TextPiece::Kind::kPlaceholder;
    piece.text = text.substr(open + 1, close - open - 1);
    piece.written = text.substr(open, close - open + 1);
    if (formats) {
      if (const std::size_t colon = piece.text.find(":."); colon != std::string::npos) {
        piece.decimals = std::atoi(piece.text.c_str() + colon + 2);
        piece.text.resize(colon);
      }
    }
    pieces.push_back(std::move(piece));
    pos = close + 1;
  }
  return pieces;
}

}  // namespace

std::optional<std::vector<TextPiece>> ParseTextTemplate(std::string_view text, std::string* error) {
  std::vector<TextPiece> pieces;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t brace = text.find_first_of("{}", pos);
    if (brace == std::string_view::npos) {
      AppendLiteral(text.substr(pos), &pieces);
      break;
    }
    AppendLiteral(text.substr(pos, brace - pos), &pieces);
    const char c = text[brace];
    if (brace + 1 < text.size() && text[brace + 1] == c) {  // `{{` or `}}`
      AppendLiteral(text.substr(brace, 1), &pieces);
      pos = brace + 2;
      continue;
    }
    if (c == '}') {
      *error = "'}' at position " + std::to_string(brace + 1) +
               " closes no '{' (write }} for a literal })";
      return std::nullopt;
    }
    const std::size_t close = text.find_first_of("{}", brace + 1);
    if (close == std::string_view::npos || text[close] == '{') {
      *error = "'{' at position " + std::to_string(brace + 1) +
               " is not closed (write {{ for a literal {)";
      return std::nullopt;
    }
    const std::string_view name = text.substr(brace + 1, close - brace - 1);
    if (name.empty()) {
      *error = "empty placeholder {} at position " + std::to_string(brace + 1);
      return std::nullopt;
    }
    for (char n : name) {
      if (static_cast<unsigned char>(n) <= ' ' || n == '\x7f') {
        *error = "placeholder {" + std::string(name) +
                 "} holds a space or control character (write {{ and }} for literal braces)";
        return std::nullopt;
      }
    }
    TextPiece piece;
    piece.kind = TextPiece::Kind::kPlaceholder;
    piece.text = name;
    piece.written = text.substr(brace, close - brace + 1);
    pieces.push_back(std::move(piece));
    pos = close + 1;
  }
  return pieces;
}

Result<TextTemplate> TextTemplate::Parse(std::string_view text, Syntax syntax) {
  switch (syntax) {
    case Syntax::kStrict: {
      std::string error;
      std::optional<std::vector<TextPiece>> pieces = ParseTextTemplate(text, &error);
      if (!pieces) return Result<TextTemplate>::Error(error);
      return TextTemplate(std::move(*pieces));
    }
    case Syntax::kLenient:
      return TextTemplate(ParseLenient(text, false));
    case Syntax::kFormat:
      return TextTemplate(ParseLenient(text, true));
  }
  return TextTemplate();
}

TextTemplate TextTemplate::Literal(std::string_view text) {
  std::vector<TextPiece> pieces;
  AppendLiteral(text, &pieces);
  return TextTemplate(std::move(pieces));
}

void TextTemplate::AppendValue(std::string_view value, Escape escape, std::string* out) {
  switch (escape) {
    case Escape::kPlain:
      out->append(value);
      return;
    case Escape::kJsonString:
      AppendJsonString(value, out);
      return;
    case Escape::kTopicLevel:
      if (value.empty()) {
        out->push_back('_');
        return;
      }
      for (char c : value) out->push_back(c == '+' || c == '#' || c == '/' ? '_' : c);
      return;
  }
}

void TextTemplate::AppendJsonString(std::string_view text, std::string* out) {
  // nlohmann::json's own writer, so that a string rendered here reads exactly as one that
  // went through a JSON document.
  const std::string quoted = nlohmann::json(std::string(text))
                                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out->append(quoted, 1, quoted.size() - 2);
}

}  // namespace vigil::config
