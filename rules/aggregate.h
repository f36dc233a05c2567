#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "rules/packed.h"

#include "rules/event.h"
#include "rules/rule.h"

namespace vigil::rules {

// Percentiles in bounded memory (SPEC §3: ≤1% relative error): exact while a window holds
// up to kExactLimit values, then a DDSketch (log-spaced buckets with relative accuracy
// kAlpha, so every value is known within 0.5%). Mergeable, for session windows.
class Quantiles {
 public:
  static constexpr std::size_t kExactLimit = 256;
  static constexpr double kAlpha = 0.005;

  void Add(double x);
  void Merge(const Quantiles& other);
  // P in 0–100, linear interpolation between closest ranks (SPEC §12.8). REQUIRES: count()>0.
  double Percentile(double p) const;
  std::uint64_t count() const { return n_; }

  void Save(Packer& p) const;
  void Load(const Packed& j);

 private:
  void ToSketch();
  void AddToSketch(double x, std::uint64_t count);
  double ValueAtRank(std::uint64_t rank) const;  // 0-based, in ascending order

  std::uint64_t n_ = 0;
  bool sketch_ = false;
  std::vector<double> exact_;
  std::map<int, std::uint64_t> positive_;  // bucket index → count
  std::map<int, std::uint64_t> negative_;  // by magnitude
  std::uint64_t zero_ = 0;
};

// A value on the heap, made on first use: keeps accumulators that rarely need it small.
// Copies copy the value.
template <typename T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(const Boxed& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Boxed& operator=(const Boxed& o) {
    p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(Boxed&&) noexcept = default;
  ~Boxed() = default;

  T& get() {
    if (!p_) p_ = std::make_unique<T>();
    return *p_;
  }
  const T* find() const { return p_.get(); }  // null until first get()

 private:
  std::unique_ptr<T> p_;
};

// The earliest and the latest reading of a window (first, last, delta, rate).
struct AccEnds {
  std::int64_t first_t = 0;
  std::uint64_t first_arrival = 0;
  double first_v = 0;
  std::int64_t last_t = 0;
  std::uint64_t last_arrival = 0;
  double last_v = 0;
};

using AccCounts = std::map<std::string, std::uint64_t>;  // distinct(): tag value → readings

// What an accumulator keeps besides its count and running value: stddev's sum of squared
// deviations, and in one box (made on first use) what first/last/delta/rate, percentile or
// distinct read.
struct AccTail {
  double m2 = 0;
  Boxed<std::variant<AccEnds, Boxed<Quantiles>, AccCounts>> extra;
};
struct NoAccTail {};

// The running state of one aggregate over one window: every aggregate function reads its
// result from it, and two accumulators merge (session windows). `arrival` breaks ties of
// equal event times for first/last (SPEC §12.8: arrival order). It keeps only what its
// function reads (a window holds one per aggregate, a key a window or more): `Acc` (32 bytes)
// serves every function, `SmallAcc` (16 bytes: a count and one running value) those that
// read no more (SmallAcc::Fits), the usual tumbling rule's. Both save the same checkpoint.
template <bool kFull>
struct BasicAcc {
  using Ends = AccEnds;
  using Counts = AccCounts;

  std::uint64_t n = 0;
  double v = 0;  // the running value the function reads: sum, mean (Welford), min or max
  [[no_unique_address]] std::conditional_t<kFull, AccTail, NoAccTail> tail;

  // count, sum, avg, min and max.
  static bool Fits(const AggregateSpec& spec);

  Ends& ends() requires kFull { return Extra<Ends>(); }
  const Ends* find_ends() const {
    if constexpr (kFull) return FindExtra<Ends>();
    return nullptr;
  }
  Quantiles& quantiles() requires kFull { return Extra<Boxed<Quantiles>>().get(); }
  const Quantiles* find_quantiles() const {
    if constexpr (kFull) {
      const auto* box = FindExtra<Boxed<Quantiles>>();
      return box != nullptr ? box->find() : nullptr;
    }
    return nullptr;
  }
  Counts& distinct() requires kFull { return Extra<Counts>(); }
  const Counts* find_distinct() const {
    if constexpr (kFull) return FindExtra<Counts>();
    return nullptr;
  }

  // x is the aggregate's argument for one reading (finite), or a distinct tag value.
  void Add(const AggregateSpec& spec, double x, const std::string* tag, std::int64_t t,
           std::uint64_t arrival);
  void Merge(const AggregateSpec& spec, const BasicAcc& other);
  Value Result(const AggregateSpec& spec) const;

  void Save(const AggregateSpec& spec, Packer& p) const;
  static BasicAcc Load(const AggregateSpec& spec, const Packed& j);

 private:
  // The parts of Merge and Save that read the tail.
  void MergeExtras(unsigned fields, const BasicAcc& other) requires kFull;
  void SaveExtras(unsigned fields, Packer& p) const requires kFull;
  template <typename T>
  T& Extra() {
    auto& held = tail.extra.get();
    if (!std::holds_alternative<T>(held)) held.template emplace<T>();
    return std::get<T>(held);
  }
  template <typename T>
  const T* FindExtra() const {
    const auto* held = tail.extra.find();
    return held != nullptr ? std::get_if<T>(held) : nullptr;
  }
};

using Acc = BasicAcc<true>;
using SmallAcc = BasicAcc<false>;
static_assert(sizeof(Acc) == 32 && sizeof(SmallAcc) == 16);

}  // namespace vigil::rules
