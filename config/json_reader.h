#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/diagnostic.h"
#include "config/values.h"

namespace vigil::config {

// Reads typed fields out of a parsed JSON document and records a Diagnostic (file + JSON
// pointer) for every field that is missing, mistyped or malformed, so a loader can report
// every problem at once. Used by the config loader and the rule loader; not thread-safe.
class JsonReader {
 public:
  JsonReader(std::string file, Diagnostics* diagnostics)
      : file_(std::move(file)), diagnostics_(diagnostics) {}

  // Parses `text`; on a syntax error records "file:line:col: message" and returns nullopt.
  std::optional<nlohmann::json> Parse(std::string_view text);

  void Error(const std::string& pointer, const std::string& message);

  // Records an error for each key of `object` not in `allowed` (with a did-you-mean); the
  // caller goes on reading the known keys. False (and an error) when `object` is not an object.
  bool CheckObject(const nlohmann::json& object, const std::string& pointer,
                   std::initializer_list<std::string_view> allowed);

  // Each getter leaves *out untouched when the key is absent and returns false (with an
  // error) only when the key is present but wrong.
  bool String(const nlohmann::json& object, std::string_view key, const std::string& pointer,
              std::string* out);
  bool Int(const nlohmann::json& object, std::string_view key, const std::string& pointer,
           std::int64_t min, std::int64_t max, std::int64_t* out);
  bool Bool(const nlohmann::json& object, std::string_view key, const std::string& pointer,
            bool* out);
  bool Duration(const nlohmann::json& object, std::string_view key, const std::string& pointer,
                Millis* out);
  bool Size(const nlohmann::json& object, std::string_view key, const std::string& pointer,
            std::uint64_t* out);

  const std::string& file() const { return file_; }
  bool failed() const { return errors_ > 0; }
  int errors() const { return errors_; }

 private:
  std::string file_;
  Diagnostics* diagnostics_;
  int errors_ = 0;
};

// "line:col" (1-based) of byte `offset` in `text`.
std::string LineCol(std::string_view text, std::size_t offset);

// The closest of `candidates` to `word` when it is a plausible typo, else "".
std::string DidYouMean(std::string_view word, std::initializer_list<std::string_view> candidates);

}  // namespace vigil::config
