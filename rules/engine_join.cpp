#include "rules/engine_join.h"

#include <algorithm>

namespace vigil::rules::internal {

bool JoinBuffer::Add(std::size_t side_of_reading, std::int64_t t, double value,
                     std::size_t max_buffer) {
  std::vector<Entry>& mine = side[side_of_reading];
  mine.push_back({t, value});
  if (mine.size() <= max_buffer) return true;
  mine.erase(mine.begin());  // the oldest arrival
  return false;
}

void JoinBuffer::Trim(std::int64_t keep_from) {
  for (auto& buffered : side) {
    std::erase_if(buffered, [&](const Entry& e) { return e.t < keep_from; });
  }
}

void SaveJoin(const JoinBuffer& join, Packer& p) {
  p.Array(2);
  for (const auto& s : join.side) {
    p.Array(s.size());
    for (const auto& e : s) p.Array(2).Int(e.t).Double(e.value);
  }
}

void LoadJoin(const Packed& j, JoinBuffer* join) {
  for (std::size_t i = 0; i < 2; ++i) {
    for (Packed e : j.at(i)) {
      join->side[i].push_back({e.at(0).get<std::int64_t>(), e.at(1).get<double>()});
    }
  }
}

}  // namespace vigil::rules::internal
