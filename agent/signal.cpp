#include "agent/signal.h"

#include <cmath>
#include <cstdio>
#include <numbers>

namespace vigil::agent {
namespace {

constexpr double kDriftPeriodS = 120;
const char* const kKinds[] = {"level_shift", "spike", "drift", "stuck", "silence", "out_of_range"};
constexpr std::int64_t kFirstAnomalyMs =
    std::int64_t{10} * 60'000;                               // after detectors have warmed up
constexpr std::int64_t kEveryMs = std::int64_t{5} * 60'000;  // one anomaly per device this often

std::int64_t LengthMs(const std::string& kind) {
  if (kind == "spike") return 1;
  if (kind == "stuck" || kind == "silence") return 90'000;
  if (kind == "out_of_range") return 10'000;
  return 60'000;
}

}  // namespace

Signal::Signal(int devices, std::uint64_t seed, bool anomalies, Millis start)
    : rng_(seed), start_(start) {
  for (int i = 0; i < devices; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "dev-%03d", i + 1);
    names_.emplace_back(name);
    baselines_.push_back(18.0 + (i % 7));
    drifts_.push_back(i % 5 == 0);
    stuck_value_.push_back(0);
    std::vector<Episode> plan;
    if (anomalies && i % 5 != 0) {
      // Staggered across devices; kinds rotate per device.
      for (int k = 0; k < 1000; ++k) {
        const std::string kind = kKinds[(k + i) % 6];
        const std::int64_t s =
            kFirstAnomalyMs + k * kEveryMs + (static_cast<std::int64_t>(i) * 37'000) % kEveryMs;
        plan.push_back({kind, start + Millis(s), start + Millis(s + LengthMs(kind))});
      }
    }
    episodes_.push_back(std::move(plan));
  }
}

std::optional<double> Signal::Value(int device, Millis t) {
  const auto d = static_cast<std::size_t>(device);
  double value = baselines_[d] + noise_(rng_);
  if (drifts_[d]) {
    const double s = static_cast<double>((t - start_).count()) / 1000.0;
    value += 45.0 * std::max(0.0, std::sin(2 * std::numbers::pi * s / kDriftPeriodS));
  }
  for (Episode& e : episodes_[d]) {
    if (t < e.start) break;
    if (t >= e.end && !(e.kind == "spike" && !e.labelled)) continue;
    if (!e.labelled) {
      e.labelled = true;
      // A spike is the first reading at or after its start.
      if (e.kind == "spike") e.end = t + Millis(1);
      if (e.kind == "stuck") stuck_value_[d] = value;
      labels_.push_back({names_[d], e.kind, e.kind == "spike" ? t : e.start, e.end});
    }
    if (t >= e.end) continue;
    const double into = static_cast<double>((t - e.start).count()) / 1000.0;
    if (e.kind == "level_shift") value += 8;
    if (e.kind == "spike") value += 25;
    if (e.kind == "drift") value += 0.25 * into;
    if (e.kind == "stuck") value = stuck_value_[d];
    if (e.kind == "silence") return std::nullopt;
    if (e.kind == "out_of_range") value = 150;
  }
  return value;
}

}  // namespace vigil::agent
