#include "agent/drive.h"

#include <utility>

namespace vigil::agent {

void Drive::Feed(std::span<const rules::Reading> readings, Millis now,
                 std::vector<rules::Event>* out) {
  for (const auto& reading : readings) engine_->Process(reading, now, out);
}

std::optional<store::Tick> Drive::Tick(Millis now, std::int64_t after,
                                       std::vector<rules::Event>* out) {
  if (!engine_->Advance(now, out)) return std::nullopt;
  return store::Tick{after, now};
}

void Drive::Recorded(std::vector<store::Tick> ticks) {
  recorded_ = std::move(ticks);
  next_recorded_ = 0;
}

std::size_t Drive::CatchUp(std::int64_t seq) {
  std::size_t fired = 0;
  for (; next_recorded_ < recorded_.size() && recorded_[next_recorded_].after < seq;
       ++next_recorded_, ++fired) {
    dropped_.clear();
    engine_->Advance(recorded_[next_recorded_].now, &dropped_);
  }
  dropped_.clear();
  return fired;
}

}  // namespace vigil::agent
