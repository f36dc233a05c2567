// Micro-benchmarks of the hot path, one part at a time, on one core: payload decoding,
// expression evaluation, each window type and aggregate and each detector (as a rule in the
// engine over 1 000 keys, so the figure includes routing and key lookup), journal appends
// and group commits to a real SQLite file. Run:
//   build/tests/bench/micro_bench
// `make bench` runs it with engine_bench, detector_bench and the end-to-end benchmark.

#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/decode.h"
#include "config/config.h"
#include "rules/engine.h"
#include "rules/expr.h"
#include "store/journal.h"
#include "store/store.h"

namespace vigil {
namespace {

constexpr int kKeys = 1000;
constexpr std::int64_t kT0 = 1'795'341'600'000;

// ---- payload decoding ----

const config::Config& DecodeConfig() {
  static const config::ConfigResult parsed = config::ParseConfig(R"json({
    "agent": { "id": "bench", "state_dir": "/tmp/vigil-bench" },
    "mqtt": { "uri": "tcp://127.0.0.1:1883", "subscriptions": [
      { "topic": "sensors/{device}/{metric}", "qos": 1,
        "payload": { "format": "json", "value": "value", "time": "ts", "time_unit": "ms" } },
      { "topic": "batch/{device}", "qos": 1,
        "payload": { "format": "json", "metrics": ["temperature", "humidity", "pressure"],
                     "time": "t", "time_unit": "s" } },
      { "topic": "plain/{device}/{metric}", "qos": 1, "payload": { "format": "number" } } ] }
  })json",
                                                                 "bench.json");
  return *parsed.config;
}

void Decode(benchmark::State& state, const std::string& topic, const std::string& payload) {
  agent::Decoder decoder(DecodeConfig().mqtt);
  agent::Decoded out;
  std::int64_t readings = 0;
  for (auto _ : state) {
    out.readings.clear();
    out.rejects.clear();
    decoder.Decode(topic, payload, Millis(kT0), &out);
    readings += static_cast<std::int64_t>(out.readings.size());
    benchmark::DoNotOptimize(out.readings.data());
  }
  if (readings == 0) state.SkipWithError("nothing decoded");
  state.counters["readings/s"] =
      benchmark::Counter(static_cast<double>(readings), benchmark::Counter::kIsRate);
}
void BM_DecodeJsonValue(benchmark::State& state) {
  Decode(state, "sensors/boiler-17/temperature", R"({"value": 71.25, "ts": 1795341600123})");
}
void BM_DecodeJsonMetrics(benchmark::State& state) {
  Decode(state, "batch/boiler-17",
         R"({"temperature": 71.25, "humidity": 40.5, "pressure": 1013.2, "t": 1795341600})");
}
void BM_DecodeNumber(benchmark::State& state) {
  Decode(state, "plain/boiler-17/temperature", "71.25");
}
BENCHMARK(BM_DecodeJsonValue);
BENCHMARK(BM_DecodeJsonMetrics);
BENCHMARK(BM_DecodeNumber);

// ---- expressions ----

const std::string* NoTag(const void*, std::string_view) { return nullptr; }

void BM_Expression(benchmark::State& state, const char* text) {
  rules::Scope scope;
  scope.names = {{"avg", rules::Type::kNumber, 0},
                 {"max", rules::Type::kNumber, 1},
                 {"n", rules::Type::kNumber, 2}};
  rules::CompileError error;
  auto expr = rules::Expr::Compile(text, scope, &error);
  if (!expr) {
    state.SkipWithError(error.message.c_str());
    return;
  }
  double numbers[3] = {72.5, 80.0, 12};
  rules::EvalContext ctx{numbers, nullptr, &NoTag, nullptr};
  std::int64_t holds = 0;
  for (auto _ : state) {
    numbers[0] += 0.001;
    holds += expr->EvalBool(ctx) ? 1 : 0;
  }
  benchmark::DoNotOptimize(holds);
}
BENCHMARK_CAPTURE(BM_Expression, comparison, "avg > 90");
BENCHMARK_CAPTURE(BM_Expression, conjunction, "avg > 90 && n >= 3 || max - avg > 5");
BENCHMARK_CAPTURE(BM_Expression, functions, "abs(avg - 70) > clamp(sqrt(n), 1, 3) * 2");

// ---- windows, aggregates, detectors: one rule in the engine ----

std::shared_ptr<const rules::RuleSet> OneRule(const std::string& body) {
  rules::LoadResult r = rules::ParseRules(
      R"({ "id": "r", "source": { "metric": "temperature" }, "group_by": ["device"], )" + body +
          "}",
      "bench.json");
  return r.rules;
}

// Readings of kKeys devices, each once a second, in time order, for `seconds`.
const std::vector<rules::Reading>& Readings() {
  static const std::vector<rules::Reading> readings = [] {
    std::vector<rules::Reading> out;
    for (int s = 0; s < 600; ++s) {
      for (int k = 0; k < kKeys; ++k) {
        const double wave = 20.0 + 5.0 * std::sin(s / 30.0 + k);
        out.push_back(rules::Reading{"temperature",
                                     {{"device", "dev-" + std::to_string(k)},
                                      {"metric", "temperature"},
                                      {"site", "s" + std::to_string(k % 7)}},
                                     Millis(kT0 + s * 1000LL + k),
                                     wave + static_cast<double>((s * 7 + k) % 11) * 0.1});
      }
    }
    return out;
  }();
  return readings;
}

void RunRule(benchmark::State& state, const std::string& body) {
  auto rules = OneRule(body);
  if (!rules) {
    state.SkipWithError("rule does not load");
    return;
  }
  const auto& readings = Readings();
  std::vector<rules::Event> events;
  // A fresh engine warmed up with two minutes of data: every key and its windows exist.
  const std::size_t warm = 120 * kKeys;
  auto fresh = [&] {
    auto engine = std::make_unique<rules::Engine>("bench", rules);
    for (std::size_t i = 0; i < warm; ++i) engine->Process(readings[i], readings[i].time, &events);
    events.clear();
    return engine;
  };
  auto engine = fresh();
  std::size_t next = warm;
  std::int64_t processed = 0;
  for (auto _ : state) {
    const rules::Reading& r = readings[next];
    engine->Process(r, r.time, &events);
    if (++next == readings.size()) {  // times must not go back per key: start again
      state.PauseTiming();
      engine = fresh();
      next = warm;
      state.ResumeTiming();
    }
    ++processed;
    if (events.size() > 4096) events.clear();
  }
  state.counters["readings/s"] =
      benchmark::Counter(static_cast<double>(processed), benchmark::Counter::kIsRate);
}

const char* kAvgMaxCount = R"json("aggregates": { "avg": "avg(value)", "max": "max(value)",
    "n": "count()" })json";

void BM_Window(benchmark::State& state, const char* window) {
  RunRule(state, std::string(R"("window": )") + window + ", " + kAvgMaxCount);
}
BENCHMARK_CAPTURE(BM_Window, tumbling, R"({ "type": "tumbling", "size": "1m" })");
BENCHMARK_CAPTURE(BM_Window, hopping, R"({ "type": "hopping", "size": "1m", "slide": "15s" })");
BENCHMARK_CAPTURE(BM_Window, sliding, R"({ "type": "sliding", "size": "30s" })");
BENCHMARK_CAPTURE(BM_Window, session, R"({ "type": "session", "gap": "30s" })");
BENCHMARK_CAPTURE(BM_Window, count, R"({ "type": "count", "count": 60 })");

void BM_Aggregate(benchmark::State& state, const char* aggregate) {
  RunRule(state, std::string(R"("window": { "type": "tumbling", "size": "1m" },
      "aggregates": { "a": ")") +
                     aggregate + "\" }");
}
BENCHMARK_CAPTURE(BM_Aggregate, count, "count()");
BENCHMARK_CAPTURE(BM_Aggregate, sum, "sum(value)");
BENCHMARK_CAPTURE(BM_Aggregate, avg, "avg(value)");
BENCHMARK_CAPTURE(BM_Aggregate, min, "min(value)");
BENCHMARK_CAPTURE(BM_Aggregate, max, "max(value)");
BENCHMARK_CAPTURE(BM_Aggregate, stddev, "stddev(value)");
BENCHMARK_CAPTURE(BM_Aggregate, first, "first(value)");
BENCHMARK_CAPTURE(BM_Aggregate, last, "last(value)");
BENCHMARK_CAPTURE(BM_Aggregate, delta, "delta(value)");
BENCHMARK_CAPTURE(BM_Aggregate, rate, "rate(value)");
BENCHMARK_CAPTURE(BM_Aggregate, percentile, "percentile(value, 95)");
BENCHMARK_CAPTURE(BM_Aggregate, distinct, "distinct(site)");

void BM_Detector(benchmark::State& state, const char* detector) {
  RunRule(state, std::string(R"("detector": )") + detector);
}
BENCHMARK_CAPTURE(BM_Detector, zscore, R"({ "method": "zscore", "window": 60 })");
BENCHMARK_CAPTURE(BM_Detector, ewma, R"({ "method": "ewma" })");
BENCHMARK_CAPTURE(BM_Detector, mad, R"({ "method": "mad", "window": 60 })");
BENCHMARK_CAPTURE(BM_Detector, spike, R"({ "method": "spike", "max_rate": 5 })");
BENCHMARK_CAPTURE(BM_Detector, flatline, R"({ "method": "flatline", "for": "60s" })");
BENCHMARK_CAPTURE(BM_Detector, range, R"({ "method": "range", "min": 0, "max": 100 })");

// ---- the store: journal appends and group commits, a real SQLite file ----

std::string BenchDir(const std::string& name) {
  std::string dir = (std::filesystem::temp_directory_path() / ("vigil-micro-" + name)).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// One transaction of `messages` journal rows (1: the after_commit path, a commit per message).
void BM_JournalAppend(benchmark::State& state) {
  const auto per_commit = static_cast<std::size_t>(state.range(0));
  const std::string dir = BenchDir("journal");
  auto journal = store::Journal::Open(dir + "/journal.db", config::StoreConfig{});
  if (!journal.ok()) {
    state.SkipWithError(journal.error().c_str());
    return;
  }
  std::vector<store::JournalMessage> rows(per_commit);
  std::vector<store::JournalMessage*> ptrs;
  for (auto& r : rows) {
    r = {0, Millis(kT0), "sensors/boiler-17/temperature", R"({"value":71.25,"ts":1795341600123})"};
    ptrs.push_back(&r);
  }
  std::int64_t appended = 0;
  for (auto _ : state) {
    if (!journal.value()->Append(ptrs).ok()) state.SkipWithError("append failed");
    appended += static_cast<std::int64_t>(per_commit);
  }
  state.counters["messages/s"] =
      benchmark::Counter(static_cast<double>(appended), benchmark::Counter::kIsRate);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_JournalAppend)->Arg(1)->Arg(100)->Arg(1000);

// A group commit of `events` outbox events (one uplink) and as many state rows.
void BM_GroupCommit(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string dir = BenchDir("store");
  auto opened = store::Store::Open(dir + "/vigil.db", config::StoreConfig{});
  if (!opened.ok()) {
    state.SkipWithError(opened.error().c_str());
    return;
  }
  store::Store& st = *opened.value();
  const std::string event_json =
      R"({"id":"0123456789abcdef","kind":"aggregate","agent":"bench","rule":"r",)"
      R"("key":{"device":"dev-1"},"time":"2026-11-22T10:00:00.000Z","values":{"avg":71.2}})";
  std::int64_t position = 0;
  std::int64_t rows = 0;
  for (auto _ : state) {
    store::CommitBatch batch;
    for (std::size_t i = 0; i < n; ++i) {
      batch.events.push_back({"e" + std::to_string(position) + "-" + std::to_string(i),
                              rules::EventKind::kAggregate,
                              "r",
                              event_json,
                              Millis(kT0),
                              {"receiver"}});
      batch.state.push_back({"r",
                             "device\x1f"
                             "dev-" +
                                 std::to_string(i) + "\x1e",
                             std::string(200, 'x')});
    }
    batch.journal_position = batch.events_position = ++position;
    if (!st.Commit(batch, Millis(kT0)).ok()) state.SkipWithError("commit failed");
    rows += static_cast<std::int64_t>(2 * n);
    state.PauseTiming();  // keep the outbox from growing without end: deliver it
    auto pending = st.Pending("receiver", 100'000);
    std::vector<std::int64_t> seqs;
    for (const auto& r : pending.value()) seqs.push_back(r.seq);
    (void)st.Ack("receiver", seqs);
    state.ResumeTiming();
  }
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsRate);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_GroupCommit)->Arg(10)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();
