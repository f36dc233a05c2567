#include "agent/json_fields.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

namespace vigil::agent {
namespace {

// A cursor over the payload; every Read* returns false where the fast path declines.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool AtEnd() const { return p_ == end_; }
  bool Take(char c) {
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  // After the opening quote: ASCII without escapes or control characters, up to the quote.
  bool ReadString(std::string_view* out) {
    const char* start = p_;
    for (; p_ != end_; ++p_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(start, static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20 || c > 0x7f) return false;
    }
    return false;
  }

  // JSON's number grammar; integers exactly as a full parse converts them (through a 64-bit
  // integer), decimals correctly rounded as strtod does.
  bool ReadNumber(double* out) {
    const char* start = p_;
    const bool negative = Take('-');
    const char* digits = p_;
    if (p_ == end_ || !IsDigit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      SkipDigits();
    }
    const char* integer_end = p_;
    bool integer = true;
    if (Take('.')) {
      integer = false;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      SkipDigits();
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      SkipDigits();
    }
    if (integer) {
      if (integer_end - digits > 18) return false;
      std::int64_t v = 0;
      for (const char* d = digits; d != integer_end; ++d) v = v * 10 + (*d - '0');
      *out = static_cast<double>(negative ? -v : v);
      return true;
    }
    const auto [ptr, ec] = std::from_chars(start, p_, *out);
    return ec == std::errc() && ptr == p_ && std::isfinite(*out);
  }

  bool ReadLiteral(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  bool ReadValue(JsonField* out) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '"':
        ++p_;
        out->kind = JsonField::Kind::kString;
        return ReadString(&out->text);
      case 't':
      case 'f':
        out->kind = JsonField::Kind::kBool;
        out->boolean = *p_ == 't';
        return ReadLiteral(out->boolean ? "true" : "false");
      case 'n':
        out->kind = JsonField::Kind::kNull;
        return ReadLiteral("null");
      default:
        out->kind = JsonField::Kind::kNumber;
        return ReadNumber(&out->number);
    }
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  void SkipDigits() {
    while (p_ != end_ && IsDigit(*p_)) ++p_;
  }

  const char* p_;
  const char* end_;
};

}  // namespace

bool ScanFlatObject(std::string_view text, const std::string_view* names, std::size_t count,
                    JsonField* fields) {
  for (std::size_t i = 0; i < count; ++i) fields[i] = JsonField{};
  Scanner s(text);
  s.SkipSpace();
  if (!s.Take('{')) return false;
  s.SkipSpace();
  if (!s.Take('}')) {
    while (true) {
      std::string_view name;
      JsonField value;
      if (!s.Take('"') || !s.ReadString(&name)) return false;
      s.SkipSpace();
      if (!s.Take(':')) return false;
      s.SkipSpace();
      if (!s.ReadValue(&value)) return false;
      for (std::size_t i = 0; i < count; ++i) {
        if (names[i] != name) continue;
        if (fields[i].kind != JsonField::Kind::kMissing) return false;  // named twice
        fields[i] = value;
      }
      s.SkipSpace();
      if (s.Take('}')) break;
      if (!s.Take(',')) return false;
      s.SkipSpace();
    }
  }
  s.SkipSpace();
  return s.AtEnd();
}

}  // namespace vigil::agent
