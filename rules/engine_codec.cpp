#include "rules/engine_codec.h"

#include <charconv>
#include <map>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vigil::rules::internal {

std::string SerializeKey(const RuleState& rs, const KeyState& ks) {
  const CompiledRule& rule = *rs.rule;
  const Tags& tags = rs.TagsOf(ks);
  // MessagePack: smaller than JSON text, and doubles are kept as their bits, not printed and
  // parsed again (a restart with 100 000 keys reads them all). Written straight from the
  // state (rules/packed.h).
  std::string out;
  Packer p(&out);
  p.Map(9).Str("fp").Str(rule.fingerprint).Str("key").Array(tags.size());
  for (const auto& [name, value] : tags) p.Array(2).Str(name).Str(value);
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

bool DecodeKey(const CompiledRule& r, const std::string& key, const std::string& bytes,
               Tags* tags_out, KeyState* out) {
  using nlohmann::json;
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
    *tags_out = std::move(tags);
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

std::string SaveTimers(const std::vector<RuleState>& rules) {
  std::string out;
  for (const RuleState& rs : rules) {
    out += rs.rule->id + ' ' + rs.rule->fingerprint + ' ' + std::to_string(rs.next_idle_check) +
           ' ' + std::to_string(rs.next_absent_check) + '\n';
  }
  return out;
}

void RestoreTimers(const std::string& saved, std::vector<RuleState>* rules) {
  std::map<std::string_view, RuleState*> by_id;
  for (RuleState& rs : *rules) by_id[rs.rule->id] = &rs;
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

}  // namespace vigil::rules::internal
