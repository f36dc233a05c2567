// Fuzz target: the rule engine (rules/engine.h) fed random readings by random rules.
// The first bytes pick 1–3 small rules from a grammar of every window type, aggregate,
// detector, alert option, join, derived stream (`output`) and max_keys; the rest is a program of
// readings (any finite value, times jumping back and forth), processing-time advances, checkpoint
// round trips and the end of input. Rules are kept small (at most 10 windows per reading, small
// counts) so an input cannot take long. Checks: no crash, no exception, every event serializes; an
// engine restored from a snapshot produces byte-identical events to the engine it was taken from
// (SPEC §8).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_bytes.h"
#include "rules/engine.h"

namespace {

using nlohmann::json;
using vigil::Millis;
using vigil::fuzz::Bytes;
using vigil::rules::Engine;
using vigil::rules::Event;

constexpr std::int64_t kT0 = 1'795'341'600'000;  // 2026-11-22T10:00:00Z
constexpr std::int64_t kMaxTime = 9'000'000'000'000'000;

const char* const kDurations[] = {"1ms", "10ms", "250ms", "1s", "10s", "1m"};
const char* const kAggregates[] = {"count()",
                                   "sum(value)",
                                   "avg(value)",
                                   "min(value)",
                                   "max(value)",
                                   "stddev(value)",
                                   "first(value)",
                                   "last(value)",
                                   "delta(value)",
                                   "rate(value)",
                                   "percentile(value, 50)",
                                   "percentile(value, 99)",
                                   "distinct(device)",
                                   "avg(value * value)",
                                   "sum(1 / value)",
                                   "max(log(value))",
                                   "percentile(value * 1e300, 0)",
                                   "sum(exp(value))"};
const char* const kJoinAggregates[] = {"count()",         "avg(t - h)", "max(t)",
                                       "last(h)",         "sum(t * h)", "percentile(h / t, 90)",
                                       "distinct(device)"};
const char* const kJoinWhere[] = {"t > h", "device == \"d1\"", "h != 3 || has(site)"};
const char* const kWhere[] = {"value > 10", "device =~ \"^d[0-2]$\"", "has(site)",
                              "value % 2 == 0 || site == \"x\"", "!(value < -5) && value != 3"};

json RandomRule(Bytes& in, int index) {
  json r;
  r["id"] = "r" + std::to_string(index);
  json source;
  bool join = false;
  switch (in.Pick(5)) {
    case 0:
      source["metric"] = "t";
      break;
    case 1:
      source["metric"] = "h";
      break;
    case 2:
      source["metric"] = "t2";  // another rule's output
      break;
    case 3:
      join = true;
      source["join"] = {{"metrics", {"t", "h"}},
                        {"on", {"device"}},
                        {"within", kDurations[in.Pick(std::size(kDurations))]},
                        {"max_buffer", 1 + in.Pick(8)}};
      if (in.Bool()) source["join"]["lateness"] = kDurations[in.Pick(std::size(kDurations))];
      break;
    default:
      source["metric"] = json::array({"t", "h"});
  }
  if (in.Pick(3) == 0) {
    source["where"] =
        join ? kJoinWhere[in.Pick(std::size(kJoinWhere))] : kWhere[in.Pick(std::size(kWhere))];
  }
  r["source"] = source;
  switch (join ? 0 : in.Pick(4)) {
    case 0:
      break;  // every tag
    case 1:
      r["group_by"] = json::array({"device"});
      break;
    case 2:
      r["group_by"] = json::array({"device", "site"});
      break;
    default:
      r["group_by"] = json::array({"absent_tag"});
  }
  const bool window = join || in.Pick(4) != 0;
  const bool detector = !window || in.Pick(3) == 0;
  json aggregates = json::object();
  if (window) {
    json w;
    const std::size_t size = in.Pick(std::size(kDurations));
    switch (in.Pick(5)) {
      case 0:
        w = {{"type", "tumbling"}, {"size", kDurations[size]}};
        break;
      case 1: {
        // slide ≥ size / 10: at most 10 windows hold a reading.
        const std::size_t slide = size == 0 ? 0 : size - in.Pick(std::min<std::size_t>(size, 2));
        w = {{"type", "hopping"}, {"size", kDurations[size]}, {"slide", kDurations[slide]}};
        break;
      }
      case 2:
        w = {{"type", "sliding"}, {"size", kDurations[size]}};
        break;
      case 3:
        w = {{"type", "session"}, {"gap", kDurations[size]}};
        break;
      default:
        w = {{"type", "count"}, {"count", 1 + in.Pick(6)}};
    }
    if (w["type"] != "count" && in.Bool())
      w["lateness"] = kDurations[in.Pick(std::size(kDurations))];
    if (in.Pick(3) == 0) w["idle_timeout"] = kDurations[in.Pick(std::size(kDurations))];
    r["window"] = w;
    const std::size_t n = 1 + in.Pick(4);
    for (std::size_t i = 0; i < n; ++i) {
      aggregates["a" + std::to_string(i)] =
          join ? kJoinAggregates[in.Pick(std::size(kJoinAggregates))]
               : kAggregates[in.Pick(std::size(kAggregates))];
    }
    r["aggregates"] = aggregates;
  }
  if (detector) {
    json d;
    switch (in.Pick(8)) {
      case 0:
        d = {{"method", "zscore"}, {"window", in.Bool() ? json(2 + in.Pick(8)) : json("1s")}};
        break;
      case 1:
        d = {{"method", "ewma"}, {"alpha", 0.05 + 0.9 * in.PickInt(10) / 10.0}};
        break;
      case 2:
        d = {{"method", "mad"}, {"window", in.Bool() ? json(2 + in.Pick(8)) : json("10s")}};
        break;
      case 3:
        d = {{"method", "spike"}, {"max_rate", 0.5 + in.PickInt(100)}};
        break;
      case 4:
        d = {{"method", "flatline"},
             {"for", kDurations[in.Pick(std::size(kDurations))]},
             {"tolerance", in.PickInt(3) * 0.5}};
        break;
      case 5:
        d = {{"method", "absent"}, {"for", kDurations[1 + in.Pick(std::size(kDurations) - 1)]}};
        break;
      case 6:
        d = {{"method", "adaptive"}, {"threshold", 0.5 + in.PickInt(8)}};
        if (in.Bool()) d["suppress"] = in.Bool() ? json(in.Pick(5)) : json("2s");
        break;
      default:
        d = {{"method", "range"}, {"min", -10.0 * in.PickInt(3)}, {"max", 10.0 * in.PickInt(5)}};
    }
    if (d["method"] == "zscore" || d["method"] == "ewma" || d["method"] == "mad" ||
        d["method"] == "adaptive") {
      d["min_samples"] = in.Pick(6);
    }
    if (window) d["input"] = "a0";
    r["detector"] = d;
  }
  if (in.Pick(4) != 0) {
    json alert;
    const char* const kWhen[] = {"a0 > 10", "a0 < 100 || a0 != a0", "abs(a0) > 1e300",
                                 "anomaly", "anomaly && score > 2", "device == \"d1\""};
    std::string when = kWhen[in.Pick(std::size(kWhen))];
    if (!window && when.find("a0") != std::string::npos) when = "value > 10";
    if (!detector && when.find("anomaly") != std::string::npos) when = "a0 > 10";
    alert["when"] = when;
    if (in.Bool()) alert["clear_when"] = detector && !window ? "value < 0" : "a0 < 0";
    if (in.Pick(3) == 0) alert["for"] = kDurations[in.Pick(std::size(kDurations))];
    if (in.Pick(3) == 0) alert["repeat"] = kDurations[in.Pick(std::size(kDurations))];
    alert["summary"] = window ? "{device}: {a0:.2f} {a0}" : "{device}: {value} {score:.1f}";
    r["alert"] = alert;
  }
  if (window) {
    switch (in.Pick(3)) {
      case 0:
        r["emit"] = json::array({"aggregate"});
        break;
      case 1:
        if (r.contains("alert")) r["emit"] = json::array({"alert", "aggregate"});
        break;
      default:
        break;
    }
  }
  if (window && in.Pick(3) == 0) {
    r["output"] = {{"metric", "t2"}, {"value", "a0"}};  // a cycle when it reads t2 too
    if (in.Pick(3) == 0) r["emit"] = json::array();
  }
  if (in.Bool()) r["max_keys"] = 1 + in.Pick(6);
  return r;
}

double Value(Bytes& in) {
  const double kValues[] = {0,     1,      -1,      21.5,     45,     3,   1e-300,
                            1e300, -1e300, 1.7e308, -1.7e308, 5e-324, 100, -0.0};
  if (in.Pick(4) != 0) return kValues[in.Pick(std::size(kValues))];
  double d = in.RawDouble();
  return std::isfinite(d) ? d : 7;  // the decoder lets only finite values through
}

std::vector<std::string> Lines(std::vector<Event>* events) {
  std::vector<std::string> out;
  for (const auto& e : *events) out.push_back(vigil::rules::ToJson(e));
  events->clear();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  json rules = json::array();
  const std::size_t n = 1 + in.Pick(3);
  for (std::size_t i = 0; i < n; ++i) rules.push_back(RandomRule(in, static_cast<int>(i)));
  vigil::rules::LoadResult loaded = vigil::rules::ParseRules(rules.dump(), "fuzz.json");
  if (!loaded.rules) return 0;  // the grammar makes a few invalid combinations

  auto engine = std::make_unique<Engine>("gw-fuzz", loaded.rules);
  std::unique_ptr<Engine> twin;  // restored from a snapshot; must agree with `engine`
  std::vector<Event> events, twin_events;
  std::int64_t t = kT0;
  std::int64_t now = kT0;
  for (int step = 0; step < 2000 && !in.empty(); ++step) {
    const std::size_t op = in.Pick(10);
    if (op < 6) {
      static const char* const kMetrics[] = {"t", "h", "x"};
      static const char* const kDevices[] = {"d0", "d1", "d2", "d3"};
      const char* metric = kMetrics[in.Pick(3)];
      vigil::rules::Tags tags{{"device", kDevices[in.Pick(4)]}, {"metric", metric}};
      if (in.Bool()) tags.emplace_back("site", in.Bool() ? "x" : "y");
      const std::int64_t scale = in.Bool() ? 1 : 1000;
      t += static_cast<std::int16_t>(in.U16()) * scale;
      t = std::clamp<std::int64_t>(t, 0, kMaxTime);
      now += in.U8();
      vigil::rules::Reading r{metric, tags, Millis(t), Value(in)};
      engine->Process(r, Millis(now), &events);
      if (twin) twin->Process(r, Millis(now), &twin_events);
    } else if (op < 8) {
      now += static_cast<std::int64_t>(in.U16()) * (in.Bool() ? 1 : 100);
      engine->Advance(Millis(now), &events);
      if (twin) twin->Advance(Millis(now), &twin_events);
    } else if (op == 8) {
      std::vector<vigil::rules::StateChange> state;
      engine->SnapshotAll(&state);
      twin = std::make_unique<Engine>("gw-fuzz", loaded.rules);
      for (const auto& s : state) {
        if (!s.bytes || !twin->Restore(s.rule, s.key, *s.bytes)) {
          std::fprintf(stderr, "cannot restore %s: %s\nrules: %s\n", s.rule.c_str(),
                       s.bytes ? s.bytes->c_str() : "(none)", rules.dump().c_str());
          std::abort();
        }
      }
      std::vector<vigil::rules::StateChange> changes;
      engine->TakeChanges(&changes);
    } else {
      engine->Finish(&events);
      if (twin) twin->Finish(&twin_events);
      break;
    }
    std::vector<std::string> a = Lines(&events);
    if (twin) {
      std::vector<std::string> b = Lines(&twin_events);
      if (a != b) {
        std::fprintf(stderr, "restored engine differs:\n");
        for (const auto& line : a) std::fprintf(stderr, "  original: %s\n", line.c_str());
        for (const auto& line : b) std::fprintf(stderr, "  restored: %s\n", line.c_str());
        std::abort();
      }
    }
  }
  (void)engine->Stats();
  (void)engine->Firing();
  return 0;
}
