// `detector`: the method, its parameters and their defaults (SPEC §4, §12.19–12.20).

#include <string>
#include <utility>

#include "rules/rule_parse.h"

namespace vigil::rules::parse {
namespace {

// `adaptive`'s defaults, chosen from detector_bench's table (README, Performance).
constexpr std::uint64_t kAdaptiveMinSamples = 200;
constexpr double kAdaptiveThreshold = 5;
constexpr std::uint64_t kAdaptiveSuppress = 10;  // readings

// SPEC §4 and §12.19–12.20: methods, parameters and defaults.
void ParseDetectorObject(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  if (!r.CheckObject(o, p,
                     {"method", "window", "threshold", "alpha", "max_rate", "for", "tolerance",
                      "min", "max", "min_samples", "input", "suppress"})) {
    return;
  }
  using M = DetectorSpec::Method;
  static const std::pair<const char*, M> kMethods[] = {
      {"zscore", M::kZscore}, {"ewma", M::kEwma},         {"mad", M::kMad},
      {"spike", M::kSpike},   {"flatline", M::kFlatline}, {"absent", M::kAbsent},
      {"range", M::kRange},   {"adaptive", M::kAdaptive}};
  DetectorSpec d;
  r.String(o, "method", p, &d.name);
  bool known = false;
  for (const auto& [name, method] : kMethods) {
    if (d.name == name) {
      d.method = method;
      known = true;
    }
  }
  if (!known) {
    r.Error(p + "/method",
            (d.name.empty() ? std::string("missing") : "unknown method \"" + d.name + "\"") +
                " (adaptive, zscore, ewma, mad, spike, flatline, absent, range)");
    return;
  }
  auto number = [&](const char* key, double* out) {
    auto it = o.find(key);
    if (it == o.end()) return false;
    if (!it->is_number()) {
      r.Error(p + "/" + key, "must be a number");
      return false;
    }
    *out = it->get<double>();
    return true;
  };
  auto need = [&](const char* key) {
    if (!o.contains(key)) r.Error(p + "/" + key, "missing (" + d.name + " needs it)");
  };
  d.min_samples = (d.method == M::kZscore || d.method == M::kEwma || d.method == M::kMad) ? 30 : 0;
  d.threshold = d.method == M::kMad ? 3.5 : 3;
  if (d.method == M::kAdaptive) {
    // Chosen from detector_bench (rules/README.md, "adaptive"); not SPEC defaults.
    d.min_samples = kAdaptiveMinSamples;
    d.threshold = kAdaptiveThreshold;
    d.suppress_count = kAdaptiveSuppress;
  }
  if (auto it = o.find("suppress"); it != o.end()) {
    d.suppress_count = 0;
    d.suppress = Millis(0);
    if (d.method == M::kAbsent) {
      r.Error(p + "/suppress",
              "absent has no suppress (its alert lasts while readings are missing)");
    } else if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
      d.suppress_count = it->get<std::uint64_t>();
    } else if (it->is_string() && config::ParseDuration(it->get<std::string>())) {
      d.suppress = *config::ParseDuration(it->get<std::string>());
    } else {
      r.Error(p + "/suppress", "must be a count of readings (an integer ≥ 0) or a duration");
    }
  }
  std::int64_t min_samples = static_cast<std::int64_t>(d.min_samples);
  r.Int(o, "min_samples", p, 0, 100'000'000, &min_samples);
  d.min_samples = static_cast<std::uint64_t>(min_samples);
  number("threshold", &d.threshold);
  if (d.threshold <= 0) r.Error(p + "/threshold", "must be more than 0");
  if (d.method == M::kZscore || d.method == M::kMad) {
    d.window_count = 100;
    if (auto it = o.find("window"); it != o.end()) {
      d.window_count = 0;
      if (it->is_number_integer() && it->get<std::int64_t>() >= 2) {
        d.window_count = it->get<std::uint64_t>();
      } else if (it->is_string() && config::ParseDuration(it->get<std::string>()) &&
                 config::ParseDuration(it->get<std::string>())->count() > 0) {
        d.window_duration = *config::ParseDuration(it->get<std::string>());
      } else {
        r.Error(p + "/window", "must be a count of readings (an integer ≥ 2) or a duration");
      }
    }
  }
  if (d.method == M::kEwma) {
    number("alpha", &d.alpha);
    if (d.alpha <= 0 || d.alpha > 1) r.Error(p + "/alpha", "must be in (0, 1]");
  }
  if (d.method == M::kSpike) {
    need("max_rate");
    number("max_rate", &d.max_rate);
    if (o.contains("max_rate") && d.max_rate <= 0) r.Error(p + "/max_rate", "must be more than 0");
  }
  if (d.method == M::kFlatline || d.method == M::kAbsent) {
    need("for");
    r.Duration(o, "for", p, &d.for_duration);
    if (o.contains("for") && d.for_duration.count() <= 0)
      r.Error(p + "/for", "must be more than 0");
  }
  if (d.method == M::kFlatline) number("tolerance", &d.tolerance);
  if (d.method == M::kRange) {
    double v = 0;
    if (number("min", &v)) d.min = v;
    if (number("max", &v)) d.max = v;
    if (!d.min && !d.max) r.Error(p, "range needs min, max or both");
    if (d.min && d.max && *d.min > *d.max) r.Error(p + "/max", "must be at least min");
  }
  r.String(o, "input", p, &d.input);
  rule->detector = std::move(d);
}

}  // namespace

void ParseDetector(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  if (auto d = o.find("detector"); d != o.end()) ParseDetectorObject(r, *d, p + "/detector", rule);
}

}  // namespace vigil::rules::parse
