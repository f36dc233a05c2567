#include "agent/clock.h"

#include <algorithm>

namespace vigil::agent {
namespace {

// A system clock that moved this much more than the monotonic one stepped forward.
constexpr Millis kStepTolerance{1000};

}  // namespace

std::pair<Millis, Millis> ProcessingClock::SystemSource() {
  using std::chrono::duration_cast;
  return {duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()),
          duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch())};
}

Millis ProcessingClock::Now() {
  const auto [system, steady] = source_();
  std::lock_guard lock(mu_);
  Millis now = system + offset_;
  if (started_) {
    if (now < last_) {
      offset_ += last_ - now;  // a step back: absorbed
      steps_.back += last_ - now;
      now = last_;
    } else if (now - last_ > (steady - last_steady_) + kStepTolerance) {
      // A step forward first takes back what steps back had added.
      const Millis step = (now - last_) - (steady - last_steady_);
      const Millis absorbed = std::min(offset_, step);
      offset_ -= absorbed;
      now -= absorbed;
      steps_.forward += step - absorbed;
    }
  }
  started_ = true;
  last_ = now;
  last_steady_ = steady;
  return now;
}

ProcessingClock::Steps ProcessingClock::TakeSteps() {
  std::lock_guard lock(mu_);
  return std::exchange(steps_, Steps{});
}

ProcessingClock& AgentClock() {
  static ProcessingClock clock;
  return clock;
}

}  // namespace vigil::agent
