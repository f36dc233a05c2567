// config::TextTemplate: parsed once in one of three syntaxes, rendered with a lookup, an
// escaping policy and a choice for unknown placeholders.

#include "config/text_template.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace vigil::config {
namespace {

using Syntax = TextTemplate::Syntax;
using Escape = TextTemplate::Escape;
using Unknown = TextTemplate::Unknown;

TextTemplate Parse(std::string_view text, Syntax syntax) {
  auto t = TextTemplate::Parse(text, syntax);
  EXPECT_TRUE(t.ok()) << text << ": " << t.error();
  return t.ok() ? std::move(t).value() : TextTemplate();
}

// Renders with the values of `values` (a name without a value is unknown).
std::string Render(const TextTemplate& t, const std::map<std::string, std::string>& values,
                   Escape escape = Escape::kPlain, Unknown unknown = Unknown::kEmpty) {
  return t.Render(
      [&values](const TextPiece& placeholder, std::string* value) {
        auto it = values.find(placeholder.text);
        if (it == values.end()) return false;
        *value += it->second;
        return true;
      },
      escape, unknown);
}

TEST(TextTemplate, LiteralsAndPlaceholdersInEverySyntax) {
  const std::map<std::string, std::string> values = {{"device", "d1"}, {"room", "r2"}};
  for (Syntax syntax : {Syntax::kStrict, Syntax::kLenient, Syntax::kFormat}) {
    EXPECT_EQ(Render(Parse("fan {device} in {room}.", syntax), values), "fan d1 in r2.");
    EXPECT_EQ(Render(Parse("{device}{room}", syntax), values), "d1r2");
    EXPECT_EQ(Render(Parse("no placeholder", syntax), values), "no placeholder");
    EXPECT_EQ(Render(Parse("", syntax), values), "");
  }
  EXPECT_EQ(Render(TextTemplate(), values), "");
  EXPECT_EQ(Render(TextTemplate::Literal("{device}"), values), "{device}");
}

TEST(TextTemplate, StrictSyntaxDoublesBracesAndRefusesUnbalancedOnes) {
  EXPECT_EQ(Render(Parse("{{{device}}} {{x}}", Syntax::kStrict), {{"device", "d1"}}), "{d1} {x}");
  auto bad = TextTemplate::Parse("a {b", Syntax::kStrict);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "'{' at position 3 is not closed (write {{ for a literal {)");
  EXPECT_FALSE(TextTemplate::Parse("a}", Syntax::kStrict).ok());
  EXPECT_FALSE(TextTemplate::Parse("{}", Syntax::kStrict).ok());
  EXPECT_FALSE(TextTemplate::Parse("{a b}", Syntax::kStrict).ok());
}

TEST(TextTemplate, LenientSyntaxTakesAnyBraceToTheNextClosingOne) {
  // `{` to the next `}` is a placeholder, a `{` inside it too; other braces are literal.
  const TextTemplate t = Parse("a}{{device}}{b {c", Syntax::kLenient);
  ASSERT_EQ(t.pieces().size(), 3u);
  EXPECT_EQ(t.pieces()[0].text, "a}");
  EXPECT_EQ(t.pieces()[1].kind, TextPiece::Kind::kPlaceholder);
  EXPECT_EQ(t.pieces()[1].text, "{device");
  EXPECT_EQ(t.pieces()[1].written, "{{device}");
  EXPECT_EQ(t.pieces()[2].kind, TextPiece::Kind::kLiteral);
  EXPECT_EQ(t.pieces()[2].text, "}{b {c") << "nothing closes the last `{`s: literal";
  EXPECT_EQ(Render(t, {{"{device", "x"}}), "a}x}{b {c");
  EXPECT_EQ(Render(Parse("{}", Syntax::kLenient), {{"", "empty"}}), "empty");
}

TEST(TextTemplate, FormatSyntaxReadsDecimalsAfterTheName) {
  const TextTemplate t = Parse("{avg:.1f} {n} {x:.} {y:.12}", Syntax::kFormat);
  ASSERT_EQ(t.pieces().size(), 7u);
  EXPECT_EQ(t.pieces()[0].text, "avg");
  EXPECT_EQ(t.pieces()[0].decimals, 1);
  EXPECT_EQ(t.pieces()[0].written, "{avg:.1f}");
  EXPECT_EQ(t.pieces()[2].text, "n");
  EXPECT_EQ(t.pieces()[2].decimals, -1);
  EXPECT_EQ(t.pieces()[4].text, "x");
  EXPECT_EQ(t.pieces()[4].decimals, 0) << "as atoi reads nothing";
  EXPECT_EQ(t.pieces()[6].decimals, 12);
  // The other syntaxes keep the whole text as the name.
  EXPECT_EQ(Parse("{avg:.1f}", Syntax::kLenient).pieces()[0].text, "avg:.1f");
  EXPECT_EQ(Parse("{avg:.1f}", Syntax::kLenient).pieces()[0].decimals, -1);
}

TEST(TextTemplate, UnknownPlaceholdersAreEmptyOrKeptAsWritten) {
  const TextTemplate t = Parse("[{nope:.2f}] [{device}]", Syntax::kFormat);
  EXPECT_EQ(Render(t, {{"device", "d1"}}), "[] [d1]");
  EXPECT_EQ(Render(t, {{"device", "d1"}}, Escape::kPlain, Unknown::kAsWritten),
            "[{nope:.2f}] [d1]");
  // A value that is there but empty is not unknown.
  EXPECT_EQ(Render(t, {{"nope", ""}, {"device", ""}}, Escape::kPlain, Unknown::kAsWritten),
            "[] []");
}

TEST(TextTemplate, JsonStringEscapingCoversLiteralsAndValues) {
  const TextTemplate t = Parse("say \"{v}\"\\", Syntax::kStrict);
  EXPECT_EQ(Render(t, {{"v", "a\"b\\c\n\x01"}}, Escape::kJsonString),
            "say \\\"a\\\"b\\\\c\\n\\u0001\\\"\\\\");
  // Bytes that are not UTF-8 become U+FFFD, as nlohmann::json writes them; UTF-8 stays.
  EXPECT_EQ(Render(t, {{"v", "\xff°"}}, Escape::kJsonString), "say \\\"\xEF\xBF\xBD°\\\"\\\\");
  EXPECT_EQ(Render(t, {}, Escape::kJsonString), "say \\\"\\\"\\\\");
}

TEST(TextTemplate, TopicLevelEscapingSanitisesValuesOnly) {
  const TextTemplate t = Parse("fleet/{agent}/{room}/+", Syntax::kLenient);
  EXPECT_EQ(Render(t, {{"agent", "gw/1+#"}, {"room", "a b"}}, Escape::kTopicLevel),
            "fleet/gw_1__/a b/+");
  EXPECT_EQ(Render(t, {{"agent", ""}}, Escape::kTopicLevel), "fleet/_/_/+")
      << "empty and unknown values are one `_` each";
}

TEST(TextTemplate, SolePlaceholder) {
  EXPECT_NE(Parse("{v}", Syntax::kStrict).sole_placeholder(), nullptr);
  EXPECT_EQ(Parse("{v} ", Syntax::kStrict).sole_placeholder(), nullptr);
  EXPECT_EQ(Parse("{{v}}", Syntax::kStrict).sole_placeholder(), nullptr);
  EXPECT_EQ(TextTemplate().sole_placeholder(), nullptr);
}

}  // namespace
}  // namespace vigil::config
