#pragma once

// The join buffer of one key of a `source.join` rule (rules/README.md "Joins"): the readings
// of each side that a later reading of the other side may still pair with. Internal to
// rules/ (the engine's); not installed.

#include <cstdint>
#include <vector>

#include "rules/packed.h"

namespace vigil::rules {

struct JoinSpec;

namespace internal {

// The two inputs of a join buffered for one key, each in arrival order.
struct JoinBuffer {
  struct Entry {
    std::int64_t t = 0;
    double value = 0;
  };
  std::vector<Entry> side[2];

  // Calls pair(other) for each buffered reading of the other side within `within` of `t`
  // (event time), in arrival order.
  template <typename Pair>
  void Match(std::size_t side_of_reading, std::int64_t t, std::int64_t within, Pair pair) const {
    for (const Entry& other : side[1 - side_of_reading]) {
      const std::int64_t apart = t > other.t ? t - other.t : other.t - t;
      if (apart > within) continue;
      pair(other);
    }
  }
  // Buffers a reading of `side_of_reading`; false when that pushed the side's oldest arrival
  // out (the buffer holds at most `max_buffer`: the caller counts the drop).
  bool Add(std::size_t side_of_reading, std::int64_t t, double value, std::size_t max_buffer);
  // Lets go of what no later reading can pair with: readings older than `keep_from`.
  void Trim(std::int64_t keep_from);
};

// Checkpoint bytes of a join buffer: [[[t, value], …], […]].
void SaveJoin(const JoinBuffer& join, Packer& p);
// Throws nlohmann::json::exception on malformed input.
void LoadJoin(const Packed& j, JoinBuffer* join);

}  // namespace internal
}  // namespace vigil::rules
