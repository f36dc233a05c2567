#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::rules {

// The expression language of SPEC §3: numbers, strings, true/false, identifiers,
// + - * / %, == != < <= > >=, =~ !~ (ECMAScript regex), && || !, parentheses, and the
// functions abs min max sqrt log exp round clamp has(tag).
//
// An expression is compiled once, against a Scope that says which names exist and what
// type each has; an unknown name or a type error is a compile error with a 1-based column.
// Evaluation reads values from slots (resolved at compile time) and never allocates for
// numeric and boolean expressions.

enum class Type { kNumber, kBool, kString };

// What a name means to an expression. Tag names are open-ended (any tag a reading may
// carry), so a Scope says whether unknown names are taken as tags.
struct Scope {
  struct Name {
    std::string name;
    Type type;
    int slot;  // index into EvalContext::numbers (kNumber/kBool) or ::strings (kString)
  };
  std::vector<Name> names;
  std::vector<std::string> tags;        // names read as tags (e.g. the group_by tags)
  bool unknown_names_are_tags = false;  // e.g. `where`: `device` is a tag
  // Configured reference tables: `<table>.<column>` is read like a tag (the engine looks the
  // row up by the table's key tag).
  std::vector<std::string> tables;
  bool numeric = false;  // a number is wanted: a table's column alone is read as one
  std::string hint;      // appended to "unknown name" errors, e.g. "(aggregates: avg, max, n)"
};

// True when `name` is `<table>.<column>` of one of `tables` (Scope::tables).
bool IsTableColumn(std::string_view name, const std::vector<std::string>& tables);

// Values for one evaluation. numbers[i] is NaN for a null value (SPEC §12.9: any comparison
// with null is false). Tags are looked up by name (missing tag: comparisons are false,
// SPEC §12.14).
struct EvalContext {
  const double* numbers = nullptr;
  const std::string* const* strings = nullptr;  // may hold nullptr for "absent"
  // Tag lookup; returns nullptr when the reading/key lacks the tag.
  const std::string* (*find_tag)(const void* tags, std::string_view name) = nullptr;
  const void* tags = nullptr;
};

class CompiledExpr;

struct CompileError {
  int column = 1;       // 1-based column inside the expression text
  std::string message;  // e.g. `unknown name "avgg" (aggregates: avg, max, n)`
};

class Expr {
 public:
  // Compiles `text`. On failure returns nullptr and sets *error.
  static std::shared_ptr<const Expr> Compile(std::string_view text, const Scope& scope,
                                             CompileError* error);
  virtual ~Expr() = default;

  virtual Type type() const = 0;
  // Numeric result (NaN for null/undefined); for kBool 1 or 0.
  virtual double EvalNumber(const EvalContext& ctx) const = 0;
  // Boolean result: a kNumber expression is true when non-zero and not NaN.
  virtual bool EvalBool(const EvalContext& ctx) const = 0;
  // Names of tags the expression reads (for validation and has()).
  virtual const std::vector<std::string>& tag_names() const = 0;
};

}  // namespace vigil::rules
