#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/values.h"
#include "rules/event.h"
#include "rules/reading.h"

namespace vigil::rules {

struct CompiledRule;  // rule.h: one loaded, validated rule
struct Tables;        // table.h: reference data read as `<table>.<column>`

// An immutable set of loaded rules; shared by the engine and whoever reloads.
struct RuleSet {
  std::vector<std::shared_ptr<const CompiledRule>> rules;
  // The (rule, key) states all rules may hold together (`rules.max_keys_total`); 0: no budget.
  std::size_t max_keys_total = 0;
  std::vector<std::string> ids() const;
};

struct LoadResult {
  std::shared_ptr<const RuleSet> rules;  // set only when diagnostics is empty
  config::Diagnostics diagnostics;       // every problem in every file
};

// Loads rule files: each path is a file, or a folder whose `*.json` files are read in name
// order. Each file holds one rule object or an array of them (SPEC §3). Duplicate ids
// across files are errors.
LoadResult LoadRules(const std::vector<std::string>& paths);
// The same for one file's text (`file` names it in diagnostics).
LoadResult ParseRules(std::string_view text, const std::string& file);

// The checkpointable state of one (rule, key), as opaque bytes. The bytes carry the rule's
// fingerprint, so a changed rule starts fresh when restored.
struct StateChange {
  std::string rule;
  std::string key;                   // canonical encoding of the key's tags
  std::optional<std::string> bytes;  // nullopt: the key's state was removed
};

struct RuleStats {
  std::string rule;
  std::uint64_t evaluations = 0;    // readings that reached the rule's windows
  std::uint64_t late_readings = 0;  // dropped as late (SPEC §5)
  std::uint64_t dropped_keys = 0;   // readings dropped by the max_keys guard
  std::uint64_t join_dropped = 0;  // join inputs lacking an `on` tag or pushed out of a full buffer
  std::uint64_t keys = 0;          // keys with state now
  std::uint64_t budget_dropped = 0;  // readings of new keys dropped: rules.max_keys_total reached
  std::uint64_t evicted = 0;         // keys evicted (idle, or early under a key limit)
};

struct FiringAlert {
  std::string rule;
  Tags key;
  std::string alert_id;
  std::string severity;
  std::string summary;
  Millis since{0};                                          // event time at which it fired
  std::vector<std::pair<std::string, std::string>> labels;  // alert.labels
};

// A checkpoint row decoded by Engine::Decode, to be put in place by Engine::Adopt of the same
// engine. Movable; empty (not ok) when default-made.
class DecodedKey {
 public:
  DecodedKey();
  ~DecodedKey();
  DecodedKey(DecodedKey&&) noexcept;
  DecodedKey& operator=(DecodedKey&&) noexcept;
  // False when the row cannot be restored: its rule is unknown or changed (another
  // fingerprint), the bytes are of another key or malformed.
  bool ok() const { return state_ != nullptr; }

 private:
  friend class Engine;
  struct State;
  std::unique_ptr<State> state_;
};

// The rule engine: pure and deterministic (SPEC §5). It does no I/O and reads no clock:
// `now` is the processing time, passed in. Not thread-safe: one thread owns it.
class Engine {
 public:
  Engine(std::string agent_id, const std::shared_ptr<const RuleSet>& rules);
  ~Engine();
  // The reference tables that `<table>.<column>` names read (none until set). Swapped whole
  // when a table file changes; the rules' state is kept.
  void SetTables(std::shared_ptr<const Tables> tables);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Routes the reading to the rules whose source matches, updates their state and appends
  // the events produced, in order, to *out.
  void Process(const Reading& reading, Millis now, std::vector<Event>* out);
  // Fires processing-time timers (idle_timeout flush, absent, repeat) due at `now`, then
  // evicts keys (rules/README.md "Key eviction"): those idle past their rule's `evict_after`,
  // and, when a key limit (a rule's max_keys, the RuleSet's max_keys_total) refused new keys
  // or is nearly reached, the oldest silent keys past their rule's quiet time. An evicted key
  // leaves memory and its state row goes at the next TakeChanges (bytes = nullopt). Returns
  // true when any rule's timer was due (its keys were looked at and the timer set again) or a
  // key was evicted: the outcome then depends on `now`. A call that returns false changed
  // nothing at all, so a caller that must reproduce a run (crash recovery) records the moments
  // of the calls that returned true, and the timers (SaveTimers) with each checkpoint of the
  // state. Deterministic: the same readings and Advance calls evict the same keys.
  bool Advance(Millis now, std::vector<Event>* out);
  // The rules' processing-time timers (when each next looks at its keys): not part of any
  // key's state, so a checkpoint keeps them beside it. Text, one rule a line.
  std::string SaveTimers() const;
  // Sets the timers of the rules in `saved` whose definition is unchanged (same fingerprint),
  // after their keys were restored: the engine is then as it was at the checkpoint. Lines it
  // cannot read are ignored (the timers computed from the restored keys stay).
  void RestoreTimers(const std::string& saved);
  // End of a bounded input (replay): every key's watermark moves to infinity; every open
  // window closes and is emitted (SPEC §12.10).
  void Finish(std::vector<Event>* out);

  // Appends the state of every (rule, key) changed since the last call, and clears the
  // change set. The store commits these with the events produced up to now.
  void TakeChanges(std::vector<StateChange>* out);
  // The same, at most `max` at a time (in no particular order), for a checkpoint written in
  // chunks. False when none was left.
  bool TakeChanges(std::vector<StateChange>* out, std::size_t max);
  // Marks every key changed: the next TakeChanges returns them all (a checkpoint that failed
  // after taking its changes).
  void MarkAllChanged();
  bool HasChanges() const;
  // Restores one key's state from a checkpoint: Adopt(Decode(rule, key, bytes)).
  bool Restore(const std::string& rule, const std::string& key, const std::string& bytes);
  // Decodes one key's checkpoint row. Pure: it reads only the engine's rules, which nothing
  // but TakeStateOf changes after construction, so any number of threads may decode at once,
  // beside the owner's other calls (a restart decodes on every core: agent/pipeline.cpp).
  DecodedKey Decode(const std::string& rule, const std::string& key,
                    const std::string& bytes) const;
  // Puts a decoded key's state in place (the owner's thread), replacing the key's state if it
  // has one, and sets the rule's timers as the key asks. False (and nothing changes) when
  // !decoded.ok().
  bool Adopt(DecodedKey decoded);

  // Reload (SPEC §7): moves the keys of `old`'s rules whose definition this engine has
  // unchanged (same id and fingerprint) into this engine, state and all (windows, detectors,
  // join buffers, alerts, the changes not yet taken by TakeChanges), without a copy. The keys
  // of `old`'s other rules (removed or changed) stay in `old`, for ResolveFiring. Call on a
  // new engine, before anything else.
  struct Handover {
    std::size_t kept = 0;                    // keys moved
    std::vector<std::string> dropped_rules;  // old rules with keys that start fresh, sorted
    std::vector<StateChange> deleted;        // a deletion row for each of their keys
  };
  Handover TakeStateOf(Engine& old);

  // The state of every (rule, key), in rule and key order.
  void SnapshotAll(std::vector<StateChange>* out) const;
  // Resolves every firing alert of `rule` (removed or changed by a reload): a resolved event
  // per alert, at processing time `now`, with the last summary and no values.
  void ResolveFiring(const std::string& rule, Millis now, std::vector<Event>* out);

  std::vector<RuleStats> Stats() const;
  std::vector<FiringAlert> Firing() const;
  std::size_t rule_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::rules
