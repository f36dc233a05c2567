#include "rules/engine.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "rules/rule.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();

const std::string* FindTagThunk(const void* tags, std::string_view name) {
  return FindTag(*static_cast<const Tags*>(tags), name);
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// The running state of one aggregate over one window. Every field is kept so that any
// aggregate function reads its result from the same accumulator.
struct Acc {
  std::uint64_t n = 0;
  double sum = 0;
  double mean = 0;  // Welford
  double m2 = 0;
  double min = 0;
  double max = 0;
  std::int64_t first_t = 0;
  double first_v = 0;
  std::int64_t last_t = 0;
  double last_v = 0;
  std::vector<double> values;      // percentile only
  std::set<std::string> distinct;  // distinct only

  void Add(double x, std::int64_t t) {
    ++n;
    sum += x;
    double d = x - mean;
    mean += d / static_cast<double>(n);
    m2 += d * (x - mean);
    if (n == 1 || x < min) min = x;
    if (n == 1 || x > max) max = x;
    if (n == 1 || t < first_t) {
      first_t = t;
      first_v = x;
    }
    if (n == 1 || t >= last_t) {
      last_t = t;
      last_v = x;
    }
  }
};

Value Result(const Acc& a, const AggregateSpec& spec) {
  using Fn = AggregateSpec::Fn;
  if (spec.fn == Fn::kCount) return Value::Int(static_cast<double>(a.n));
  if (spec.fn == Fn::kDistinct) return Value::Int(static_cast<double>(a.distinct.size()));
  if (a.n == 0) return Value::Null();
  switch (spec.fn) {
    case Fn::kSum:
      return Value::Double(a.sum);
    case Fn::kAvg:
      return Value::Double(a.mean);
    case Fn::kMin:
      return Value::Double(a.min);
    case Fn::kMax:
      return Value::Double(a.max);
    case Fn::kStddev:
      return Value::Double(std::sqrt(std::max(0.0, a.m2 / static_cast<double>(a.n))));
    case Fn::kFirst:
      return Value::Double(a.first_v);
    case Fn::kLast:
      return Value::Double(a.last_v);
    case Fn::kDelta:
      return a.n < 2 ? Value::Null() : Value::Double(a.last_v - a.first_v);
    case Fn::kRate:
      if (a.n < 2 || a.last_t == a.first_t) return Value::Null();
      return Value::Double((a.last_v - a.first_v) /
                           (static_cast<double>(a.last_t - a.first_t) / 1000.0));
    case Fn::kPercentile: {
      std::vector<double> v = a.values;
      std::sort(v.begin(), v.end());
      double rank = spec.percentile / 100.0 * static_cast<double>(v.size() - 1);
      auto lo = static_cast<std::size_t>(std::floor(rank));
      std::size_t hi = std::min(lo + 1, v.size() - 1);
      return Value::Double(v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo)));
    }
    default:
      return Value::Null();
  }
}

enum class AlertState { kInactive = 0, kPending = 1, kFiring = 2 };

struct KeyState {
  Tags key;
  std::int64_t max_time = kNoTime;        // largest event time seen (watermark base)
  std::int64_t closed_through = kNoTime;  // every window ending at or before this is closed
  std::int64_t last_seen = 0;             // processing time of the last accepted reading
  std::map<std::int64_t, std::vector<Acc>> windows;  // open windows by start
  // Alert lifecycle (SPEC §5).
  AlertState state = AlertState::kInactive;
  std::int64_t since = 0;        // event time the condition was first seen true
  std::int64_t fired_at = 0;     // event time of the firing event
  std::int64_t last_notify = 0;  // event time of the last firing notification
  std::string alert_id;
  std::string summary;
};

struct RuleState {
  std::shared_ptr<const CompiledRule> rule;
  std::map<std::string, KeyState> keys;  // ordered: deterministic flush order
  std::set<std::string> dirty;
  std::int64_t next_idle_check = std::numeric_limits<std::int64_t>::max();
  RuleStats stats;
};

// A key as text: tags joined with unit/record separators (never in topic levels).
std::string EncodeKey(const Tags& key) {
  std::string out;
  for (const auto& [name, value] : key) {
    out += name;
    out.push_back('\x1f');
    out += value;
    out.push_back('\x1e');
  }
  return out;
}

std::string FormatNumber(double v, int decimals) {
  char buf[64];
  if (decimals >= 0) {
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string RenderSummary(const std::string& text, const CompiledRule& rule,
                          const std::vector<std::pair<std::string, Value>>& values,
                          const Tags& key) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find('{', pos);
    std::size_t close = open == std::string::npos ? open : text.find('}', open);
    if (open == std::string::npos || close == std::string::npos) {
      out.append(text, pos, std::string::npos);
      break;
    }
    out.append(text, pos, open - pos);
    std::string inner = text.substr(open + 1, close - open - 1);
    int decimals = -1;
    if (std::size_t colon = inner.find(":."); colon != std::string::npos) {
      decimals = std::atoi(inner.c_str() + colon + 2);
      inner.resize(colon);
    }
    bool done = false;
    for (std::size_t i = 0; i < rule.aggregates.size() && !done; ++i) {
      if (rule.aggregates[i].name != inner) continue;
      const Value& v = values[i].second;
      out += v.is_null() ? "null" : FormatNumber(v.number, decimals);
      done = true;
    }
    if (!done) {
      const std::string* tag = FindTag(key, inner);
      out += tag != nullptr ? *tag : text.substr(open, close - open + 1);
    }
    pos = close + 1;
  }
  return out;
}

json AccToJson(const Acc& a) {
  return json::array({a.n, a.sum, a.mean, a.m2, a.min, a.max, a.first_t, a.first_v, a.last_t,
                      a.last_v, a.values, a.distinct});
}

Acc AccFromJson(const json& j) {
  Acc a;
  a.n = j.at(0).get<std::uint64_t>();
  a.sum = j.at(1).get<double>();
  a.mean = j.at(2).get<double>();
  a.m2 = j.at(3).get<double>();
  a.min = j.at(4).get<double>();
  a.max = j.at(5).get<double>();
  a.first_t = j.at(6).get<std::int64_t>();
  a.first_v = j.at(7).get<double>();
  a.last_t = j.at(8).get<std::int64_t>();
  a.last_v = j.at(9).get<double>();
  a.values = j.at(10).get<std::vector<double>>();
  a.distinct = j.at(11).get<std::set<std::string>>();
  return a;
}

}  // namespace

struct Engine::Impl {
  std::string agent;
  std::vector<RuleState> rules;
  std::unordered_map<std::string, std::vector<std::size_t>> by_metric;

  void CloseWindow(RuleState& rs, const std::string& key_str, KeyState& ks, std::int64_t start,
                   const std::vector<Acc>& accs, std::vector<Event>* out);
  void EvaluateAlert(RuleState& rs, const std::string& key_str, KeyState& ks,
                     const std::vector<std::pair<std::string, Value>>& values, WindowBounds window,
                     std::vector<Event>* out);
  void CloseAll(RuleState& rs, const std::string& key_str, KeyState& ks, std::vector<Event>* out) {
    while (!ks.windows.empty()) {
      auto node = ks.windows.extract(ks.windows.begin());
      CloseWindow(rs, key_str, ks, node.key(), node.mapped(), out);
    }
  }
  std::string Serialize(const RuleState& rs, const KeyState& ks) const;
};

void Engine::Impl::CloseWindow(RuleState& rs, const std::string& key_str, KeyState& ks,
                               std::int64_t start, const std::vector<Acc>& accs,
                               std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  const std::int64_t end = start + rule.window.size.count();
  ks.closed_through = std::max(ks.closed_through, end);
  std::vector<std::pair<std::string, Value>> values;
  values.reserve(rule.aggregates.size());
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
    values.emplace_back(rule.aggregates[i].name, Result(accs[i], rule.aggregates[i]));
  }
  WindowBounds bounds{Millis(start), Millis(end)};
  if (rule.emit_aggregate) {
    Event e;
    e.kind = "aggregate";
    e.agent = agent;
    e.rule = rule.id;
    e.key = ks.key;
    e.values = values;
    e.window = bounds;
    e.time = Millis(end);
    e.id = StableHash(
        {agent, rule.id, key_str, "aggregate", std::to_string(start), std::to_string(end)});
    out->push_back(std::move(e));
  }
  if (rule.alert) EvaluateAlert(rs, key_str, ks, values, bounds, out);
}

void Engine::Impl::EvaluateAlert(RuleState& rs, const std::string& key_str, KeyState& ks,
                                 const std::vector<std::pair<std::string, Value>>& values,
                                 WindowBounds window, std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  const AlertSpec& alert = *rule.alert;
  std::vector<double> numbers(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    numbers[i] = values[i].second.is_null() ? std::nan("") : values[i].second.number;
  }
  EvalContext ctx{numbers.data(), nullptr, &FindTagThunk, &ks.key};
  const std::int64_t t = window.end.count();
  const bool holds = alert.when->EvalBool(ctx);

  auto notify = [&](const std::string& state) {
    ks.last_notify = t;
    ks.summary = RenderSummary(alert.summary, rule, values, ks.key);
    if (!rule.emit_alert) return;
    Event e;
    e.kind = "alert";
    e.agent = agent;
    e.rule = rule.id;
    e.key = ks.key;
    e.state = state;
    e.severity = alert.severity;
    e.summary = ks.summary;
    e.labels = alert.labels;
    e.values = values;
    e.window = window;
    e.time = window.end;
    e.alert_id = ks.alert_id;
    e.id = StableHash({agent, rule.id, key_str, "alert", ks.alert_id, state, std::to_string(t)});
    out->push_back(std::move(e));
  };

  switch (ks.state) {
    case AlertState::kInactive:
      if (!holds) return;
      ks.state = AlertState::kPending;
      ks.since = t;
      [[fallthrough]];
    case AlertState::kPending:
      if (!holds) {
        ks.state = AlertState::kInactive;  // silently (SPEC §5)
        return;
      }
      if (t - ks.since >= alert.for_duration.count()) {
        ks.state = AlertState::kFiring;
        ks.fired_at = t;
        ks.alert_id = StableHash({agent, rule.id, key_str, std::to_string(ks.since)});
        notify("firing");
      }
      return;
    case AlertState::kFiring: {
      bool clear = alert.clear_when ? alert.clear_when->EvalBool(ctx) : !holds;
      if (clear) {
        notify("resolved");
        ks.state = AlertState::kInactive;
        ks.alert_id.clear();
      } else if (alert.repeat.count() > 0 && t - ks.last_notify >= alert.repeat.count()) {
        notify("firing");
      }
      return;
    }
  }
}

std::string Engine::Impl::Serialize(const RuleState& rs, const KeyState& ks) const {
  json windows = json::array();
  for (const auto& [start, accs] : ks.windows) {
    json a = json::array();
    for (const auto& acc : accs) a.push_back(AccToJson(acc));
    windows.push_back(json::array({start, std::move(a)}));
  }
  json j = {{"fp", rs.rule->fingerprint},
            {"key", ks.key},
            {"max_time", ks.max_time},
            {"closed_through", ks.closed_through},
            {"last_seen", ks.last_seen},
            {"windows", std::move(windows)},
            {"alert",
             {static_cast<int>(ks.state), ks.since, ks.fired_at, ks.last_notify, ks.alert_id,
              ks.summary}}};
  return j.dump();
}

Engine::Engine(std::string agent_id, std::shared_ptr<const RuleSet> rules)
    : impl_(std::make_unique<Impl>()) {
  impl_->agent = std::move(agent_id);
  for (const auto& rule : rules->rules) {
    RuleState rs;
    rs.rule = rule;
    rs.stats.rule = rule->id;
    impl_->rules.push_back(std::move(rs));
    for (const auto& metric : rule->metrics) {
      impl_->by_metric[metric].push_back(impl_->rules.size() - 1);
    }
  }
}

Engine::~Engine() = default;

void Engine::Process(const Reading& reading, Millis now, std::vector<Event>* out) {
  auto routed = impl_->by_metric.find(reading.metric);
  if (routed == impl_->by_metric.end()) return;
  const std::int64_t t = reading.time.count();
  for (std::size_t index : routed->second) {
    RuleState& rs = impl_->rules[index];
    const CompiledRule& rule = *rs.rule;
    if (rule.where) {
      EvalContext ctx{&reading.value, nullptr, &FindTagThunk, &reading.tags};
      if (!rule.where->EvalBool(ctx)) continue;
    }
    Tags key;
    if (rule.group_by_all) {
      key = reading.tags;
    } else {
      for (const auto& name : rule.group_by) {
        if (const std::string* v = FindTag(reading.tags, name)) key.emplace_back(name, *v);
      }
    }
    std::string key_str = EncodeKey(key);
    auto it = rs.keys.find(key_str);
    if (it == rs.keys.end()) {
      if (rs.keys.size() >= rule.max_keys) {
        ++rs.stats.dropped_keys;
        continue;
      }
      it = rs.keys.emplace(key_str, KeyState{}).first;
      it->second.key = std::move(key);
    }
    KeyState& ks = it->second;
    const WindowSpec& w = rule.window;
    const std::int64_t size = w.size.count(), slide = w.slide.count();
    const std::int64_t watermark =
        ks.max_time == kNoTime ? kNoTime : ks.max_time - w.lateness.count();
    // Every window [start, start+size) with start a multiple of slide that holds t.
    bool accepted = false;
    for (std::int64_t start = FloorDiv(t, slide) * slide; start > t - size; start -= slide) {
      const std::int64_t end = start + size;
      if (end <= ks.closed_through || (watermark != kNoTime && end <= watermark)) continue;
      auto& accs = ks.windows[start];
      if (accs.empty()) accs.resize(rule.aggregates.size());
      for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
        const AggregateSpec& spec = rule.aggregates[i];
        if (spec.fn == AggregateSpec::Fn::kCount) {
          accs[i].Add(reading.value, t);
        } else if (spec.fn == AggregateSpec::Fn::kDistinct) {
          if (const std::string* v = FindTag(reading.tags, spec.tag)) accs[i].distinct.insert(*v);
        } else {
          EvalContext ctx{&reading.value, nullptr, &FindTagThunk, &reading.tags};
          double x = spec.arg->EvalNumber(ctx);
          if (!std::isfinite(x)) continue;
          accs[i].Add(x, t);
          if (spec.fn == AggregateSpec::Fn::kPercentile) accs[i].values.push_back(x);
        }
      }
      accepted = true;
    }
    if (!accepted) {
      ++rs.stats.late_readings;
      continue;
    }
    ++rs.stats.evaluations;
    ks.last_seen = now.count();
    ks.max_time = std::max(ks.max_time, t);
    const std::int64_t new_watermark = ks.max_time - w.lateness.count();
    while (!ks.windows.empty() && ks.windows.begin()->first + size <= new_watermark) {
      auto node = ks.windows.extract(ks.windows.begin());
      impl_->CloseWindow(rs, key_str, ks, node.key(), node.mapped(), out);
    }
    rs.dirty.insert(key_str);
    if (w.idle_timeout.count() > 0) {
      rs.next_idle_check = std::min(rs.next_idle_check, now.count() + w.idle_timeout.count());
    }
  }
}

void Engine::Advance(Millis now, std::vector<Event>* out) {
  for (RuleState& rs : impl_->rules) {
    const std::int64_t idle = rs.rule->window.idle_timeout.count();
    if (idle <= 0 || now.count() < rs.next_idle_check) continue;
    rs.next_idle_check = std::numeric_limits<std::int64_t>::max();
    for (auto& [key_str, ks] : rs.keys) {
      if (ks.windows.empty()) continue;
      if (now.count() - ks.last_seen >= idle) {
        impl_->CloseAll(rs, key_str, ks, out);
        rs.dirty.insert(key_str);
      } else {
        rs.next_idle_check = std::min(rs.next_idle_check, ks.last_seen + idle);
      }
    }
  }
}

void Engine::Finish(std::vector<Event>* out) {
  for (RuleState& rs : impl_->rules) {
    for (auto& [key_str, ks] : rs.keys) {
      if (ks.windows.empty()) continue;
      impl_->CloseAll(rs, key_str, ks, out);
      rs.dirty.insert(key_str);
    }
  }
}

void Engine::TakeChanges(std::vector<StateChange>* out) {
  for (RuleState& rs : impl_->rules) {
    for (const auto& key_str : rs.dirty) {
      auto it = rs.keys.find(key_str);
      if (it == rs.keys.end()) {
        out->push_back({rs.rule->id, key_str, std::nullopt});
      } else {
        out->push_back({rs.rule->id, key_str, impl_->Serialize(rs, it->second)});
      }
    }
    rs.dirty.clear();
  }
}

bool Engine::Restore(const std::string& rule, const std::string& key, const std::string& bytes) {
  auto rs = std::find_if(impl_->rules.begin(), impl_->rules.end(),
                         [&](const RuleState& r) { return r.rule->id == rule; });
  if (rs == impl_->rules.end()) return false;
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  try {
    if (j.at("fp").get<std::string>() != rs->rule->fingerprint) return false;
    KeyState ks;
    ks.key = j.at("key").get<Tags>();
    if (EncodeKey(ks.key) != key) return false;
    ks.max_time = j.at("max_time").get<std::int64_t>();
    ks.closed_through = j.at("closed_through").get<std::int64_t>();
    ks.last_seen = j.at("last_seen").get<std::int64_t>();
    for (const auto& w : j.at("windows")) {
      std::vector<Acc> accs;
      for (const auto& a : w.at(1)) accs.push_back(AccFromJson(a));
      if (accs.size() != rs->rule->aggregates.size()) return false;
      ks.windows.emplace(w.at(0).get<std::int64_t>(), std::move(accs));
    }
    const json& a = j.at("alert");
    int state = a.at(0).get<int>();
    if (state < 0 || state > 2) return false;
    ks.state = static_cast<AlertState>(state);
    ks.since = a.at(1).get<std::int64_t>();
    ks.fired_at = a.at(2).get<std::int64_t>();
    ks.last_notify = a.at(3).get<std::int64_t>();
    ks.alert_id = a.at(4).get<std::string>();
    ks.summary = a.at(5).get<std::string>();
    if (!ks.windows.empty() && rs->rule->window.idle_timeout.count() > 0) {
      rs->next_idle_check =
          std::min(rs->next_idle_check, ks.last_seen + rs->rule->window.idle_timeout.count());
    }
    rs->keys[key] = std::move(ks);
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

std::vector<RuleStats> Engine::Stats() const {
  std::vector<RuleStats> out;
  for (const RuleState& rs : impl_->rules) {
    RuleStats s = rs.stats;
    s.keys = rs.keys.size();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<FiringAlert> Engine::Firing() const {
  std::vector<FiringAlert> out;
  for (const RuleState& rs : impl_->rules) {
    for (const auto& [key_str, ks] : rs.keys) {
      if (ks.state != AlertState::kFiring) continue;
      out.push_back({rs.rule->id, ks.key, ks.alert_id, rs.rule->alert->severity, ks.summary,
                     Millis(ks.fired_at)});
    }
  }
  return out;
}

std::size_t Engine::rule_count() const { return impl_->rules.size(); }

}  // namespace vigil::rules
