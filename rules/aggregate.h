#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
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

// The running state of one aggregate over one window: every aggregate function reads its
// result from it, and two accumulators merge (session windows). `arrival` breaks ties of
// equal event times for first/last (SPEC §12.8: arrival order). It keeps only what its
// function reads (a window holds one per aggregate, a key a window or more).
struct Acc {
  // The earliest and the latest reading (first, last, delta, rate).
  struct Ends {
    std::int64_t first_t = 0;
    std::uint64_t first_arrival = 0;
    double first_v = 0;
    std::int64_t last_t = 0;
    std::uint64_t last_arrival = 0;
    double last_v = 0;
  };

  using Counts = std::map<std::string, std::uint64_t>;  // distinct(): tag value → readings

  std::uint64_t n = 0;
  double v = 0;   // the running value the function reads: sum, mean (Welford), min or max
  double m2 = 0;  // stddev: Welford's sum of squared deviations from the mean
  // What first/last/delta/rate, percentile or distinct keep besides, in one box (32 bytes an
  // accumulator, not 48 with a box each): made on first use, holding what the function reads.
  Boxed<std::variant<Ends, Boxed<Quantiles>, Counts>> extra;

  Ends& ends() { return Extra<Ends>(); }
  const Ends* find_ends() const { return FindExtra<Ends>(); }
  Quantiles& quantiles() { return Extra<Boxed<Quantiles>>().get(); }
  const Quantiles* find_quantiles() const {
    const auto* box = FindExtra<Boxed<Quantiles>>();
    return box != nullptr ? box->find() : nullptr;
  }
  Counts& distinct() { return Extra<Counts>(); }
  const Counts* find_distinct() const { return FindExtra<Counts>(); }

  // x is the aggregate's argument for one reading (finite), or a distinct tag value.
  void Add(const AggregateSpec& spec, double x, const std::string* tag, std::int64_t t,
           std::uint64_t arrival);
  void Merge(const AggregateSpec& spec, const Acc& other);
  Value Result(const AggregateSpec& spec) const;

  void Save(const AggregateSpec& spec, Packer& p) const;
  static Acc Load(const AggregateSpec& spec, const Packed& j);

 private:
  template <typename T>
  T& Extra() {
    auto& held = extra.get();
    if (!std::holds_alternative<T>(held)) held.template emplace<T>();
    return std::get<T>(held);
  }
  template <typename T>
  const T* FindExtra() const {
    const auto* held = extra.find();
    return held != nullptr ? std::get_if<T>(held) : nullptr;
  }
};

}  // namespace vigil::rules
