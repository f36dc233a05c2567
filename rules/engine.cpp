#include "rules/engine.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "rules/engine_alert.h"
#include "rules/engine_codec.h"
#include "rules/engine_join.h"
#include "rules/engine_keys.h"

// The engine routes: a reading goes to the rules of its metric, each finds its key's state in
// the key index (engine_keys.h), feeds the key's windows, detector or join buffer
// (engine_join.h), and the closed windows' values go through the alert lifecycle
// (engine_alert.h); checkpoints go through the codec (engine_codec.h).

namespace vigil::rules {
namespace {

using internal::AlertState;
using internal::KeyState;
using internal::RuleState;
using internal::TagSource;
using internal::Values;

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

// Appends value, score and anomaly of a detector's verdict on `x` to `values`.
void Detect(KeyState& ks, double x, std::int64_t t, Values* values) {
  Detection d = ks.detector->Observe(x, t);
  values->emplace_back("value", Value::Double(x));
  values->emplace_back("score", d.ready ? Value::Double(d.score) : Value::Null());
  values->emplace_back("anomaly", Value::Bool(d.ready && d.anomaly));
}

}  // namespace

struct Engine::Impl {
  Impl(std::string agent_id, std::size_t max_keys_total)
      : agent(std::move(agent_id)), index(max_keys_total), alerts(agent) {}

  std::string agent;
  std::shared_ptr<const Tables> tables = std::make_shared<Tables>();
  internal::KeyIndex index;         // every rule's keys (index.rules, in the RuleSet's order)
  internal::AlertLifecycle alerts;  // the alerts of all rules
  std::unordered_map<std::string, std::vector<std::size_t>> by_metric;
  std::vector<ClosedWindow> closed;  // scratch
  std::uint64_t reading_number = 0;
  // Scratch of Emit: no allocation per closed window once grown.
  Values values_scratch;
  // Readings of derived metrics (`output`) produced by closed windows, not yet processed.
  std::vector<Reading> derived;
  std::string join_key;  // scratch

  TagSource Source(const Tags& tags) const { return {&tags, tables.get()}; }
  // Routes one reading (SPEC §3), then the derived readings its closed windows produce.
  void Process(const Reading& reading, Millis now, std::vector<Event>* out);
  // One reading into a join rule: pairs it with the other side's buffered readings.
  void ProcessJoin(RuleState& rs, const Reading& reading, Millis now, std::vector<Event>* out);
  // One accepted reading (or join pair) at `t` into the key's windows: the aggregates'
  // arguments evaluated once, the sample added.
  void AddSample(RuleState& rs, KeyState& ks, const EvalContext& ctx, const TagSource& tags,
                 std::int64_t t, std::int64_t watermark);
  // After the key's readings moved its watermark: closes the windows it reached, emits them,
  // and processes the derived readings they produced.
  void CloseReached(RuleState& rs, KeyState& ks, Millis now, std::vector<Event>* out);
  // Processes the derived readings produced so far, at `now` (nullopt: each at its own time).
  void FlushDerived(std::optional<Millis> now, std::vector<Event>* out);
  // Emits the events of closed windows: aggregates, and the alert evaluation of each.
  void Emit(RuleState& rs, const std::string& key_str, KeyState& ks, std::vector<Event>* out);
  // The alert lifecycle at event time `t` (window end, or the reading's time).
  void EvaluateAlert(RuleState& rs, const std::string& key_str, KeyState& ks, const Values& values,
                     std::optional<WindowBounds> window, std::int64_t t, std::vector<Event>* out) {
    alerts.Evaluate(rs, key_str, ks, Source(rs.TagsOf(ks)), values, window, t, out);
  }
  // The rule `rule`'s index, or false.
  bool Find(const std::string& rule, std::size_t* at) const {
    const auto& rules = index.rules;
    auto rs = std::find_if(rules.begin(), rules.end(),
                           [&](const RuleState& r) { return r.rule->id == rule; });
    if (rs == rules.end()) return false;
    *at = static_cast<std::size_t>(rs - rules.begin());
    return true;
  }
};

void Engine::Impl::Emit(RuleState& rs, const std::string& key_str, KeyState& ks,
                        std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  for (ClosedWindow& w : closed) {
    Values& values = values_scratch;
    values.clear();
    for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
      values.emplace_back(rule.aggregates[i].name, w.values[i]);
    }
    if (rule.emit_aggregate) {
      Event e;
      e.kind = EventKind::kAggregate;
      e.agent = agent;
      e.rule = rule.id;
      e.key = rs.TagsOf(ks);
      e.values = values;
      e.window = w.bounds;
      e.time = w.bounds.end;
      std::vector<std::string> parts = {agent,
                                        rule.id,
                                        key_str,
                                        EventKindName(EventKind::kAggregate),
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
        derived.push_back(DerivedReading(rule, rs.TagsOf(ks), w.bounds, v.number));
      }
    }
  }
  closed.clear();
}

Engine::Engine(std::string agent_id, const std::shared_ptr<const RuleSet>& rules)
    : impl_(std::make_unique<Impl>(std::move(agent_id), rules->max_keys_total)) {
  for (const auto& rule : rules->rules) {
    impl_->index.AddRule(rule);
    for (const auto& metric : rule->metrics) {
      impl_->by_metric[metric].push_back(impl_->index.rules.size() - 1);
    }
  }
}

Engine::~Engine() = default;

void Engine::SetTables(std::shared_ptr<const Tables> tables) {
  impl_->tables = tables ? std::move(tables) : std::make_shared<Tables>();
}

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
  if (routed->second.size() > 1) index.Prefetch(routed->second, source, number);
  for (std::size_t i : routed->second) {
    RuleState& rs = index.rules[i];
    const CompiledRule& rule = *rs.rule;
    if (rule.join) {
      ProcessJoin(rs, reading, now, out);
      continue;
    }
    const EvalContext ctx{&reading.value, nullptr, &internal::FindTagThunk, &source};
    if (rule.where && !rule.where->EvalBool(ctx)) continue;
    KeyState* found = index.Lookup(rs, source, number, now);
    if (found == nullptr) continue;
    KeyState& ks = *found;
    if (!rule.has_window) {
      // A detector alone: each reading is scored and the alert evaluated at its time.
      ++rs.stats.evaluations;
      ++ks.arrivals;
      ks.last_seen = now.count();
      ks.max_time = std::max(ks.max_time, t);
      Values values;
      Detect(ks, reading.value, t, &values);
      if (rule.detector->method == DetectorSpec::Method::kAbsent) {
        values.back().second = Value::Bool(false);  // a reading: not absent
        rs.next_absent_check =
            std::min(rs.next_absent_check, now.count() + rule.detector->for_duration.count());
      }
      EvaluateAlert(rs, rs.KeyOf(ks), ks, values, std::nullopt, t, out);
      internal::MarkDirty(rs, ks);
      index.Touched(rs, now.count());
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
    CloseReached(rs, ks, now, out);
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
    internal::AppendKeyPart(&join_key, name, *v);
  }
  KeyState* found = index.FindOrAdd(rs, join_key, source, now);
  if (found == nullptr) return;
  KeyState& ks = *found;
  const std::int64_t t = reading.time.count();
  // The join's own watermark: a reading further behind the key's newest than the join's
  // lateness is late (SPEC §5), and what no later reading can pair with is let go.
  if (ks.max_time != internal::kNoTime && t < ks.max_time - join.lateness.count()) {
    ++rs.stats.late_readings;
    return;
  }
  const WindowSpec& w = rule.window;
  const std::int64_t watermark = ks.Watermark(w);
  const TagSource key = Source(rs.TagsOf(ks));
  ks.join->Match(side, t, join.within.count(), [&](const internal::JoinBuffer::Entry& other) {
    double pair[2];
    pair[side] = reading.value;
    pair[1 - side] = other.value;
    const std::int64_t pair_time = std::max(t, other.t);
    const EvalContext ctx{pair, nullptr, &internal::FindTagThunk, &key};
    if (rule.where && !rule.where->EvalBool(ctx)) return;
    if (ks.windows->IsLate(pair_time, watermark)) {
      ++rs.stats.late_readings;
      return;
    }
    AddSample(rs, ks, ctx, key, pair_time, watermark);
  });
  if (!ks.join->Add(side, t, reading.value, join.max_buffer)) ++rs.stats.join_dropped;
  ks.last_seen = now.count();
  ks.max_time = std::max(ks.max_time, t);
  ks.join->Trim(ks.max_time - join.lateness.count() - join.within.count());
  CloseReached(rs, ks, now, out);
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

void Engine::Impl::CloseReached(RuleState& rs, KeyState& ks, Millis now, std::vector<Event>* out) {
  const WindowSpec& w = rs.rule->window;
  ks.windows->Advance(ks.Watermark(w), &closed);
  if (!closed.empty()) Emit(rs, rs.KeyOf(ks), ks, out);
  internal::MarkDirty(rs, ks);
  if (w.idle_timeout.count() > 0) {
    rs.next_idle_check = std::min(rs.next_idle_check, now.count() + w.idle_timeout.count());
  }
  index.Touched(rs, now.count());
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
  for (RuleState& rs : impl_->index.rules) {
    const auto& detector = rs.rule->detector;
    if (detector && detector->method == DetectorSpec::Method::kAbsent &&
        now.count() >= rs.next_absent_check) {
      // `absent`, by processing time: a key silent for `for` fires (time = now); a firing
      // one is re-evaluated (repeat) until a reading resolves it.
      const std::int64_t wait = detector->for_duration.count();
      rs.next_absent_check = internal::kNever;
      changed = true;
      for (auto& [key_str, ks] : internal::Sorted(rs)) {
        const std::int64_t silent = now.count() - ks->last_seen;
        if (silent >= wait) {
          Values values = {{"value", Value::Null()},
                           {"score", Value::Double(static_cast<double>(silent) / 1000.0)},
                           {"anomaly", Value::Bool(true)}};
          impl_->EvaluateAlert(rs, *key_str, *ks, values, std::nullopt, now.count(), out);
          internal::MarkDirty(rs, *ks);
          rs.next_absent_check = std::min(rs.next_absent_check, now.count() + 1000);
        } else {
          rs.next_absent_check = std::min(rs.next_absent_check, ks->last_seen + wait);
        }
      }
    }
    if (!rs.rule->has_window) continue;
    const std::int64_t idle = rs.rule->window.idle_timeout.count();
    if (idle <= 0 || now.count() < rs.next_idle_check) continue;
    rs.next_idle_check = internal::kNever;
    changed = true;
    for (auto& [key_str, ks] : internal::Sorted(rs)) {
      if (!ks->windows->HasOpen()) continue;
      if (now.count() - ks->last_seen >= idle) {
        ks->windows->CloseAll(&impl_->closed);
        impl_->Emit(rs, *key_str, *ks, out);
        internal::MarkDirty(rs, *ks);
        impl_->FlushDerived(now, out);
      } else {
        rs.next_idle_check = std::min(rs.next_idle_check, ks->last_seen + idle);
      }
    }
  }
  // After the timers: a window an idle timeout just closed no longer holds its key.
  changed = impl_->index.EvictIdle(now) || changed;
  changed = impl_->index.EvictUnderPressure(now) || changed;
  return changed;
}

void Engine::Finish(std::vector<Event>* out) {
  for (RuleState& rs : impl_->index.rules) {
    if (!rs.rule->has_window) continue;
    for (auto& [key_str, ks] : internal::Sorted(rs)) {
      if (!ks->windows->HasOpen()) continue;
      ks->windows->CloseAll(&impl_->closed);
      impl_->Emit(rs, *key_str, *ks, out);
      internal::MarkDirty(rs, *ks);
      // Rules are in dependency order: the rules reading this output close theirs later.
      impl_->FlushDerived(std::nullopt, out);
    }
  }
}

namespace {

StateChange TakeChange(RuleState& rs) {
  // In key order: the store updates its rows in the order of its index, each page of it read
  // and written once, not once for every row.
  auto [key_str, ks] = internal::TakeDirty(rs);
  if (ks == nullptr) return {rs.rule->id, std::move(key_str), std::nullopt};
  return {rs.rule->id, std::move(key_str), internal::SerializeKey(rs, *ks)};
}

}  // namespace

void Engine::TakeChanges(std::vector<StateChange>* out) {
  for (RuleState& rs : impl_->index.rules) {
    while (!rs.dirty.empty()) out->push_back(TakeChange(rs));
  }
}

bool Engine::TakeChanges(std::vector<StateChange>* out, std::size_t max) {
  bool taken = false;
  for (RuleState& rs : impl_->index.rules) {
    for (; !rs.dirty.empty() && max > 0; --max) {
      out->push_back(TakeChange(rs));
      taken = true;
    }
  }
  return taken;
}

bool Engine::HasChanges() const {
  return std::any_of(impl_->index.rules.begin(), impl_->index.rules.end(),
                     [](const RuleState& rs) { return !rs.dirty.empty(); });
}

void Engine::MarkAllChanged() {
  for (RuleState& rs : impl_->index.rules) {
    for (KeyState& ks : rs.keys) internal::MarkDirty(rs, ks);
  }
}

struct DecodedKey::State {
  std::size_t rule = 0;  // index in the engine's rules
  std::string key;
  Tags tags;
  KeyState ks;
};

DecodedKey::DecodedKey() = default;
DecodedKey::~DecodedKey() = default;
DecodedKey::DecodedKey(DecodedKey&&) noexcept = default;
DecodedKey& DecodedKey::operator=(DecodedKey&&) noexcept = default;

DecodedKey Engine::Decode(const std::string& rule, const std::string& key,
                          const std::string& bytes) const {
  DecodedKey out;
  std::size_t at = 0;
  Tags tags;
  KeyState ks;
  if (!impl_->Find(rule, &at) ||
      !internal::DecodeKey(*impl_->index.rules[at].rule, key, bytes, &tags, &ks)) {
    return out;
  }
  out.state_ = std::make_unique<DecodedKey::State>(
      DecodedKey::State{at, key, std::move(tags), std::move(ks)});
  return out;
}

bool Engine::Adopt(DecodedKey decoded) {
  if (!decoded.ok()) return false;
  DecodedKey::State& d = *decoded.state_;
  impl_->index.Adopt(d.rule, d.key, std::move(d.tags), std::move(d.ks));
  return true;
}

bool Engine::Restore(const std::string& rule, const std::string& key, const std::string& bytes) {
  return Adopt(Decode(rule, key, bytes));
}

Engine::Handover Engine::TakeStateOf(Engine& old) {
  Handover out;
  std::set<std::string> dropped;
  for (RuleState& from : old.impl_->index.rules) {
    std::size_t at = 0;
    if (impl_->Find(from.rule->id, &at) &&
        impl_->index.rules[at].rule->fingerprint == from.rule->fingerprint) {
      out.kept += impl_->index.MoveKeys(at, std::move(from));
      continue;
    }
    // Removed or changed: its keys start fresh; their rows (and those of keys evicted since
    // the last checkpoint) go at the next checkpoint.
    if (!from.keys.empty()) dropped.insert(from.rule->id);
    std::set<std::string> rows;
    for (std::uint32_t slot : from.dirty) rows.insert(*from.group->keys[slot]);
    for (const KeyState& ks : from.keys) rows.insert(from.KeyOf(ks));
    for (const std::string& key : rows) out.deleted.push_back({from.rule->id, key, std::nullopt});
  }
  out.dropped_rules.assign(dropped.begin(), dropped.end());
  return out;
}

void Engine::SnapshotAll(std::vector<StateChange>* out) const {
  for (const RuleState& rs : impl_->index.rules) {
    for (const auto& [key_str, ks] : internal::Sorted(rs)) {
      out->push_back({rs.rule->id, *key_str, internal::SerializeKey(rs, *ks)});
    }
  }
}

void Engine::ResolveFiring(const std::string& rule, Millis now, std::vector<Event>* out) {
  for (RuleState& rs : impl_->index.rules) {
    if (rs.rule->id == rule) impl_->alerts.ResolveAll(rs, now, out);
  }
}

std::vector<RuleStats> Engine::Stats() const {
  std::vector<RuleStats> out;
  for (const RuleState& rs : impl_->index.rules) {
    RuleStats s = rs.stats;
    s.keys = rs.keys.size();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<FiringAlert> Engine::Firing() const {
  std::vector<FiringAlert> out;
  for (const RuleState& rs : impl_->index.rules) internal::AlertLifecycle::ListFiring(rs, &out);
  return out;
}

std::size_t Engine::rule_count() const { return impl_->index.rules.size(); }

std::string Engine::SaveTimers() const { return internal::SaveTimers(impl_->index.rules); }

void Engine::RestoreTimers(const std::string& saved) {
  internal::RestoreTimers(saved, &impl_->index.rules);
}

}  // namespace vigil::rules
