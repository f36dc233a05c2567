// Detectors on labelled data: runs each of the seven detectors, as a rule in the real engine,
// over the signal of `vigil simulate --anomalies` (16 devices, one reading a second each, four
// simulated hours; the drifting demo devices are left out) and prints, per detector and
// anomaly kind, recall and detection delay, and per detector precision and readings/s.
//   build/tests/bench/detector_bench
// An anomaly counts as detected when the rule fires for its device between its start and
// 60 s after its end; a firing outside every anomaly of its device is a false positive.

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "agent/signal.h"
#include "rules/engine.h"

namespace {

using vigil::Millis;
using vigil::agent::Signal;

constexpr int kDevices = 20;
constexpr std::int64_t kHours = 4;
constexpr std::int64_t kGraceMs = 60'000;
const Millis kStart{1'795'341'600'000};

struct Detector {
  const char* name;
  const char* json;
};

const Detector kDetectors[] = {
    {"zscore", R"({"method": "zscore", "window": 60})"},
    {"ewma", R"({"method": "ewma"})"},
    {"mad", R"({"method": "mad", "window": 60})"},
    {"spike", R"({"method": "spike", "max_rate": 5})"},
    {"flatline", R"({"method": "flatline", "for": "60s", "tolerance": 0.01})"},
    {"absent", R"({"method": "absent", "for": "30s"})"},
    {"range", R"({"method": "range", "min": 0, "max": 100})"},
};

struct Reading {
  int device;
  Millis t;
  std::optional<double> value;
};

}  // namespace

int main() {
  // The stream, with its labels.
  Signal signal(kDevices, 1, true, kStart);
  std::vector<Reading> stream;
  for (std::int64_t s = 0; s < kHours * 3600; ++s) {
    for (int d = 0; d < kDevices; ++d) {
      if (d % 5 == 0) continue;  // the unlabelled drifting demo devices
      const Millis t = kStart + Millis(s * 1000 + d * 10);
      stream.push_back({d, t, signal.Value(d, t)});
    }
  }
  std::vector<Signal::Label> labels = signal.labels();

  std::printf("%-9s %-13s %9s %9s %8s %12s\n", "detector", "anomaly", "episodes", "detected",
              "recall", "mean delay");
  std::vector<std::string> summary;
  for (const Detector& det : kDetectors) {
    std::string rule = std::string(R"({"id": ")") + det.name +
                       R"(", "source": {"metric": "t"}, "group_by": ["device"], "detector": )" +
                       det.json + "}";
    auto loaded = vigil::rules::ParseRules(rule, "bench.json");
    if (!loaded.rules) {
      std::fprintf(stderr, "%s\n", loaded.diagnostics.at(0).ToString().c_str());
      return 1;
    }
    vigil::rules::Engine engine("bench", loaded.rules);
    std::vector<vigil::rules::Event> events;
    std::vector<std::pair<std::string, Millis>> firings;  // device, time
    std::size_t readings = 0;
    const auto began = std::chrono::steady_clock::now();
    for (const Reading& r : stream) {
      if (r.value) {
        vigil::rules::Reading reading{
            "t", {{"device", signal.name(r.device)}, {"metric", "t"}}, r.t, *r.value};
        engine.Process(reading, r.t, &events);
        ++readings;
      }
      engine.Advance(r.t, &events);
      for (const auto& e : events) {
        if (e.kind == "alert" && e.state == "firing")
          firings.emplace_back(e.key.at(0).second, e.time);
      }
      events.clear();
    }
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();

    std::map<std::string, std::pair<int, int>> by_kind;  // kind → (episodes, detected)
    std::map<std::string, double> delay_sum;
    for (const auto& l : labels) {
      auto& [episodes, detected] = by_kind[l.kind];
      ++episodes;
      for (const auto& [device, t] : firings) {
        if (device == l.device && t >= l.start && t < l.end + Millis(kGraceMs)) {
          ++detected;
          delay_sum[l.kind] += static_cast<double>((t - l.start).count()) / 1000.0;
          break;
        }
      }
    }
    std::size_t true_positives = 0;
    for (const auto& [device, t] : firings) {
      for (const auto& l : labels) {
        if (device == l.device && t >= l.start && t < l.end + Millis(kGraceMs)) {
          ++true_positives;
          break;
        }
      }
    }
    for (const auto& [kind, counts] : by_kind) {
      const double recall = counts.first ? 100.0 * counts.second / counts.first : 0;
      char delay[32] = "-";
      if (counts.second > 0)
        std::snprintf(delay, sizeof delay, "%.1f s", delay_sum[kind] / counts.second);
      std::printf("%-9s %-13s %9d %9d %7.0f%% %12s\n", det.name, kind.c_str(), counts.first,
                  counts.second, recall, delay);
    }
    char line[160];
    std::snprintf(line, sizeof line, "%-9s firings %5zu, precision %5.1f%%, %8.0f readings/s",
                  det.name, firings.size(),
                  firings.empty() ? 100.0
                                  : 100.0 * static_cast<double>(true_positives) /
                                        static_cast<double>(firings.size()),
                  static_cast<double>(readings) / took);
    summary.emplace_back(line);
  }
  std::printf("\n");
  for (const auto& s : summary) std::printf("%s\n", s.c_str());
  return 0;
}
