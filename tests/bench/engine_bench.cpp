// Engine throughput: readings/s and reading-rule evaluations/s for 1, 10 and 100 tumbling
// rules (avg, max, count) over 10 000 keys, on one core, after warm-up. Run:
//   build/tests/bench/engine_bench
// Target (issue 3): ≥ 2 million reading-rule evaluations per second.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "rules/engine.h"

namespace vigil::rules {
namespace {

constexpr int kKeys = 10'000;

std::shared_ptr<const RuleSet> Rules(int n) {
  std::string text = "[";
  for (int i = 0; i < n; ++i) {
    if (i > 0) text += ",";
    text += R"json({ "id": "r)json" + std::to_string(i) +
            R"json(", "source": { "metric": "temperature" },
      "group_by": ["device"], "window": { "type": "tumbling", "size": "1m" },
      "aggregates": { "avg": "avg(value)", "max": "max(value)", "n": "count()" },
      "alert": { "when": "avg > 90 && n >= 3", "clear_when": "avg < 85" } })json";
  }
  text += "]";
  LoadResult r = ParseRules(text, "bench.json");
  return r.rules;
}

std::vector<Reading> Readings(int count) {
  std::vector<Reading> out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const int key = i % kKeys;
    // 10 000 keys, each reading once every 10 000 readings; one reading per key per second.
    const std::int64_t t = 1'795'341'600'000 + static_cast<std::int64_t>(i / kKeys) * 1000;
    out.push_back(Reading{"temperature",
                          {{"device", "dev-" + std::to_string(key)}, {"metric", "temperature"}},
                          Millis(t),
                          20.0 + (i % 17)});
  }
  return out;
}

void BM_TumblingRules(benchmark::State& state) {
  const int rules = static_cast<int>(state.range(0));
  Engine engine("bench", Rules(rules));
  const std::vector<Reading> readings = Readings(kKeys * 120);  // two minutes of data
  std::vector<Event> events;
  std::vector<StateChange> changes;
  // Warm-up: every key exists.
  for (int i = 0; i < kKeys; ++i)
    engine.Process(readings[static_cast<std::size_t>(i)], readings[0].time, &events);
  std::size_t next = kKeys;
  std::int64_t processed = 0;
  for (auto _ : state) {
    const Reading& r = readings[next];
    engine.Process(r, r.time, &events);
    if (++next == readings.size()) next = kKeys;
    ++processed;
    if (events.size() > 4096) {
      events.clear();
      changes.clear();
      engine.TakeChanges(&changes);
    }
  }
  state.counters["readings/s"] =
      benchmark::Counter(static_cast<double>(processed), benchmark::Counter::kIsRate);
  state.counters["evaluations/s"] =
      benchmark::Counter(static_cast<double>(processed) * rules, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TumblingRules)->Arg(1)->Arg(10)->Arg(100);

}  // namespace
}  // namespace vigil::rules

BENCHMARK_MAIN();
