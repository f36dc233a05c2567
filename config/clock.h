#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "config/values.h"

namespace vigil {

// Steps of the system clock seen by a processing clock (agent/clock.h), added up.
struct ClockSteps {
  Millis forward{0};
  Millis back{0};
};

// Time as one of vigil's threads sees it: the seam through which tests drive the engine thread
// (agent::Pipeline) and the dispatchers (uplink::Dispatcher) with a clock moved by hand
// instead of sleeping. The process's clock is agent::AgentClock(). Implementations are
// thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Processing time (SPEC §5): ms since the epoch, never going back.
  virtual Millis Now() = 0;
  // Monotonic time in ms (any origin) for intervals and deadlines of waits.
  virtual Millis Steady() = 0;
  // How long a thread that waits for this clock to move by `span` blocks in real time before
  // it looks at the clock again: `span` itself for a real clock; a short poll for a clock
  // moved by hand. Never negative.
  virtual Millis RealWait(Millis span) const { return std::max(span, Millis(0)); }
  // The steps of the system clock since the last call (both 0 for a clock that has none).
  virtual ClockSteps TakeSteps() { return {}; }

  // Blocks on `cv` (whose mutex `lock` holds) until notified or Steady() reaches `deadline`,
  // at most RealWait(deadline - Steady()); may return early: callers look at the time again.
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Millis deadline) {
    const Millis wait = RealWait(deadline - Steady());
    if (wait > Millis(0)) cv.wait_for(lock, wait);
  }
};

// The system clock and the steady clock, as they are (no step absorbed: the agent's processing
// clock is agent::AgentClock()).
class SystemClockSource final : public Clock {
 public:
  Millis Now() override {
    return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch());
  }
  Millis Steady() override {
    return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch());
  }
};

inline Clock& SystemClock() {
  static SystemClockSource clock;
  return clock;
}

}  // namespace vigil
