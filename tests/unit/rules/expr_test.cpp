#include "rules/expr.h"

#include <gtest/gtest.h>

#include <cmath>

#include "rules/reading.h"

namespace vigil::rules {
namespace {

const std::string* Find(const void* tags, std::string_view name) {
  return FindTag(*static_cast<const Tags*>(tags), name);
}

class ExprTest : public ::testing::Test {
 protected:
  ExprTest() {
    scope_.names = {
        {"avg", Type::kNumber, 0}, {"n", Type::kNumber, 1}, {"value", Type::kNumber, 2}};
    scope_.unknown_names_are_tags = true;
  }
  std::shared_ptr<const Expr> Compile(std::string_view text) {
    CompileError error;
    auto e = Expr::Compile(text, scope_, &error);
    EXPECT_NE(e, nullptr) << text << ": col " << error.column << ": " << error.message;
    return e;
  }
  CompileError Fail(std::string_view text, Scope scope) {
    CompileError error;
    EXPECT_EQ(Expr::Compile(text, scope, &error), nullptr) << text;
    return error;
  }
  bool Cond(std::string_view text) {
    auto e = Compile(text);
    return e && e->EvalBool(Ctx());
  }
  double Num(std::string_view text) {
    auto e = Compile(text);
    return e ? e->EvalNumber(Ctx()) : std::nan("");
  }
  EvalContext Ctx() { return {numbers_, nullptr, &Find, &tags_}; }

  Scope scope_;
  double numbers_[3] = {93.4, 5, 7};
  Tags tags_{{"device", "boiler-3"}, {"floor", "2"}, {"metric", "temperature"}};
};

TEST_F(ExprTest, ArithmeticFollowsPrecedence) {
  EXPECT_DOUBLE_EQ(Num("1 + 2 * 3"), 7);
  EXPECT_DOUBLE_EQ(Num("(1 + 2) * 3"), 9);
  EXPECT_DOUBLE_EQ(Num("10 - 4 - 3"), 3);
  EXPECT_DOUBLE_EQ(Num("7 % 4"), 3);
  EXPECT_DOUBLE_EQ(Num("-n + 1"), -4);
  EXPECT_DOUBLE_EQ(Num("value * 1.8 + 32"), 44.6);
  EXPECT_DOUBLE_EQ(Num("1.5e2"), 150);
  EXPECT_TRUE(std::isnan(Num("1 / 0")));
}

TEST_F(ExprTest, ComparisonsAndLogic) {
  EXPECT_TRUE(Cond("avg > 90 && n >= 3"));
  EXPECT_FALSE(Cond("avg > 90 && n >= 6"));
  EXPECT_TRUE(Cond("avg < 0 || n == 5"));
  EXPECT_TRUE(Cond("!(avg < 90)"));
  EXPECT_TRUE(Cond("n != 4"));
  EXPECT_TRUE(Cond("true && !false"));
  EXPECT_TRUE(Cond("avg <= 93.4 && avg >= 93.4"));
}

TEST_F(ExprTest, TagsStringsRegexAndHas) {
  EXPECT_TRUE(Cond("device == \"boiler-3\""));
  EXPECT_TRUE(Cond("device =~ \"^boiler-\""));
  EXPECT_TRUE(Cond("device !~ \"^pump\""));
  EXPECT_TRUE(Cond("floor > 1"));  // a numeric tag compares as a number
  EXPECT_TRUE(Cond("has(device) && !has(room)"));
  // A missing tag makes every comparison false (SPEC §12.14).
  EXPECT_FALSE(Cond("room == \"a\""));
  EXPECT_FALSE(Cond("room != \"a\""));
  EXPECT_FALSE(Cond("room =~ \".*\""));
}

TEST_F(ExprTest, Functions) {
  EXPECT_DOUBLE_EQ(Num("abs(-2)"), 2);
  EXPECT_DOUBLE_EQ(Num("min(3, 1, 2)"), 1);
  EXPECT_DOUBLE_EQ(Num("max(3, 1, 2)"), 3);
  EXPECT_DOUBLE_EQ(Num("sqrt(16)"), 4);
  EXPECT_DOUBLE_EQ(Num("round(exp(log(10)))"), 10);
  EXPECT_DOUBLE_EQ(Num("round(2.345, 2)"), 2.35);
  EXPECT_DOUBLE_EQ(Num("clamp(150, 0, 100)"), 100);
}

TEST_F(ExprTest, NullMakesComparisonsFalse) {
  numbers_[0] = std::nan("");
  EXPECT_FALSE(Cond("avg > 1"));
  EXPECT_FALSE(Cond("avg != 1"));
  EXPECT_FALSE(Cond("avg == avg"));
  EXPECT_TRUE(Cond("!(avg > 1)"));
}

TEST_F(ExprTest, CompileErrorsNameTheColumn) {
  Scope strict;
  strict.names = {{"avg", Type::kNumber, 0}};
  strict.hint = "(aggregates: avg)";
  CompileError e = Fail("avgg > 90", strict);
  EXPECT_EQ(e.column, 1);
  EXPECT_EQ(e.message, "unknown name \"avgg\" (aggregates: avg)");

  e = Fail("avg > ", strict);
  EXPECT_EQ(e.column, 7);
  EXPECT_EQ(Fail("avg > 1 &&", strict).column, 11);
  EXPECT_EQ(Fail("(avg > 1", strict).message, "missing \")\"");
  EXPECT_EQ(Fail("avg = 1", strict).column, 5);
  EXPECT_EQ(Fail("avg > 1 && 2", strict).column, 9);  // && needs conditions
  EXPECT_EQ(Fail("foo(1)", strict).column, 1);
  EXPECT_EQ(Fail("abs(1, 2) > 0", strict).column, 1);
  EXPECT_EQ(Fail("\"x", strict).message, "unterminated string");
  EXPECT_EQ(Fail("avg =~ \"x\"", strict).column, 5);      // =~ needs a string on its left
  EXPECT_EQ(Fail("device =~ \"(\"", scope_).column, 11);  // invalid regex
  EXPECT_EQ(Fail("", strict).message, "empty expression");
  EXPECT_EQ(Fail("1 < 2 < 3", strict).column, 7);
  EXPECT_EQ(Fail("avg @ 1", strict).column, 5);
}

TEST_F(ExprTest, TypesAreChecked) {
  EXPECT_EQ(Compile("avg > 1")->type(), Type::kBool);
  EXPECT_EQ(Compile("avg + 1")->type(), Type::kNumber);
  EXPECT_EQ(Compile("device")->type(), Type::kString);
  CompileError e = Fail("device + 1 > 0", scope_);
  EXPECT_NE(e.message.find("arithmetic needs a number"), std::string::npos) << e.message;
  e = Fail("!avg", scope_);
  EXPECT_NE(e.message.find("needs a condition"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace vigil::rules
