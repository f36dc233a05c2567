#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "config/values.h"
#include "rules/packed.h"

namespace vigil::rules {

// A rule's `detector` (SPEC §4, §12.18–12.20), parsed.
struct DetectorSpec {
  enum class Method { kZscore, kEwma, kMad, kSpike, kFlatline, kAbsent, kRange, kAdaptive };
  Method method = Method::kZscore;
  std::string name;                  // as written: "zscore", …
  std::uint64_t window_count = 0;    // zscore/mad: a count window (`"window": 120`)…
  Millis window_duration{0};         // …or a duration window (`"window": "10m"`)
  double threshold = 3;              // zscore 3, mad 3.5, ewma 3, adaptive 5 (sigmas)
  double alpha = 0.1;                // ewma
  double max_rate = 0;               // spike: units per second
  Millis for_duration{0};            // flatline, absent
  double tolerance = 0;              // flatline
  std::optional<double> min, max;    // range
  std::uint64_t min_samples = 0;     // warm-up
  std::uint64_t suppress_count = 0;  // after an episode, no new one for this many readings…
  Millis suppress{0};                // …or this long (event time); both 0: no suppression
  std::string input;                 // with a window: the aggregate it watches
};

// What a detector says of one value: `ready` is false during warm-up (it never fires then);
// `score` ≥ 0 (NaN when not ready); `anomaly` is the method's verdict.
struct Detection {
  bool ready = false;
  double score = 0;
  bool anomaly = false;
};

// The per-key state of one detector. Scores each value against the history before it (the
// value is not part of its own baseline), then adds it. Bounded memory: rolling windows keep
// at most their count (or duration) of values. `absent` is not driven by values: the engine
// judges it by processing time. Serializable for checkpoints.
class Detector {
 public:
  virtual ~Detector() = default;
  // `t` is the value's event time (ms).
  virtual Detection Observe(double x, std::int64_t t) = 0;
  // Fetches into the cache what the next Observe reads (a hint: it changes nothing).
  virtual void Prefetch() const {}
  // True once it has seen enough values to judge (min_samples, and at least two): dropping
  // it would cost a warm-up. A key limit never evicts such a key early (rules/README.md).
  virtual bool Warm() const { return false; }
  virtual void Save(Packer& p) const = 0;
  // Throws nlohmann::json::exception on malformed input.
  virtual void Load(const Packed& j) = 0;
};

// The detector keeps a reference to `spec` (one copy per key would cost memory): the spec,
// normally the rule's, must outlive it.
std::unique_ptr<Detector> MakeDetector(const DetectorSpec& spec);

}  // namespace vigil::rules
