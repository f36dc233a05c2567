#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <utility>

#include "config/clock.h"
#include "config/values.h"

namespace vigil::agent {

// The agent's processing time (SPEC §5), in ms since the epoch: the system clock, except that
// it never goes back. A step back of the system clock (an NTP correction, a manual change) is
// absorbed: processing time goes on from where it was, at the rate of the monotonic clock,
// ahead of the system clock by the step until a later step forward takes that back, or the
// agent restarts; timers (idle_timeout, `absent`, commits) neither stall nor fire twice. A step
// forward is followed, since readings stamped by devices with a right clock must not look as
// if they came from the future (a gateway without a battery-backed clock boots in the past
// until NTP steps it); such steps are added up for whoever measures ages in processing time
// (the outbox TTL). Forward steps of less than a second are not told apart from scheduling
// delays. Steady() is the monotonic clock. Thread-safe.
class ProcessingClock final : public Clock {
 public:
  // The system and the monotonic clock, in ms.
  using Source = std::function<std::pair<Millis, Millis>()>;
  static std::pair<Millis, Millis> SystemSource();

  explicit ProcessingClock(Source source = SystemSource) : source_(std::move(source)) {}
  Millis Now() override;
  Millis Steady() override { return source_().second; }
  // The steps seen since the last call, added up (each 0 when none).
  using Steps = ClockSteps;
  Steps TakeSteps() override;

 private:
  Source source_;
  std::mutex mu_;  // guards what follows
  bool started_ = false;
  Millis offset_{0};  // processing time minus system time: the backward steps absorbed
  Millis last_{0};    // the last processing time given
  Millis last_steady_{0};
  Steps steps_;  // not yet taken
};

// The process's processing clock, used by Now() (agent/pipeline.h) and injected into the
// engine thread (Pipeline) and the dispatchers.
ProcessingClock& AgentClock();

}  // namespace vigil::agent
