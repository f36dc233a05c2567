#include "rules/engine_alert.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "rules/engine_keys.h"
#include "rules/rule.h"

namespace vigil::rules::internal {
namespace {

std::string FormatNumber(double v, int decimals) {
  char buf[64];
  if (decimals >= 0) {
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

std::string RenderSummary(const config::TextTemplate& summary, const Values& values,
                          const TagSource& key) {
  auto lookup = [&](const config::TextPiece& placeholder, std::string* out) {
    const std::string& name = placeholder.text;
    const int decimals = placeholder.decimals;
    for (const auto& [value_name, v] : values) {
      if (value_name != name) continue;
      if (v.kind == Value::Kind::kBool) {
        *out += v.number != 0 ? "true" : "false";
      } else {
        *out += v.is_null() ? "null" : FormatNumber(v.number, decimals);
      }
      return true;
    }
    const std::string* tag = key.Find(name);
    if (tag == nullptr) return false;
    char* end = nullptr;
    const double number = decimals >= 0 ? std::strtod(tag->c_str(), &end) : 0;
    if (end != nullptr && end != tag->c_str() && *end == '\0' && std::isfinite(number)) {
      *out += FormatNumber(number, decimals);  // {devices.max_temp:.1f} of a numeric cell
    } else {
      *out += *tag;
    }
    return true;
  };
  return summary.Render(lookup, config::TextTemplate::Escape::kPlain,
                        config::TextTemplate::Unknown::kAsWritten);
}

Event AlertLifecycle::MakeEvent(const RuleState& rs, const std::string& key_str, const KeyState& ks,
                                EventState state, const Values& values,
                                std::optional<WindowBounds> window, std::int64_t t) const {
  const CompiledRule& rule = *rs.rule;
  Event e;
  e.kind = EventKind::kAlert;
  e.agent = agent_;
  e.rule = rule.id;
  e.key = rs.TagsOf(ks);
  e.state = state;
  e.severity = rule.alert->severity;
  e.summary = ks.Episode().summary;
  e.labels = rule.alert->labels;
  e.values = values;
  e.window = window;
  e.time = Millis(t);
  e.alert_id = ks.Episode().alert_id;
  e.id = StableHash({agent_, rule.id, key_str, EventKindName(EventKind::kAlert), e.alert_id,
                     EventStateName(state), std::to_string(t)});
  return e;
}

void AlertLifecycle::Evaluate(RuleState& rs, const std::string& key_str, KeyState& ks,
                              const TagSource& key, const Values& values,
                              std::optional<WindowBounds> window, std::int64_t t,
                              std::vector<Event>* out) {
  const CompiledRule& rule = *rs.rule;
  const AlertSpec& alert = *rule.alert;
  std::vector<double>& numbers = numbers_;
  numbers.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    numbers[i] = values[i].second.is_null() ? std::nan("") : values[i].second.number;
  }
  EvalContext ctx{numbers.data(), nullptr, &FindTagThunk, &key};
  const bool holds = alert.when->EvalBool(ctx);

  auto notify = [&](EventState state) {
    ks.MutableEpisode().last_notify = t;
    ks.MutableEpisode().summary = RenderSummary(alert.summary, values, key);
    if (rule.emit_alert) out->push_back(MakeEvent(rs, key_str, ks, state, values, window, t));
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
        ep.alert_id = StableHash({agent_, rule.id, key_str, std::to_string(ep.since)});
        notify(EventState::kFiring);
      }
      return;
    case AlertState::kFiring: {
      bool clear = alert.clear_when ? alert.clear_when->EvalBool(ctx) : !holds;
      if (clear) {
        notify(EventState::kResolved);
        ks.state = AlertState::kInactive;
        --rs.firing;
        ks.MutableEpisode().alert_id.clear();
      } else if (alert.repeat.count() > 0 && t - ks.Episode().last_notify >= alert.repeat.count()) {
        notify(EventState::kFiring);
      }
      return;
    }
  }
}

void AlertLifecycle::ResolveAll(RuleState& rs, Millis now, std::vector<Event>* out) const {
  if (!rs.rule->alert) return;
  for (auto& [key_str, ks] : Sorted(rs)) {
    if (ks->state != AlertState::kFiring) continue;
    out->push_back(
        MakeEvent(rs, *key_str, *ks, EventState::kResolved, {}, std::nullopt, now.count()));
    ks->state = AlertState::kInactive;
    --rs.firing;
    ks->MutableEpisode().alert_id.clear();
  }
}

void AlertLifecycle::ListFiring(const RuleState& rs, std::vector<FiringAlert>* out) {
  if (!rs.rule->alert || rs.firing == 0) return;
  // Few keys fire: find them, then sort only those.
  std::vector<std::pair<const std::string*, const KeyState*>> firing;
  for (const KeyState& ks : rs.keys) {
    if (ks.state == AlertState::kFiring) firing.emplace_back(&rs.KeyOf(ks), &ks);
    if (firing.size() == rs.firing) break;
  }
  std::sort(firing.begin(), firing.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  for (const auto& [key_str, ks] : firing) {
    const AlertEpisode& ep = ks->Episode();
    out->push_back({rs.rule->id, rs.TagsOf(*ks), ep.alert_id, rs.rule->alert->severity, ep.summary,
                    Millis(ep.fired_at), rs.rule->alert->labels});
  }
}

}  // namespace vigil::rules::internal
