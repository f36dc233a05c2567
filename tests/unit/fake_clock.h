#pragma once

// A clock moved by hand (config/clock.h) for the unit tests of the threads that wait on one
// (agent::Pipeline, uplink::Dispatcher): time stands still until the test calls Advance.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "config/clock.h"

namespace vigil {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Millis start = Millis(1'700'000'000'000)) : now_(start.count()) {}

  Millis Now() override { return Millis(now_.load()); }
  Millis Steady() override { return Millis(now_.load()); }
  // Waits poll every millisecond: the test moves the time, the waiter sees it at once.
  Millis RealWait(Millis span) const override {
    waiting_until_.store(now_.load() + span.count());
    return std::clamp(span, Millis(0), Millis(1));
  }
  ClockSteps TakeSteps() override {
    std::lock_guard lock(mu_);
    return std::exchange(steps_, ClockSteps{});
  }

  // The deadline (by Steady()) of the wait a thread began last: what it waits for now.
  Millis waiting_until() const { return Millis(waiting_until_.load()); }

  void Advance(Millis by) { now_.fetch_add(by.count()); }
  void Set(Millis now) { now_.store(now.count()); }
  // A step forward of the system clock: the time moves and the step is told (TakeSteps).
  void StepForward(Millis by) {
    Advance(by);
    std::lock_guard lock(mu_);
    steps_.forward += by;
  }

 private:
  std::atomic<std::int64_t> now_;
  mutable std::atomic<std::int64_t> waiting_until_{-1};
  std::mutex mu_;
  ClockSteps steps_;
};

}  // namespace vigil
