// Packed reads back what nlohmann::json's to_msgpack writes, and refuses damaged bytes with a
// json::exception, never reading outside them.

#include "rules/packed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

namespace vigil::rules {
namespace {

using json = nlohmann::json;

std::string Bytes(const json& j) {
  std::string out;
  json::to_msgpack(j, out);
  return out;
}

// The document a view holds, rebuilt through the view's accessors alone.
json Rebuild(const Packed& p) {
  if (p.is_null()) return nullptr;
  if (p.is_string()) return std::string(p.Str());
  if (p.is_array()) {
    json out = json::array();
    for (Packed e : p) out.push_back(Rebuild(e));
    return out;
  }
  if (p.is_object()) {
    json out = json::object();
    p.ForEachItem([&](std::string_view k, const Packed& v) { out[std::string(k)] = Rebuild(v); });
    return out;
  }
  try {
    return p.get<bool>();
  } catch (const json::exception&) {
  }
  try {
    return p.get<std::int64_t>();
  } catch (const json::exception&) {
  }
  try {
    return p.get<std::uint64_t>();
  } catch (const json::exception&) {
  }
  return p.get<double>();
}

json RandomDocument(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 4 ? 6 : 8);
  switch (kind(rng)) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2: {                            // integers of every width and sign
      const auto bits = 1 + rng() % 63;  // 1..63: |v| < 2^63
      const auto v = static_cast<std::int64_t>(rng() >> (64 - bits));
      return rng() % 2 == 0 ? v : -v;
    }
    case 3:
      return static_cast<std::uint64_t>(rng());
    case 4: {
      const double values[] = {0.1,
                               -2.5,
                               1e300,
                               3.0,
                               std::numeric_limits<double>::infinity(),
                               std::numeric_limits<double>::denorm_min(),
                               1.5f};
      return values[rng() % 7];
    }
    case 5:
    case 6: {  // strings across the fixstr, str8 and str16 lengths
      const std::size_t lengths[] = {0, 5, 31, 32, 255, 256, 70000};
      return std::string(lengths[rng() % 7], static_cast<char>('a' + rng() % 26));
    }
    case 7: {
      json a = json::array();
      for (std::size_t i = 0, n = rng() % (rng() % 8 == 0 ? 40 : 5); i < n; ++i) {
        a.push_back(RandomDocument(rng, depth + 1));
      }
      return a;
    }
    default: {
      json o = json::object();
      for (std::size_t i = 0, n = rng() % (rng() % 8 == 0 ? 20 : 5); i < n; ++i) {
        o["k" + std::to_string(rng() % 30)] = RandomDocument(rng, depth + 1);
      }
      return o;
    }
  }
}

TEST(Packed, ReadsBackWhatToMsgpackWrites) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    const json doc = RandomDocument(rng, 0);
    const std::string bytes = Bytes(doc);
    ASSERT_EQ(Rebuild(Packed::Parse(bytes)), doc) << doc.dump().substr(0, 200);
  }
}

// Packer writes what any MessagePack reader reads (nlohmann's here), at every size boundary.
TEST(Packer, WritesStandardMessagePack) {
  const std::int64_t ints[] = {0,
                               1,
                               127,
                               128,
                               255,
                               256,
                               65535,
                               65536,
                               4294967295,
                               4294967296,
                               -1,
                               -32,
                               -33,
                               -128,
                               -129,
                               -32768,
                               -32769,
                               -2147483648LL,
                               -2147483649LL,
                               std::numeric_limits<std::int64_t>::min(),
                               std::numeric_limits<std::int64_t>::max()};
  for (std::int64_t v : ints) {
    std::string bytes;
    Packer(&bytes).Int(v);
    EXPECT_EQ(json::from_msgpack(bytes), json(v)) << v;
    EXPECT_EQ(Packed::Parse(bytes).get<std::int64_t>(), v);
  }
  std::string u;
  Packer(&u).Uint(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(json::from_msgpack(u), json(std::numeric_limits<std::uint64_t>::max()));
  for (std::size_t n : {0u, 15u, 16u, 31u, 32u, 255u, 256u, 65535u, 65536u}) {
    std::string bytes;
    Packer p(&bytes);
    p.Array(3).Str(std::string(n, 'x')).Array(n);
    for (std::size_t i = 0; i < n; ++i) p.Null();
    p.Map(n);
    for (std::size_t i = 0; i < n; ++i) p.Str("k" + std::to_string(i)).Bool(i % 2 == 0);
    const json doc = json::from_msgpack(bytes);
    EXPECT_EQ(doc[0], std::string(n, 'x'));
    EXPECT_EQ(doc[1].size(), n);
    EXPECT_EQ(doc[2].size(), n);
    EXPECT_EQ(Rebuild(Packed::Parse(bytes)), doc) << n;
  }
  std::string d;
  Packer(&d).Double(0.1).Double(-0.0);
  EXPECT_EQ(json::from_msgpack(d.substr(0, 9)), json(0.1));
  EXPECT_TRUE(std::signbit(Packed::Parse(d.substr(9)).get<double>()));
}

TEST(Packed, LooksUpKeysAndElements) {
  const std::string bytes =
      Bytes({{"n", 3}, {"t", -1'795'341'600'000}, {"xs", {1.5, 2, "nan"}}, {"s", "abc"}});
  const Packed p = Packed::Parse(bytes);
  EXPECT_EQ(p.size(), 4u);
  EXPECT_EQ(p.at("n").get<int>(), 3);
  EXPECT_EQ(p.at("t").get<std::int64_t>(), -1'795'341'600'000);
  EXPECT_EQ(p.at("xs").at(0).get<double>(), 1.5);
  EXPECT_EQ(p.at("xs")[1].get<double>(), 2.0);  // an integer read as a double
  EXPECT_EQ(p.at("xs").at(2).Str(), "nan");
  EXPECT_EQ(p.at("s").get<std::string>(), "abc");
  EXPECT_TRUE(p.contains("xs"));
  EXPECT_FALSE(p.contains("x"));
  const auto [s, n] = p.Fields<2>({"s", "n"});
  EXPECT_EQ(s.Str(), "abc");
  EXPECT_EQ(n.get<std::uint64_t>(), 3u);
}

TEST(Packed, WrongTypesMissingKeysAndRangesThrow) {
  const std::string bytes = Bytes({{"big", std::uint64_t{1} << 40}, {"neg", -1}, {"a", {1}}});
  const Packed p = Packed::Parse(bytes);
  EXPECT_THROW(p.at("missing"), json::out_of_range);
  EXPECT_THROW(p.Fields<2>({"a", "missing"}), json::out_of_range);
  EXPECT_THROW(p.at("a").at(1), json::out_of_range);
  EXPECT_THROW(p.at(0), json::type_error);  // an object, not an array
  EXPECT_THROW(p.at("big").get<int>(), json::type_error);
  EXPECT_EQ(p.at("big").get<std::int64_t>(), std::int64_t{1} << 40);
  EXPECT_THROW(p.at("neg").get<std::uint64_t>(), json::type_error);
  EXPECT_THROW(p.at("neg").Str(), json::type_error);
  EXPECT_THROW(p.at("a").get<double>(), json::type_error);
  EXPECT_THROW(p.at("a").get<bool>(), json::type_error);
  EXPECT_THROW(Packed().get<int>(), json::parse_error);  // an empty slot
}

TEST(Packed, RefusesMalformedBytes) {
  EXPECT_THROW(Packed::Parse(""), json::parse_error);
  EXPECT_THROW(Packed::Parse("\xc1"), json::parse_error);                      // never used
  EXPECT_THROW(Packed::Parse(std::string("\x01\x02", 2)), json::parse_error);  // trailing bytes
  EXPECT_THROW(Packed::Parse("\xdd\xff\xff\xff\xff\x01"), json::parse_error);  // 4 G elements
  EXPECT_THROW(Packed::Parse("\xdb\xff\xff\xff\xff"
                             "ab"),
               json::parse_error);  // long string
  std::string deep(64, '\x91');     // 64 nested one-element arrays around a 0: depth 64 is fine
  EXPECT_NO_THROW(Packed::Parse(deep + '\x00'));
  EXPECT_THROW(Packed::Parse(std::string(65, '\x91') + '\x00'), json::parse_error);
}

// Every cut and many byte flips of real documents either read or throw json::exception
// (under ASan, `make test-sanitize`, this also shows nothing is read out of bounds).
TEST(Packed, DamagedDocumentsThrowOrRead) {
  std::mt19937_64 rng(5);
  int refused = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string bytes = Bytes(RandomDocument(rng, 0));
    auto walk = [&](const std::string& damaged) {
      // A copy the exact size of the damage, so reading past its end is caught.
      const std::string copy(damaged);
      try {
        (void)Rebuild(Packed::Parse(copy));
      } catch (const json::exception&) {
        ++refused;
      }
    };
    for (std::size_t cut = 0; cut < bytes.size() && cut < 64; ++cut) walk(bytes.substr(0, cut));
    for (int flip = 0; flip < 20 && !bytes.empty(); ++flip) {
      std::string damaged = bytes;
      damaged[rng() % damaged.size()] = static_cast<char>(rng());
      walk(damaged);
    }
  }
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace vigil::rules
