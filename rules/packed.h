#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

namespace vigil::rules {

// A read-only view of one MessagePack value in a buffer: how checkpoints are read back (a
// restart reads every key's state, and building a JSON document of each only to walk it once
// was most of the time a restart took). It reads what Packer (below) writes, and what
// nlohmann::json's to_msgpack wrote for earlier versions, without allocating. The buffer must
// outlive the view.
//
// Every accessor checks what it reads and throws nlohmann::json::exception (parse_error,
// type_error or out_of_range, as the JSON document would have) on malformed or unexpected
// input, so a damaged checkpoint is refused, never read out of bounds.
class Packed {
 public:
  // The value that fills `bytes` exactly. Throws when `bytes` is not one well-formed value, or
  // nests deeper than 64 levels.
  static Packed Parse(std::string_view bytes);
  Packed() = default;  // a slot to assign to; reading it throws

  bool is_null() const;
  bool is_string() const;
  bool is_array() const;
  bool is_object() const;
  // Elements of an array, entries of a map. Throws for other values.
  std::size_t size() const;
  // The i-th element of an array: O(i).
  Packed at(std::size_t i) const;
  Packed operator[](std::size_t i) const { return at(i); }
  // The first N elements of an array, found in one pass: `auto [t, x] = e.Elements<2>();`.
  // Throws out_of_range when it has fewer.
  template <std::size_t N>
  std::array<Packed, N> Elements() const {
    std::array<Packed, N> out;
    FindElements(out.data(), N);
    return out;
  }
  // The value of a map's string key: O(entries).
  Packed at(std::string_view key) const;
  bool contains(std::string_view key) const;
  // The values of several keys of a map, found in one pass (at() for each would skip over the
  // values before it every time): `auto [a, b] = j.Fields<2>({"a", "b"});`. Throws
  // out_of_range when a key is missing.
  template <std::size_t N>
  std::array<Packed, N> Fields(const std::array<std::string_view, N>& keys) const {
    std::array<Packed, N> out;
    FindFields(keys.data(), out.data(), N);
    return out;
  }

  // bool, an integer type (in range, else type_error), double (from any number), std::string.
  template <class T>
  T get() const {
    if constexpr (std::is_same_v<T, bool>) {
      return Bool();
    } else if constexpr (std::is_same_v<T, double>) {
      return Double();
    } else if constexpr (std::is_same_v<T, std::string>) {
      return std::string(Str());
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      return static_cast<T>(Int(static_cast<std::int64_t>(std::numeric_limits<T>::min()),
                                static_cast<std::int64_t>(std::numeric_limits<T>::max())));
    } else {
      static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>, "unsupported type");
      return static_cast<T>(Uint(static_cast<std::uint64_t>(std::numeric_limits<T>::max())));
    }
  }
  // A string's bytes, in the buffer.
  std::string_view Str() const;

  // The elements of an array, in order: `for (Packed e : array) …`.
  class Iterator {
   public:
    Packed operator*() const { return Packed(p_, end_); }
    Iterator& operator++();
    bool operator!=(const Iterator& other) const { return left_ != other.left_; }

   private:
    friend class Packed;
    Iterator(const unsigned char* p, const unsigned char* end, std::size_t left)
        : p_(p), end_(end), left_(left) {}
    const unsigned char* p_;
    const unsigned char* end_;
    std::size_t left_;
  };
  Iterator begin() const;  // throws unless an array
  Iterator end() const { return Iterator(nullptr, end_, 0); }

  // Calls fn(key, value) for each entry of a map whose keys are strings, in stored order.
  template <class Fn>
  void ForEachItem(Fn fn) const {
    const unsigned char* p = MapBody();
    for (std::size_t i = 0, n = size(); i < n; ++i) {
      Packed key(p, end_);
      Packed value(Next(p), end_);
      fn(key.Str(), value);
      p = Next(value.p_);
    }
  }

 private:
  Packed(const unsigned char* p, const unsigned char* end) : p_(p), end_(end) {}
  void FindFields(const std::string_view* keys, Packed* out, std::size_t n) const;
  void FindElements(Packed* out, std::size_t n) const;
  bool Bool() const;
  double Double() const;
  std::int64_t Int(std::int64_t min, std::int64_t max) const;
  std::uint64_t Uint(std::uint64_t max) const;
  const unsigned char* MapBody() const;
  // The value of a map's key, or nullptr.
  const unsigned char* Find(std::string_view key) const;
  // The byte after the value that starts at p.
  const unsigned char* Next(const unsigned char* p) const;

  const unsigned char* p_ = nullptr;    // the value's first byte
  const unsigned char* end_ = nullptr;  // the buffer's end
};

// Writes MessagePack values, one after another, to the end of a string: how checkpoints are
// written (straight from the state, without building a document first). Maps and arrays are
// announced with their counts, then their keys and values (or elements) follow:
//   p.Map(2).Str("n").Uint(n).Str("xs").Array(xs.size()); for (double x : xs) p.Double(x);
// Integers take the smallest encoding; doubles are float64, NaN and infinities included.
class Packer {
 public:
  explicit Packer(std::string* out) : out_(out) {}
  Packer& Map(std::size_t entries);
  Packer& Array(std::size_t elements);
  Packer& Str(std::string_view s);
  Packer& Int(std::int64_t v);
  Packer& Uint(std::uint64_t v);
  Packer& Double(double x);
  Packer& Bool(bool b);
  Packer& Null();

 private:
  void Tagged(unsigned char tag, std::uint64_t v, int bytes);
  std::string* out_;
};

}  // namespace vigil::rules
