// Detectors on labelled data: runs each detector, with its defaults, as a rule in the real
// engine over two labelled corpora, and prints one table (README, Performance):
//   build/tests/bench/detector_bench [data folder] [--alerts] [--only NAME]
// - simulated: the signal of `vigil simulate --anomalies` (16 devices, one reading a second
//   each, four hours; the unlabelled drifting demo devices are left out). Each injected anomaly
//   is a window from its start to 60 s after its end.
// - nab: four real series of the Numenta Anomaly Benchmark (tests/bench/data/nab/README.md:
//   office and machine temperatures, server request latency, road traffic speed) with NAB's
//   anomaly windows.
// Each series is one key. An alert is one episode: a `firing` event, as an operator counts
// pages. Scoring, as NAB's windows: a window is detected when an alert fires inside it (its
// start to its end); an alert outside every window of its series is a false alert. Columns:
// windows detected / windows (recall); alerts inside windows / all alerts (precision); false
// alerts per 10 000 normal readings (readings outside every window, warm-up included); the
// median, over detected windows, of the time from the window's start to its first alert.
// The targets: at most 1 false alert per 10 000
// normal readings and at least 70% of the windows detected.
// Methods whose required parameters are in the signal's units (spike, flatline, range, absent)
// get one setting per corpus, printed with the table; nothing is set per series.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "agent/signal.h"
#include "rules/engine.h"

namespace {

using vigil::Millis;
using vigil::agent::Signal;

struct Point {
  Millis t;
  double value;
};

struct Window {
  Millis start, end;  // inclusive
};

struct Series {
  std::string name;
  std::vector<Point> points;  // in arrival order
  std::vector<Window> windows;
};

struct Corpus {
  std::string name;
  std::vector<Series> series;
  // The detectors: name, and the rule's `detector` object.
  std::vector<std::pair<std::string, std::string>> detectors;
  bool interleave = false;  // one stream of every series by time (the simulator's order)
};

// Days since 1970-01-01 of a civil date (UTC).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// "YYYY-MM-DD" → ms at midnight UTC.
Millis Day(const std::string& s) {
  const std::int64_t y = std::stoll(s.substr(0, 4));
  const auto m = static_cast<unsigned>(std::stoul(s.substr(5, 2)));
  const auto d = static_cast<unsigned>(std::stoul(s.substr(8, 2)));
  return Millis(DaysFromCivil(y, m, d) * 86'400'000);
}

// "HH:MM" or "HH:MM:SS" → ms since midnight.
Millis TimeOfDay(const std::string& s) {
  std::int64_t ms = std::stoll(s.substr(0, 2)) * 3'600'000 + std::stoll(s.substr(3, 2)) * 60'000;
  if (s.size() >= 8) ms += std::stoll(s.substr(6, 2)) * 1000;
  return Millis(ms);
}

// A series in the re-encoded form of tests/bench/data/nab/README.md.
bool LoadSeries(const std::string& path, Series* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  Millis day{0}, last{0}, step{0};
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '!') {
      step = Millis(std::stoll(line.substr(line.find(' ') + 1)) * 1000);
    } else if (line[0] == '@') {
      day = Day(line.substr(1));
    } else if (auto comma = line.find(','); comma != std::string::npos) {
      last = day + TimeOfDay(line.substr(0, comma));
      out->points.push_back({last, std::stod(line.substr(comma + 1))});
    } else {
      last += step;
      out->points.push_back({last, std::stod(line)});
    }
  }
  return true;
}

bool LoadNab(const std::string& dir, Corpus* corpus) {
  std::ifstream in(dir + "/windows.txt");
  if (!in) return false;
  std::map<std::string, std::vector<Window>> windows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, start, end;
    fields >> name >> start >> end;
    windows[name].push_back(
        {Day(start) + TimeOfDay(start.substr(11)), Day(end) + TimeOfDay(end.substr(11))});
  }
  for (const auto& [name, w] : windows) {
    Series s;
    s.name = name;
    s.windows = w;
    if (!LoadSeries(dir + "/" + name + ".txt", &s)) return false;
    corpus->series.push_back(std::move(s));
  }
  return true;
}

Corpus Simulated() {
  constexpr int kDevices = 20;
  constexpr std::int64_t kSeconds = 4 * 3600;
  constexpr Millis kGrace{60'000};
  const Millis start{1'795'341'600'000};
  Signal signal(kDevices, 1, true, start);
  Corpus c;
  c.name = "simulated";
  c.interleave = true;
  std::map<int, std::size_t> index;
  for (int d = 0; d < kDevices; ++d) {
    if (d % 5 == 0) continue;  // the unlabelled drifting demo devices
    index[d] = c.series.size();
    c.series.push_back({signal.name(d), {}, {}});
  }
  for (std::int64_t s = 0; s < kSeconds; ++s) {
    for (const auto& [d, i] : index) {
      const Millis t = start + Millis(s * 1000 + d * 10);
      if (auto v = signal.Value(d, t)) c.series[i].points.push_back({t, *v});
    }
  }
  for (const auto& l : signal.labels()) {
    for (auto& s : c.series) {
      if (s.name == l.device) s.windows.push_back({l.start, l.end + kGrace});
    }
  }
  return c;
}

struct Row {
  std::size_t windows = 0, detected = 0, alerts = 0, inside = 0, normal = 0;
  std::vector<double> delays;  // seconds
  double readings_per_s = 0;
};

bool Inside(const Series& s, Millis t) {
  return std::any_of(s.windows.begin(), s.windows.end(),
                     [&](const Window& w) { return t >= w.start && t <= w.end; });
}

// With `alerts`, prints every alert of the run: series, time, and whether it is inside a window.
bool Run(const Corpus& c, const std::string& name, const std::string& detector, bool alerts,
         Row* row) {
  const std::string rule = R"({"id": ")" + name +
                           R"(", "source": {"metric": "t"}, "group_by": ["series"], "detector": )" +
                           detector + "}";
  auto loaded = vigil::rules::ParseRules(rule, "bench.json");
  if (!loaded.rules) {
    std::fprintf(stderr, "%s\n", loaded.diagnostics.at(0).ToString().c_str());
    return false;
  }
  vigil::rules::Engine engine("bench", loaded.rules);
  std::map<std::string, std::vector<Millis>> firings;  // by series
  std::vector<vigil::rules::Event> events;
  std::size_t readings = 0;
  auto feed = [&](const Series& s, const Point& p) {
    vigil::rules::Reading reading{"t", {{"metric", "t"}, {"series", s.name}}, p.t, p.value};
    engine.Process(reading, p.t, &events);
    engine.Advance(p.t, &events);
    ++readings;
    for (const auto& e : events) {
      if (e.kind == vigil::rules::EventKind::kAlert && e.state == vigil::rules::EventState::kFiring)
        firings[e.key.at(0).second].push_back(e.time);
    }
    events.clear();
  };
  const auto began = std::chrono::steady_clock::now();
  if (c.interleave) {
    std::vector<std::size_t> next(c.series.size(), 0);
    for (;;) {  // the earliest next reading of any series, until none is left
      std::size_t best = c.series.size();
      for (std::size_t i = 0; i < c.series.size(); ++i) {
        if (next[i] < c.series[i].points.size() &&
            (best == c.series.size() ||
             c.series[i].points[next[i]].t < c.series[best].points[next[best]].t)) {
          best = i;
        }
      }
      if (best == c.series.size()) break;
      feed(c.series[best], c.series[best].points[next[best]++]);
    }
  } else {
    for (const Series& s : c.series) {
      for (const Point& p : s.points) feed(s, p);
    }
  }
  row->readings_per_s =
      static_cast<double>(readings) /
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  for (const Series& s : c.series) {
    const std::vector<Millis>& f = firings[s.name];
    row->alerts += f.size();
    for (Millis t : f) {
      row->inside += Inside(s, t) ? 1 : 0;
      if (alerts) {
        const std::time_t secs = static_cast<std::time_t>(t.count() / 1000);
        char when[32];
        std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", std::gmtime(&secs));
        std::printf("alert %s %s %s %s %s\n", c.name.c_str(), name.c_str(), s.name.c_str(), when,
                    Inside(s, t) ? "window" : "false");
      }
    }
    for (const Window& w : s.windows) {
      ++row->windows;
      auto first =
          std::find_if(f.begin(), f.end(), [&](Millis t) { return t >= w.start && t <= w.end; });
      if (first == f.end()) continue;
      ++row->detected;
      row->delays.push_back(static_cast<double>((*first - w.start).count()) / 1000.0);
    }
    for (const Point& p : s.points) row->normal += Inside(s, p.t) ? 0 : 1;
  }
  return true;
}

std::string Duration(double seconds) {
  char out[32];
  if (seconds < 120) {
    std::snprintf(out, sizeof out, "%.0f s", seconds);
  } else if (seconds < 7200) {
    std::snprintf(out, sizeof out, "%.0f min", seconds / 60);
  } else {
    std::snprintf(out, sizeof out, "%.1f h", seconds / 3600);
  }
  return out;
}

}  // namespace

// detector_bench [DATA_DIR] [--alerts] [--only NAME]: DATA_DIR holds nab/ (default: the source
// tree's tests/bench/data); --alerts also lists every alert; --only runs one detector.
int main(int argc, char** argv) {
  std::string data = VIGIL_BENCH_DATA;
  bool alerts = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--alerts") {
      alerts = true;
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      data = arg;
    }
  }
  std::vector<Corpus> corpora;
  corpora.push_back(Simulated());
  corpora.back().detectors = {
      {"adaptive", R"({"method": "adaptive"})"},
      {"zscore", R"({"method": "zscore"})"},
      {"ewma", R"({"method": "ewma"})"},
      {"mad", R"({"method": "mad"})"},
      {"zscore-5", R"({"method": "zscore", "threshold": 5, "suppress": 10})"},
      {"ewma-5", R"({"method": "ewma", "threshold": 5, "suppress": 10})"},
      {"mad-5", R"({"method": "mad", "threshold": 5, "suppress": 10})"},
      {"spike", R"({"method": "spike", "max_rate": 5})"},
      {"flatline", R"({"method": "flatline", "for": "60s", "tolerance": 0.01})"},
      {"absent", R"({"method": "absent", "for": "30s"})"},
      {"range", R"({"method": "range", "min": 0, "max": 100})"},
  };
  Corpus nab;
  nab.name = "nab";
  if (!LoadNab(data + "/nab", &nab)) {
    std::fprintf(stderr, "cannot read the NAB subset in %s/nab\n", data.c_str());
    return 1;
  }
  nab.detectors = {
      {"adaptive", R"({"method": "adaptive"})"},
      {"zscore", R"({"method": "zscore"})"},
      {"ewma", R"({"method": "ewma"})"},
      {"mad", R"({"method": "mad"})"},
      {"zscore-5", R"({"method": "zscore", "threshold": 5, "suppress": 10})"},
      {"ewma-5", R"({"method": "ewma", "threshold": 5, "suppress": 10})"},
      {"mad-5", R"({"method": "mad", "threshold": 5, "suppress": 10})"},
      {"spike", R"({"method": "spike", "max_rate": 0.05})"},
      {"flatline", R"({"method": "flatline", "for": "1h"})"},
      {"absent", R"({"method": "absent", "for": "1h"})"},
      {"range", R"({"method": "range", "min": 0, "max": 100})"},
  };
  corpora.push_back(std::move(nab));

  std::printf("%-10s %-9s %8s %8s %7s %9s %7s %12s %13s %11s\n", "corpus", "detector", "readings",
              "windows", "recall", "precision", "alerts", "false/10k", "median delay",
              "readings/s");
  for (const Corpus& c : corpora) {
    std::size_t readings = 0;
    for (const Series& s : c.series) readings += s.points.size();
    for (const auto& [name, json] : c.detectors) {
      if (!only.empty() && name != only) continue;
      Row r;
      if (!Run(c, name, json, alerts, &r)) return 1;
      std::vector<double> d = r.delays;
      std::string delay = "-";
      if (!d.empty()) {
        std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(d.size() / 2), d.end());
        delay = Duration(d[d.size() / 2]);
      }
      char windows[32], recall[16], precision[16];
      std::snprintf(windows, sizeof windows, "%zu/%zu", r.detected, r.windows);
      std::snprintf(
          recall, sizeof recall, "%.0f%%",
          r.windows ? 100.0 * static_cast<double>(r.detected) / static_cast<double>(r.windows) : 0);
      std::snprintf(
          precision, sizeof precision, "%.0f%%",
          r.alerts ? 100.0 * static_cast<double>(r.inside) / static_cast<double>(r.alerts) : 100.0);
      std::printf(
          "%-10s %-9s %8zu %8s %7s %9s %7zu %12.2f %13s %11.0f\n", c.name.c_str(), name.c_str(),
          readings, windows, recall, precision, r.alerts,
          r.normal ? 1e4 * static_cast<double>(r.alerts - r.inside) / static_cast<double>(r.normal)
                   : 0.0,
          delay.c_str(), r.readings_per_s);
    }
  }
  std::printf("\nwith defaults; targets: false/10k <= 1 and recall >= 70%%\n");
  for (const Corpus& c : corpora) {
    std::printf("%s detectors:", c.name.c_str());
    for (const auto& [name, json] : c.detectors) std::printf(" %s", json.c_str());
    std::printf("\n");
  }
  return 0;
}
