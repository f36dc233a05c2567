// Engine throughput: readings/s and reading-rule evaluations/s for 1, 10 and 100 tumbling
// rules (avg, max, count) over 10 000 keys, on one core, after warm-up; and the reference
// rule set of the end-to-end benchmark (tests/bench/e2e.py: 100 rules over 1 000 devices ×
// 10 metrics) with the heap its state takes per (rule, key). Run:
//   build/tests/bench/engine_bench
// Target: ≥ 2 million reading-rule evaluations per second.

#include <benchmark/benchmark.h>
#include <malloc.h>

#include <memory>
#include <string>
#include <thread>
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

// The reference rule set of tests/bench/e2e.py (reference_rules there): per metric,
// tumbling avg/max/count windows, a 30 s sliding window and a z-score detector; one rule
// counts every metric.
constexpr int kDevices = 1000;
constexpr int kMetrics = 10;

std::shared_ptr<const RuleSet> ReferenceRules() {
  std::string all;
  for (int m = 0; m < kMetrics; ++m) all += (m ? ",\"m" : "\"m") + std::to_string(m) + "\"";
  std::string text = R"json([{ "id": "latency", "source": { "metric": [)json" + all +
                     R"json(] }, "group_by": ["device"], "window": { "type": "tumbling",
      "size": "10s" }, "aggregates": { "n": "count()" }, "emit": ["aggregate"] })json";
  for (int i = 0; i < 99; ++i) {
    const std::string id = std::to_string(i);
    const std::string metric = "\"m" + std::to_string(i % kMetrics) + "\"";
    const int kind = (i / kMetrics) % 10;
    text += ",";
    if (kind == 0) {
      text += R"json({ "id": "sliding)json" + id + R"json(", "source": { "metric": )json" + metric +
              R"json( }, "group_by": ["device"], "window": { "type": "sliding",
        "size": "30s" }, "aggregates": { "avg": "avg(value)" },
        "alert": { "when": "avg > 1000" } })json";
    } else if (kind == 1) {
      text += R"json({ "id": "zscore)json" + id + R"json(", "source": { "metric": )json" + metric +
              R"json( }, "group_by": ["device"], "detector": { "method": "zscore",
        "window": 60, "threshold": 6 } })json";
    } else {
      text += R"json({ "id": "t)json" + id + R"json(", "source": { "metric": )json" + metric +
              R"json( }, "group_by": ["device"], "window": { "type": "tumbling", "size": ")json" +
              std::to_string(10 * kind) + R"json(s" }, "aggregates": { "avg": "avg(value)",
        "max": "max(value)", "n": "count()" }, "alert": { "when": "avg > 1000" },
        "emit": ["alert"] })json";
    }
  }
  text += "]";
  LoadResult r = ParseRules(text, "reference.json");
  return r.rules;
}

// Two readings per series a second (the end-to-end load: 20 000 a second over 10 000 series),
// for `seconds` seconds, in time order.
std::vector<Reading> ReferenceReadings(int seconds) {
  std::vector<Reading> out;
  out.reserve(static_cast<std::size_t>(seconds) * 2 * kDevices * kMetrics);
  const std::int64_t t0 = 1'795'341'600'000;
  for (std::int64_t step = 0; step < seconds * 2; ++step) {
    for (int i = 0; i < kDevices * kMetrics; ++i) {
      const std::string metric = "m" + std::to_string(i / kDevices);
      out.push_back(Reading{metric,
                            {{"device", "dev-" + std::to_string(i % kDevices)}, {"metric", metric}},
                            Millis(t0 + step * 500 + i / 20),
                            20.0 + static_cast<double>((i + step) % 17)});
    }
  }
  return out;
}

void BM_ReferenceSet(benchmark::State& state) {
  const std::vector<Reading> readings = ReferenceReadings(90);
  const std::size_t heap_before = mallinfo2().uordblks;
  Engine engine("bench", ReferenceRules());
  std::vector<Event> events;
  std::vector<StateChange> changes;
  // Warm-up: 45 s of data: every key exists, the sliding windows (30 s) and the z-score
  // windows (60 readings) are full, as in the end-to-end run.
  const std::size_t warm = readings.size() / 2;
  for (std::size_t i = 0; i < warm; ++i) {
    engine.Process(readings[i], readings[i].time, &events);
    if (events.size() > 4096) events.clear();
  }
  events.clear();
  engine.TakeChanges(&changes);
  changes.clear();
  changes.shrink_to_fit();
  std::size_t keys = 0;
  for (const auto& s : engine.Stats()) keys += s.keys;
  const double heap = static_cast<double>(mallinfo2().uordblks - heap_before);
  std::size_t next = warm;
  std::int64_t processed = 0;
  std::int64_t evaluations = 0;
  for (auto _ : state) {
    const Reading& r = readings[next];
    engine.Process(r, r.time, &events);
    if (++next == readings.size()) next = warm;
    ++processed;
    evaluations += 11;  // its metric's 10 rules and `latency`
    if (events.size() > 4096) events.clear();
  }
  state.counters["readings/s"] =
      benchmark::Counter(static_cast<double>(processed), benchmark::Counter::kIsRate);
  state.counters["evaluations/s"] =
      benchmark::Counter(static_cast<double>(evaluations), benchmark::Counter::kIsRate);
  state.counters["keys"] = static_cast<double>(keys);
  state.counters["heap MiB"] = heap / (1 << 20);
  state.counters["heap B/key"] = heap / static_cast<double>(keys);
}
BENCHMARK(BM_ReferenceSet);

// A restart: the checkpoint rows of the reference set (100 000 keys after 45 s of data) back
// into a new engine, decoded on two threads as the agent does (README: ready in <= 1 s).
void BM_RestoreReference(benchmark::State& state) {
  const std::vector<Reading> readings = ReferenceReadings(45);
  std::vector<StateChange> rows;
  {
    Engine engine("bench", ReferenceRules());
    std::vector<Event> events;
    for (const Reading& r : readings) {
      engine.Process(r, r.time, &events);
      if (events.size() > 4096) events.clear();
    }
    engine.SnapshotAll(&rows);
  }
  const std::shared_ptr<const RuleSet> rules = ReferenceRules();
  std::size_t restored = 0;
  for (auto _ : state) {
    auto engine = std::make_unique<Engine>("bench", rules);
    // As agent/pipeline.cpp: decoded on two threads, adopted on this one.
    std::vector<DecodedKey> decoded(rows.size());
    auto decode = [&](std::size_t from, std::size_t to) {
      for (std::size_t i = from; i < to; ++i) {
        decoded[i] = engine->Decode(rows[i].rule, rows[i].key, *rows[i].bytes);
      }
    };
    std::thread other(decode, rows.size() / 2, rows.size());
    decode(0, rows.size() / 2);
    other.join();
    restored = 0;
    for (DecodedKey& d : decoded) restored += engine->Adopt(std::move(d)) ? 1 : 0;
    state.PauseTiming();  // not the engine's destruction
    engine.reset();
    state.ResumeTiming();
  }
  state.counters["keys"] = static_cast<double>(restored);
}
BENCHMARK(BM_RestoreReference)->Unit(benchmark::kMillisecond)->Iterations(3);

// A checkpoint of every key of the reference set (100 000 keys after 45 s of data), taken a
// chunk at a time as agent/pipeline.cpp takes it inside the store's transaction: the engine's
// part of the time the checkpoint holds the database.
void BM_CheckpointReference(benchmark::State& state) {
  const std::vector<Reading> readings = ReferenceReadings(45);
  Engine engine("bench", ReferenceRules());
  std::vector<Event> events;
  for (const Reading& r : readings) {
    engine.Process(r, r.time, &events);
    if (events.size() > 4096) events.clear();
  }
  std::vector<StateChange> chunk;
  engine.TakeChanges(&chunk);
  chunk.clear();  // not counted, nor freed, in the first iteration
  std::size_t rows = 0;
  for (auto _ : state) {
    state.PauseTiming();
    engine.MarkAllChanged();
    state.ResumeTiming();
    rows = 0;
    do {
      rows += chunk.size();
      chunk.clear();
    } while (engine.TakeChanges(&chunk, 1000));
  }
  state.counters["rows"] = static_cast<double>(rows);
}
BENCHMARK(BM_CheckpointReference)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace vigil::rules

BENCHMARK_MAIN();
