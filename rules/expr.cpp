#include "rules/expr.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <regex>

namespace vigil::rules {
namespace {

// ---- Lexer ----

enum class Tok {
  kEnd,
  kNumber,
  kString,
  kIdent,
  kTrue,
  kFalse,
  kLParen,
  kRParen,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kMatch,
  kNotMatch,
  kAnd,
  kOr,
  kNot,
};

struct Token {
  Tok kind = Tok::kEnd;
  int column = 1;
  std::string text;  // identifier name or string literal content
  double number = 0;
};

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

bool Lex(std::string_view s, std::vector<Token>* out, CompileError* error) {
  std::size_t i = 0;
  while (true) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    Token t;
    t.column = static_cast<int>(i) + 1;
    if (i >= s.size()) {
      out->push_back(t);
      return true;
    }
    char c = s[i];
    auto two = [&](char next) { return i + 1 < s.size() && s[i + 1] == next; };
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      std::string num(s.substr(i));
      char* end = nullptr;
      t.number = std::strtod(num.c_str(), &end);
      std::size_t used = static_cast<std::size_t>(end - num.c_str());
      if (used < num.size() && IsIdentStart(num[used])) {
        *error = {t.column, "malformed number \"" + num.substr(0, used + 1) + "\""};
        return false;
      }
      t.kind = Tok::kNumber;
      i += used;
    } else if (c == '"' || c == '\'') {
      char quote = c;
      ++i;
      std::string text;
      while (i < s.size() && s[i] != quote) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          ++i;
          switch (s[i]) {
            case 'n':
              text.push_back('\n');
              break;
            case 't':
              text.push_back('\t');
              break;
            // Keep regex escapes such as \d intact.
            case '"':
            case '\'':
            case '\\':
              text.push_back(s[i]);
              break;
            default:
              text.push_back('\\');
              text.push_back(s[i]);
              break;
          }
        } else {
          text.push_back(s[i]);
        }
        ++i;
      }
      if (i >= s.size()) {
        *error = {t.column, "unterminated string"};
        return false;
      }
      ++i;
      t.kind = Tok::kString;
      t.text = std::move(text);
    } else if (IsIdentStart(c)) {
      std::size_t start = i;
      while (i < s.size() && IsIdentChar(s[i])) ++i;
      t.text = std::string(s.substr(start, i - start));
      t.kind = t.text == "true" ? Tok::kTrue : t.text == "false" ? Tok::kFalse : Tok::kIdent;
    } else {
      struct Op {
        const char* text;
        Tok kind;
      };
      static const Op kOps[] = {
          {"==", Tok::kEq},    {"!=", Tok::kNe},       {"<=", Tok::kLe},     {">=", Tok::kGe},
          {"=~", Tok::kMatch}, {"!~", Tok::kNotMatch}, {"&&", Tok::kAnd},    {"||", Tok::kOr},
          {"<", Tok::kLt},     {">", Tok::kGt},        {"!", Tok::kNot},     {"(", Tok::kLParen},
          {")", Tok::kRParen}, {",", Tok::kComma},     {"+", Tok::kPlus},    {"-", Tok::kMinus},
          {"*", Tok::kStar},   {"/", Tok::kSlash},     {"%", Tok::kPercent},
      };
      bool found = false;
      for (const Op& op : kOps) {
        std::size_t n = std::char_traits<char>::length(op.text);
        if (s.substr(i, n) == op.text) {
          t.kind = op.kind;
          i += n;
          found = true;
          break;
        }
      }
      if (!found) {
        if (c == '=' && !two('=')) {
          *error = {t.column, "unexpected \"=\" (use == to compare)"};
        } else {
          *error = {t.column, std::string("unexpected character \"") + c + "\""};
        }
        return false;
      }
    }
    out->push_back(std::move(t));
  }
}

// ---- Tree ----

enum class Op {
  kConst,
  kSlotNum,
  kSlotStr,
  kTag,
  kStrConst,
  kNeg,
  kNot,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,  // numeric
  kSEq,
  kSNe,
  kSLt,
  kSLe,
  kSGt,
  kSGe,  // string
  kMatch,
  kNotMatch,
  kAnd,
  kOr,
  kAbs,
  kMin,
  kMax,
  kSqrt,
  kLog,
  kExp,
  kRound,
  kClamp,
  kHas,
};

struct Node {
  Op op = Op::kConst;
  Type type = Type::kNumber;
  double number = 0;
  int slot = 0;
  std::string text;  // tag name or string constant
  std::shared_ptr<std::regex> regex;
  std::vector<Node> kids;
};

double ParseNum(const std::string* s) {
  if (s == nullptr || s->empty()) return NAN;
  char* end = nullptr;
  double v = std::strtod(s->c_str(), &end);
  return end == s->c_str() + s->size() ? v : NAN;
}

const std::string* EvalStr(const Node& n, const EvalContext& ctx);
double EvalNum(const Node& n, const EvalContext& ctx);

bool EvalCond(const Node& n, const EvalContext& ctx) {
  switch (n.op) {
    case Op::kAnd:
      return EvalCond(n.kids[0], ctx) && EvalCond(n.kids[1], ctx);
    case Op::kOr:
      return EvalCond(n.kids[0], ctx) || EvalCond(n.kids[1], ctx);
    case Op::kNot:
      return !EvalCond(n.kids[0], ctx);
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      double a = EvalNum(n.kids[0], ctx), b = EvalNum(n.kids[1], ctx);
      if (std::isnan(a) || std::isnan(b)) return false;  // SPEC §12.9
      switch (n.op) {
        case Op::kEq:
          return a == b;
        case Op::kNe:
          return a != b;
        case Op::kLt:
          return a < b;
        case Op::kLe:
          return a <= b;
        case Op::kGt:
          return a > b;
        default:
          return a >= b;
      }
    }
    case Op::kSEq:
    case Op::kSNe:
    case Op::kSLt:
    case Op::kSLe:
    case Op::kSGt:
    case Op::kSGe: {
      const std::string* a = EvalStr(n.kids[0], ctx);
      const std::string* b = EvalStr(n.kids[1], ctx);
      if (a == nullptr || b == nullptr) return false;  // SPEC §12.14
      int c = a->compare(*b);
      switch (n.op) {
        case Op::kSEq:
          return c == 0;
        case Op::kSNe:
          return c != 0;
        case Op::kSLt:
          return c < 0;
        case Op::kSLe:
          return c <= 0;
        case Op::kSGt:
          return c > 0;
        default:
          return c >= 0;
      }
    }
    case Op::kMatch:
    case Op::kNotMatch: {
      const std::string* a = EvalStr(n.kids[0], ctx);
      if (a == nullptr) return false;
      bool m = std::regex_search(*a, *n.regex);
      return n.op == Op::kMatch ? m : !m;
    }
    case Op::kHas:
      return ctx.find_tag != nullptr && ctx.find_tag(ctx.tags, n.text) != nullptr;
    default: {
      double v = EvalNum(n, ctx);
      return !std::isnan(v) && v != 0;
    }
  }
}

const std::string* EvalStr(const Node& n, const EvalContext& ctx) {
  switch (n.op) {
    case Op::kStrConst:
      return &n.text;
    case Op::kSlotStr:
      return ctx.strings[n.slot];
    case Op::kTag:
      return ctx.find_tag == nullptr ? nullptr : ctx.find_tag(ctx.tags, n.text);
    default:
      return nullptr;
  }
}

double EvalNum(const Node& n, const EvalContext& ctx) {
  auto k = [&](std::size_t i) { return EvalNum(n.kids[i], ctx); };
  switch (n.op) {
    case Op::kConst:
      return n.number;
    case Op::kSlotNum:
      return ctx.numbers[n.slot];
    case Op::kSlotStr:
    case Op::kTag:
    case Op::kStrConst:
      return ParseNum(EvalStr(n, ctx));
    case Op::kNeg:
      return -k(0);
    case Op::kAdd:
      return k(0) + k(1);
    case Op::kSub:
      return k(0) - k(1);
    case Op::kMul:
      return k(0) * k(1);
    case Op::kDiv: {
      double b = k(1);
      return b == 0 ? NAN : k(0) / b;
    }
    case Op::kMod: {
      double b = k(1);
      return b == 0 ? NAN : std::fmod(k(0), b);
    }
    case Op::kAbs:
      return std::fabs(k(0));
    case Op::kSqrt:
      return std::sqrt(k(0));
    case Op::kLog:
      return std::log(k(0));
    case Op::kExp:
      return std::exp(k(0));
    case Op::kRound: {
      if (n.kids.size() == 1) return std::round(k(0));
      double scale = std::pow(10.0, k(1));
      return std::round(k(0) * scale) / scale;
    }
    case Op::kClamp:
      return std::fmin(std::fmax(k(0), k(1)), k(2));
    case Op::kMin:
    case Op::kMax: {
      double r = k(0);
      for (std::size_t i = 1; i < n.kids.size(); ++i) {
        double v = k(i);
        if (std::isnan(r) || std::isnan(v)) return NAN;
        r = n.op == Op::kMin ? std::fmin(r, v) : std::fmax(r, v);
      }
      return r;
    }
    default:
      return EvalCond(n, ctx) ? 1 : 0;
  }
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kNumber:
      return "a number";
    case Type::kBool:
      return "a condition (true/false)";
    case Type::kString:
      return "a string";
  }
  return "?";
}

// ---- Limits ----

// Nesting of parentheses, unary operators and calls: the parser recurses on each level.
constexpr int kMaxNesting = 64;
// Height of the expression tree (a long chain such as a+b+…+z is a deep left-leaning
// tree): evaluation recurses on it.
constexpr int kMaxHeight = 256;

int Height(const Node& n, int limit) {
  int h = 0;
  for (const Node& k : n.kids) {
    h = std::max(h, Height(k, limit - 1));
    if (h >= limit) break;
  }
  return h + 1;
}

// std::regex (libstdc++) backtracks and recurses: a repeated group that itself repeats or
// alternates, such as (a*)* or (a|a)*, takes exponential time on a tag value a sensor
// sends; huge counts and deep groups overflow its compiler. Such patterns are refused when
// the rule loads, with what to write instead. "" when the pattern is fine.
std::string RegexProblem(std::string_view p) {
  struct Group {
    bool repeats = false;     // holds a *, +, {n,m} with m > 1
    bool alternates = false;  // holds a |
  };
  std::vector<Group> groups(1);
  // What the last atom was: a closed group (and what it held), or anything else.
  bool last_group = false;
  Group last{};
  bool last_quantifier = false;  // the previous token was a quantifier
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    bool quantifier = false;
    bool can_repeat = false;
    const bool after_quantifier = last_quantifier;
    last_quantifier = false;
    if (c == '\\') {
      // \cX: the character after c is the control letter, whatever it is (a \ too).
      if (i + 1 < p.size() && p[i + 1] == 'c') {
        i += 2;
        last_group = false;
        continue;
      }
      std::size_t digits = 0;
      while (i + 1 + digits < p.size() &&
             std::isdigit(static_cast<unsigned char>(p[i + 1 + digits])))
        ++digits;
      if (digits > 2) return "a back-reference has at most 2 digits";
      i += std::max<std::size_t>(digits, 1);
      last_group = false;
      continue;
    }
    if (c == '[') {
      // A class: up to the first ] not escaped. In ECMAScript a ] right after [ or [^ ends
      // it ([] matches nothing, [^] anything), so nothing after it may be skipped here.
      std::size_t j = i + 1;
      while (j < p.size() && p[j] != ']') {
        j += p[j] != '\\' ? 1 : (j + 1 < p.size() && p[j + 1] == 'c' ? 3 : 2);
      }
      i = j;
      last_group = false;
      continue;
    }
    if (c == '(') {
      if (groups.size() > 16) return "groups nest deeper than 16";
      groups.emplace_back();
      last_group = false;
      continue;
    }
    if (c == ')') {
      if (groups.size() > 1) {
        last = groups.back();
        groups.pop_back();
        groups.back().repeats |= last.repeats;
        groups.back().alternates |= last.alternates;
        last_group = true;
      }
      continue;
    }
    if (c == '|') {
      groups.back().alternates = true;
      last_group = false;
      continue;
    }
    if (c == '*' || c == '+') {
      quantifier = can_repeat = true;
    } else if (c == '?') {
      quantifier = true;
    } else if (c == '{') {
      std::size_t j = i + 1;
      std::string lo, hi;
      bool comma = false;
      while (j < p.size() && (std::isdigit(static_cast<unsigned char>(p[j])) || p[j] == ',')) {
        if (p[j] == ',') {
          if (comma) break;
          comma = true;
        } else {
          (comma ? hi : lo) += p[j];
        }
        ++j;
      }
      // std::regex reads the digits as a count even when no } follows (and overflows).
      if (lo.size() > 4 || hi.size() > 4) return "a repetition count is at most 1000";
      if (j < p.size() && p[j] == '}' && !lo.empty()) {
        if (std::stoi(lo) > 1000 || (!hi.empty() && std::stoi(hi) > 1000)) {
          return "a repetition count is at most 1000";
        }
        quantifier = true;
        can_repeat = comma ? (hi.empty() || std::stoi(hi) > 1) : std::stoi(lo) > 1;
        i = j;
      }
    }
    if (quantifier) {
      if (i + 1 < p.size() && p[i + 1] == '?') ++i;  // lazy
      if (after_quantifier) {
        // libstdc++ takes a++ or a*+ as a repetition of a repetition: exponential as (a+)+.
        return "a quantifier may not follow another (as in a++ or a*+)";
      }
      last_quantifier = true;
      if (can_repeat && last_group && (last.repeats || last.alternates)) {
        return "a repeated group may not hold a repetition or a | (as in (a+)+ or (a|b)*): "
               "that takes exponential time; use a character class such as [ab]* instead";
      }
      if (can_repeat) groups.back().repeats = true;
      last_group = false;
      continue;
    }
    last_group = false;
  }
  return "";
}

// ---- Parser: precedence climbing over the token list ----

class Parser {
 public:
  Parser(std::vector<Token> tokens, const Scope& scope, std::vector<std::string>* tag_names)
      : toks_(std::move(tokens)), scope_(scope), tag_names_(tag_names) {}

  bool Parse(Node* out, CompileError* error) {
    error_ = error;
    if (!Or(out)) return false;
    if (Peek().kind != Tok::kEnd) return Fail(Peek().column, "unexpected " + Describe(Peek()));
    // A table's column alone where a number is wanted (`avg(devices.max_temp)`) is read as one.
    if (scope_.numeric && out->op == Op::kTag && IsTableColumn(out->text))
      out->type = Type::kNumber;
    return true;
  }

 private:
  const Token& Peek() const { return toks_[pos_]; }
  const Token& Next() { return toks_[pos_++]; }

  bool Fail(int column, std::string message) {
    *error_ = {column, std::move(message)};
    return false;
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd:
        return "end of expression";
      case Tok::kIdent:
        return "name \"" + t.text + "\"";
      case Tok::kNumber:
        return "number";
      case Tok::kString:
        return "string";
      default:
        return "operator";
    }
  }

  bool Expect(Type want, const Node& n, int column, const char* what) {
    if (n.type == want) return true;
    // A table's column holds text like a tag, but is mostly a number (a per-device
    // threshold): it may take part in arithmetic, and is null when it is not a number.
    if (want == Type::kNumber && n.op == Op::kTag && IsTableColumn(n.text)) return true;
    return Fail(column,
                std::string(what) + " needs " + TypeName(want) + ", not " + TypeName(n.type));
  }

  bool Binary(bool (Parser::*sub)(Node*), std::initializer_list<std::pair<Tok, Op>> ops,
              Node* out) {
    if (!(this->*sub)(out)) return false;
    while (true) {
      const Token& t = Peek();
      const std::pair<Tok, Op>* match = nullptr;
      for (const auto& p : ops) {
        if (p.first == t.kind) match = &p;
      }
      if (match == nullptr) return true;
      int column = t.column;
      Next();
      Node rhs;
      if (!(this->*sub)(&rhs)) return false;
      Node n;
      n.op = match->second;
      if (n.op == Op::kAnd || n.op == Op::kOr) {
        const char* what = n.op == Op::kAnd ? "&&" : "||";
        if (!Expect(Type::kBool, *out, column, what) || !Expect(Type::kBool, rhs, column, what)) {
          return false;
        }
        n.type = Type::kBool;
      } else {
        const char* what = "arithmetic";
        if (!Expect(Type::kNumber, *out, column, what) ||
            !Expect(Type::kNumber, rhs, column, what)) {
          return false;
        }
        n.type = Type::kNumber;
      }
      n.kids.push_back(std::move(*out));
      n.kids.push_back(std::move(rhs));
      *out = std::move(n);
    }
  }

  bool Or(Node* out) { return Binary(&Parser::And, {{Tok::kOr, Op::kOr}}, out); }
  bool And(Node* out) { return Binary(&Parser::Compare, {{Tok::kAnd, Op::kAnd}}, out); }

  bool Compare(Node* out) {
    if (!Sum(out)) return false;
    const Token& t = Peek();
    static const std::pair<Tok, Op> kCmp[] = {{Tok::kEq, Op::kEq}, {Tok::kNe, Op::kNe},
                                              {Tok::kLt, Op::kLt}, {Tok::kLe, Op::kLe},
                                              {Tok::kGt, Op::kGt}, {Tok::kGe, Op::kGe}};
    int column = t.column;
    if (t.kind == Tok::kMatch || t.kind == Tok::kNotMatch) {
      Op op = t.kind == Tok::kMatch ? Op::kMatch : Op::kNotMatch;
      Next();
      const Token& rhs = Peek();
      if (rhs.kind != Tok::kString) {
        return Fail(rhs.column, "the right side of =~ and !~ must be a string (a regex)");
      }
      if (out->type != Type::kString) {
        return Fail(column, std::string("=~ needs a string (a tag) on its left, not ") +
                                TypeName(out->type));
      }
      Node n;
      n.op = op;
      n.type = Type::kBool;
      if (std::string problem = RegexProblem(rhs.text); !problem.empty()) {
        return Fail(rhs.column, "regex \"" + rhs.text.substr(0, 64) + "\": " + problem);
      }
      try {
        n.regex = std::make_shared<std::regex>(rhs.text, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return Fail(rhs.column, "invalid regex \"" + rhs.text + "\": " + e.what());
      }
      Next();
      n.kids.push_back(std::move(*out));
      *out = std::move(n);
      return true;
    }
    for (const auto& [tok, op] : kCmp) {
      if (t.kind != tok) continue;
      Next();
      Node rhs;
      if (!Sum(&rhs)) return false;
      Node n;
      n.type = Type::kBool;
      bool both_strings = out->type == Type::kString && rhs.type == Type::kString;
      bool bools = out->type == Type::kBool || rhs.type == Type::kBool;
      if (bools && out->type != rhs.type) {
        return Fail(column, std::string("cannot compare ") + TypeName(out->type) + " with " +
                                TypeName(rhs.type));
      }
      if (bools && op != Op::kEq && op != Op::kNe) {
        return Fail(column, "conditions can only be compared with == and !=");
      }
      // A string (tag) compared with a number is compared as a number.
      n.op = both_strings ? static_cast<Op>(static_cast<int>(op) - static_cast<int>(Op::kEq) +
                                            static_cast<int>(Op::kSEq))
                          : op;
      n.kids.push_back(std::move(*out));
      n.kids.push_back(std::move(rhs));
      *out = std::move(n);
      if (Peek().kind >= Tok::kEq && Peek().kind <= Tok::kNotMatch) {
        return Fail(Peek().column, "comparisons do not chain; use && between them");
      }
      return true;
    }
    return true;
  }

  bool Sum(Node* out) {
    return Binary(&Parser::Product, {{Tok::kPlus, Op::kAdd}, {Tok::kMinus, Op::kSub}}, out);
  }
  bool Product(Node* out) {
    return Binary(&Parser::Unary,
                  {{Tok::kStar, Op::kMul}, {Tok::kSlash, Op::kDiv}, {Tok::kPercent, Op::kMod}},
                  out);
  }

  // Counts the parser's recursion (parentheses, unary operators, calls) on one path.
  struct Nest {
    explicit Nest(int* depth) : depth_(depth) { ++*depth_; }
    ~Nest() { --*depth_; }
    int* depth_;
  };

  bool Unary(Node* out) {
    Nest nest(&depth_);
    if (depth_ > kMaxNesting) {
      return Fail(Peek().column, "nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    const Token& t = Peek();
    if (t.kind == Tok::kNot || t.kind == Tok::kMinus) {
      int column = t.column;
      bool is_not = t.kind == Tok::kNot;
      Next();
      Node operand;
      if (!Unary(&operand)) return false;
      if (!Expect(is_not ? Type::kBool : Type::kNumber, operand, column, is_not ? "!" : "-")) {
        return false;
      }
      Node n;
      n.op = is_not ? Op::kNot : Op::kNeg;
      n.type = is_not ? Type::kBool : Type::kNumber;  // -devices.offset is a number
      n.kids.push_back(std::move(operand));
      *out = std::move(n);
      return true;
    }
    return Primary(out);
  }

  bool Primary(Node* out) {
    const Token t = Next();
    switch (t.kind) {
      case Tok::kNumber:
        out->op = Op::kConst;
        out->number = t.number;
        return true;
      case Tok::kTrue:
      case Tok::kFalse:
        out->op = Op::kConst;
        out->type = Type::kBool;
        out->number = t.kind == Tok::kTrue ? 1 : 0;
        return true;
      case Tok::kString:
        out->op = Op::kStrConst;
        out->type = Type::kString;
        out->text = t.text;
        return true;
      case Tok::kLParen:
        if (!Or(out)) return false;
        if (Peek().kind != Tok::kRParen) return Fail(Peek().column, "missing \")\"");
        Next();
        return true;
      case Tok::kIdent:
        if (Peek().kind == Tok::kLParen) return Call(t, out);
        return Name(t, out);
      default:
        return Fail(t.column, "unexpected " + Describe(t));
    }
  }

  bool Name(const Token& t, Node* out) {
    for (const Scope::Name& n : scope_.names) {
      if (n.name != t.text) continue;
      out->type = n.type;
      out->slot = n.slot;
      out->op = n.type == Type::kString ? Op::kSlotStr : Op::kSlotNum;
      return true;
    }
    if (scope_.unknown_names_are_tags || IsTableColumn(t.text) ||
        std::find(scope_.tags.begin(), scope_.tags.end(), t.text) != scope_.tags.end()) {
      out->op = Op::kTag;
      out->type = Type::kString;
      out->text = t.text;
      tag_names_->push_back(t.text);
      return true;
    }
    std::string message = "unknown name \"" + t.text + "\"";
    if (!scope_.hint.empty()) message += " " + scope_.hint;
    return Fail(t.column, message);
  }

  bool IsTableColumn(const std::string& name) const {
    return rules::IsTableColumn(name, scope_.tables);
  }

  bool Call(const Token& fn, Node* out) {
    Next();  // (
    struct Fn {
      const char* name;
      Op op;
      int min_args;
      int max_args;
    };
    static const Fn kFns[] = {
        {"abs", Op::kAbs, 1, 1},     {"min", Op::kMin, 2, 16},    {"max", Op::kMax, 2, 16},
        {"sqrt", Op::kSqrt, 1, 1},   {"log", Op::kLog, 1, 1},     {"exp", Op::kExp, 1, 1},
        {"round", Op::kRound, 1, 2}, {"clamp", Op::kClamp, 3, 3}, {"has", Op::kHas, 1, 1}};
    const Fn* f = nullptr;
    for (const Fn& candidate : kFns) {
      if (fn.text == candidate.name) f = &candidate;
    }
    if (f == nullptr) {
      return Fail(fn.column, "unknown function \"" + fn.text +
                                 "\" (abs, min, max, sqrt, log, exp, round, clamp, has)");
    }
    out->op = f->op;
    if (f->op == Op::kHas) {
      const Token& arg = Next();
      if (arg.kind != Tok::kIdent && arg.kind != Tok::kString) {
        return Fail(arg.column, "has() takes a tag name");
      }
      out->type = Type::kBool;
      out->text = arg.text;
      tag_names_->push_back(arg.text);
    } else {
      out->type = Type::kNumber;
      if (Peek().kind != Tok::kRParen) {
        while (true) {
          int column = Peek().column;
          Node arg;
          if (!Or(&arg)) return false;
          if (!Expect(Type::kNumber, arg, column, fn.text.c_str())) return false;
          out->kids.push_back(std::move(arg));
          if (Peek().kind != Tok::kComma) break;
          Next();
        }
      }
      int n = static_cast<int>(out->kids.size());
      if (n < f->min_args || n > f->max_args) {
        std::string want = f->min_args == f->max_args ? std::to_string(f->min_args)
                                                      : std::to_string(f->min_args) + " or more";
        if (f->op == Op::kRound) want = "1 or 2";
        return Fail(fn.column, fn.text + "() takes " + want + " argument" +
                                   (want == "1" ? "" : "s") + ", not " + std::to_string(n));
      }
    }
    if (Peek().kind != Tok::kRParen) return Fail(Peek().column, "missing \")\"");
    Next();
    return true;
  }

  std::vector<Token> toks_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  const Scope& scope_;
  std::vector<std::string>* tag_names_;
  CompileError* error_ = nullptr;
};

class TreeExpr final : public Expr {
 public:
  TreeExpr(Node root, std::vector<std::string> tags)
      : root_(std::move(root)), tags_(std::move(tags)) {}
  Type type() const override { return root_.type; }
  double EvalNumber(const EvalContext& ctx) const override { return EvalNum(root_, ctx); }
  bool EvalBool(const EvalContext& ctx) const override { return EvalCond(root_, ctx); }
  const std::vector<std::string>& tag_names() const override { return tags_; }

 private:
  Node root_;
  std::vector<std::string> tags_;
};

}  // namespace

bool IsTableColumn(std::string_view name, const std::vector<std::string>& tables) {
  const std::size_t dot = name.find('.');
  return dot != std::string_view::npos &&
         std::find(tables.begin(), tables.end(), name.substr(0, dot)) != tables.end();
}

std::shared_ptr<const Expr> Expr::Compile(std::string_view text, const Scope& scope,
                                          CompileError* error) {
  std::vector<Token> tokens;
  if (!Lex(text, &tokens, error)) return nullptr;
  if (tokens.size() == 1) {
    *error = {1, "empty expression"};
    return nullptr;
  }
  std::vector<std::string> tags;
  Parser parser(std::move(tokens), scope, &tags);
  Node root;
  if (!parser.Parse(&root, error)) return nullptr;
  if (Height(root, kMaxHeight + 1) > kMaxHeight) {
    *error = {1, "more than " + std::to_string(kMaxHeight) +
                     " operations deep; split it (an aggregate, a clear_when)"};
    return nullptr;
  }
  return std::make_shared<TreeExpr>(std::move(root), std::move(tags));
}

}  // namespace vigil::rules
