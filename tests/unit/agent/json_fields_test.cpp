#include "agent/json_fields.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil::agent {
namespace {

using nlohmann::json;
using K = JsonField::Kind;

constexpr std::array<std::string_view, 4> kNames = {"value", "ts", "site", "t"};

struct Scan {
  bool taken = false;
  std::array<JsonField, kNames.size()> fields;
};

Scan Read(std::string_view text) {
  Scan s;
  s.taken = ScanFlatObject(text, kNames.data(), kNames.size(), s.fields.data());
  return s;
}

// What the full parse reads for the member `name` of a parsed object.
JsonField FromDocument(const json& doc, std::string_view name) {
  JsonField f;
  auto it = doc.find(name);
  if (it == doc.end()) return f;
  if (it->is_null()) {
    f.kind = K::kNull;
  } else if (it->is_boolean()) {
    f.kind = K::kBool;
    f.boolean = it->get<bool>();
  } else if (it->is_number()) {
    f.kind = K::kNumber;
    f.number = it->get<double>();
  } else if (it->is_string()) {
    f.kind = K::kString;
    f.text = it->get_ref<const std::string&>();
  } else {
    f.kind = K::kOther;
  }
  return f;
}

// When the scanner takes a text, the full parse must accept it and read the same fields
// (numbers bit for bit). Returns whether the scanner took it.
bool SameAsDocument(const std::string& text) {
  Scan s = Read(text);
  if (!s.taken) return false;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(doc.is_discarded()) << text;
  EXPECT_TRUE(doc.is_object()) << text;
  if (doc.is_discarded() || !doc.is_object()) return true;
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    JsonField want = FromDocument(doc, kNames[i]);
    const JsonField& got = s.fields[i];
    EXPECT_EQ(static_cast<int>(got.kind), static_cast<int>(want.kind)) << text << " " << kNames[i];
    if (got.kind != want.kind) continue;
    EXPECT_EQ(got.boolean, want.boolean) << text;
    EXPECT_EQ(std::memcmp(&got.number, &want.number, sizeof(double)), 0)
        << text << ": " << got.number << " vs " << want.number;
    EXPECT_EQ(got.text, want.text) << text;
  }
  return true;
}

TEST(JsonFieldsTest, ReadsPlainPayloadsInPlace) {
  Scan s = Read(R"({"value": 71.25, "ts": 1795341600123, "site": "berlin", "other": -3e2})");
  ASSERT_TRUE(s.taken);
  EXPECT_EQ(s.fields[0].kind, K::kNumber);
  EXPECT_EQ(s.fields[0].number, 71.25);
  EXPECT_EQ(s.fields[1].number, 1795341600123.0);
  EXPECT_EQ(s.fields[2].kind, K::kString);
  EXPECT_EQ(s.fields[2].text, "berlin");
  EXPECT_EQ(s.fields[3].kind, K::kMissing);

  s = Read(" \t\r\n{ \"value\" :true , \"ts\":null,\"site\":\"\",\"t\":false }\n");
  ASSERT_TRUE(s.taken);
  EXPECT_EQ(s.fields[0].kind, K::kBool);
  EXPECT_TRUE(s.fields[0].boolean);
  EXPECT_EQ(s.fields[1].kind, K::kNull);
  EXPECT_EQ(s.fields[2].kind, K::kString);
  EXPECT_EQ(s.fields[2].text, "");
  EXPECT_EQ(s.fields[3].kind, K::kBool);
  EXPECT_FALSE(s.fields[3].boolean);

  s = Read("{}");
  ASSERT_TRUE(s.taken);
  EXPECT_EQ(s.fields[0].kind, K::kMissing);

  s = Read(R"({"value": -0, "ts": -0.0, "t": 123456789012345678})");
  ASSERT_TRUE(s.taken);
  EXPECT_FALSE(std::signbit(s.fields[0].number));  // an integer: -0 is 0
  EXPECT_TRUE(std::signbit(s.fields[1].number));
  EXPECT_EQ(s.fields[3].number, 123456789012345678.0);
}

TEST(JsonFieldsTest, LeavesEverythingElseToTheFullParse) {
  for (const char* text :
       {// valid JSON of other shapes
        R"([{"value": 1}])", "1", R"("x")", R"({"value": {"x": 1}})", R"({"value": [1]})",
        R"({"other": {"x": 1}, "value": 1})", R"({"site": "a\"b"})", R"({"va\u006cue": 1})",
        "{\"site\": \"caf\xc3\xa9\"}", "\xef\xbb\xbf{\"value\": 1}", R"({"value": 1, "value": 2})",
        R"({"value": 1234567890123456789})", R"({"value": 1e400})", R"({"value": 1e-400})",
        // not JSON
        "", "{", "}", R"({"value": 1,})", R"({"value" 1})", R"({"value": 01})", R"({"value": 1.})",
        R"({"value": .5})", R"({"value": -})", R"({"value": +1})", R"({"value": 1e})",
        R"({"value": tru})", R"({"value": nul})", R"({"value": 1} x)", R"({"value": 1}{})",
        R"({value: 1})", R"({'value': 1})", "{\"site\": \"a\tb\"}", R"({"value": NaN})",
        R"({"value": Infinity})", R"({"value": 0x10})"}) {
    EXPECT_FALSE(Read(text).taken) << text;
  }
  EXPECT_FALSE(Read(std::string_view("{\"value\": 1}\0", 13)).taken);
}

// Random texts near the plain shape: whenever the scanner takes one, the full parse reads
// the same; and it takes most of the valid ones.
TEST(JsonFieldsTest, AgreesWithTheFullParseOnRandomTexts) {
  std::mt19937_64 rng(20261201);
  const std::vector<std::string> names = {"value", "ts", "site", "t", "x", ""};
  const std::vector<std::string> values = {"0",
                                           "-0",
                                           "1",
                                           "-17",
                                           "71.25",
                                           "1e3",
                                           "1E-3",
                                           "-2.5e+10",
                                           "123456789012345678",
                                           "9007199254740993",
                                           "0.1",
                                           "1.7976931348623157e308",
                                           "5e-324",
                                           "4.9e-324",
                                           "2.2250738585072011e-308",
                                           "true",
                                           "false",
                                           "null",
                                           "\"\"",
                                           "\"berlin\"",
                                           "\"12.5\"",
                                           "\" 7 \"",
                                           "\"a b~\x7f\"",
                                           "0.30000000000000004",
                                           "100000000000000000000",
                                           "-1.5E2"};
  const std::string noise = "{}[]\",:.-+eE0123456789 \\tfnul\x7f\x80";
  int taken = 0;
  int valid_and_plain = 0;
  for (int i = 0; i < 40000; ++i) {
    std::string text = "{";
    const int members = static_cast<int>(rng() % 5);
    for (int k = 0; k < members; ++k) {
      if (k > 0) text += rng() % 4 == 0 ? " , " : ",";
      text += "\"" + names[rng() % names.size()] + "\":" + (rng() % 3 == 0 ? " " : "") +
              values[rng() % values.size()];
    }
    text += "}";
    const bool mutated = rng() % 3 == 0;
    if (mutated) {
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !text.empty(); ++e) {
        const std::size_t at = rng() % text.size();
        switch (rng() % 3) {
          case 0:
            text.erase(at, 1);
            break;
          case 1:
            text.insert(at, 1, noise[rng() % noise.size()]);
            break;
          default:
            text[at] = noise[rng() % noise.size()];
        }
      }
    }
    if (SameAsDocument(text)) ++taken;
    if (!mutated) ++valid_and_plain;
  }
  // Unmutated texts are valid; the scanner declines those naming a wanted member twice or
  // with an integer beyond 18 digits.
  EXPECT_GT(taken, valid_and_plain / 2);
  EXPECT_LT(taken, 40000);
}

}  // namespace
}  // namespace vigil::agent
