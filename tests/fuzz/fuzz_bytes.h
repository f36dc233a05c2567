#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace vigil::fuzz {

// Takes typed values off the front of a fuzz input; past the end everything is 0, so a
// short input is still a valid (if dull) program. The clang-free stand-in for libFuzzer's
// FuzzedDataProvider, so the same target compiles with gcc as a corpus regression test.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  std::size_t remaining() const { return empty() ? 0 : size_ - pos_; }

  std::uint8_t U8() { return empty() ? 0 : data_[pos_++]; }
  std::uint16_t U16() { return static_cast<std::uint16_t>(U8() | (U8() << 8)); }
  std::uint32_t U32() { return static_cast<std::uint32_t>(U16()) | (std::uint32_t{U16()} << 16); }
  // One of n choices (n > 0).
  std::size_t Pick(std::size_t n) { return U8() % n; }
  int PickInt(int n) { return U8() % n; }
  bool Bool() { return (U8() & 1) != 0; }
  // Eight raw bytes as a double: any bit pattern, NaN and ±Inf included.
  double RawDouble() {
    std::uint64_t bits = std::uint64_t{U32()} | (std::uint64_t{U32()} << 32);
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  // The rest of the input as text.
  std::string_view Rest() {
    if (empty()) return {};
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace vigil::fuzz
