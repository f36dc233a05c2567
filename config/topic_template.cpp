#include "config/topic_template.h"

#include <set>

namespace vigil::config {
namespace {

std::vector<std::string_view> SplitLevels(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(text.substr(start));
      return out;
    }
    out.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

std::optional<TopicTemplate> TopicTemplate::Parse(std::string_view text, std::string* error) {
  if (text.empty()) {
    *error = "empty topic template";
    return std::nullopt;
  }
  TopicTemplate t;
  t.text_ = std::string(text);
  std::set<std::string, std::less<>> names;
  auto levels = SplitLevels(text);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    std::string_view level = levels[i];
    if (level == "#") {
      if (i + 1 != levels.size()) {
        *error = "'#' must be the last level";
        return std::nullopt;
      }
      t.levels_.push_back({Level::Kind::kHash, ""});
    } else if (level == "+") {
      t.levels_.push_back({Level::Kind::kPlus, ""});
    } else if (!level.empty() && level.front() == '{') {
      if (level.back() != '}' || level.size() < 3) {
        *error = "a capture must be a whole level, like {device}";
        return std::nullopt;
      }
      std::string name(level.substr(1, level.size() - 2));
      for (char c : name) {
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) {
          *error = "capture name \"" + name + "\" may hold only letters, digits and _";
          return std::nullopt;
        }
      }
      if (!names.insert(name).second) {
        *error = "capture {" + name + "} appears twice";
        return std::nullopt;
      }
      t.levels_.push_back({Level::Kind::kCapture, name});
    } else {
      if (level.find_first_of("{}+#") != std::string_view::npos) {
        *error = "level \"" + std::string(level) + "\" mixes text with {, }, + or #";
        return std::nullopt;
      }
      t.levels_.push_back({Level::Kind::kLiteral, std::string(level)});
    }
  }
  return t;
}

bool TopicTemplate::Match(std::string_view topic,
                          std::vector<std::pair<std::string, std::string>>* captures) const {
  if (captures != nullptr) captures->clear();
  // The topic's levels are walked as they come (no vector of them: this runs per message).
  std::size_t start = 0;  // of the next level; npos once the topic's last level was taken
  for (const Level& l : levels_) {
    if (l.kind == Level::Kind::kHash) return true;
    if (start == std::string_view::npos) return false;  // the topic has fewer levels
    const std::size_t slash = topic.find('/', start);
    const std::string_view level = topic.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    start = slash == std::string_view::npos ? std::string_view::npos : slash + 1;
    switch (l.kind) {
      case Level::Kind::kLiteral:
        if (level != l.text) return false;
        break;
      case Level::Kind::kCapture:
        if (level.empty()) return false;
        if (captures != nullptr) captures->emplace_back(l.text, std::string(level));
        break;
      case Level::Kind::kPlus:
      case Level::Kind::kHash:
        break;
    }
  }
  return start == std::string_view::npos;  // every level of the topic was matched
}

std::string TopicTemplate::Filter() const {
  std::string out;
  for (std::size_t i = 0; i < levels_.size(); ++i) {
    if (i > 0) out.push_back('/');
    switch (levels_[i].kind) {
      case Level::Kind::kLiteral:
        out += levels_[i].text;
        break;
      case Level::Kind::kCapture:
      case Level::Kind::kPlus:
        out.push_back('+');
        break;
      case Level::Kind::kHash:
        out.push_back('#');
        break;
    }
  }
  return out;
}

std::vector<std::string> TopicTemplate::Names() const {
  std::vector<std::string> out;
  for (const Level& l : levels_) {
    if (l.kind == Level::Kind::kCapture) out.push_back(l.text);
  }
  return out;
}

}  // namespace vigil::config
