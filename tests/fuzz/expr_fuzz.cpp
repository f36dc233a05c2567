// Fuzz target: the expression language (rules/expr.h), compiled and evaluated.
// Input: one flags byte (which scope), then the expression text.
// Checks: no crash, no exception, no unbounded recursion; a compiled expression evaluates
// against null (NaN) slots, missing tags and extreme numbers without trouble, and a
// condition's EvalNumber agrees with its EvalBool.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "fuzz_bytes.h"
#include "rules/expr.h"
#include "rules/reading.h"

namespace {

using vigil::rules::Type;

const std::string* Find(const void* tags, std::string_view name) {
  return vigil::rules::FindTag(*static_cast<const vigil::rules::Tags*>(tags), name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vigil::fuzz::Bytes in(data, size);
  const std::uint8_t flags = in.U8();
  const std::string_view text = in.Rest();

  vigil::rules::Scope scope;
  scope.names = {{"value", Type::kNumber, 0},
                 {"avg", Type::kNumber, 1},
                 {"n", Type::kNumber, 2},
                 {"anomaly", Type::kBool, 3}};
  scope.unknown_names_are_tags = (flags & 1) != 0;
  if ((flags & 2) != 0) scope.tags = {"device", "site"};
  scope.hint = "(aggregates: avg, n)";

  vigil::rules::CompileError error;
  auto expr = vigil::rules::Expr::Compile(text, scope, &error);
  if (!expr) {
    if (error.column < 1 || error.message.empty()) std::abort();
    return 0;
  }
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::nan("");
  const double slots[][4] = {{21.5, 20.0, 3, 1},
                             {nan, nan, nan, 0},
                             {0, -0.0, 0, 0},
                             {1e308, -1e308, 5e-324, 1},
                             {inf, -inf, 1e-300, 1}};
  const vigil::rules::Tags tag_sets[] = {
      {{"device", "boiler-3"}, {"metric", "temperature"}, {"site", "berlin"}},
      {{"metric", "temperature"}},
      {{"device", ""}, {"site", "12.5"}},
  };
  for (const auto& numbers : slots) {
    for (const auto& tags : tag_sets) {
      vigil::rules::EvalContext ctx{numbers, nullptr, &Find, &tags};
      const double v = expr->EvalNumber(ctx);
      const bool b = expr->EvalBool(ctx);
      if (expr->type() == Type::kBool && v != (b ? 1 : 0)) std::abort();
    }
    // No tag lookup at all (an alert over aggregates only).
    vigil::rules::EvalContext bare{numbers, nullptr, nullptr, nullptr};
    (void)expr->EvalBool(bare);
  }
  return 0;
}
