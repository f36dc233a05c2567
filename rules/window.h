#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "rules/event.h"
#include "rules/packed.h"
#include "rules/rule.h"

namespace vigil::rules {

// "No watermark yet" (the key has had no reading).
constexpr std::int64_t kNoWatermark = std::numeric_limits<std::int64_t>::min();

// One accepted reading as the windows see it: the arguments of the rule's aggregates are
// evaluated once per reading (xs[i]: NaN when aggregate i skips it; tags[i]: the tag value of
// a distinct() aggregate, or nullptr).
struct Sample {
  std::int64_t t = 0;
  std::uint64_t arrival = 0;  // per key, increasing: breaks ties of equal times
  const double* xs = nullptr;
  const std::string* const* tags = nullptr;
};

// A window the engine must evaluate: its bounds and aggregate values. `seq` numbers the
// windows of a key for sliding and count windows, whose bounds may repeat (part of event ids).
struct ClosedWindow {
  WindowBounds bounds;
  std::vector<Value> values;
  std::int64_t seq = -1;
};

// The open windows of one (rule, key): tumbling and hopping (epoch-aligned), sliding, session
// or count (SPEC §3, §5, §12.4–12.7). The engine owns watermarks and idle timeouts; a
// WindowState only says what is late, holds samples and closes windows when told.
// Made by MakeWindowState; serializable for checkpoints.
class WindowState {
 public:
  virtual ~WindowState() = default;

  // True when a reading at `t` belongs only to windows that have closed (or would be closed
  // by `watermark` already): it is counted as late and dropped.
  virtual bool IsLate(std::int64_t t, std::int64_t watermark) const = 0;
  // REQUIRES: !IsLate(s.t, watermark). May close windows (count windows).
  virtual void Add(const Sample& s, std::int64_t watermark, std::vector<ClosedWindow>* out) = 0;
  // Closes, in order, every window the watermark has reached.
  virtual void Advance(std::int64_t watermark, std::vector<ClosedWindow>* out) = 0;
  // Closes every open window (idle timeout, end of replay input).
  virtual void CloseAll(std::vector<ClosedWindow>* out) = 0;
  virtual bool HasOpen() const = 0;
  // Fetches into the cache what the next Add reads (a hint: it changes nothing).
  virtual void Prefetch() const {}

  virtual void Save(Packer& p) const = 0;
  // Throws nlohmann::json::exception on malformed input.
  virtual void Load(const Packed& j) = 0;
};

std::unique_ptr<WindowState> MakeWindowState(const CompiledRule& rule);

}  // namespace vigil::rules
