#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/values.h"

namespace vigil::agent {

// The synthetic sensor signal of `vigil simulate`, apart from MQTT so benchmarks can use it.
// Each device has a baseline (18–24) with Gaussian noise (σ 0.5); every fifth device drifts
// up by up to 45 and back over two minutes (the demo's alerts). With anomalies on, the other
// devices take turns at one labelled anomaly each, one kind after the other:
//   level_shift +8 for 60 s · spike one reading +25 · drift +0.25/s for 60 s ·
//   stuck the value frozen for 90 s · silence no readings for 90 s · out_of_range 150 for 10 s
// Deterministic for a seed and a sequence of times.
class Signal {
 public:
  struct Label {
    std::string device;
    std::string kind;  // level_shift, spike, drift, stuck, silence, out_of_range
    Millis start{0};
    Millis end{0};  // exclusive
  };

  Signal(int devices, std::uint64_t seed, bool anomalies, Millis start);

  int devices() const { return static_cast<int>(names_.size()); }
  const std::string& name(int device) const { return names_[static_cast<std::size_t>(device)]; }
  // The device's value at `t`, or nullopt while it is silent.
  std::optional<double> Value(int device, Millis t);
  // The anomalies injected so far (those that have started by the last Value call).
  const std::vector<Label>& labels() const { return labels_; }

 private:
  struct Episode {
    std::string kind;
    Millis start;
    Millis end;
    bool labelled = false;
  };
  std::vector<std::string> names_;
  std::vector<double> baselines_;
  std::vector<bool> drifts_;
  std::vector<std::vector<Episode>> episodes_;  // per device, by start
  std::vector<double> stuck_value_;
  std::vector<Label> labels_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> noise_{0.0, 0.5};
  Millis start_;
};

}  // namespace vigil::agent
