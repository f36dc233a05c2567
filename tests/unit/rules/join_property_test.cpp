// Joins against a naive nested-loop reference over random streams, and checkpoints of joins
// and derived streams: a restored engine continues exactly as the uninterrupted one.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>

#include "rules/engine.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

constexpr std::int64_t kT0 = 1'795'341'720'000;  // 2026-11-22T10:02:00Z

struct In {
  std::string metric;  // "temperature" or "humidity"
  std::string device;  // "" : the reading lacks the `on` tag
  std::int64_t t = 0;
  double value = 0;  // unique per reading: identifies it in a pair
};

// (device, temperature value, humidity value, pair time)
using Pair = std::tuple<std::string, double, double, std::int64_t>;

// Every pair of accepted readings with the same device within `within`; a reading is accepted
// unless it is more than `lateness` behind the newest earlier reading of its device.
std::vector<Pair> NestedLoop(const std::vector<In>& stream, std::int64_t within,
                             std::int64_t lateness) {
  std::map<std::string, std::int64_t> newest;
  std::vector<In> accepted;
  for (const In& in : stream) {
    if (in.device.empty()) continue;
    auto it = newest.find(in.device);
    if (it != newest.end() && in.t < it->second - lateness) continue;
    newest[in.device] = it == newest.end() ? in.t : std::max(it->second, in.t);
    accepted.push_back(in);
  }
  std::vector<Pair> out;
  for (const In& a : accepted) {
    for (const In& b : accepted) {
      if (a.metric != "temperature" || b.metric != "humidity" || a.device != b.device) continue;
      if (std::abs(a.t - b.t) <= within)
        out.emplace_back(a.device, a.value, b.value, std::max(a.t, b.t));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Pair> Engined(const std::vector<In>& stream, std::int64_t within, std::int64_t lateness,
                          std::uint64_t* dropped) {
  json rule = {{"id", "pairs"},
               {"source",
                {{"join",
                  {{"metrics", {"temperature", "humidity"}},
                   {"on", {"device"}},
                   {"within", std::to_string(within) + "ms"},
                   {"lateness", std::to_string(lateness) + "ms"},
                   {"max_buffer", 100000}}}}},
               {"window", {{"type", "count"}, {"count", 1}}},
               {"aggregates", {{"a", "last(temperature)"}, {"b", "last(humidity)"}}}};
  LoadResult loaded = ParseRules(rule.dump(), "pairs.json");
  EXPECT_TRUE(loaded.rules);
  if (!loaded.rules) return {};
  Engine engine("gw", loaded.rules);
  std::vector<Event> events;
  for (const In& in : stream) {
    Reading r{in.metric, {{"metric", in.metric}}, Millis(in.t), in.value};
    if (!in.device.empty()) r.tags.emplace_back("device", in.device);
    std::sort(r.tags.begin(), r.tags.end());
    engine.Process(r, Millis(in.t), &events);
  }
  std::vector<Pair> out;
  for (const Event& e : events) {
    out.emplace_back(e.key.at(0).second, e.values.at(0).second.number, e.values.at(1).second.number,
                     e.time.count());
  }
  *dropped = engine.Stats().at(0).join_dropped;
  std::sort(out.begin(), out.end());
  return out;
}

TEST(JoinProperty, AgreesWithNestedLoopOnRandomStreams) {
  std::size_t pairs = 0;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    std::mt19937_64 rng(seed);
    auto uniform = [&](std::int64_t lo, std::int64_t hi) {
      return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
    };
    const std::int64_t within = uniform(1, 10) * 500;
    const std::int64_t lateness = uniform(0, 3) * 1000;
    const std::int64_t jitter = uniform(0, 6) * 1000;  // out of order by up to this
    std::vector<In> stream;
    const int n = static_cast<int>(uniform(20, 200));
    std::uint64_t lacking = 0;
    for (int i = 0; i < n; ++i) {
      In in;
      in.metric = uniform(0, 1) ? "temperature" : "humidity";
      in.device = "d" + std::to_string(uniform(1, 3));
      if (uniform(0, 30) == 0) {
        in.device.clear();
        ++lacking;
      }
      in.t = kT0 + i * uniform(200, 1500) / 2 + uniform(-jitter, 0);
      in.value = i;
      stream.push_back(in);
    }
    std::uint64_t dropped = 0;
    std::vector<Pair> got = Engined(stream, within, lateness, &dropped);
    std::vector<Pair> want = NestedLoop(stream, within, lateness);
    ASSERT_EQ(got, want) << "seed " << seed << " within " << within << " lateness " << lateness;
    EXPECT_EQ(dropped, lacking) << "seed " << seed;
    pairs += got.size();
  }
  std::printf("join property: 300 random streams, %zu pairs checked\n", pairs);
  EXPECT_GT(pairs, 3000u);
}

TEST(JoinProperty, AFullBufferLetsItsOldestReadingGoAndCountsIt) {
  const char* rule = R"json({
    "id": "pairs", "source": { "join": { "metrics": ["temperature", "humidity"], "on": ["device"],
      "within": "1h", "max_buffer": 3 } },
    "window": { "type": "count", "count": 1 }, "aggregates": { "a": "last(temperature)" }
  })json";
  LoadResult loaded = ParseRules(rule, "pairs.json");
  ASSERT_TRUE(loaded.rules);
  Engine engine("gw", loaded.rules);
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) {
    engine.Process({"temperature",
                    {{"device", "d"}, {"metric", "temperature"}},
                    Millis(kT0 + i * 1000),
                    static_cast<double>(i)},
                   Millis(kT0), &events);
  }
  engine.Process({"humidity", {{"device", "d"}, {"metric", "humidity"}}, Millis(kT0 + 5000), 50},
                 Millis(kT0), &events);
  ASSERT_EQ(events.size(), 3u) << "only the newest three temperatures are kept";
  EXPECT_EQ(events[0].values.at(0).second.number, 2);
  EXPECT_EQ(engine.Stats().at(0).join_dropped, 2u);
}

// A join feeding a window whose average is a derived metric, read by a second rule.
constexpr const char* kPipeline = R"json([
  { "id": "dew", "source": { "join": { "metrics": ["temperature", "humidity"], "on": ["device"],
      "within": "3s" } },
    "window": { "type": "tumbling", "size": "10s", "lateness": "2s" },
    "aggregates": { "dew": "avg(temperature - (100 - humidity) / 5)" },
    "output": { "metric": "dew_10s" }, "emit": ["aggregate"] },
  { "id": "damp", "source": { "metric": "dew_10s" }, "group_by": ["device"],
    "window": { "type": "sliding", "size": "30s" },
    "aggregates": { "max": "max(value)", "n": "count()" },
    "alert": { "when": "max > 12", "clear_when": "max < 10" }, "emit": ["alert", "aggregate"] }
])json";

TEST(JoinProperty, RestoredEngineContinuesJoinsAndDerivedStreamsExactly) {
  LoadResult loaded = ParseRules(kPipeline, "pipeline.json");
  ASSERT_TRUE(loaded.rules);
  std::vector<Reading> readings;
  for (int i = 0; i < 120; ++i) {
    for (const char* dev : {"a", "b"}) {
      const bool temp = i % 2 == 0;
      const std::string metric = temp ? "temperature" : "humidity";
      double value = temp ? 20 + (i / 30) * 3 : 60 + i % 7;
      std::int64_t t = kT0 + i * 700 - (i % 5 == 3 ? 1500 : 0);
      readings.push_back({metric, {{"device", dev}, {"metric", metric}}, Millis(t), value});
    }
  }
  auto run_from = [&](Engine& engine, std::size_t from, std::vector<Event>* out) {
    for (std::size_t i = from; i < readings.size(); ++i) {
      engine.Process(readings[i], readings[i].time, out);
    }
    engine.Finish(out);
  };
  Engine whole("gw", loaded.rules);
  std::vector<Event> expected;
  run_from(whole, 0, &expected);
  std::size_t alerts = 0, derived = 0;
  for (const Event& e : expected) {
    alerts += e.kind == EventKind::kAlert;
    derived += e.rule == "damp" && e.kind == EventKind::kAggregate;
  }
  ASSERT_GT(alerts, 0u);
  ASSERT_GT(derived, 10u);

  for (std::size_t cut : {1u, 33u, 100u, 177u, 239u}) {
    Engine first("gw", loaded.rules);
    std::vector<Event> got;
    for (std::size_t i = 0; i < cut; ++i) first.Process(readings[i], readings[i].time, &got);
    std::vector<StateChange> changes;
    first.TakeChanges(&changes);
    Engine second("gw", loaded.rules);
    for (const auto& c : changes) {
      ASSERT_TRUE(c.bytes.has_value());
      ASSERT_TRUE(second.Restore(c.rule, c.key, *c.bytes)) << c.rule << " " << c.key;
    }
    run_from(second, cut, &got);
    ASSERT_EQ(got.size(), expected.size()) << "cut at " << cut;
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(ToJson(got[i]), ToJson(expected[i])) << "cut at " << cut << ", event " << i;
    }
  }
}

}  // namespace
}  // namespace vigil::rules
