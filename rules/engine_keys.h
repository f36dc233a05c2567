#pragma once

// The engine's key index and per-key state: one KeyState per (rule, key), held by its rule's
// RuleState; the key strings of a reading and the group slots that find a reading's states
// with one hash lookup for all the rules grouping alike, each key's tags held once by its
// group; and the key limits with their eviction (rules/README.md "Cardinality and key eviction").
// Internal to rules/ (the engine's); not installed. Not thread-safe: the engine's thread owns it.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rules/detector.h"
#include "rules/engine.h"
#include "rules/engine_alert.h"
#include "rules/engine_join.h"
#include "rules/rule.h"
#include "rules/table.h"
#include "rules/window.h"

namespace vigil::rules::internal {

constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

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

// EvalContext's tag lookup over a TagSource.
const std::string* FindTagThunk(const void* source, std::string_view name);

// 64 bytes: the key's string and tags are its group's (RuleState::KeyOf, TagsOf). Not aligned
// to a cache line: aligned, engine_bench made 20–30% fewer evaluations a second (states of
// the rules at the same offsets contending for cache sets, it seems; not verified).
struct KeyState {
  std::int64_t max_time = kNoTime;  // largest event time accepted (watermark base)
  std::int64_t last_seen = 0;       // processing time of the last accepted reading
  std::uint64_t arrivals = 0;  // readings accepted: orders equal event times; > 1: not a one-off
  std::unique_ptr<WindowState> windows;  // null for a detector-only rule
  std::unique_ptr<Detector> detector;    // null without a detector
  std::unique_ptr<JoinBuffer> join;      // null without a join
  // Alert lifecycle (SPEC §5, engine_alert.h); the episode is made when the alert first turns
  // pending, as most keys never alert (it would cost 80 bytes a key).
  std::unique_ptr<AlertEpisode> episode;
  AlertState state = AlertState::kInactive;
  bool dirty = false;  // listed in RuleState::dirty
  // The key's number in its rule's KeyGroup, which holds its string (RuleState::KeyOf).
  std::uint32_t slot = std::numeric_limits<std::uint32_t>::max();

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
static_assert(sizeof(KeyState) == 64);

// The keys of the rules with the same group_by, numbered: a key string has one slot, held by
// every rule of the group that has the key, so that a reading finds its states under all
// these rules with one hash lookup (KeyIndex::Lookup), and a rule keeps its keys in a
// vector, not a hash-map node each. Owned by the KeyIndex; not thread-safe.
struct KeyGroup {
  static constexpr std::uint32_t kNoSlot = std::numeric_limits<std::uint32_t>::max();

  std::unordered_map<std::string, std::uint32_t> slots;  // key string → slot
  std::vector<const std::string*> keys;  // slot → its string (a key of `slots`); nullptr: free
  // slot → the key's tags (group_by's, or a join's `on` tags: the string encodes them), made
  // with the first rule's state of the key (SetTags); null while only listings hold the slot.
  std::vector<std::unique_ptr<const Tags>> tags;
  // Per slot: the rules of the group that hold the key, plus the rules' listings of it as
  // changed (RuleState::dirty), which keep the slot's string until TakeChanges.
  std::vector<std::uint32_t> refs;
  std::vector<std::uint32_t> free;  // slots nobody holds, reused before new ones
  // Per reading: the group's key string (made once for all its rules) and its slot or kNoSlot.
  std::string key;
  std::uint64_t reading = 0;  // which reading `key` belongs to (0: none)
  std::uint32_t slot = kNoSlot;

  // The key's slot (made when nobody holds the key), with one more hold on it.
  std::uint32_t Hold(const std::string& key_str);
  // One hold less on the slot; when it was the last, the slot, its string and tags are free.
  void Release(std::uint32_t slot);
  // The slot's tags, made by `make` (returning Tags) when it has none.
  template <typename Make>
  void SetTags(std::uint32_t at, Make&& make) {
    if (!tags[at]) tags[at] = std::make_unique<const Tags>(make());
  }
};

struct RuleState {
  static constexpr std::uint32_t kNoKey = std::numeric_limits<std::uint32_t>::max();

  // The rule; its keys' windows and detectors refer to it (on a reload, a rule whose
  // definition is unchanged keeps the object: KeyIndex::MoveKeys).
  std::shared_ptr<const CompiledRule> rule;
  // The rule's keys in no order (an evicted key's place is taken by the last one): walked in
  // key order (Sorted) wherever the order of output depends on it, so that the engine stays
  // deterministic across restores. A KeyState& stays valid until a key of this rule is added
  // or evicted.
  std::vector<KeyState> keys;
  // Per slot of the group: the place of the key in `keys`, or kNoKey.
  std::vector<std::uint32_t> by_slot;
  KeyGroup* group = nullptr;  // rules with the same group_by share it (KeyIndex)
  // The slots of the keys changed since TakeChanges (KeyState::dirty), or evicted since: each
  // listing holds its slot (KeyGroup::Hold), so that the key's string stays until taken.
  std::vector<std::uint32_t> dirty;
  bool dirty_descending = true;  // `dirty` sorted by key string from the last to the first
  std::int64_t next_idle_check = kNever;
  std::int64_t next_absent_check = kNever;
  // Idle eviction: no key of the rule is due before (a lower bound: a scan then looks).
  std::int64_t next_evict_check = kNever;
  std::size_t firing = 0;  // keys whose alert fires: Firing() walks no rule without any
  RuleStats stats;
  // Scratch for one reading: aggregate arguments and distinct() tags (no allocation per reading).
  std::vector<double> xs;
  std::vector<const std::string*> tags;

  // The key's string (its group_by tags encoded: EncodeKey; a join's: its `on` tags).
  const std::string& KeyOf(const KeyState& ks) const { return *group->keys[ks.slot]; }
  // The key's tags.
  const Tags& TagsOf(const KeyState& ks) const { return *group->tags[ks.slot]; }
  // The state of the key, or nullptr.
  KeyState* Find(const std::string& key_str);
  // The state in `keys` that the group's slot names, or nullptr.
  KeyState* AtSlot(std::uint32_t slot) {
    return slot < by_slot.size() && by_slot[slot] != kNoKey ? &keys[by_slot[slot]] : nullptr;
  }
};

// Nothing of the key can still produce output but new readings: no open window, no pending
// or firing alert. (What its windows, join buffers and detector remember beyond that matters
// only to readings within the rule's quiet time: CompiledRule::quiet.)
bool Quiescent(const KeyState& ks);

// Lists the key in rs.dirty (once) for the next TakeChanges.
void MarkDirty(RuleState& rs, KeyState& ks);
// Takes the first of rs.dirty in key order and releases its hold: the key's string and its
// state (nullptr: the key was evicted, its row goes).
std::pair<std::string, KeyState*> TakeDirty(RuleState& rs);

// The keys of a rule (const or not) in key order.
template <typename Rule>
auto Sorted(Rule& rs) {
  using State = decltype(&rs.keys.front());
  std::vector<std::pair<const std::string*, State>> out;
  out.reserve(rs.keys.size());
  for (auto& ks : rs.keys) out.emplace_back(&rs.KeyOf(ks), &ks);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  return out;
}

// A key as text: tags joined with unit/record separators (never in topic levels).
void AppendKeyPart(std::string* out, const std::string& name, const std::string& value);
std::string EncodeKey(const Tags& key);

// The rules' states and the index that finds them. Owns every RuleState (`rules`, in the
// RuleSet's order).
class KeyIndex {
 public:
  // `max_keys_total`: the key budget of all rules together (RuleSet::max_keys_total; 0: none).
  explicit KeyIndex(std::size_t max_keys_total) : max_keys_total_(max_keys_total) {}

  // Adds a rule's (empty) state; rules with the same group_by share a group.
  void AddRule(std::shared_ptr<const CompiledRule> rule);

  // The reading's key state under the rule (the group's key string made once per reading
  // `number` for all its rules), made when new at `now`; nullptr when it would be one key
  // past the rule's max_keys or the key budget (counted in rs.stats).
  KeyState* Lookup(RuleState& rs, const TagSource& source, std::uint64_t number, Millis now);
  // Before a reading goes through the `routed` rules: their key states are looked up and
  // fetched into the cache together, so that the misses overlap instead of following one
  // another (each rule's state is a few objects spread over a heap of 100 MB and more).
  void Prefetch(const std::vector<std::size_t>& routed, const TagSource& source,
                std::uint64_t number);
  // The state of `key_str` (a join's key: its `on` tags), made when new, as Lookup.
  KeyState* FindOrAdd(RuleState& rs, const std::string& key_str, const TagSource& source,
                      Millis now);
  // A reading (or join pair) was accepted for the key at `now`: the eviction schedules learn
  // when it may be evicted at the earliest (exact lower bounds, so that no Advance that would
  // evict skips its scan: what is evicted depends only on the keys' state and `now`).
  void Touched(RuleState& rs, std::int64_t now);

  // Puts a restored key's state in place (replacing the key's state if it has one), and sets
  // the rule's timers and eviction schedules as its state asks. `tags`: the key's (EncodeKey
  // of them is `key`).
  void Adopt(std::size_t index, const std::string& key, Tags tags, KeyState ks);
  // Reload: moves every key of `from` (the state of a rule of another engine with the same
  // definition, whose KeyIndex still lives) into the rule `index`, which has none yet, with
  // the changes not yet taken (RuleState::dirty); the rule keeps `from`'s rule object, which
  // the keys' windows and detectors refer to. The keys get slots (and tags) of this index's
  // group, their timers and eviction set as Adopt sets them. `from` is left
  // without keys. Returns the number of keys moved.
  std::size_t MoveKeys(std::size_t index, RuleState&& from);

  // Key eviction (Engine::Advance): evicts the keys of each rule idle past its evict_after
  // (when its check is due), then the oldest silent keys past their quiet time while a key
  // limit is (nearly) reached. True when a key was evicted (or a schedule changed).
  bool EvictIdle(Millis now);
  bool EvictUnderPressure(Millis now);

  std::vector<RuleState> rules;

 private:
  void SetSchedules(RuleState& rs, const KeyState& ks);
  // A new key of the rule, without a limit's check: its slot in the group (made when no rule
  // of the group has the key) and its place in rs.keys.
  KeyState& Add(RuleState& rs, const std::string& key_str);
  // Drops the key at `at` in rs.keys from memory (the last key takes its place), its
  // checkpoint row at the next TakeChanges.
  void Evict(RuleState& rs, std::size_t at);
  std::uint32_t GroupSlot(const RuleState& rs, const TagSource& source, std::uint64_t number);

  std::vector<std::unique_ptr<KeyGroup>> groups_;  // RuleState::group
  std::vector<const KeyState*> prefetched_;        // scratch of Prefetch
  // The key budget (0: none) and the keys of all rules now.
  std::size_t max_keys_total_ = 0;
  std::size_t total_keys_ = 0;
  // Eviction under a key limit: nothing can be evicted before (a lower bound).
  std::int64_t next_pressure_check_ = kNever;
};

}  // namespace vigil::rules::internal
