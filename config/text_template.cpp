#include "config/text_template.h"

namespace vigil::config {

std::optional<std::vector<TextPiece>> ParseTextTemplate(std::string_view text, std::string* error) {
  std::vector<TextPiece> pieces;
  auto literal = [&pieces](std::string_view s) {
    if (s.empty()) return;
    if (pieces.empty() || pieces.back().kind != TextPiece::Kind::kLiteral) {
      pieces.push_back({TextPiece::Kind::kLiteral, ""});
    }
    pieces.back().text.append(s);
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t brace = text.find_first_of("{}", pos);
    if (brace == std::string_view::npos) {
      literal(text.substr(pos));
      break;
    }
    literal(text.substr(pos, brace - pos));
    const char c = text[brace];
    if (brace + 1 < text.size() && text[brace + 1] == c) {  // `{{` or `}}`
      literal(text.substr(brace, 1));
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
    pieces.push_back({TextPiece::Kind::kPlaceholder, std::string(name)});
    pos = close + 1;
  }
  return pieces;
}

}  // namespace vigil::config
