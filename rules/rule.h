#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/text_template.h"
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
  config::TextTemplate summary;  // `alert.summary`, parsed at load (kFormat syntax)
  std::vector<std::pair<std::string, std::string>> labels;
};

// `source.join`: two metrics combined on shared tags within a time bound (an interval join).
// Every pair (a, b) of readings with equal `on` tags and |t_a − t_b| ≤ within is one input
// of the rule's window, at time max(t_a, t_b), with both values by metric name.
struct JoinSpec {
  std::vector<std::string> metrics;  // two names; slots 0 and 1 of the rule's expressions
  std::vector<std::string> on;       // sorted tag names; the rule's key
  Millis within{0};
  Millis lateness{0};               // out-of-orderness of the inputs (default: the window's)
  std::size_t max_buffer = 10'000;  // readings kept per key and side
};

// `output`: the closed windows' aggregate `value` becomes a reading of `metric` (a derived
// stream) that other rules take as their source in the same pass.
struct OutputSpec {
  std::string metric;
  std::size_t aggregate = 0;  // index into CompiledRule::aggregates
};

struct CompiledRule {
  std::string id;
  std::string description;
  std::string file;
  std::string pointer;      // the rule's JSON pointer in its file: "" or "/2" in an array
  std::string fingerprint;  // hash of the rule's definition; changes when the rule changes
  std::vector<std::string> metrics;
  std::optional<JoinSpec> join;       // metrics are then the join's two
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
  std::optional<OutputSpec> output;
  std::size_t max_keys = 100'000;
  // Key eviction (rules/README.md "Key eviction"). `quiet`: how long a key must have been
  // silent (processing time) before dropping it can change no output: its windows, lateness,
  // idle timeout, join bound and time-bounded detector history. A key with no open window and
  // no pending or firing alert is evicted once silent for `evict_after` (0: never for
  // idleness), and earlier, once silent for `quiet`, when a key limit refuses new keys.
  // `evictable` false: never (an `absent` rule's keys, or `"evict_after": "0s"`).
  Millis quiet{0};
  Millis evict_after{0};
  bool evictable = true;
};

}  // namespace vigil::rules
