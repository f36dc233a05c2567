#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "config/values.h"
#include "rules/engine.h"
#include "store/store.h"

namespace vigil::agent {

// The one way vigil drives a rules::Engine through processing time, shared by the engine
// thread (Pipeline's live loop), crash recovery (Pipeline::Restore) and `vigil replay`, so that
// the same messages at the same times give the same state and events, with the same ids:
// - Feed: one message's readings, processed at a processing time (the message's arrival);
// - Tick: the engine's timers at a processing time. A moment at which they were due (or a key
//   was evicted: Engine::Advance returned true) is a store::Tick, returned so the caller
//   commits it with the events after it;
// - recovery: Recorded hands it the ticks committed before a crash, and CatchUp(seq) fires
//   again, before journal message `seq` is fed, those that came before it, at the moments
//   they fired then. Their events were committed then: they are dropped.
// Reads no clock: the caller gives every time (agent/clock.h for the live loop, the journal's
// arrival times for recovery and replay). Not thread-safe: one thread drives it.
class Drive {
 public:
  explicit Drive(rules::Engine* engine) : engine_(engine) {}

  // Drives `engine` from now on (a reload replaced it). Not owned.
  void Reset(rules::Engine* engine) { engine_ = engine; }

  // Processes `readings` at processing time `now`, appending their events to *out.
  void Feed(std::span<const rules::Reading> readings, Millis now, std::vector<rules::Event>* out);
  // Fires the timers due at `now`, appending their events to *out. When any was due, returns
  // the tick to record: at `now`, after journal message `after`.
  std::optional<store::Tick> Tick(Millis now, std::int64_t after, std::vector<rules::Event>* out);

  // Recovery: the committed ticks, in order (store::Store::Ticks).
  void Recorded(std::vector<store::Tick> ticks);
  // Fires the recorded ticks that came before journal message `seq` (after < seq), in order;
  // returns how many. Their events are dropped (in the outbox already).
  std::size_t CatchUp(std::int64_t seq);
  // Recorded ticks not fired yet.
  std::size_t recorded_left() const { return recorded_.size() - next_recorded_; }

 private:
  rules::Engine* engine_;  // not owned
  std::vector<store::Tick> recorded_;
  std::size_t next_recorded_ = 0;
  std::vector<rules::Event> dropped_;  // scratch: the events of recorded ticks
};

}  // namespace vigil::agent
