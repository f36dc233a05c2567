// `aggregates`: name → a call such as avg(value), count() or percentile(value, 95).

#include <cstdlib>
#include <regex>
#include <string>
#include <utility>

#include "rules/rule_parse.h"

namespace vigil::rules::parse {
namespace {

// "avg(value)", "count()", "percentile(value, 95)", "distinct(device)".
void ParseAggregate(JsonReader& r, const std::string& name, const std::string& text,
                    const std::string& pointer, const RuleLimits& limits, const Scope& scope,
                    AggregateSpec* out) {
  if (TooLong(r, text, pointer, limits)) return;
  static const std::regex kCall(R"(^\s*([a-z_]+)\s*\((.*)\)\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, kCall)) {
    r.Error(pointer, "col 1: an aggregate is a call such as avg(value) or count()");
    return;
  }
  struct Known {
    const char* name;
    AggregateSpec::Fn fn;
  };
  static const Known kFns[] = {
      {"count", AggregateSpec::Fn::kCount},
      {"sum", AggregateSpec::Fn::kSum},
      {"avg", AggregateSpec::Fn::kAvg},
      {"min", AggregateSpec::Fn::kMin},
      {"max", AggregateSpec::Fn::kMax},
      {"stddev", AggregateSpec::Fn::kStddev},
      {"first", AggregateSpec::Fn::kFirst},
      {"last", AggregateSpec::Fn::kLast},
      {"delta", AggregateSpec::Fn::kDelta},
      {"rate", AggregateSpec::Fn::kRate},
      {"percentile", AggregateSpec::Fn::kPercentile},
      {"distinct", AggregateSpec::Fn::kDistinct},
  };
  std::string fn = m[1].str();
  std::string args = m[2].str();
  const Known* known = nullptr;
  for (const Known& k : kFns) {
    if (fn == k.name) known = &k;
  }
  if (known == nullptr) {
    r.Error(pointer, "col 1: unknown aggregate \"" + fn +
                         "\" (count, sum, avg, min, max, stddev, first, last, delta, rate, "
                         "percentile, distinct)");
    return;
  }
  out->name = name;
  out->fn = known->fn;
  const int arg_column = static_cast<int>(m.position(2)) + 1;
  auto blank = [](const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; };
  if (out->fn == AggregateSpec::Fn::kCount) {
    if (!blank(args))
      r.Error(pointer, "col " + std::to_string(arg_column) + ": count() takes no argument");
    return;
  }
  if (out->fn == AggregateSpec::Fn::kDistinct) {
    static const std::regex kTag(R"(^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*$)");
    std::smatch t;
    if (!std::regex_match(args, t, kTag)) {
      r.Error(pointer, "col " + std::to_string(arg_column) + ": distinct() takes a tag name");
      return;
    }
    out->tag = t[1].str();
    return;
  }
  std::string value_expr = args;
  if (out->fn == AggregateSpec::Fn::kPercentile) {
    std::size_t comma = args.rfind(',');
    double p = -1;
    if (comma != std::string::npos) {
      std::string ptext = args.substr(comma + 1);
      char* end = nullptr;
      p = std::strtod(ptext.c_str(), &end);
      if (!blank(end)) p = -1;
      value_expr = args.substr(0, comma);
    }
    if (p < 0 || p > 100) {
      r.Error(pointer, "col " + std::to_string(arg_column) +
                           ": percentile takes (value, P) with P from 0 to 100");
      return;
    }
    out->percentile = p;
  }
  CompileError error;
  Scope numeric = scope;
  numeric.numeric = true;
  out->arg = Expr::Compile(value_expr, numeric, &error);
  if (!out->arg) {
    r.Error(pointer, "col " + std::to_string(arg_column + error.column - 1) + ": " + error.message);
  } else if (out->arg->type() != Type::kNumber) {
    r.Error(pointer, "col " + std::to_string(arg_column) + ": the argument must be a number");
    out->arg = nullptr;
  }
}

}  // namespace

void ParseAggregates(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                     CompiledRule* rule) {
  if (auto a = o.find("aggregates"); a != o.end()) {
    if (!a->is_object()) r.Error(p + "/aggregates", "must be an object of name → aggregate");
    for (auto it = a->begin(); a->is_object() && it != a->end(); ++it) {
      std::string ap = p + "/aggregates/" + it.key();
      static const std::regex kName("^[A-Za-z_][A-Za-z0-9_]*$");
      if (!std::regex_match(it.key(), kName) || it.key() == "value" || it.key() == "true" ||
          it.key() == "false") {
        r.Error(ap, "\"" + it.key() + "\" cannot name an aggregate");
        continue;
      }
      if (!it->is_string()) {
        r.Error(ap, "must be a string such as \"avg(value)\"");
        continue;
      }
      AggregateSpec spec;
      ParseAggregate(r, it.key(), it->get<std::string>(), ap, limits, ReadingScope(*rule, limits),
                     &spec);
      rule->aggregates.push_back(std::move(spec));
    }
  }
}

}  // namespace vigil::rules::parse
