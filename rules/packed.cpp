#include "rules/packed.h"

#include <bit>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

namespace vigil::rules {
namespace {

using json = nlohmann::json;

constexpr int kMaxDepth = 64;

enum class Kind { kNil, kBool, kUint, kInt, kFloat, kStr, kBin, kExt, kArray, kMap };

// A value's head: its kind; for scalars the value (bool 0/1, the integer, the double's bits),
// for strings, binaries and extensions the byte length, for arrays and maps the count; and
// where the body (bytes, first element or entry) starts.
struct Head {
  Kind kind;
  std::uint64_t n;
  const unsigned char* body;
};

[[noreturn]] void Malformed(const char* what) {
  throw json::parse_error::create(110, 0, std::string("checkpoint: ") + what, nullptr);
}

std::uint64_t BigEndian(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

Head ReadHead(const unsigned char* p, const unsigned char* end) {
  if (p >= end) Malformed("value cut short");
  const unsigned char tag = *p++;
  // Bytes of the fixed-size field after the tag, then what it is.
  auto field = [&](int bytes) {
    if (end - p < bytes) Malformed("value cut short");
    std::uint64_t v = BigEndian(p, bytes);
    p += bytes;
    return v;
  };
  auto sized = [&](Kind kind, std::uint64_t n) {
    if (static_cast<std::uint64_t>(end - p) < n) Malformed("string or binary cut short");
    return Head{kind, n, p};
  };
  if (tag <= 0x7f) return {Kind::kUint, tag, p};
  if (tag >= 0xe0)
    return {Kind::kInt, static_cast<std::uint64_t>(static_cast<std::int8_t>(tag)), p};
  if ((tag & 0xf0) == 0x80) return {Kind::kMap, tag & 0x0fu, p};
  if ((tag & 0xf0) == 0x90) return {Kind::kArray, tag & 0x0fu, p};
  if ((tag & 0xe0) == 0xa0) return sized(Kind::kStr, tag & 0x1fu);
  switch (tag) {
    case 0xc0:
      return {Kind::kNil, 0, p};
    case 0xc2:
      return {Kind::kBool, 0, p};
    case 0xc3:
      return {Kind::kBool, 1, p};
    case 0xc4:
      return sized(Kind::kBin, field(1));
    case 0xc5:
      return sized(Kind::kBin, field(2));
    case 0xc6:
      return sized(Kind::kBin, field(4));
    case 0xc7:
      return sized(Kind::kExt, field(1) + 1);  // + the type byte
    case 0xc8:
      return sized(Kind::kExt, field(2) + 1);
    case 0xc9:
      return sized(Kind::kExt, field(4) + 1);
    case 0xca: {
      float f = std::bit_cast<float>(static_cast<std::uint32_t>(field(4)));
      return {Kind::kFloat, std::bit_cast<std::uint64_t>(static_cast<double>(f)), p};
    }
    case 0xcb: {
      std::uint64_t bits = field(8);
      return {Kind::kFloat, bits, p};
    }
    case 0xcc: {
      std::uint64_t v = field(1);
      return {Kind::kUint, v, p};
    }
    case 0xcd: {
      std::uint64_t v = field(2);
      return {Kind::kUint, v, p};
    }
    case 0xce: {
      std::uint64_t v = field(4);
      return {Kind::kUint, v, p};
    }
    case 0xcf: {
      std::uint64_t v = field(8);
      return {Kind::kUint, v, p};
    }
    case 0xd0: {
      auto v = static_cast<std::int8_t>(field(1));
      return {Kind::kInt, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)), p};
    }
    case 0xd1: {
      auto v = static_cast<std::int16_t>(field(2));
      return {Kind::kInt, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)), p};
    }
    case 0xd2: {
      auto v = static_cast<std::int32_t>(field(4));
      return {Kind::kInt, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)), p};
    }
    case 0xd3: {
      std::uint64_t v = field(8);
      return {Kind::kInt, v, p};
    }
    case 0xd4:
      return sized(Kind::kExt, 2);
    case 0xd5:
      return sized(Kind::kExt, 3);
    case 0xd6:
      return sized(Kind::kExt, 5);
    case 0xd7:
      return sized(Kind::kExt, 9);
    case 0xd8:
      return sized(Kind::kExt, 17);
    case 0xd9:
      return sized(Kind::kStr, field(1));
    case 0xda:
      return sized(Kind::kStr, field(2));
    case 0xdb:
      return sized(Kind::kStr, field(4));
    case 0xdc:
      return {Kind::kArray, field(2), p};
    case 0xdd:
      return {Kind::kArray, field(4), p};
    case 0xde:
      return {Kind::kMap, field(2), p};
    case 0xdf:
      return {Kind::kMap, field(4), p};
    default:
      Malformed("unknown type byte");  // 0xc1
  }
}

// The byte after the value at p, checking the whole value lies within [p, end).
const unsigned char* Skip(const unsigned char* p, const unsigned char* end, int depth) {
  if (depth > kMaxDepth) Malformed("nested too deep");
  // The kinds checkpoints are made of, without decoding them (the hot path of a restart).
  if (p < end) {
    const unsigned char tag = *p;
    std::ptrdiff_t bytes = 0;  // the whole value's, when it has a fixed size
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3) {
      bytes = 1;
    } else if ((tag & 0xe0) == 0xa0) {
      bytes = 1 + (tag & 0x1f);
    } else if (tag == 0xcb || tag == 0xcf || tag == 0xd3) {
      bytes = 9;
    } else if (tag == 0xca || tag == 0xce || tag == 0xd2) {
      bytes = 5;
    } else if (tag == 0xcc || tag == 0xd0) {
      bytes = 2;
    } else if (tag == 0xcd || tag == 0xd1) {
      bytes = 3;
    }
    if (bytes > 0) {
      if (end - p < bytes) Malformed("value cut short");
      return p + bytes;
    }
  }
  Head h = ReadHead(p, end);
  switch (h.kind) {
    case Kind::kStr:
    case Kind::kBin:
    case Kind::kExt:
      return h.body + h.n;
    case Kind::kArray:
    case Kind::kMap: {
      // Every element takes at least a byte, so a count beyond the buffer fails fast.
      const std::uint64_t elements = h.kind == Kind::kMap ? 2 * h.n : h.n;
      const unsigned char* q = h.body;
      for (std::uint64_t i = 0; i < elements; ++i) q = Skip(q, end, depth + 1);
      return q;
    }
    default:
      return h.body;
  }
}

[[noreturn]] void MissingKey(std::string_view key) {
  throw json::out_of_range::create(403, "checkpoint: key '" + std::string(key) + "' not found",
                                   nullptr);
}

[[noreturn]] void WrongType(const char* wanted) {
  throw json::type_error::create(302, std::string("checkpoint: type must be ") + wanted, nullptr);
}

}  // namespace

Packed Packed::Parse(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* end = p + bytes.size();
  if (Skip(p, end, 0) != end) Malformed("bytes after the value");
  return Packed(p, end);
}

bool Packed::is_null() const { return ReadHead(p_, end_).kind == Kind::kNil; }
bool Packed::is_string() const { return ReadHead(p_, end_).kind == Kind::kStr; }
bool Packed::is_array() const { return ReadHead(p_, end_).kind == Kind::kArray; }
bool Packed::is_object() const { return ReadHead(p_, end_).kind == Kind::kMap; }

std::size_t Packed::size() const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kArray && h.kind != Kind::kMap) WrongType("array or object");
  return static_cast<std::size_t>(h.n);
}

Packed Packed::at(std::size_t i) const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kArray) WrongType("array");
  if (i >= h.n) throw json::out_of_range::create(401, "checkpoint: index out of range", nullptr);
  const unsigned char* q = h.body;
  for (std::size_t k = 0; k < i; ++k) q = Next(q);
  return Packed(q, end_);
}

void Packed::FindElements(Packed* out, std::size_t n) const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kArray) WrongType("array");
  if (h.n < n) throw json::out_of_range::create(401, "checkpoint: index out of range", nullptr);
  const unsigned char* q = h.body;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = Packed(q, end_);
    if (i + 1 < n) q = Next(q);
  }
}

const unsigned char* Packed::MapBody() const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kMap) WrongType("object");
  return h.body;
}

const unsigned char* Packed::Find(std::string_view key) const {
  const unsigned char* q = MapBody();
  for (std::size_t i = 0, n = size(); i < n; ++i) {
    Head k = ReadHead(q, end_);
    const unsigned char* value = Next(q);
    if (k.kind == Kind::kStr &&
        std::string_view(reinterpret_cast<const char*>(k.body), k.n) == key) {
      return value;
    }
    q = Next(value);
  }
  return nullptr;
}

Packed Packed::at(std::string_view key) const {
  const unsigned char* value = Find(key);
  if (value == nullptr) MissingKey(key);
  return Packed(value, end_);
}

void Packed::FindFields(const std::string_view* keys, Packed* out, std::size_t n) const {
  const Head map = ReadHead(p_, end_);
  if (map.kind != Kind::kMap) WrongType("object");
  const unsigned char* q = map.body;
  std::size_t found = 0;
  for (std::size_t i = 0; i < map.n && found < n; ++i) {
    Head k = ReadHead(q, end_);
    const unsigned char* value = Next(q);
    if (k.kind == Kind::kStr) {
      const std::string_view name(reinterpret_cast<const char*>(k.body), k.n);
      for (std::size_t f = 0; f < n; ++f) {
        if (out[f].p_ == nullptr && keys[f] == name) {
          out[f] = Packed(value, end_);
          ++found;
          break;
        }
      }
    }
    q = Next(value);
  }
  for (std::size_t f = 0; f < n; ++f) {
    if (out[f].p_ == nullptr) MissingKey(keys[f]);
  }
}

bool Packed::contains(std::string_view key) const { return is_object() && Find(key) != nullptr; }

std::string_view Packed::Str() const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kStr) WrongType("string");
  return {reinterpret_cast<const char*>(h.body), static_cast<std::size_t>(h.n)};
}

bool Packed::Bool() const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kBool) WrongType("boolean");
  return h.n != 0;
}

double Packed::Double() const {
  Head h = ReadHead(p_, end_);
  switch (h.kind) {
    case Kind::kFloat:
      return std::bit_cast<double>(h.n);
    case Kind::kUint:
      return static_cast<double>(h.n);
    case Kind::kInt:
      return static_cast<double>(static_cast<std::int64_t>(h.n));
    default:
      WrongType("number");
  }
}

std::int64_t Packed::Int(std::int64_t min, std::int64_t max) const {
  Head h = ReadHead(p_, end_);
  if (h.kind == Kind::kUint) {
    if (h.n > static_cast<std::uint64_t>(max)) WrongType("an integer in range");
    return static_cast<std::int64_t>(h.n);
  }
  if (h.kind == Kind::kInt) {
    auto v = static_cast<std::int64_t>(h.n);
    if (v < min || v > max) WrongType("an integer in range");
    return v;
  }
  WrongType("integer");
}

std::uint64_t Packed::Uint(std::uint64_t max) const {
  Head h = ReadHead(p_, end_);
  if (h.kind == Kind::kInt && static_cast<std::int64_t>(h.n) >= 0) h.kind = Kind::kUint;
  if (h.kind != Kind::kUint) WrongType("unsigned integer");
  if (h.n > max) WrongType("an integer in range");
  return h.n;
}

const unsigned char* Packed::Next(const unsigned char* p) const { return Skip(p, end_, 0); }

Packed::Iterator Packed::begin() const {
  Head h = ReadHead(p_, end_);
  if (h.kind != Kind::kArray) WrongType("array");
  return Iterator(h.body, end_, static_cast<std::size_t>(h.n));
}

Packed::Iterator& Packed::Iterator::operator++() {
  p_ = Skip(p_, end_, 0);
  --left_;
  return *this;
}

void Packer::Tagged(unsigned char tag, std::uint64_t v, int bytes) {
  char buf[9];
  buf[0] = static_cast<char>(tag);
  for (int i = 0; i < bytes; ++i)
    buf[1 + i] = static_cast<char>((v >> (8 * (bytes - 1 - i))) & 0xff);
  out_->append(buf, static_cast<std::size_t>(bytes) + 1);
}

Packer& Packer::Map(std::size_t entries) {
  if (entries <= 15) {
    out_->push_back(static_cast<char>(0x80 | entries));
  } else if (entries <= 0xffff) {
    Tagged(0xde, entries, 2);
  } else {
    Tagged(0xdf, entries, 4);
  }
  return *this;
}

Packer& Packer::Array(std::size_t elements) {
  if (elements <= 15) {
    out_->push_back(static_cast<char>(0x90 | elements));
  } else if (elements <= 0xffff) {
    Tagged(0xdc, elements, 2);
  } else {
    Tagged(0xdd, elements, 4);
  }
  return *this;
}

Packer& Packer::Str(std::string_view s) {
  if (s.size() <= 31) {
    out_->push_back(static_cast<char>(0xa0 | s.size()));
  } else if (s.size() <= 0xff) {
    Tagged(0xd9, s.size(), 1);
  } else if (s.size() <= 0xffff) {
    Tagged(0xda, s.size(), 2);
  } else {
    Tagged(0xdb, s.size(), 4);
  }
  out_->append(s);
  return *this;
}

Packer& Packer::Uint(std::uint64_t v) {
  if (v <= 0x7f) {
    out_->push_back(static_cast<char>(v));
  } else if (v <= 0xff) {
    Tagged(0xcc, v, 1);
  } else if (v <= 0xffff) {
    Tagged(0xcd, v, 2);
  } else if (v <= 0xffffffff) {
    Tagged(0xce, v, 4);
  } else {
    Tagged(0xcf, v, 8);
  }
  return *this;
}

Packer& Packer::Int(std::int64_t v) {
  if (v >= 0) return Uint(static_cast<std::uint64_t>(v));
  const auto bits = static_cast<std::uint64_t>(v);
  if (v >= -32) {
    out_->push_back(static_cast<char>(bits & 0xff));  // negative fixint
  } else if (v >= INT8_MIN) {
    Tagged(0xd0, bits, 1);
  } else if (v >= INT16_MIN) {
    Tagged(0xd1, bits, 2);
  } else if (v >= INT32_MIN) {
    Tagged(0xd2, bits, 4);
  } else {
    Tagged(0xd3, bits, 8);
  }
  return *this;
}

Packer& Packer::Double(double x) {
  Tagged(0xcb, std::bit_cast<std::uint64_t>(x), 8);
  return *this;
}

Packer& Packer::Bool(bool b) {
  out_->push_back(static_cast<char>(b ? 0xc3 : 0xc2));
  return *this;
}

Packer& Packer::Null() {
  out_->push_back(static_cast<char>(0xc0));
  return *this;
}

}  // namespace vigil::rules
