#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/values.h"
#include "rules/detector.h"
#include "rules/expr.h"

namespace vigil::rules {

// One loaded, validated rule (SPEC §3): every expression compiled, every duration parsed.
// Immutable after loading; shared by the engine (and, on reload, by old and new engines).

struct WindowSpec {
  enum class Type { kTumbling, kHopping, kSliding, kSession, kCount };
  Type type = Type::kTumbling;
  Millis size{60'000};      // tumbling, hopping, sliding
  Millis slide{60'000};     // hopping; == size for tumbling windows
  Millis gap{0};            // session
  std::uint64_t count = 0;  // count
  Millis lateness{0};
  Millis idle_timeout{60'000};  // 0: never (the default for count windows)
};

struct AggregateSpec {
  enum class Fn {
    kCount,
    kSum,
    kAvg,
    kMin,
    kMax,
    kStddev,
    kFirst,
    kLast,
    kDelta,
    kRate,
    kPercentile,
    kDistinct,
  };
  std::string name;
  Fn fn = Fn::kCount;
  std::shared_ptr<const Expr> arg;  // over `value`; null for count() and distinct()
  double percentile = 0;            // 0–100, for kPercentile
  std::string tag;                  // for kDistinct
};

struct AlertSpec {
  std::shared_ptr<const Expr> when;
  std::shared_ptr<const Expr> clear_when;  // null: !(when)
  Millis for_duration{0};
  Millis repeat{0};  // 0: never
  std::string severity = "warning";
  std::string summary;
  std::vector<std::pair<std::string, std::string>> labels;
};

struct CompiledRule {
  std::string id;
  std::string description;
  std::string file;
  std::string fingerprint;  // hash of the rule's definition; changes when the rule changes
  std::vector<std::string> metrics;
  std::shared_ptr<const Expr> where;  // null: every reading
  bool group_by_all = true;           // default: every tag is part of the key
  std::vector<std::string> group_by;  // sorted
  bool has_window = true;
  WindowSpec window;
  std::vector<AggregateSpec> aggregates;
  // SPEC §4: alone (over each reading's value) or beside a window (over `input` of each
  // closed window, §12.18).
  std::optional<DetectorSpec> detector;
  std::optional<AlertSpec> alert;
  bool emit_alert = true;
  bool emit_aggregate = false;
  std::size_t max_keys = 100'000;
};

}  // namespace vigil::rules
