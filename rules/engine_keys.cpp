#include "rules/engine_keys.h"

namespace vigil::rules::internal {
namespace {

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

// After many evictions: hash tables and key vectors sized for a flood give their room back.
template <typename Map>
void ShrinkIfSparse(Map& map) {
  if (map.bucket_count() > 1024 && map.size() < map.bucket_count() / 8) map.rehash(0);
}
void ShrinkIfSparse(std::vector<KeyState>& keys) {
  if (keys.capacity() > 1024 && keys.size() < keys.capacity() / 8) keys.shrink_to_fit();
}

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

const std::string* FindTagThunk(const void* source, std::string_view name) {
  return static_cast<const TagSource*>(source)->Find(name);
}

bool Quiescent(const KeyState& ks) {
  return ks.state == AlertState::kInactive && !(ks.windows && ks.windows->HasOpen());
}

KeyState* RuleState::Find(const std::string& key_str) {
  auto found = group->slots.find(key_str);
  return found == group->slots.end() ? nullptr : AtSlot(found->second);
}

void MarkDirty(RuleState& rs, KeyState& ks) {
  if (ks.dirty) return;
  ks.dirty = true;
  rs.dirty.push_back(ks.slot);
  ++rs.group->refs[ks.slot];
  rs.dirty_descending = false;
}

std::pair<std::string, KeyState*> TakeDirty(RuleState& rs) {
  KeyGroup& g = *rs.group;
  if (!rs.dirty_descending) {  // sorted once, then taken from the back
    std::sort(rs.dirty.begin(), rs.dirty.end(),
              [&g](std::uint32_t a, std::uint32_t b) { return *g.keys[a] > *g.keys[b]; });
    rs.dirty_descending = true;
  }
  const std::uint32_t slot = rs.dirty.back();
  rs.dirty.pop_back();
  std::pair<std::string, KeyState*> out{*g.keys[slot], rs.AtSlot(slot)};
  if (out.second != nullptr) out.second->dirty = false;
  g.Release(slot);
  return out;
}

std::uint32_t KeyGroup::Hold(const std::string& key_str) {
  auto [found, added] = slots.try_emplace(key_str, kNoSlot);
  if (added) {
    if (free.empty()) {
      found->second = static_cast<std::uint32_t>(keys.size());
      keys.push_back(nullptr);
      tags.push_back(nullptr);
      refs.push_back(0);
    } else {
      found->second = free.back();
      free.pop_back();
    }
    keys[found->second] = &found->first;
    if (key == key_str) slot = found->second;  // the reading's key, cached by GroupSlot
  }
  ++refs[found->second];
  return found->second;
}

void KeyGroup::Release(std::uint32_t at) {
  if (--refs[at] != 0) return;
  slots.erase(slots.find(*keys[at]));  // by position: the string is the entry's own key
  keys[at] = nullptr;
  tags[at].reset();
  free.push_back(at);
  reading = 0;  // the per-reading cache may name the freed slot
}

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

void KeyIndex::AddRule(std::shared_ptr<const CompiledRule> rule) {
  RuleState rs;
  rs.stats.rule = rule->id;
  rs.xs.resize(rule->aggregates.size());
  rs.tags.resize(rule->aggregates.size());
  for (const RuleState& other : rules) {
    if (other.rule->group_by_all == rule->group_by_all && other.rule->group_by == rule->group_by) {
      rs.group = other.group;
      break;
    }
  }
  if (rs.group == nullptr) rs.group = groups_.emplace_back(std::make_unique<KeyGroup>()).get();
  rs.rule = std::move(rule);
  rules.push_back(std::move(rs));
}

void KeyIndex::Touched(RuleState& rs, std::int64_t now) {
  const CompiledRule& rule = *rs.rule;
  if (!rule.evictable) return;
  const std::int64_t after = rule.evict_after.count();
  if (after > 0) rs.next_evict_check = std::min(rs.next_evict_check, now + after);
  next_pressure_check_ = std::min(next_pressure_check_, now + rule.quiet.count());
}

std::uint32_t KeyIndex::GroupSlot(const RuleState& rs, const TagSource& source,
                                  std::uint64_t number) {
  KeyGroup& g = *rs.group;
  if (g.reading != number) {
    KeyString(*rs.rule, source, &g.key);
    g.reading = number;
    auto slot = g.slots.find(g.key);
    g.slot = slot == g.slots.end() ? KeyGroup::kNoSlot : slot->second;
  }
  return g.slot;
}

KeyState* KeyIndex::Lookup(RuleState& rs, const TagSource& source, std::uint64_t number,
                           Millis now) {
  if (KeyState* ks = rs.AtSlot(GroupSlot(rs, source, number))) return ks;
  return FindOrAdd(rs, rs.group->key, source, now);
}

void KeyIndex::Prefetch(const std::vector<std::size_t>& routed, const TagSource& source,
                        std::uint64_t number) {
  prefetched_.clear();
  for (std::size_t index : routed) {
    const RuleState& rs = rules[index];
    // A rule with a `where` may not take the reading: its key is not looked up before.
    if (rs.rule->join || rs.rule->where) continue;
    const std::uint32_t slot = GroupSlot(rs, source, number);
    if (slot >= rs.by_slot.size() || rs.by_slot[slot] == RuleState::kNoKey) continue;
    const KeyState* ks = &rs.keys[rs.by_slot[slot]];
    // Both cache lines a 64-byte state in a vector may span.
    __builtin_prefetch(ks);
    __builtin_prefetch(reinterpret_cast<const char*>(ks + 1) - 1);
    prefetched_.push_back(ks);
  }
  // Level by level: the states, the objects they point to, what those point to.
  for (const KeyState* ks : prefetched_) {
    __builtin_prefetch(ks->windows.get());
    __builtin_prefetch(ks->detector.get());
  }
  for (const KeyState* ks : prefetched_) {
    if (ks->windows) ks->windows->Prefetch();
    if (ks->detector) ks->detector->Prefetch();
  }
}

KeyState* KeyIndex::FindOrAdd(RuleState& rs, const std::string& key_str, const TagSource& source,
                              Millis now) {
  if (KeyState* ks = rs.Find(key_str)) return ks;
  const CompiledRule& rule = *rs.rule;
  if (rs.keys.size() >= rule.max_keys) {
    ++rs.stats.dropped_keys;
    return nullptr;
  }
  if (max_keys_total_ > 0 && total_keys_ >= max_keys_total_) {
    ++rs.stats.budget_dropped;
    return nullptr;
  }
  KeyState& ks = Add(rs, key_str);
  // Past a limit's high-water mark, or at the limit: keys already evictable may have to go.
  if ((max_keys_total_ > 0 &&
       (total_keys_ == HighWater(max_keys_total_) + 1 || total_keys_ == max_keys_total_)) ||
      rs.keys.size() == HighWater(rule.max_keys) + 1 || rs.keys.size() == rule.max_keys) {
    next_pressure_check_ = std::min(next_pressure_check_, now.count());
  }
  rs.group->SetTags(ks.slot, [&] { return KeyTags(rule, source); });
  if (rule.has_window) ks.windows = MakeWindowState(rule);
  if (rule.detector) ks.detector = MakeDetector(*rule.detector);
  if (rule.join) ks.join = std::make_unique<JoinBuffer>();
  return &ks;
}

KeyState& KeyIndex::Add(RuleState& rs, const std::string& key_str) {
  KeyGroup& g = *rs.group;
  const std::uint32_t slot = g.Hold(key_str);
  if (rs.by_slot.size() <= slot) rs.by_slot.resize(g.keys.size(), RuleState::kNoKey);
  rs.by_slot[slot] = static_cast<std::uint32_t>(rs.keys.size());
  KeyState& ks = rs.keys.emplace_back();
  ks.slot = slot;
  ++total_keys_;
  return ks;
}

void KeyIndex::SetSchedules(RuleState& rs, const KeyState& ks) {
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
  next_pressure_check_ = kNoTime;  // the next Advance sees whether a limit is (nearly) reached
}

void KeyIndex::Adopt(std::size_t index, const std::string& key, Tags tags, KeyState ks) {
  RuleState& rs = rules[index];
  SetSchedules(rs, ks);
  KeyState* into = rs.Find(key);
  if (into == nullptr) into = &Add(rs, key);
  rs.group->SetTags(into->slot, [&] { return std::move(tags); });
  if (into->state == AlertState::kFiring) --rs.firing;
  ks.slot = into->slot;
  *into = std::move(ks);
  if (into->state == AlertState::kFiring) ++rs.firing;
}

std::size_t KeyIndex::MoveKeys(std::size_t index, RuleState&& from) {
  RuleState& rs = rules[index];
  rs.rule = from.rule;
  // The changes not yet taken keep their order; their slots are this group's.
  rs.dirty.reserve(from.dirty.size());
  for (std::uint32_t slot : from.dirty) rs.dirty.push_back(rs.group->Hold(*from.group->keys[slot]));
  from.dirty.clear();
  rs.dirty_descending = from.dirty_descending;
  rs.firing = from.firing;
  from.firing = 0;
  rs.keys.reserve(from.keys.size());
  for (KeyState& moved : from.keys) {
    // The key's string and tags in the other index's group.
    const std::string& key_str = from.KeyOf(moved);
    const Tags& tags = from.TagsOf(moved);
    KeyState& ks = Add(rs, key_str);
    const std::uint32_t slot = ks.slot;
    rs.group->SetTags(slot, [&] { return tags; });
    ks = std::move(moved);
    ks.slot = slot;
    SetSchedules(rs, ks);
  }
  from.keys.clear();
  from.by_slot.clear();
  return rs.keys.size();
}

void KeyIndex::Evict(RuleState& rs, std::size_t at) {
  KeyGroup& g = *rs.group;
  KeyState& ks = rs.keys[at];
  const std::uint32_t slot = ks.slot;
  MarkDirty(rs, ks);  // its row is deleted at the next TakeChanges
  rs.by_slot[slot] = RuleState::kNoKey;
  g.Release(slot);
  if (at + 1 != rs.keys.size()) {
    ks = std::move(rs.keys.back());
    rs.by_slot[ks.slot] = static_cast<std::uint32_t>(at);
  }
  rs.keys.pop_back();
  ++rs.stats.evicted;
  --total_keys_;
}

bool KeyIndex::EvictIdle(Millis now) {
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
    // From the back: the last key, which takes an evicted key's place, has been looked at.
    for (std::size_t at = rs.keys.size(); at-- > 0;) {
      const KeyState& ks = rs.keys[at];
      const std::int64_t due = GridUp(ks.last_seen + after, grid);
      if (t < due) {
        next = std::min(next, due);
      } else if (Quiescent(ks)) {
        Evict(rs, at);
      }
    }
    rs.next_evict_check = next;
    if (rs.keys.size() != before) {
      evicted = true;
      ShrinkIfSparse(rs.keys);
      ShrinkIfSparse(rs.group->slots);
    }
  }
  return evicted;
}

bool KeyIndex::EvictUnderPressure(Millis now) {
  const std::int64_t t = now.count();
  if (t < next_pressure_check_) return false;
  struct Candidate {
    std::int64_t last_seen;
    std::size_t rule;
    std::size_t at;  // in the rule's keys
  };
  // Oldest silent first; ties by rule, then key: the same keys go whatever the keys' order.
  auto older = [this](const Candidate& a, const Candidate& b) {
    if (a.last_seen != b.last_seen) return a.last_seen < b.last_seen;
    if (a.rule != b.rule) return a.rule < b.rule;
    const RuleState& rs = rules[a.rule];
    return rs.KeyOf(rs.keys[a.at]) < rs.KeyOf(rs.keys[b.at]);
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
    for (std::size_t at = 0; at < rs.keys.size(); ++at) {
      const KeyState& ks = rs.keys[at];
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
        candidates.push_back({ks.last_seen, index, at});
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
      // Each rule's from the back: the last key, which takes an evicted key's place, is not
      // one of those still to go.
      std::sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(need),
                [](const Candidate& a, const Candidate& b) {
                  return a.rule != b.rule ? a.rule < b.rule : a.at > b.at;
                });
      for (std::size_t i = 0; i < need; ++i) Evict(rules[candidates[i].rule], candidates[i].at);
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
  if (max_keys_total_ > 0) {
    evicted += relieve([this] { return total_keys_; }, max_keys_total_,
                       [this](auto each) {
                         for (std::size_t i = 0; i < rules.size(); ++i) each(i);
                       });
  }
  candidates.clear();
  candidates.shrink_to_fit();
  // Under every high-water mark: nothing to look at until a new key passes one (FindOrAdd).
  bool over = max_keys_total_ > 0 && total_keys_ > HighWater(max_keys_total_);
  for (const RuleState& rs : rules) over = over || rs.keys.size() > HighWater(rs.rule->max_keys);
  next_pressure_check_ = over ? std::max(next, t + 1) : kNever;
  if (evicted > 0) {
    for (RuleState& rs : rules) {
      ShrinkIfSparse(rs.keys);
      ShrinkIfSparse(rs.group->slots);
    }
  }
  return evicted > 0;
}

}  // namespace vigil::rules::internal
