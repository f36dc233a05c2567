#include "rules/engine.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "rules/detector.h"
#include "rules/rule.h"
#include "rules/table.h"
#include "rules/window.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
// Key eviction (rules/README.md "Key eviction") happens at instants on grids aligned to the
// epoch, so that keys going silent one after another are evicted in batches, one scan each:
// under a key limit, a key becomes evictable at the first second past its quiet time.
constexpr std::int64_t kPressureGrid = 1'000;

// The first multiple of `step` at or after t.
std::int64_t GridUp(std::int64_t t, std::int64_t step) {
  const std::int64_t q = t / step, r = t % step;
  return (r > 0 ? q + 1 : q) * step;
}

// A key limit's marks: past the high-water mark (a 32nd below the limit), one-off keys that
// may go are evicted down to the low-water mark (a 16th below), so that a burst of new keys
// is not refused, nor a scan made, one key at a time; at the limit, any key that may go.
std::size_t LowWater(std::size_t limit) { return limit - std::max<std::size_t>(1, limit / 16); }
std::size_t HighWater(std::size_t limit) { return limit - std::max<std::size_t>(1, limit / 32); }

// The grid of idle eviction: a sixteenth of evict_after, from a second to a minute.
std::int64_t IdleGrid(std::int64_t evict_after) {
  return std::clamp<std::int64_t>(evict_after / 16, 1'000, 60'000);
}

// What an expression's tag names read: the reading's (or key's) tags, then the columns of
// the reference tables (`<table>.<column>`) in the row those tags select.
struct TagSource {
  const Tags* tags;
  const Tables* tables;

  const std::string* Find(std::string_view name) const {
    if (const std::string* v = FindTag(*tags, name)) return v;
    return tables->Lookup(*tags, name);
  }
};

const std::string* FindTagThunk(const void* source, std::string_view name) {
  return static_cast<const TagSource*>(source)->Find(name);
}

// The two inputs of a join (JoinSpec) buffered for one key: readings of each side that a
// later reading of the other side may still pair with, in arrival order.
struct JoinBuffer {
  struct Entry {
    std::int64_t t = 0;
    double value = 0;
  };
  std::vector<Entry> side[2];
};

enum class AlertState { kInactive = 0, kPending = 1, kFiring = 2 };

// What a key's alert keeps between evaluations (KeyState::episode).
struct AlertEpisode {
  std::int64_t since = 0;        // event time the condition was first seen true
  std::int64_t fired_at = 0;     // event time of the firing event
  std::int64_t last_notify = 0;  // event time of the last firing notification
  std::string alert_id;
  std::string summary;
};

struct KeyState {
  // The key's tags, shared by the keys of every rule with the same tags (Impl::InternKey): 100
  // rules grouping by device hold one copy per device.
  std::shared_ptr<const Tags> key;
  std::int64_t max_time = kNoTime;  // largest event time accepted (watermark base)
  std::int64_t last_seen = 0;       // processing time of the last accepted reading
  std::uint64_t arrivals = 0;  // readings accepted: orders equal event times; > 1: not a one-off
  std::unique_ptr<WindowState> windows;  // null for a detector-only rule
  std::unique_ptr<Detector> detector;    // null without a detector
  std::unique_ptr<JoinBuffer> join;      // null without a join
  // Alert lifecycle (SPEC §5); the episode is made when the alert first turns pending, as most
  // keys never alert (it would cost 80 bytes a key).
  AlertState state = AlertState::kInactive;
  std::unique_ptr<AlertEpisode> episode;
  bool dirty = false;  // listed in RuleState::dirty

  const AlertEpisode& Episode() const {
    static const AlertEpisode kNone;
    return episode ? *episode : kNone;
  }
  AlertEpisode& MutableEpisode() {
    if (!episode) episode = std::make_unique<AlertEpisode>();
    return *episode;
  }

  std::int64_t Watermark(const WindowSpec& w) const {
    return max_time == kNoTime ? kNoWatermark : max_time - w.lateness.count();
  }
};

struct RuleState {
  std::shared_ptr<const CompiledRule> rule;
  // Hashed for the per-reading lookup; walked in key order (Sorted) wherever the order of
  // output depends on it, so the engine stays deterministic across restores.
  std::unordered_map<std::string, KeyState> keys;
  // The rule's entry in `keys` by the slot of its group's key (Impl::group_slots); nullptr
  // where not looked up yet. Entries of an unordered_map stay put; an evicted one is cleared
  // here first (Impl::Evict).
  std::vector<std::pair<const std::string, KeyState>*> by_slot;
  std::vector<std::string> dirty;  // keys changed since TakeChanges (KeyState::dirty)
  bool dirty_descending = true;    // `dirty` sorted from the last key to the first
  std::size_t group = 0;           // rules with the same group_by share the key per reading
  std::int64_t next_idle_check = std::numeric_limits<std::int64_t>::max();
  std::int64_t next_absent_check = std::numeric_limits<std::int64_t>::max();
  // Idle eviction: no key of the rule is due before (a lower bound: a scan then looks).
  std::int64_t next_evict_check = kNever;
  std::size_t firing = 0;  // keys whose alert fires: Firing() walks no rule without any
  RuleStats stats;
  // Scratch for one reading: aggregate arguments and distinct() tags (no allocation per reading).
  std::vector<double> xs;
  std::vector<const std::string*> tags;
};

// Nothing of the key can still produce output but new readings: no open window, no pending
// or firing alert. (What its windows, join buffers and detector remember beyond that matters
// only to readings within the rule's quiet time: CompiledRule::quiet.)
bool Quiescent(const KeyState& ks) {
  return ks.state == AlertState::kInactive && !(ks.windows && ks.windows->HasOpen());
}

// After many evictions: hash tables sized for a flood give their buckets back.
template <typename Map>
void ShrinkIfSparse(Map& map) {
  if (map.bucket_count() > 1024 && map.size() < map.bucket_count() / 8) map.rehash(0);
}

// A key as text: tags joined with unit/record separators (never in topic levels).
void AppendKeyPart(std::string* out, const std::string& name, const std::string& value) {
  *out += name;
  out->push_back('\x1f');
  *out += value;
  out->push_back('\x1e');
}

std::string EncodeKey(const Tags& key) {
  std::string out;
  for (const auto& [name, value] : key) AppendKeyPart(&out, name, value);
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

std::string RenderSummary(const std::string& text,
                          const std::vector<std::pair<std::string, Value>>& values,
                          const TagSource& key) {
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
    for (std::size_t i = 0; i < values.size() && !done; ++i) {
      if (values[i].first != inner) continue;
      const Value& v = values[i].second;
      if (v.kind == Value::Kind::kBool) {
        out += v.number != 0 ? "true" : "false";
      } else {
        out += v.is_null() ? "null" : FormatNumber(v.number, decimals);
      }
      done = true;
    }
    if (!done) {
      const std::string* tag = key.Find(inner);
      char* end = nullptr;
      const double number = tag != nullptr && decimals >= 0 ? std::strtod(tag->c_str(), &end) : 0;
      if (tag == nullptr) {
        out += text.substr(open, close - open + 1);
      } else if (end != nullptr && end != tag->c_str() && *end == '\0' && std::isfinite(number)) {
        out += FormatNumber(number, decimals);  // {devices.max_temp:.1f} of a numeric cell
      } else {
        out += *tag;
      }
    }
    pos = close + 1;
  }
  return out;
}

void MarkDirty(RuleState& rs, const std::string& key_str, KeyState& ks) {
  if (ks.dirty) return;
  ks.dirty = true;
  rs.dirty.push_back(key_str);
  rs.dirty_descending = false;
}

// The keys of a rule (const or not) in key order.
template <typename Rule>
auto Sorted(Rule& rs) {
  using State = decltype(&rs.keys.begin()->second);
  std::vector<std::pair<const std::string*, State>> out;
  out.reserve(rs.keys.size());
  for (auto& [key_str, ks] : rs.keys) out.emplace_back(&key_str, &ks);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  return out;
}

void SaveJoin(const JoinBuffer& join, Packer& p) {
  p.Array(2);
  for (const auto& side : join.side) {
    p.Array(side.size());
    for (const auto& e : side) p.Array(2).Int(e.t).Double(e.value);
  }
}

// Throws json::exception on malformed input.
void LoadJoin(const Packed& j, JoinBuffer* join) {
  for (std::size_t i = 0; i < 2; ++i) {
    for (Packed e : j.at(i)) {
      join->side[i].push_back({e.at(0).get<std::int64_t>(), e.at(1).get<double>()});
    }
  }
}

// The reading a closed window of a rule with `output` publishes: the key's tags with
// `metric` set to the derived metric, at the last instant the window covers (tumbling and
// hopping: end − 1 ms, so that a downstream window of a multiple size holds the upstream
// windows it summarises; session: the last reading's time; sliding and count: their end).
Reading DerivedReading(const CompiledRule& rule, const Tags& key, WindowBounds bounds,
                       double value) {
  Reading r;
  r.metric = rule.output->metric;
  r.value = value;
  std::int64_t t = bounds.end.count();
  if (rule.window.type == WindowSpec::Type::kTumbling ||
      rule.window.type == WindowSpec::Type::kHopping) {
    t -= 1;
  } else if (rule.window.type == WindowSpec::Type::kSession) {
    t -= rule.window.gap.count();
  }
  r.time = Millis(t);
  r.tags.reserve(key.size() + 1);
  for (const auto& tag : key) {
    if (tag.first != "metric") r.tags.push_back(tag);
  }
  auto at =
      std::lower_bound(r.tags.begin(), r.tags.end(), std::string("metric"),
                       [](const auto& tag, const std::string& name) { return tag.first < name; });
  r.tags.insert(at, {"metric", r.metric});
  return r;
}

}  // namespace

struct Engine::Impl {
  std::string agent;
  // Key tags by their encoding (EncodeKey), for KeyState::key; expired ones are swept as the
  // map doubles.
  std::unordered_map<std::string, std::weak_ptr<const Tags>> interned_keys;
  std::size_t next_intern_sweep = 1024;
  std::shared_ptr<const Tags> InternKey(const std::string& encoded, const Tags& tags) {
    std::weak_ptr<const Tags>& slot = interned_keys[encoded];
    if (auto shared = slot.lock()) return shared;
    auto shared = std::make_shared<const Tags>(tags);
    slot = shared;
    if (interned_keys.size() >= next_intern_sweep) {
      std::erase_if(interned_keys, [](const auto& entry) { return entry.second.expired(); });
      next_intern_sweep = std::max<std::size_t>(1024, interned_keys.size() * 2);
    }
    return shared;
  }
  std::shared_ptr<const Tables> tables = std::make_shared<Tables>();
  std::vector<RuleState> rules;
  std::unordered_map<std::string, std::vector<std::size_t>> by_metric;
  std::vector<ClosedWindow> closed;  // scratch
  // Per reading: the key string of each group_by (computed once, shared by the rules).
  std::vector<std::string> group_keys;
  std::vector<std::uint64_t> group_key_reading;  // which reading group_keys[i] belongs to
  // Per group: a number for each key string some rule of the group holds, so that the rules
  // of a reading find their states with one hash lookup, not one each (RuleState::by_slot).
  std::vector<std::unordered_map<std::string, std::uint32_t>> group_slots;
  std::vector<std::uint32_t> group_slot;  // per reading: the slot of group_keys[i], or kNoSlot
  // Per group: how many of its rules point at each slot (RuleState::by_slot), and the slots
  // no rule points at any more, reused before new ones (evicted keys free theirs).
  std::vector<std::vector<std::uint32_t>> group_refs;
  std::vector<std::vector<std::uint32_t>> group_free;
  // The key budget (RuleSet::max_keys_total; 0: none) and the keys of all rules now.
  std::size_t max_keys_total = 0;
  std::size_t total_keys = 0;
  // Eviction under a key limit: nothing can be evicted before (a lower bound; EvictUnderPressure).
  std::int64_t next_pressure_check = kNever;
  // A reading (or join pair) was accepted for the key at `now`: the eviction schedules learn
  // when it may be evicted at the earliest (exact lower bounds, so that no Advance that would
  // evict skips its scan: what is evicted depends only on the keys' state and `now`).
  void Touched(RuleState& rs, std::int64_t now) {
    const CompiledRule& rule = *rs.rule;
    if (!rule.evictable) return;
    const std::int64_t after = rule.evict_after.count();
    if (after > 0) rs.next_evict_check = std::min(rs.next_evict_check, now + after);
    next_pressure_check = std::min(next_pressure_check, now + rule.quiet.count());
  }
  static constexpr std::uint32_t kNoSlot = std::numeric_limits<std::uint32_t>::max();
  std::uint64_t reading_number = 0;
  // Scratch of Emit and EvaluateAlert: no allocation per closed window once grown.
  std::vector<std::pair<std::string, Value>> values_scratch;
  std::vector<double> numbers_scratch;
  // Readings of derived metrics (`output`) produced by closed windows, not yet processed.
  std::vector<Reading> derived;
  std::string join_key;  // scratch

  TagSource Source(const Tags& tags) const { return {&tags, tables.get()}; }
  // Routes one reading (SPEC §3), then the derived readings its closed windows produce.
  void Process(const Reading& reading, Millis now, std::vector<Event>* out);
  // The slot of the reading's key in the rule's group (group_keys[rs.group] made once per
  // reading `number`), or kNoSlot when no rule of the group has that key yet.
  std::uint32_t GroupSlot(const RuleState& rs, const TagSource& source, std::uint64_t number);
  // Before a reading goes through its rules: their key states are looked up and fetched into
  // the cache together, so that the misses overlap instead of following one another (each
  // rule's state is a few objects spread over a heap of 100 MB and more).
  void Prefetch(const std::vector<std::size_t>& routed, const TagSource& source,
                std::uint64_t number);
  std::vector<const KeyState*> prefetched;  // scratch of Prefetch
  // One reading into a join rule: pairs it with the other side's buffered readings.
  void ProcessJoin(RuleState& rs, const Reading& reading, Millis now, std::vector<Event>* out);
  // The key's state, made when new (at `now`); end() when it would be one key past the
  // rule's max_keys or the key budget (counted).
  std::unordered_map<std::string, KeyState>::iterator FindOrAddKey(RuleState& rs,
                                                                   const std::string& key_str,
                                                                   const TagSource& source,
                                                                   Millis now);
  // Key eviction (Engine::Advance): drops one key from memory, its checkpoint row at the next
  // TakeChanges. Returns the entry after it.
  std::unordered_map<std::string, KeyState>::iterator Evict(
      RuleState& rs, std::unordered_map<std::string, KeyState>::iterator it);
  // Evicts the keys of each rule idle past its evict_after (when its check is due).
  bool EvictIdle(Millis now);
  // Evicts the oldest silent keys past their quiet time while a key limit is (nearly) reached.
  bool EvictUnderPressure(Millis now);
  // One accepted reading (or join pair) at `t` into the key's windows: the aggregates'
  // arguments evaluated once, the sample added.
  void AddSample(RuleState& rs, KeyState& ks, const EvalContext& ctx, const TagSource& tags,
                 std::int64_t t, std::int64_t watermark);
  // After the key's readings moved its watermark: closes the windows it reached, emits them,
  // and processes the derived readings they produced.
  void CloseReached(RuleState& rs, const std::string& key_str, KeyState& ks, Millis now,
                    std::vector<Event>* out);
  // A key's state from its checkpoint: false when the rule is unknown, changed or the bytes
  // are malformed. Reads only the rules (several threads may decode at once).
  bool Decode(const std::string& rule, const std::string& key, const std::string& bytes,
              std::size_t* index, KeyState* out) const;
  // Puts a decoded key's state in place.
  void Adopt(std::size_t index, const std::string& key, KeyState ks);
  // Processes the derived readings produced so far, at `now` (nullopt: each at its own time).
  void FlushDerived(std::optional<Millis> now, std::vector<Event>* out);

  // Emits the events of closed windows: aggregates, and the alert evaluation of each.
  void Emit(RuleState& rs, const std::string& key_str, KeyState& ks, std::vector<Event>* out);
  // Runs the alert lifecycle at event time `t` (window end, or the reading's time).
  void EvaluateAlert(RuleState& rs, const std::string& key_str, KeyState& ks,
                     const std::vector<std::pair<std::string, Value>>& values,
                     std::optional<WindowBounds> window, std::int64_t t, std::vector<Event>* out);
  // An alert event of the key's current episode (its alert_id and last summary), at `t`.
  Event AlertEvent(const RuleState& rs, const std::string& key_str, const KeyState& ks,
                   const std::string& state,
                   const std::vector<std::pair<std::string, Value>>& values,
                   std::optional<WindowBounds> window, std::int64_t t) const;
  // Appends value, score and anomaly of a detector's verdict on `x` to `values`.
  static void Detect(KeyState& ks, double x, std::int64_t t,
                     std::vector<std::pair<std::string, Value>>* values);
  std::string Serialize(const RuleState& rs, const KeyState& ks) const;
};

void Engine::Impl::Emit(RuleState& rs, const std::string& key_str, KeyState& ks,
                        std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  for (ClosedWindow& w : closed) {
    std::vector<std::pair<std::string, Value>>& values = values_scratch;
    values.clear();
    for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
      values.emplace_back(rule.aggregates[i].name, w.values[i]);
    }
    if (rule.emit_aggregate) {
      Event e;
      e.kind = "aggregate";
      e.agent = agent;
      e.rule = rule.id;
      e.key = *ks.key;
      e.values = values;
      e.window = w.bounds;
      e.time = w.bounds.end;
      std::vector<std::string> parts = {agent,
                                        rule.id,
                                        key_str,
                                        "aggregate",
                                        std::to_string(w.bounds.start.count()),
                                        std::to_string(w.bounds.end.count())};
      if (w.seq >= 0) parts.push_back(std::to_string(w.seq));
      e.id = StableHash(parts);
      out->push_back(std::move(e));
    }
    if (rule.detector) {
      // SPEC §12.18: the detector runs over the closed windows' `input` aggregate.
      for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
        if (rule.aggregates[i].name != rule.detector->input) continue;
        const Value& v = w.values[i];
        if (v.is_null()) {
          values.emplace_back("value", Value::Null());
          values.emplace_back("score", Value::Null());
          values.emplace_back("anomaly", Value::Bool(false));
        } else {
          Detect(ks, v.number, w.bounds.end.count(), &values);
        }
      }
    }
    if (rule.alert) EvaluateAlert(rs, key_str, ks, values, w.bounds, w.bounds.end.count(), out);
    if (rule.output) {
      const Value& v = w.values[rule.output->aggregate];
      if (!v.is_null() && std::isfinite(v.number)) {
        derived.push_back(DerivedReading(rule, *ks.key, w.bounds, v.number));
      }
    }
  }
  closed.clear();
}

void Engine::Impl::Detect(KeyState& ks, double x, std::int64_t t,
                          std::vector<std::pair<std::string, Value>>* values) {
  Detection d = ks.detector->Observe(x, t);
  values->emplace_back("value", Value::Double(x));
  values->emplace_back("score", d.ready ? Value::Double(d.score) : Value::Null());
  values->emplace_back("anomaly", Value::Bool(d.ready && d.anomaly));
}

Event Engine::Impl::AlertEvent(const RuleState& rs, const std::string& key_str, const KeyState& ks,
                               const std::string& state,
                               const std::vector<std::pair<std::string, Value>>& values,
                               std::optional<WindowBounds> window, std::int64_t t) const {
  const CompiledRule& rule = *rs.rule;
  Event e;
  e.kind = "alert";
  e.agent = agent;
  e.rule = rule.id;
  e.key = *ks.key;
  e.state = state;
  e.severity = rule.alert->severity;
  e.summary = ks.Episode().summary;
  e.labels = rule.alert->labels;
  e.values = values;
  e.window = window;
  e.time = Millis(t);
  e.alert_id = ks.Episode().alert_id;
  e.id = StableHash({agent, rule.id, key_str, "alert", e.alert_id, state, std::to_string(t)});
  return e;
}

void Engine::Impl::EvaluateAlert(RuleState& rs, const std::string& key_str, KeyState& ks,
                                 const std::vector<std::pair<std::string, Value>>& values,
                                 std::optional<WindowBounds> window, std::int64_t t,
                                 std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  const AlertSpec& alert = *rule.alert;
  std::vector<double>& numbers = numbers_scratch;
  numbers.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    numbers[i] = values[i].second.is_null() ? std::nan("") : values[i].second.number;
  }
  const TagSource key = Source(*ks.key);
  EvalContext ctx{numbers.data(), nullptr, &FindTagThunk, &key};
  const bool holds = alert.when->EvalBool(ctx);

  auto notify = [&](const std::string& state) {
    ks.MutableEpisode().last_notify = t;
    ks.MutableEpisode().summary = RenderSummary(alert.summary, values, key);
    if (rule.emit_alert) out->push_back(AlertEvent(rs, key_str, ks, state, values, window, t));
  };

  switch (ks.state) {
    case AlertState::kInactive:
      if (!holds) return;
      ks.state = AlertState::kPending;
      ks.MutableEpisode().since = t;
      [[fallthrough]];
    case AlertState::kPending:
      if (!holds) {
        ks.state = AlertState::kInactive;  // silently (SPEC §5)
        return;
      }
      if (AlertEpisode& ep = ks.MutableEpisode(); t - ep.since >= alert.for_duration.count()) {
        ks.state = AlertState::kFiring;
        ++rs.firing;
        ep.fired_at = t;
        ep.alert_id = StableHash({agent, rule.id, key_str, std::to_string(ep.since)});
        notify("firing");
      }
      return;
    case AlertState::kFiring: {
      bool clear = alert.clear_when ? alert.clear_when->EvalBool(ctx) : !holds;
      if (clear) {
        notify("resolved");
        ks.state = AlertState::kInactive;
        --rs.firing;
        ks.MutableEpisode().alert_id.clear();
      } else if (alert.repeat.count() > 0 && t - ks.Episode().last_notify >= alert.repeat.count()) {
        notify("firing");
      }
      return;
    }
  }
}

std::string Engine::Impl::Serialize(const RuleState& rs, const KeyState& ks) const {
  // MessagePack: smaller than JSON text, and doubles are kept as their bits, not printed and
  // parsed again (a restart with 100 000 keys reads them all). Written straight from the
  // state (rules/packed.h).
  std::string out;
  Packer p(&out);
  p.Map(9).Str("fp").Str(rs.rule->fingerprint).Str("key").Array(ks.key->size());
  for (const auto& [name, value] : *ks.key) p.Array(2).Str(name).Str(value);
  p.Str("max_time").Int(ks.max_time).Str("last_seen").Int(ks.last_seen);
  p.Str("arrivals").Uint(ks.arrivals).Str("windows");
  if (ks.windows) {
    ks.windows->Save(p);
  } else {
    p.Null();
  }
  p.Str("detector");
  if (ks.detector) {
    ks.detector->Save(p);
  } else {
    p.Null();
  }
  p.Str("join");
  if (ks.join) {
    SaveJoin(*ks.join, p);
  } else {
    p.Null();
  }
  const AlertEpisode& ep = ks.Episode();
  p.Str("alert").Array(6).Int(static_cast<int>(ks.state)).Int(ep.since).Int(ep.fired_at);
  p.Int(ep.last_notify).Str(ep.alert_id).Str(ep.summary);
  return out;
}

Engine::Engine(std::string agent_id, std::shared_ptr<const RuleSet> rules)
    : impl_(std::make_unique<Impl>()) {
  impl_->agent = std::move(agent_id);
  impl_->max_keys_total = rules->max_keys_total;
  for (const auto& rule : rules->rules) {
    RuleState rs;
    rs.rule = rule;
    rs.stats.rule = rule->id;
    rs.xs.resize(rule->aggregates.size());
    rs.tags.resize(rule->aggregates.size());
    rs.group = impl_->rules.size();
    for (const RuleState& other : impl_->rules) {
      if (other.rule->group_by_all == rule->group_by_all &&
          other.rule->group_by == rule->group_by) {
        rs.group = other.group;
        break;
      }
    }
    impl_->rules.push_back(std::move(rs));
    for (const auto& metric : rule->metrics) {
      impl_->by_metric[metric].push_back(impl_->rules.size() - 1);
    }
  }
}

Engine::~Engine() = default;

void Engine::SetTables(std::shared_ptr<const Tables> tables) {
  impl_->tables = tables ? std::move(tables) : std::make_shared<Tables>();
}

namespace {

// The key of a reading under a rule's group_by, encoded as EncodeKey(KeyTags(…)) would be,
// into a reused buffer (no allocation per reading once it has grown).
void KeyString(const CompiledRule& rule, const TagSource& tags, std::string* out) {
  out->clear();
  if (rule.group_by_all) {
    for (const auto& [name, value] : *tags.tags) AppendKeyPart(out, name, value);
  } else {
    for (const auto& name : rule.group_by) {
      if (const std::string* v = tags.Find(name)) AppendKeyPart(out, name, *v);
    }
  }
}

Tags KeyTags(const CompiledRule& rule, const TagSource& tags) {
  if (rule.group_by_all) return *tags.tags;
  Tags key;
  for (const auto& name : rule.group_by) {
    if (const std::string* v = tags.Find(name)) key.emplace_back(name, *v);
  }
  return key;
}

}  // namespace

void Engine::Process(const Reading& reading, Millis now, std::vector<Event>* out) {
  impl_->Process(reading, now, out);
}

void Engine::Impl::Process(const Reading& reading, Millis now, std::vector<Event>* out) {
  auto routed = by_metric.find(reading.metric);
  if (routed == by_metric.end()) return;
  const std::int64_t t = reading.time.count();
  // Numbers this reading's group keys: a derived reading processed on the way has its own.
  const std::uint64_t number = ++reading_number;
  const TagSource source = Source(reading.tags);
  if (routed->second.size() > 1) Prefetch(routed->second, source, number);
  for (std::size_t index : routed->second) {
    RuleState& rs = rules[index];
    const CompiledRule& rule = *rs.rule;
    if (rule.join) {
      ProcessJoin(rs, reading, now, out);
      continue;
    }
    const EvalContext ctx{&reading.value, nullptr, &FindTagThunk, &source};
    if (rule.where && !rule.where->EvalBool(ctx)) continue;
    const std::size_t g = rs.group;
    std::uint32_t slot = GroupSlot(rs, source, number);
    const std::string& key_str = group_keys[g];
    std::pair<const std::string, KeyState>* it =
        slot < rs.by_slot.size() ? rs.by_slot[slot] : nullptr;
    if (it == nullptr) {
      auto found = FindOrAddKey(rs, key_str, source, now);
      if (found == rs.keys.end()) continue;
      it = &*found;
      if (slot == kNoSlot) {
        if (group_free[g].empty()) {
          slot = static_cast<std::uint32_t>(group_refs[g].size());
          group_refs[g].push_back(0);
        } else {
          slot = group_free[g].back();
          group_free[g].pop_back();
        }
        group_slots[g].emplace(key_str, slot);
        group_slot[g] = slot;
      }
      if (rs.by_slot.size() <= slot) rs.by_slot.resize(slot + 1, nullptr);
      rs.by_slot[slot] = it;
      ++group_refs[g][slot];
    }
    KeyState& ks = it->second;
    if (!rule.has_window) {
      // A detector alone: each reading is scored and the alert evaluated at its time.
      ++rs.stats.evaluations;
      ++ks.arrivals;
      ks.last_seen = now.count();
      ks.max_time = std::max(ks.max_time, t);
      std::vector<std::pair<std::string, Value>> values;
      Impl::Detect(ks, reading.value, t, &values);
      if (rule.detector->method == DetectorSpec::Method::kAbsent) {
        values.back().second = Value::Bool(false);  // a reading: not absent
        rs.next_absent_check =
            std::min(rs.next_absent_check, now.count() + rule.detector->for_duration.count());
      }
      EvaluateAlert(rs, it->first, ks, values, std::nullopt, t, out);
      MarkDirty(rs, it->first, ks);
      Touched(rs, now.count());
      continue;
    }
    const WindowSpec& w = rule.window;
    if (ks.windows->IsLate(t, ks.Watermark(w))) {
      ++rs.stats.late_readings;
      continue;
    }
    AddSample(rs, ks, ctx, source, t, ks.Watermark(w));
    ks.last_seen = now.count();
    ks.max_time = std::max(ks.max_time, t);
    CloseReached(rs, it->first, ks, now, out);
  }
}

std::uint32_t Engine::Impl::GroupSlot(const RuleState& rs, const TagSource& source,
                                      std::uint64_t number) {
  if (group_keys.size() < rules.size()) {
    group_keys.resize(rules.size());
    group_key_reading.resize(rules.size(), 0);
    group_slots.resize(rules.size());
    group_slot.resize(rules.size(), kNoSlot);
    group_refs.resize(rules.size());
    group_free.resize(rules.size());
  }
  const std::size_t g = rs.group;
  if (group_key_reading[g] != number) {
    KeyString(*rs.rule, source, &group_keys[g]);
    group_key_reading[g] = number;
    auto slot = group_slots[g].find(group_keys[g]);
    group_slot[g] = slot == group_slots[g].end() ? kNoSlot : slot->second;
  }
  return group_slot[g];
}

void Engine::Impl::Prefetch(const std::vector<std::size_t>& routed, const TagSource& source,
                            std::uint64_t number) {
  prefetched.clear();
  for (std::size_t index : routed) {
    const RuleState& rs = rules[index];
    // A rule with a `where` may not take the reading: its key is not looked up before.
    if (rs.rule->join || rs.rule->where) continue;
    const std::uint32_t slot = GroupSlot(rs, source, number);
    if (slot >= rs.by_slot.size() || rs.by_slot[slot] == nullptr) continue;
    const KeyState* ks = &rs.by_slot[slot]->second;
    __builtin_prefetch(ks);
    __builtin_prefetch(&ks->windows);
    prefetched.push_back(ks);
  }
  // Level by level: the states, the objects they point to, what those point to.
  for (const KeyState* ks : prefetched) {
    __builtin_prefetch(ks->windows.get());
    __builtin_prefetch(ks->detector.get());
  }
  for (const KeyState* ks : prefetched) {
    if (ks->windows) ks->windows->Prefetch();
    if (ks->detector) ks->detector->Prefetch();
  }
}

void Engine::Impl::ProcessJoin(RuleState& rs, const Reading& reading, Millis now,
                               std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  const JoinSpec& join = *rule.join;
  const std::size_t side = reading.metric == join.metrics[0] ? 0 : 1;
  const TagSource source = Source(reading.tags);
  join_key.clear();
  for (const auto& name : join.on) {
    const std::string* v = source.Find(name);
    if (v == nullptr) {
      ++rs.stats.join_dropped;  // it cannot pair with anything
      return;
    }
    AppendKeyPart(&join_key, name, *v);
  }
  auto it = FindOrAddKey(rs, join_key, source, now);
  if (it == rs.keys.end()) return;
  KeyState& ks = it->second;
  const std::int64_t t = reading.time.count();
  // The join's own watermark: a reading further behind the key's newest than the join's
  // lateness is late (SPEC §5), and what no later reading can pair with is let go.
  if (ks.max_time != kNoTime && t < ks.max_time - join.lateness.count()) {
    ++rs.stats.late_readings;
    return;
  }
  const WindowSpec& w = rule.window;
  const std::int64_t watermark = ks.Watermark(w);
  const TagSource key = Source(*ks.key);
  for (const JoinBuffer::Entry& other : ks.join->side[1 - side]) {
    if (std::max(t, other.t) - std::min(t, other.t) > join.within.count()) continue;
    double pair[2];
    pair[side] = reading.value;
    pair[1 - side] = other.value;
    const std::int64_t pair_time = std::max(t, other.t);
    const EvalContext ctx{pair, nullptr, &FindTagThunk, &key};
    if (rule.where && !rule.where->EvalBool(ctx)) continue;
    if (ks.windows->IsLate(pair_time, watermark)) {
      ++rs.stats.late_readings;
      continue;
    }
    AddSample(rs, ks, ctx, key, pair_time, watermark);
  }
  std::vector<JoinBuffer::Entry>& mine = ks.join->side[side];
  mine.push_back({t, reading.value});
  if (mine.size() > join.max_buffer) {
    mine.erase(mine.begin());  // the oldest arrival
    ++rs.stats.join_dropped;
  }
  ks.last_seen = now.count();
  ks.max_time = std::max(ks.max_time, t);
  const std::int64_t keep_from = ks.max_time - join.lateness.count() - join.within.count();
  for (auto& buffered : ks.join->side) {
    std::erase_if(buffered, [&](const JoinBuffer::Entry& e) { return e.t < keep_from; });
  }
  CloseReached(rs, it->first, ks, now, out);
}

std::unordered_map<std::string, KeyState>::iterator Engine::Impl::FindOrAddKey(
    RuleState& rs, const std::string& key_str, const TagSource& source, Millis now) {
  auto it = rs.keys.find(key_str);
  if (it != rs.keys.end()) return it;
  const CompiledRule& rule = *rs.rule;
  if (rs.keys.size() >= rule.max_keys) {
    ++rs.stats.dropped_keys;
    return rs.keys.end();
  }
  if (max_keys_total > 0 && total_keys >= max_keys_total) {
    ++rs.stats.budget_dropped;
    return rs.keys.end();
  }
  it = rs.keys.emplace(key_str, KeyState{}).first;
  ++total_keys;
  // Past a limit's high-water mark, or at the limit: keys already evictable may have to go.
  if ((max_keys_total > 0 &&
       (total_keys == HighWater(max_keys_total) + 1 || total_keys == max_keys_total)) ||
      rs.keys.size() == HighWater(rule.max_keys) + 1 || rs.keys.size() == rule.max_keys) {
    next_pressure_check = std::min(next_pressure_check, now.count());
  }
  Tags tags = KeyTags(rule, source);
  it->second.key = InternKey(EncodeKey(tags), tags);
  if (rule.has_window) it->second.windows = MakeWindowState(rule);
  if (rule.detector) it->second.detector = MakeDetector(*rule.detector);
  if (rule.join) it->second.join = std::make_unique<JoinBuffer>();
  return it;
}

void Engine::Impl::AddSample(RuleState& rs, KeyState& ks, const EvalContext& ctx,
                             const TagSource& tags, std::int64_t t, std::int64_t watermark) {
  const CompiledRule& rule = *rs.rule;
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
    const AggregateSpec& spec = rule.aggregates[i];
    rs.xs[i] = spec.arg ? spec.arg->EvalNumber(ctx) : 0;
    rs.tags[i] = spec.fn == AggregateSpec::Fn::kDistinct ? tags.Find(spec.tag) : nullptr;
  }
  ++rs.stats.evaluations;
  Sample sample{t, ks.arrivals++, rs.xs.data(), rs.tags.data()};
  ks.windows->Add(sample, watermark, &closed);
}

void Engine::Impl::CloseReached(RuleState& rs, const std::string& key_str, KeyState& ks, Millis now,
                                std::vector<Event>* out) {
  const WindowSpec& w = rs.rule->window;
  ks.windows->Advance(ks.Watermark(w), &closed);
  Emit(rs, key_str, ks, out);
  MarkDirty(rs, key_str, ks);
  if (w.idle_timeout.count() > 0) {
    rs.next_idle_check = std::min(rs.next_idle_check, now.count() + w.idle_timeout.count());
  }
  Touched(rs, now.count());
  FlushDerived(now, out);
}

void Engine::Impl::FlushDerived(std::optional<Millis> now, std::vector<Event>* out) {
  while (!derived.empty()) {
    std::vector<Reading> batch;
    batch.swap(derived);
    for (const Reading& r : batch) Process(r, now.value_or(r.time), out);
  }
}

bool Engine::Advance(Millis now, std::vector<Event>* out) {
  bool changed = false;
  for (RuleState& rs : impl_->rules) {
    const auto& detector = rs.rule->detector;
    if (detector && detector->method == DetectorSpec::Method::kAbsent &&
        now.count() >= rs.next_absent_check) {
      // `absent`, by processing time: a key silent for `for` fires (time = now); a firing
      // one is re-evaluated (repeat) until a reading resolves it.
      const std::int64_t wait = detector->for_duration.count();
      rs.next_absent_check = std::numeric_limits<std::int64_t>::max();
      changed = true;
      for (auto& [key_str, ks] : Sorted(rs)) {
        const std::int64_t silent = now.count() - ks->last_seen;
        if (silent >= wait) {
          std::vector<std::pair<std::string, Value>> values = {
              {"value", Value::Null()},
              {"score", Value::Double(static_cast<double>(silent) / 1000.0)},
              {"anomaly", Value::Bool(true)}};
          impl_->EvaluateAlert(rs, *key_str, *ks, values, std::nullopt, now.count(), out);
          MarkDirty(rs, *key_str, *ks);
          rs.next_absent_check = std::min(rs.next_absent_check, now.count() + 1000);
        } else {
          rs.next_absent_check = std::min(rs.next_absent_check, ks->last_seen + wait);
        }
      }
    }
    if (!rs.rule->has_window) continue;
    const std::int64_t idle = rs.rule->window.idle_timeout.count();
    if (idle <= 0 || now.count() < rs.next_idle_check) continue;
    rs.next_idle_check = std::numeric_limits<std::int64_t>::max();
    changed = true;
    for (auto& [key_str, ks] : Sorted(rs)) {
      if (!ks->windows->HasOpen()) continue;
      if (now.count() - ks->last_seen >= idle) {
        ks->windows->CloseAll(&impl_->closed);
        impl_->Emit(rs, *key_str, *ks, out);
        MarkDirty(rs, *key_str, *ks);
        impl_->FlushDerived(now, out);
      } else {
        rs.next_idle_check = std::min(rs.next_idle_check, ks->last_seen + idle);
      }
    }
  }
  // After the timers: a window an idle timeout just closed no longer holds its key.
  changed = impl_->EvictIdle(now) || changed;
  changed = impl_->EvictUnderPressure(now) || changed;
  return changed;
}

std::unordered_map<std::string, KeyState>::iterator Engine::Impl::Evict(
    RuleState& rs, std::unordered_map<std::string, KeyState>::iterator it) {
  const std::string& key_str = it->first;
  const KeyState& ks = it->second;
  const std::size_t g = rs.group;
  if (g < group_slots.size()) {
    auto slot_it = group_slots[g].find(key_str);
    if (slot_it != group_slots[g].end()) {
      const std::uint32_t slot = slot_it->second;
      if (slot < rs.by_slot.size() && rs.by_slot[slot] == &*it) {
        rs.by_slot[slot] = nullptr;
        if (--group_refs[g][slot] == 0) {  // no rule of the group points at it: reusable
          group_slots[g].erase(slot_it);
          group_free[g].push_back(slot);
          group_key_reading[g] = 0;  // the per-reading cache may name the freed slot
        }
      }
    }
  }
  if (!ks.dirty) {  // its row is deleted at the next TakeChanges
    rs.dirty.push_back(key_str);
    rs.dirty_descending = false;
  }
  if (ks.key.use_count() == 1) interned_keys.erase(key_str);
  ++rs.stats.evicted;
  --total_keys;
  return rs.keys.erase(it);
}

bool Engine::Impl::EvictIdle(Millis now) {
  bool evicted = false;
  const std::int64_t t = now.count();
  for (RuleState& rs : rules) {
    const CompiledRule& rule = *rs.rule;
    const std::int64_t after = rule.evict_after.count();
    if (!rule.evictable || after <= 0 || t < rs.next_evict_check) continue;
    // A key is due at the first grid instant at or after last_seen + evict_after; a due key
    // that is not quiescent stays so until its next reading (Touched schedules it again).
    const std::int64_t grid = IdleGrid(after);
    std::int64_t next = kNever;
    const std::size_t before = rs.keys.size();
    for (auto it = rs.keys.begin(); it != rs.keys.end();) {
      const KeyState& ks = it->second;
      const std::int64_t due = GridUp(ks.last_seen + after, grid);
      if (t < due) {
        next = std::min(next, due);
      } else if (Quiescent(ks)) {
        it = Evict(rs, it);
        continue;
      }
      ++it;
    }
    rs.next_evict_check = next;
    if (rs.keys.size() != before) {
      evicted = true;
      ShrinkIfSparse(rs.keys);
      if (rs.group < group_slots.size()) ShrinkIfSparse(group_slots[rs.group]);
    }
  }
  if (evicted) ShrinkIfSparse(interned_keys);
  return evicted;
}

bool Engine::Impl::EvictUnderPressure(Millis now) {
  const std::int64_t t = now.count();
  if (t < next_pressure_check) return false;
  using Entry = std::unordered_map<std::string, KeyState>::iterator;
  struct Candidate {
    std::int64_t last_seen;
    std::size_t rule;
    Entry entry;
  };
  // Oldest silent first; ties by rule, then key: the same keys go whatever the map's order.
  auto older = [](const Candidate& a, const Candidate& b) {
    if (a.last_seen != b.last_seen) return a.last_seen < b.last_seen;
    if (a.rule != b.rule) return a.rule < b.rule;
    return a.entry->first < b.entry->first;
  };
  std::vector<Candidate> candidates;
  std::int64_t next = kNever;  // when a key not evictable yet may become so without a reading
  // The keys of rule `index` of one tier (0: at most one reading, the shape of a flood of fake
  // ids; 1: the others) that may go now: nothing pending, no warm detector, silent past the
  // rule's quiet time (rounded up to the second).
  auto collect = [&](std::size_t index, int tier) {
    RuleState& rs = rules[index];
    const CompiledRule& rule = *rs.rule;
    if (!rule.evictable) return;
    for (auto it = rs.keys.begin(); it != rs.keys.end(); ++it) {
      const KeyState& ks = it->second;
      if ((ks.arrivals > 1 ? 1 : 0) != tier) continue;
      // Until its next reading (Touched): a warm detector, an alert not inactive, a window
      // that only the watermark closes.
      if (ks.detector && ks.detector->Warm()) continue;
      const bool open = ks.windows && ks.windows->HasOpen();
      if (open ? rule.window.idle_timeout.count() <= 0 : ks.state != AlertState::kInactive) {
        continue;
      }
      const std::int64_t eligible = GridUp(ks.last_seen + rule.quiet.count(), kPressureGrid);
      if (t < eligible) {
        next = std::min(next, eligible);  // also a window its idle timeout closes before
      } else if (!open && ks.state == AlertState::kInactive) {
        candidates.push_back({ks.last_seen, index, it});
      }
    }
  };
  // Past its high-water mark, brings `count()` of a limit down to its low-water mark with
  // the oldest candidates of the rules `for_each_rule` names (one, or every rule): one-off
  // keys first, then, if the limit is still reached, the others.
  auto relieve = [&](auto count, std::size_t limit, auto for_each_rule) {
    std::size_t evicted = 0;
    const std::size_t low = LowWater(limit);
    if (count() <= HighWater(limit)) return evicted;
    for (int tier = 0; tier < 2 && count() > low; ++tier) {
      if (tier == 1 && count() < limit) break;
      candidates.clear();
      for_each_rule([&](std::size_t index) { collect(index, tier); });
      std::size_t need = std::min(count() - low, candidates.size());
      if (need < candidates.size()) {
        std::nth_element(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(need),
                         candidates.end(), older);
      }
      for (std::size_t i = 0; i < need; ++i) Evict(rules[candidates[i].rule], candidates[i].entry);
      evicted += need;
    }
    return evicted;
  };

  std::size_t evicted = 0;
  for (std::size_t i = 0; i < rules.size(); ++i) {  // each rule's own max_keys
    RuleState& rs = rules[i];
    evicted +=
        relieve([&rs] { return rs.keys.size(); }, rs.rule->max_keys, [i](auto each) { each(i); });
  }
  if (max_keys_total > 0) {
    evicted += relieve([this] { return total_keys; }, max_keys_total,
                       [this](auto each) {
                         for (std::size_t i = 0; i < rules.size(); ++i) each(i);
                       });
  }
  candidates.clear();
  candidates.shrink_to_fit();
  // Under every high-water mark: nothing to look at until a new key passes one (FindOrAddKey).
  bool over = max_keys_total > 0 && total_keys > HighWater(max_keys_total);
  for (const RuleState& rs : rules) over = over || rs.keys.size() > HighWater(rs.rule->max_keys);
  next_pressure_check = over ? std::max(next, t + 1) : kNever;
  if (evicted > 0) {
    for (RuleState& rs : rules) {
      ShrinkIfSparse(rs.keys);
      if (rs.group < group_slots.size()) ShrinkIfSparse(group_slots[rs.group]);
    }
    ShrinkIfSparse(interned_keys);
  }
  return evicted > 0;
}

void Engine::Finish(std::vector<Event>* out) {
  for (RuleState& rs : impl_->rules) {
    if (!rs.rule->has_window) continue;
    for (auto& [key_str, ks] : Sorted(rs)) {
      if (!ks->windows->HasOpen()) continue;
      ks->windows->CloseAll(&impl_->closed);
      impl_->Emit(rs, *key_str, *ks, out);
      MarkDirty(rs, *key_str, *ks);
      // Rules are in dependency order: the rules reading this output close theirs later.
      impl_->FlushDerived(std::nullopt, out);
    }
  }
}

void Engine::TakeChanges(std::vector<StateChange>* out) {
  for (RuleState& rs : impl_->rules) {
    std::sort(rs.dirty.begin(), rs.dirty.end());
    for (const auto& key_str : rs.dirty) {
      auto it = rs.keys.find(key_str);
      if (it == rs.keys.end()) {
        out->push_back({rs.rule->id, key_str, std::nullopt});
      } else {
        it->second.dirty = false;
        out->push_back({rs.rule->id, key_str, impl_->Serialize(rs, it->second)});
      }
    }
    rs.dirty.clear();
  }
}

bool Engine::TakeChanges(std::vector<StateChange>* out, std::size_t max) {
  bool taken = false;
  for (RuleState& rs : impl_->rules) {
    // Taken from the back in key order: the store updates its rows in the order of its
    // index, each page of it read and written once, not once for every row.
    if (!rs.dirty_descending) {
      std::sort(rs.dirty.begin(), rs.dirty.end(), std::greater<>());
      rs.dirty_descending = true;
    }
    while (!rs.dirty.empty() && max > 0) {
      std::string key_str = std::move(rs.dirty.back());
      rs.dirty.pop_back();
      auto it = rs.keys.find(key_str);
      if (it == rs.keys.end()) {
        out->push_back({rs.rule->id, std::move(key_str), std::nullopt});
      } else {
        it->second.dirty = false;
        out->push_back({rs.rule->id, std::move(key_str), impl_->Serialize(rs, it->second)});
      }
      --max;
      taken = true;
    }
  }
  return taken;
}

bool Engine::HasChanges() const {
  return std::any_of(impl_->rules.begin(), impl_->rules.end(),
                     [](const RuleState& rs) { return !rs.dirty.empty(); });
}

void Engine::MarkAllChanged() {
  for (RuleState& rs : impl_->rules) {
    for (auto& [key_str, ks] : rs.keys) MarkDirty(rs, key_str, ks);
  }
}

bool Engine::Impl::Decode(const std::string& rule, const std::string& key, const std::string& bytes,
                          std::size_t* index, KeyState* out) const {
  auto rs = std::find_if(rules.begin(), rules.end(),
                         [&](const RuleState& r) { return r.rule->id == rule; });
  if (rs == rules.end()) return false;
  *index = static_cast<std::size_t>(rs - rules.begin());
  const CompiledRule& r = *rs->rule;
  try {
    // MessagePack, or JSON text (it starts with `{`) as earlier versions wrote it.
    std::string converted;
    if (!bytes.empty() && bytes.front() == '{') json::to_msgpack(json::parse(bytes), converted);
    const auto [fp, key_tags, max_time, last_seen, arrivals, windows, join, detector, a] =
        Packed::Parse(converted.empty() ? bytes : converted)
            .Fields<9>({"fp", "key", "max_time", "last_seen", "arrivals", "windows", "join",
                        "detector", "alert"});
    if (fp.Str() != r.fingerprint) return false;
    KeyState ks;
    Tags tags;
    for (Packed tag : key_tags) tags.emplace_back(tag.at(0).Str(), tag.at(1).Str());
    if (EncodeKey(tags) != key) return false;
    ks.key = std::make_shared<const Tags>(std::move(tags));  // shared by Adopt
    ks.max_time = max_time.get<std::int64_t>();
    ks.last_seen = last_seen.get<std::int64_t>();
    ks.arrivals = arrivals.get<std::uint64_t>();
    if (r.has_window) {
      ks.windows = MakeWindowState(r);
      ks.windows->Load(windows);
    }
    if (r.join) {
      ks.join = std::make_unique<JoinBuffer>();
      LoadJoin(join, ks.join.get());
    }
    if (r.detector) {
      ks.detector = MakeDetector(*r.detector);
      ks.detector->Load(detector);
    }
    const auto [state_at, since, fired_at, last_notify, alert_id, summary] = a.Elements<6>();
    int state = state_at.get<int>();
    if (state < 0 || state > 2) return false;
    ks.state = static_cast<AlertState>(state);
    AlertEpisode ep{since.get<std::int64_t>(), fired_at.get<std::int64_t>(),
                    last_notify.get<std::int64_t>(), alert_id.get<std::string>(),
                    summary.get<std::string>()};
    if (ks.state != AlertState::kInactive || ep.since != 0 || ep.fired_at != 0 ||
        ep.last_notify != 0 || !ep.alert_id.empty() || !ep.summary.empty()) {
      ks.episode = std::make_unique<AlertEpisode>(std::move(ep));
    }
    *out = std::move(ks);
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

void Engine::Impl::Adopt(std::size_t index, const std::string& key, KeyState ks) {
  RuleState& rs = rules[index];
  const CompiledRule& r = *rs.rule;
  if (r.detector && r.detector->method == DetectorSpec::Method::kAbsent) {
    rs.next_absent_check =
        std::min(rs.next_absent_check, ks.last_seen + r.detector->for_duration.count());
  }
  if (ks.windows && ks.windows->HasOpen() && r.window.idle_timeout.count() > 0) {
    rs.next_idle_check = std::min(rs.next_idle_check, ks.last_seen + r.window.idle_timeout.count());
  }
  if (r.evictable && r.evict_after.count() > 0) {
    rs.next_evict_check = std::min(rs.next_evict_check, ks.last_seen + r.evict_after.count());
  }
  next_pressure_check = kNoTime;  // the next Advance sees whether a limit is (nearly) reached
  ks.key = InternKey(key, *ks.key);
  auto [it, added] = rs.keys.try_emplace(key);
  if (added) ++total_keys;
  KeyState& slot = it->second;
  if (slot.state == AlertState::kFiring) --rs.firing;
  slot = std::move(ks);
  if (slot.state == AlertState::kFiring) ++rs.firing;
}

bool Engine::Restore(const std::string& rule, const std::string& key, const std::string& bytes) {
  std::size_t index = 0;
  KeyState ks;
  if (!impl_->Decode(rule, key, bytes, &index, &ks)) return false;
  impl_->Adopt(index, key, std::move(ks));
  return true;
}

std::vector<bool> Engine::RestoreMany(const std::vector<StateChange>& rows, unsigned threads) {
  // Decoding is most of a restart's work and touches nothing shared: it is split among
  // threads, each a contiguous part of the rows; the keys are then adopted in row order.
  struct Decoded {
    bool ok = false;
    std::size_t index = 0;
    KeyState ks;
  };
  std::vector<Decoded> decoded(rows.size());
  auto decode = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      const StateChange& row = rows[i];
      decoded[i].ok = row.bytes && impl_->Decode(row.rule, row.key, *row.bytes, &decoded[i].index,
                                                 &decoded[i].ks);
    }
  };
  const std::size_t parts = std::clamp<std::size_t>(rows.size() / 256, 1, std::max(threads, 1u));
  std::vector<std::thread> workers;
  for (std::size_t p = 1; p < parts; ++p) {
    workers.emplace_back(decode, rows.size() * p / parts, rows.size() * (p + 1) / parts);
  }
  decode(0, rows.size() / parts);
  for (auto& w : workers) w.join();
  std::vector<bool> ok(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ok[i] = decoded[i].ok;
    if (ok[i]) impl_->Adopt(decoded[i].index, rows[i].key, std::move(decoded[i].ks));
  }
  return ok;
}

void Engine::SnapshotAll(std::vector<StateChange>* out) const {
  for (const RuleState& rs : impl_->rules) {
    for (const auto& [key_str, ks] : Sorted(rs)) {
      out->push_back({rs.rule->id, *key_str, impl_->Serialize(rs, *ks)});
    }
  }
}

void Engine::ResolveFiring(const std::string& rule, Millis now, std::vector<Event>* out) {
  for (RuleState& rs : impl_->rules) {
    if (rs.rule->id != rule || !rs.rule->alert) continue;
    for (auto& [key_str, ks] : Sorted(rs)) {
      if (ks->state != AlertState::kFiring) continue;
      out->push_back(
          impl_->AlertEvent(rs, *key_str, *ks, "resolved", {}, std::nullopt, now.count()));
      ks->state = AlertState::kInactive;
      --rs.firing;
      ks->MutableEpisode().alert_id.clear();
    }
  }
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
  std::vector<std::pair<const std::string*, const KeyState*>> firing;
  for (const RuleState& rs : impl_->rules) {
    if (!rs.rule->alert || rs.firing == 0) continue;
    // Few keys fire: find them, then sort only those.
    firing.clear();
    for (const auto& [key_str, ks] : rs.keys) {
      if (ks.state == AlertState::kFiring) firing.emplace_back(&key_str, &ks);
      if (firing.size() == rs.firing) break;
    }
    std::sort(firing.begin(), firing.end(),
              [](const auto& a, const auto& b) { return *a.first < *b.first; });
    for (const auto& [key_str, ks] : firing) {
      const AlertEpisode& ep = ks->Episode();
      out.push_back({rs.rule->id, *ks->key, ep.alert_id, rs.rule->alert->severity, ep.summary,
                     Millis(ep.fired_at), rs.rule->alert->labels});
    }
  }
  return out;
}

std::size_t Engine::rule_count() const { return impl_->rules.size(); }

std::string Engine::SaveTimers() const {
  std::string out;
  for (const RuleState& rs : impl_->rules) {
    out += rs.rule->id + ' ' + rs.rule->fingerprint + ' ' + std::to_string(rs.next_idle_check) +
           ' ' + std::to_string(rs.next_absent_check) + '\n';
  }
  return out;
}

void Engine::RestoreTimers(const std::string& saved) {
  std::map<std::string_view, RuleState*> by_id;
  for (RuleState& rs : impl_->rules) by_id[rs.rule->id] = &rs;
  std::string_view rest = saved;
  while (!rest.empty()) {
    const std::size_t eol = rest.find('\n');
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    std::string_view fields[4];
    std::size_t n = 0;
    for (std::string_view l = line; n < 4 && !l.empty(); ++n) {
      const std::size_t sp = l.find(' ');
      fields[n] = l.substr(0, sp);
      l = sp == std::string_view::npos ? std::string_view() : l.substr(sp + 1);
    }
    if (n != 4) continue;
    auto it = by_id.find(fields[0]);
    if (it == by_id.end() || it->second->rule->fingerprint != fields[1]) continue;
    std::int64_t idle = 0;
    std::int64_t absent = 0;
    auto read = [](std::string_view f, std::int64_t* v) {
      auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), *v);
      return ec == std::errc() && end == f.data() + f.size();
    };
    if (!read(fields[2], &idle) || !read(fields[3], &absent)) continue;
    it->second->next_idle_check = idle;
    it->second->next_absent_check = absent;
  }
}

}  // namespace vigil::rules
