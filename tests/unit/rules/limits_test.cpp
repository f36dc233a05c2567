// What a rule file may not ask for (README "Limits"; each a load error naming the limit),
// and the findings of the rule and expression fuzzers.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "rules/engine.h"
#include "rules/expr.h"
#include "rules/rule_loader.h"
#include "tests/unit/errors.h"

namespace vigil::rules {
namespace {

CompileError CompileFails(const std::string& text) {
  Scope scope;
  scope.names = {{"value", Type::kNumber, 0}};
  scope.unknown_names_are_tags = true;
  CompileError error;
  EXPECT_EQ(Expr::Compile(text, scope, &error), nullptr) << text;
  return error;
}

bool Compiles(const std::string& text) {
  Scope scope;
  scope.names = {{"value", Type::kNumber, 0}};
  scope.unknown_names_are_tags = true;
  CompileError error;
  return Expr::Compile(text, scope, &error) != nullptr;
}

TEST(ExprLimits, DeepNestingIsAnErrorNotAStackOverflow) {
  EXPECT_TRUE(Compiles(std::string(60, '(') + "value > 1" + std::string(60, ')')));
  CompileError e = CompileFails(std::string(100'000, '(') + "1" + std::string(100'000, ')'));
  EXPECT_EQ(e.message, "nested deeper than 64 levels");
  e = CompileFails(std::string(50'000, '!') + "true");
  EXPECT_EQ(e.message, "nested deeper than 64 levels");
  std::string chain = "value";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  e = CompileFails(chain + " > 0");
  EXPECT_NE(e.message.find("more than 256 operations deep"), std::string::npos) << e.message;
}

TEST(ExprLimits, RegexesThatBacktrackExponentiallyAreRefused) {
  for (const char* ok :
       {R"(device =~ "^boiler-[0-9]+$")", R"(device =~ "^(boiler|pump)-\\d{1,3}$")",
        R"(device !~ "(ab)?c*")", R"(device =~ "[a-z]+(-[0-9])?")"}) {
    EXPECT_TRUE(Compiles(ok)) << ok;
  }
  for (const char* bad : {R"(device =~ "(a*)*b")", R"(device =~ "(a+)+")", R"(device =~ "(a|a)*b")",
                          R"(device =~ "^((ab)+c)*$")", R"(device =~ "(x{2,})+")"}) {
    CompileError e = CompileFails(bad);
    EXPECT_NE(e.message.find("a repeated group may not hold a repetition or a |"),
              std::string::npos)
        << bad << ": " << e.message;
  }
  // Found by the expression fuzzer: libstdc++ overflows a signed integer reading a long
  // back-reference number (UB).
  CompileError e = CompileFails(R"(device =~ "\\2222222222222222222222")");
  EXPECT_NE(e.message.find("a back-reference has at most 2 digits"), std::string::npos);
  // Found by the expression fuzzer in a CI run: in ECMAScript [] is a whole (empty) class, so
  // what follows it is read as a pattern, not as more of the class.
  for (const char* after_class : {R"(device =~ "[]\\2222222222222222222222")",
                                  R"(device =~ "x[^]\\2222222222222222222222")"}) {
    e = CompileFails(after_class);
    EXPECT_NE(e.message.find("a back-reference has at most 2 digits"), std::string::npos)
        << after_class << ": " << e.message;
  }
  // Found by the expression fuzzer in a CI run: \cX takes any character as X, a \ too, so the
  // \ after \c does not escape what follows it.
  e = CompileFails(R"(device =~ "\\c\\\\2222222222222222222222")");
  EXPECT_NE(e.message.find("a back-reference has at most 2 digits"), std::string::npos);
  e = CompileFails(R"(device =~ "[^]a{99999999999999999999}")");
  EXPECT_NE(e.message.find("a repetition count is at most 1000"), std::string::npos);
  EXPECT_TRUE(Compiles(R"(device =~ "^[^]]+$")"));  // ] then ]: a class, then a literal ]
  e = CompileFails(R"(device =~ "a{99999}")");
  EXPECT_NE(e.message.find("a repetition count is at most 1000"), std::string::npos);
  // Found by the expression fuzzer (a timeout): stacked quantifiers repeat a repetition.
  for (const char* stacked :
       {R"(device =~ "iler++++++")", R"(device =~ "a*+")", R"(device =~ "a{2}+")"}) {
    e = CompileFails(stacked);
    EXPECT_NE(e.message.find("a quantifier may not follow another"), std::string::npos) << stacked;
  }
  EXPECT_TRUE(Compiles(R"(device =~ "a+?b*?c??")"));  // lazy quantifiers are one quantifier
  // Found by the expression fuzzer in the CI run: the count overflows without a closing }.
  for (const char* open :
       {R"(device =~ "x{2888855555555555555,.8")", R"(device =~ "a{2,22222222222")"}) {
    e = CompileFails(open);
    EXPECT_NE(e.message.find("a repetition count is at most 1000"), std::string::npos) << open;
  }
  e = CompileFails("device =~ \"" + std::string(40, '(') + "a" + std::string(40, ')') + "\"");
  EXPECT_NE(e.message.find("groups nest deeper than 16"), std::string::npos);
}

constexpr const char* kRuleWith = R"json({
  "id": "r", "source": { "metric": "t", "where": "WHERE" }, "group_by": ["device"],
  "window": { "type": "tumbling", "size": "1m" }, "aggregates": { "n": "count()" } })json";

std::string Rule(const std::string& where) {
  std::string r = kRuleWith;
  r.replace(r.find("WHERE"), 5, where);
  return r;
}

TEST(RuleLimits, ExpressionLongerThanTheLimitIsAnError) {
  config::RuleLimits limits;
  limits.max_expression_bytes = 32;
  LoadResult r = ParseRules(Rule("value > 1 && value < 1000"), "r.json", limits);
  EXPECT_TRUE(r.rules) << Errors(r);
  r = ParseRules(Rule("value > 1 && value < 1000 && value != 77"), "r.json", limits);
  EXPECT_NE(Errors(r).find("r.json: /source/where: col 1: the expression is 40 bytes; "
                           "rules.max_expression_bytes is 32"),
            std::string::npos)
      << Errors(r);
}

TEST(RuleLimits, FileLargerThanTheLimitIsAnError) {
  config::RuleLimits limits;
  limits.max_file_bytes = 64;
  LoadResult r = ParseRules(Rule("value > 1"), "r.json", limits);
  EXPECT_NE(Errors(r).find("r.json: the file is"), std::string::npos);
  EXPECT_NE(Errors(r).find("bytes; rules.max_file_bytes is 64"), std::string::npos) << Errors(r);
}

TEST(RuleLimits, MoreFilesThanTheLimitIsAnError) {
  const auto dir = std::filesystem::temp_directory_path() / "vigil-rule-limits";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (int i = 0; i < 3; ++i) {
    std::string rule = Rule("value > 1");
    rule.replace(rule.find("\"r\""), 3, "\"r" + std::to_string(i) + "\"");
    std::ofstream(dir / ("r" + std::to_string(i) + ".json")) << rule;
  }
  config::RuleLimits limits;
  limits.max_files = 3;
  EXPECT_TRUE(LoadRules({dir.string()}, limits).rules);
  limits.max_files = 2;
  LoadResult r = LoadRules({dir.string()}, limits);
  EXPECT_FALSE(r.rules);
  EXPECT_NE(Errors(r).find(dir.string() + ": more than 2 rule files (rules.max_files)"),
            std::string::npos)
      << Errors(r);
  // Not a regular file: refused, never read (a device might never end).
  r = LoadRules({"/dev/zero"}, config::RuleLimits{});
  EXPECT_NE(Errors(r).find("/dev/zero: cannot read the rule file (not a regular file)"),
            std::string::npos)
      << Errors(r);
  std::filesystem::remove_all(dir);
}

TEST(RuleLimits, HoppingWindowsPerReadingAreBounded) {
  LoadResult r = ParseRules(R"json({ "id": "h", "source": { "metric": "t" },
    "window": { "type": "hopping", "size": "1d", "slide": "1ms" },
    "aggregates": { "n": "count()" } })json",
                            "h.json");
  EXPECT_NE(Errors(r).find("h.json: /window/slide: a reading would belong to 86400000 windows "
                           "(size / slide); at most 1000"),
            std::string::npos)
      << Errors(r);
  r = ParseRules(R"json({ "id": "h", "source": { "metric": "t" },
    "window": { "type": "hopping", "size": "1h", "slide": "5s" },
    "aggregates": { "n": "count()" } })json",
                 "h.json");
  EXPECT_TRUE(r.rules) << Errors(r);
}

// Found by the engine fuzzer: `absent` beside a window evaluated its alert with three values
// where the alert's slots expected the aggregates first (a heap read out of bounds).
TEST(RuleLimits, AbsentBesideAWindowIsAnError) {
  LoadResult r = ParseRules(R"json({ "id": "a", "source": { "metric": "t" },
    "window": { "type": "tumbling", "size": "1m" }, "aggregates": { "avg": "avg(value)" },
    "detector": { "method": "absent", "for": "1m", "input": "avg" } })json",
                            "a.json");
  EXPECT_NE(Errors(r).find("a.json: /detector/method: absent watches readings, not windows"),
            std::string::npos)
      << Errors(r);
}

// Found by the rule file fuzzer: a detector without a window but with aggregates compiled its
// alert with the aggregates' slots first, then evaluated it with the detector's three values
// only (a heap read out of bounds).
TEST(RuleLimits, AggregatesWithoutAWindowAreAnError) {
  LoadResult r = ParseRules(R"json({ "id": "avg-jump", "source": { "metric": "t" },
    "aggregates": { "avg": "avg(value)" },
    "detector": { "method": "zscore", "window": 5, "min_samples": 3 },
    "alert": { "when": "anomaly && avg > 0" } })json",
                            "a.json");
  EXPECT_NE(Errors(r).find("a.json: /aggregates: aggregates need a window"), std::string::npos)
      << Errors(r);
}

}  // namespace
}  // namespace vigil::rules
