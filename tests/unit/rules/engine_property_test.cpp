// Differential test: random streams with random disorder, evaluated by the engine and by a
// deliberately naive reference that keeps every accepted reading and recomputes each window
// from scratch. They must agree on every aggregate event, for every window type and
// aggregate (percentile within its stated 1% error). Seeded and reproducible: a failure
// prints the seed; VIGIL_PROPERTY_CASES sets how many cases run (default 3000).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "rules/engine.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

constexpr std::int64_t kBase = 1'795'341'600'000;  // 2026-11-22T10:00:00Z
constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::min();

struct In {
  std::string device;
  std::string zone;
  std::int64_t t;
  double value;
};

struct Rec {  // an accepted reading, as the reference keeps it
  std::int64_t t;
  std::uint64_t arrival;
  double value;
  std::string zone;
};

struct Window {
  std::int64_t start;
  std::int64_t end;
  std::vector<Rec> recs;
};

struct Case {
  std::string type;
  std::int64_t size = 0, slide = 0, gap = 0, lateness = 0;
  std::uint64_t count = 0;
  double percentile = 50;
  std::vector<In> readings;
};

// ---- The reference: naive aggregates over a list of readings. ----

json Naive(const std::vector<Rec>& recs, double p) {
  auto by_order = [](const Rec& a, const Rec& b) {
    return a.t != b.t ? a.t < b.t : a.arrival < b.arrival;
  };
  std::vector<Rec> sorted = recs;
  std::sort(sorted.begin(), sorted.end(), by_order);
  const double n = static_cast<double>(recs.size());
  double sum = 0, mn = INFINITY, mx = -INFINITY, sum2 = 0;
  for (const auto& r : recs) {
    sum += r.value;
    mn = std::min(mn, r.value);
    mx = std::max(mx, r.value);
  }
  const double mean = sum / n;
  for (const auto& r : recs) sum2 += (r.value - mean) * (r.value - mean);
  std::vector<double> values;
  std::set<std::string> zones;
  for (const auto& r : recs) {
    values.push_back(r.value);
    zones.insert(r.zone);
  }
  std::sort(values.begin(), values.end());
  const double rank = p / 100 * (n - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  const Rec& first = sorted.front();
  const Rec& last = sorted.back();
  json v;
  v["n"] = recs.size();
  v["sum"] = sum;
  v["avg"] = mean;
  v["min"] = mn;
  v["max"] = mx;
  v["sd"] = std::sqrt(sum2 / n);
  v["first"] = first.value;
  v["last"] = last.value;
  v["delta"] = recs.size() < 2 ? json(nullptr) : json(last.value - first.value);
  v["rate"] =
      recs.size() < 2 || last.t == first.t
          ? json(nullptr)
          : json((last.value - first.value) / (static_cast<double>(last.t - first.t) / 1000));
  v["p"] = values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
  v["p_lo"] = values[lo];
  v["p_hi"] = values[hi];
  v["zones"] = zones.size();
  double twice_max = -INFINITY;
  for (const auto& r : recs) twice_max = std::max(twice_max, r.value * 2 + 1);
  v["expr"] = twice_max;
  return v;
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Every window the reference emits for one key, in the engine's order.
std::vector<Window> Reference(const Case& c, const std::vector<In>& stream) {
  std::vector<Window> out;
  std::int64_t max_t = kNone;
  std::uint64_t arrival = 0;
  auto watermark = [&] { return max_t == kNone ? kNone : max_t - c.lateness; };
  if (c.type == "tumbling" || c.type == "hopping") {
    std::map<std::int64_t, Window> windows;  // every window that got a reading
    for (const In& in : stream) {
      const std::int64_t wm = watermark();
      bool accepted = false;
      for (std::int64_t s = FloorDiv(in.t, c.slide) * c.slide; s > in.t - c.size; s -= c.slide) {
        if (wm != kNone && s + c.size <= wm) continue;  // closed
        auto& w = windows[s];
        w.start = s;
        w.end = s + c.size;
        w.recs.push_back({in.t, arrival, in.value, in.zone});
        accepted = true;
      }
      if (accepted) {
        ++arrival;
        max_t = std::max(max_t, in.t);
      }
    }
    for (auto& [s, w] : windows) out.push_back(w);
  } else if (c.type == "count") {
    Window w{0, 0, {}};
    for (const In& in : stream) {
      w.recs.push_back({in.t, arrival++, in.value, in.zone});
      if (w.recs.size() == c.count) {
        out.push_back(w);
        w.recs.clear();
      }
    }
    if (!w.recs.empty()) out.push_back(w);
    for (auto& win : out) {
      win.start = std::min_element(win.recs.begin(), win.recs.end(), [](auto& a, auto& b) {
                    return a.t < b.t;
                  })->t;
      win.end = std::max_element(win.recs.begin(), win.recs.end(), [](auto& a, auto& b) {
                  return a.t < b.t;
                })->t;
    }
  } else if (c.type == "sliding") {
    std::vector<Rec> accepted;
    for (const In& in : stream) {
      const std::int64_t wm = watermark();
      if (wm != kNone && in.t < wm) continue;  // late
      accepted.push_back({in.t, arrival++, in.value, in.zone});
      max_t = std::max(max_t, in.t);
    }
    std::vector<Rec> order = accepted;
    std::sort(order.begin(), order.end(), [](const Rec& a, const Rec& b) {
      return a.t != b.t ? a.t < b.t : a.arrival < b.arrival;
    });
    for (const Rec& r : order) {
      Window w{r.t - c.size, r.t, {}};
      for (const Rec& q : accepted) {
        bool before = q.t < r.t || (q.t == r.t && q.arrival <= r.arrival);
        if (q.t > r.t - c.size && before) w.recs.push_back(q);
      }
      out.push_back(w);
    }
  } else {  // session
    struct Session {
      std::int64_t start, last;
      std::vector<Rec> recs;
    };
    std::vector<Session> open;
    std::int64_t closed_through = kNone;
    for (const In& in : stream) {
      const std::int64_t wm = watermark();
      auto joins = [&](const Session& s) {
        return in.t > s.start - c.gap && in.t < s.last + c.gap;
      };
      bool any = std::any_of(open.begin(), open.end(), joins);
      if (!any && ((wm != kNone && in.t + c.gap <= wm) ||
                   (closed_through != kNone && in.t < closed_through))) {
        continue;  // late
      }
      Session merged{in.t, in.t, {{in.t, arrival++, in.value, in.zone}}};
      std::vector<Session> rest;
      for (auto& s : open) {
        if (joins(s)) {
          merged.start = std::min(merged.start, s.start);
          merged.last = std::max(merged.last, s.last);
          merged.recs.insert(merged.recs.end(), s.recs.begin(), s.recs.end());
        } else {
          rest.push_back(s);
        }
      }
      rest.push_back(merged);
      open = rest;
      max_t = std::max(max_t, in.t);
      std::vector<Session> still;
      for (auto& s : open) {
        if (s.last + c.gap <= watermark()) {
          out.push_back({s.start, s.last + c.gap, s.recs});
          closed_through = std::max(closed_through, s.last + c.gap);
        } else {
          still.push_back(s);
        }
      }
      open = still;
    }
    for (auto& s : open) out.push_back({s.start, s.last + c.gap, s.recs});
    std::sort(out.begin(), out.end(),
              [](const Window& a, const Window& b) { return a.start < b.start; });
  }
  return out;
}

// ---- The case generator ----

Case Generate(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  static const char* kTypes[] = {"tumbling", "hopping", "sliding", "session", "count"};
  Case c;
  c.type = kTypes[pick(0, 4)];
  c.size = pick(1, 20) * 1000;
  c.slide = c.type == "hopping" ? std::max<std::int64_t>(1, c.size / pick(1, 4)) : c.size;
  c.gap = pick(1, 10) * 1000;
  c.count = static_cast<std::uint64_t>(pick(0, 9) == 0 ? pick(300, 700) : pick(1, 8));
  c.lateness =
      c.type == "count" ? 0 : std::vector<std::int64_t>{0, 0, 1000, 5000, 30000}[pick(0, 4)];
  c.percentile = static_cast<double>(pick(0, 100));
  const int devices = static_cast<int>(pick(1, 3));
  // Mostly short streams; one in ten long enough for percentile sketches and big windows.
  const int n = static_cast<int>(pick(0, 9) == 0 ? pick(600, 1500) : pick(1, 120));
  const std::int64_t step = pick(1, 3000);
  const std::int64_t jitter = std::vector<std::int64_t>{0, 500, 3000, 20000}[pick(0, 3)];
  for (int i = 0; i < n; ++i) {
    In in;
    in.device = "d" + std::to_string(pick(1, devices));
    in.zone = "z" + std::to_string(pick(1, 3));
    in.t = kBase + i * step + pick(-jitter, jitter);
    in.value = pick(0, 3) == 0 ? static_cast<double>(pick(-50, 50))
                               : std::uniform_real_distribution<double>(-100, 1000)(rng);
    c.readings.push_back(in);
  }
  return c;
}

json RuleFor(const Case& c) {
  json window = {{"type", c.type}};
  if (c.type == "tumbling" || c.type == "sliding") window["size"] = std::to_string(c.size) + "ms";
  if (c.type == "hopping") {
    window["size"] = std::to_string(c.size) + "ms";
    window["slide"] = std::to_string(c.slide) + "ms";
  }
  if (c.type == "session") window["gap"] = std::to_string(c.gap) + "ms";
  if (c.type == "count") {
    window["count"] = c.count;
  } else {
    window["lateness"] = std::to_string(c.lateness) + "ms";
  }
  char p[32];
  std::snprintf(p, sizeof p, "%g", c.percentile);
  return {{"id", "prop"},
          {"source", {{"metric", "t"}}},
          {"group_by", {"device"}},
          {"window", window},
          {"aggregates",
           {{"n", "count()"},
            {"sum", "sum(value)"},
            {"avg", "avg(value)"},
            {"min", "min(value)"},
            {"max", "max(value)"},
            {"sd", "stddev(value)"},
            {"first", "first(value)"},
            {"last", "last(value)"},
            {"delta", "delta(value)"},
            {"rate", "rate(value)"},
            {"p", std::string("percentile(value, ") + p + ")"},
            {"zones", "distinct(zone)"},
            {"expr", "max(value * 2 + 1)"}}},
          {"emit", {"aggregate"}}};
}

bool Close(const json& got, const json& want, double rel) {
  if (got.is_null() || want.is_null()) return got.is_null() && want.is_null();
  const double a = got.get<double>(), b = want.get<double>();
  return std::fabs(a - b) <= rel * std::max({1.0, std::fabs(a), std::fabs(b)});
}

// Compares one engine event's values with the reference; "" when they agree.
std::string Compare(const json& got, const json& want) {
  for (const char* exact : {"n", "zones"}) {
    if (got.at(exact) != want.at(exact)) return std::string(exact) + " differs";
  }
  for (const char* name : {"sum", "avg", "min", "max", "first", "last", "delta", "rate", "expr"}) {
    if (!Close(got.at(name), want.at(name), 1e-6)) return std::string(name) + " differs";
  }
  // A standard deviation kept incrementally (Welford, with removal in sliding windows) is
  // accurate relative to the values' magnitude, not to itself.
  const double scale = std::max(
      {1.0, std::fabs(want.at("min").get<double>()), std::fabs(want.at("max").get<double>())});
  if (std::fabs(got.at("sd").get<double>() - want.at("sd").get<double>()) > 1e-7 * scale) {
    return "sd differs";
  }
  // Percentile: within 1% of the magnitude of the two closest ranks it interpolates.
  const double p = got.at("p").get<double>(), lo = want.at("p_lo").get<double>(),
               hi = want.at("p_hi").get<double>(), v = want.at("p").get<double>();
  if (std::fabs(p - v) > 0.01 * std::max(std::fabs(lo), std::fabs(hi)) + 1e-9) {
    return "percentile " + std::to_string(p) + " vs " + std::to_string(v);
  }
  return "";
}

TEST(EngineProperty, AgreesWithNaiveReferenceOnRandomStreams) {
  const char* env = std::getenv("VIGIL_PROPERTY_CASES");
  const int cases = env != nullptr ? std::atoi(env) : 3000;
  std::map<std::string, int> per_type;
  std::uint64_t windows_checked = 0;
  for (int i = 0; i < cases; ++i) {
    const std::uint64_t seed = 0x5eed0000ull + static_cast<std::uint64_t>(i);
    const Case c = Generate(seed);
    LoadResult loaded = ParseRules(RuleFor(c).dump(), "prop.json");
    ASSERT_TRUE(loaded.rules) << loaded.diagnostics.at(0).ToString();
    Engine engine("gw", loaded.rules);
    std::vector<Event> events;
    std::map<std::string, std::vector<In>> by_device;
    for (const In& in : c.readings) {
      Reading r{
          "t", {{"device", in.device}, {"metric", "t"}, {"zone", in.zone}}, Millis(in.t), in.value};
      engine.Process(r, Millis(in.t), &events);
      by_device[in.device].push_back(in);
    }
    engine.Finish(&events);

    std::map<std::string, std::vector<json>> got;
    for (const Event& e : events) got[e.key.at(0).second].push_back(json::parse(ToJson(e)));
    for (const auto& [device, stream] : by_device) {
      std::vector<Window> want = Reference(c, stream);
      std::vector<json>& mine = got[device];
      if (c.type != "sliding" && c.type != "count") {
        std::sort(mine.begin(), mine.end(), [](const json& a, const json& b) {
          return a["window"]["start"] < b["window"]["start"];
        });
      }
      ASSERT_EQ(mine.size(), want.size())
          << "seed " << seed << " type " << c.type << " device " << device;
      for (std::size_t k = 0; k < want.size(); ++k) {
        const std::string start = config::FormatRfc3339(Millis(want[k].start));
        const std::string end = config::FormatRfc3339(Millis(want[k].end));
        ASSERT_EQ(mine[k]["window"]["start"], start) << "seed " << seed << " window " << k;
        ASSERT_EQ(mine[k]["window"]["end"], end) << "seed " << seed << " window " << k;
        std::string diff = Compare(mine[k]["values"], Naive(want[k].recs, c.percentile));
        ASSERT_EQ(diff, "") << "seed " << seed << " type " << c.type << " window " << k << "\n"
                            << mine[k].dump()
                            << "\nreference: " << Naive(want[k].recs, c.percentile).dump();
        ++windows_checked;
      }
    }
    ++per_type[c.type];
  }
  std::string summary;
  for (const auto& [type, n] : per_type) summary += " " + type + "=" + std::to_string(n);
  std::printf("property: %d cases (%s ), %llu windows checked\n", cases, summary.c_str(),
              static_cast<unsigned long long>(windows_checked));
}

}  // namespace
}  // namespace vigil::rules
