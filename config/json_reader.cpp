#include "config/json_reader.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace vigil::config {
namespace {

// Edit distance with adjacent transpositions ("agnet" is one edit from "agent").
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string Child(const std::string& pointer, std::string_view key) {
  return pointer + "/" + std::string(key);
}

}  // namespace

std::string LineCol(std::string_view text, std::size_t offset) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

std::string DidYouMean(std::string_view word, std::initializer_list<std::string_view> candidates) {
  // Keys are short; a long word is no typo of one (and would cost word × key to compare).
  if (word.size() > 64) return "";
  std::string best;
  std::size_t best_d = 3;
  for (std::string_view c : candidates) {
    std::size_t d = EditDistance(word, c);
    if (d < best_d && d < std::max<std::size_t>(2, c.size() / 2)) {
      best_d = d;
      best = std::string(c);
    }
  }
  return best;
}

std::optional<nlohmann::json> JsonReader::Parse(std::string_view text) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    // nlohmann: "[json.exception.parse_error.101] parse error at line 1, column 2: <detail>"
    std::size_t colon = what.find(": ", what.find("parse error"));
    std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
    // e.byte is just past the offending token: point at the token's first character.
    std::size_t at = std::min(e.byte > 0 ? e.byte - 1 : 0, text.size());
    if (at < text.size() && text[at] == '"' && at > 0) {
      std::size_t open = text.rfind('"', at - 1);
      if (open != std::string_view::npos) at = open;
    } else {
      while (at > 0 && at <= text.size() &&
             std::isalnum(static_cast<unsigned char>(text[at - 1])) && at < text.size() &&
             std::isalnum(static_cast<unsigned char>(text[at]))) {
        --at;
      }
    }
    diagnostics_->push_back({file_, LineCol(text, at), "invalid JSON: " + detail});
    ++errors_;
    return std::nullopt;
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error but a value nlohmann cannot hold, e.g. out_of_range.406 "number
    // overflow parsing '1e999'": it carries no position, so look for the number it quotes.
    std::string what = e.what();
    std::size_t bracket = what.find("] ");
    std::string detail = bracket == std::string::npos ? what : what.substr(bracket + 2);
    std::string location;
    std::size_t open = detail.find('\'');
    std::size_t close = open == std::string::npos ? open : detail.find('\'', open + 1);
    if (close != std::string::npos) {
      std::size_t at = text.find(detail.substr(open + 1, close - open - 1));
      if (at != std::string_view::npos) location = LineCol(text, at);
    }
    if (detail.size() > 200) detail = detail.substr(0, 200) + "…";
    diagnostics_->push_back({file_, location, "invalid JSON: " + detail});
    ++errors_;
    return std::nullopt;
  }
}

void JsonReader::Error(const std::string& pointer, const std::string& message) {
  diagnostics_->push_back({file_, pointer, message});
  ++errors_;
}

bool JsonReader::CheckObject(const nlohmann::json& object, const std::string& pointer,
                             std::initializer_list<std::string_view> allowed) {
  if (!object.is_object()) {
    Error(pointer.empty() ? "/" : pointer, "must be an object");
    return false;
  }
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string hint = DidYouMean(it.key(), allowed);
    Error(Child(pointer, it.key()),
          "unknown key \"" + it.key() + "\"" +
              (hint.empty() ? std::string() : " (did you mean \"" + hint + "\"?)"));
  }
  return true;
}

bool JsonReader::String(const nlohmann::json& object, std::string_view key,
                        const std::string& pointer, std::string* out) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  if (!it->is_string()) {
    Error(Child(pointer, key), "must be a string");
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

bool JsonReader::Int(const nlohmann::json& object, std::string_view key, const std::string& pointer,
                     std::int64_t min, std::int64_t max, std::int64_t* out) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  if (!it->is_number_integer() || it->get<std::int64_t>() < min || it->get<std::int64_t>() > max) {
    Error(Child(pointer, key),
          "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    return false;
  }
  *out = it->get<std::int64_t>();
  return true;
}

bool JsonReader::Bool(const nlohmann::json& object, std::string_view key,
                      const std::string& pointer, bool* out) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  if (!it->is_boolean()) {
    Error(Child(pointer, key), "must be true or false");
    return false;
  }
  *out = it->get<bool>();
  return true;
}

bool JsonReader::Duration(const nlohmann::json& object, std::string_view key,
                          const std::string& pointer, Millis* out) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  std::optional<Millis> d;
  if (it->is_string()) d = ParseDuration(it->get<std::string>());
  if (!d) {
    Error(Child(pointer, key), "must be a duration such as \"250ms\", \"10s\", \"1m30s\"");
    return false;
  }
  *out = *d;
  return true;
}

bool JsonReader::Size(const nlohmann::json& object, std::string_view key,
                      const std::string& pointer, std::uint64_t* out) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  std::optional<std::uint64_t> s;
  if (it->is_string()) s = ParseSize(it->get<std::string>());
  if (it->is_number_unsigned()) s = it->get<std::uint64_t>();
  if (!s) {
    Error(Child(pointer, key), "must be a size such as \"64KiB\", \"512MiB\", \"1GiB\"");
    return false;
  }
  *out = *s;
  return true;
}

}  // namespace vigil::config
