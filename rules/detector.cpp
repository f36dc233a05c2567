#include "rules/detector.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "rules/checkpoint.h"
#include "rules/ring_deque.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

// A score when the baseline has no spread: 0 for the same value, else "very far".
constexpr double kFar = 1e9;

double Ratio(double distance, double spread) {
  if (spread > 0) return distance / spread;
  return distance == 0 ? 0 : kFar;
}

// The values of a rolling window (by count or by event-time duration), with running sums
// for mean/variance (Welford with removal) and an ordered multiset for the median.
class Rolling {
 public:
  explicit Rolling(const DetectorSpec& spec) : spec_(spec) {}

  void Add(double x, std::int64_t t) {
    values_.push_back(x);
    if (timed()) times_.push_back(t);
    if (sorted()) sorted_.insert(x);
    ++n_;
    const double d = x - mean_;
    mean_ += d / static_cast<double>(n_);
    m2_ += d * (x - mean_);
    while (!values_.empty() && Expired(t)) Remove();
  }

  std::uint64_t size() const { return n_; }
  void Prefetch() const {
    if (values_.empty()) return;
    __builtin_prefetch(&values_.back());
    __builtin_prefetch(&values_.front());
  }
  double mean() const { return mean_; }
  double stddev() const {
    return n_ == 0 ? 0 : std::sqrt(std::max(0.0, m2_ / static_cast<double>(n_)));
  }

  double Median() const { return Quantile(sorted_); }
  double Mad() const {
    const double med = Median();
    std::multiset<double> dev;
    for (double x : sorted_) dev.insert(std::fabs(x - med));
    return Quantile(dev);
  }

  // The running sums are saved as they are, so a restored detector scores bit-for-bit alike.
  void Save(Packer& p) const {
    // [time, value] pairs; the time is 0 for a window by count, which keeps none.
    p.Map(4).Str("values").Array(values_.size());
    for (std::size_t i = 0; i < values_.size(); ++i) {
      p.Array(2).Int(timed() ? times_[i] : 0).Double(values_[i]);
    }
    p.Str("n").Uint(n_).Str("mean").Double(mean_).Str("m2").Double(m2_);
  }
  void Load(const Packed& j) {
    for (Packed v : j.at("values")) {
      const std::int64_t t = v.at(0).get<std::int64_t>();
      values_.push_back(v.at(1).get<double>());
      if (timed()) times_.push_back(t);
      if (sorted()) sorted_.insert(values_.back());
    }
    n_ = j.at("n").get<std::uint64_t>();
    mean_ = LoadDouble(j.at("mean"));
    m2_ = LoadDouble(j.at("m2"));
  }

 private:
  // Only mad needs the values in order (a multiset: ~48 bytes a value and a tree insert).
  bool sorted() const { return spec_.method == DetectorSpec::Method::kMad; }
  // Only a window by duration needs the values' times.
  bool timed() const { return spec_.window_count == 0; }
  bool Expired(std::int64_t now) const {
    if (!timed()) return values_.size() > spec_.window_count;
    return times_.front() <= now - spec_.window_duration.count();
  }
  void Remove() {
    const double x = values_.front();
    values_.pop_front();
    if (timed()) times_.pop_front();
    if (sorted()) sorted_.erase(sorted_.find(x));
    if (n_ == 1) {
      n_ = 0;
      mean_ = m2_ = 0;
      return;
    }
    const double old = mean_;
    mean_ = (static_cast<double>(n_) * mean_ - x) / static_cast<double>(n_ - 1);
    m2_ = std::max(0.0, m2_ - (x - old) * (x - mean_));
    --n_;
  }
  static double Quantile(const std::multiset<double>& s) {
    if (s.empty()) return 0;
    auto mid = std::next(s.begin(), static_cast<std::ptrdiff_t>(s.size() / 2));
    if (s.size() % 2 == 1) return *mid;
    return (*std::prev(mid) + *mid) / 2;
  }

  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  RingDeque<double> values_;
  RingDeque<std::int64_t> times_;  // beside values_ for a window by duration; else empty
  std::multiset<double> sorted_;
  std::uint64_t n_ = 0;
  double mean_ = 0;
  double m2_ = 0;
};

// zscore (|x − mean| / stddev) or mad (0.6745·|x − median| / MAD) over a rolling window.
class RollingDetector final : public Detector {
 public:
  explicit RollingDetector(const DetectorSpec& spec) : spec_(spec), rolling_(spec_) {}
  Detection Observe(double x, std::int64_t t) override {
    Detection d;
    if (rolling_.size() >= std::max<std::uint64_t>(spec_.min_samples, 2)) {
      d.ready = true;
      d.score = spec_.method == DetectorSpec::Method::kMad
                    ? 0.6745 * Ratio(std::fabs(x - rolling_.Median()), rolling_.Mad())
                    : Ratio(std::fabs(x - rolling_.mean()), rolling_.stddev());
      d.anomaly = d.score > spec_.threshold;
    }
    rolling_.Add(x, t);
    return d;
  }
  void Prefetch() const override { rolling_.Prefetch(); }
  bool Warm() const override {
    return rolling_.size() >= std::max<std::uint64_t>(spec_.min_samples, 2);
  }
  void Save(Packer& p) const override { rolling_.Save(p); }
  void Load(const Packed& j) override { rolling_.Load(j); }

 private:
  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  Rolling rolling_;
};

// EWMA mean and variance: m ← m + α(x − m), v ← (1 − β)(v + β(x − m)²) with β = α/4.
class EwmaDetector final : public Detector {
 public:
  explicit EwmaDetector(const DetectorSpec& spec) : spec_(spec) {}
  Detection Observe(double x, std::int64_t) override {
    Detection d;
    if (n_ >= std::max<std::uint64_t>(spec_.min_samples, 2)) {
      d.ready = true;
      d.score = Ratio(std::fabs(x - mean_), std::sqrt(var_));
      d.anomaly = d.score > spec_.threshold;
    }
    if (n_ == 0) {
      mean_ = x;
    } else {
      const double diff = x - mean_;
      mean_ += spec_.alpha * diff;
      // The variance is smoothed four times slower than the mean: a steadier band, so a
      // stationary series does not cross it by the chance dips of a fast estimate.
      const double beta = spec_.alpha / 4;
      var_ = (1 - beta) * (var_ + beta * diff * diff);
    }
    ++n_;
    return d;
  }
  void Save(Packer& p) const override { p.Array(3).Uint(n_).Double(mean_).Double(var_); }
  bool Warm() const override { return n_ >= std::max<std::uint64_t>(spec_.min_samples, 2); }
  void Load(const Packed& j) override {
    n_ = j.at(0).get<std::uint64_t>();
    mean_ = LoadDouble(j.at(1));
    var_ = LoadDouble(j.at(2));
  }

 private:
  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  std::uint64_t n_ = 0;
  double mean_ = 0;
  double var_ = 0;
};

// |Δvalue / Δt| between consecutive readings, in units per second.
class SpikeDetector final : public Detector {
 public:
  explicit SpikeDetector(const DetectorSpec& spec) : spec_(spec) {}
  Detection Observe(double x, std::int64_t t) override {
    Detection d;
    if (has_last_ && t > last_t_ && n_ >= spec_.min_samples) {
      d.ready = true;
      d.score = std::fabs(x - last_x_) / (static_cast<double>(t - last_t_) / 1000.0);
      d.anomaly = d.score > spec_.max_rate;
    }
    if (!has_last_ || t >= last_t_) {
      has_last_ = true;
      last_t_ = t;
      last_x_ = x;
    }
    ++n_;
    return d;
  }
  void Save(Packer& p) const override {
    p.Array(4).Bool(has_last_).Int(last_t_).Double(last_x_).Uint(n_);
  }
  bool Warm() const override { return n_ >= std::max<std::uint64_t>(spec_.min_samples, 2); }
  void Load(const Packed& j) override {
    has_last_ = j.at(0).get<bool>();
    last_t_ = j.at(1).get<std::int64_t>();
    last_x_ = LoadDouble(j.at(2));
    n_ = j.at(3).get<std::uint64_t>();
  }

 private:
  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  bool has_last_ = false;
  std::int64_t last_t_ = 0;
  double last_x_ = 0;
  std::uint64_t n_ = 0;
};

// A run of values within `tolerance` of the run's first value; anomaly once the run has
// lasted `for` (event time). score = the run's length in seconds.
class FlatlineDetector final : public Detector {
 public:
  explicit FlatlineDetector(const DetectorSpec& spec) : spec_(spec) {}
  Detection Observe(double x, std::int64_t t) override {
    if (!in_run_ || std::fabs(x - run_value_) > spec_.tolerance) {
      in_run_ = true;
      run_value_ = x;
      run_start_ = t;
    }
    ++n_;
    Detection d;
    d.ready = n_ > spec_.min_samples;
    const std::int64_t length = std::max<std::int64_t>(0, t - run_start_);
    d.score = static_cast<double>(length) / 1000.0;
    d.anomaly = d.ready && length >= spec_.for_duration.count();
    return d;
  }
  void Save(Packer& p) const override {
    p.Array(4).Bool(in_run_).Double(run_value_).Int(run_start_).Uint(n_);
  }
  bool Warm() const override { return n_ >= std::max<std::uint64_t>(spec_.min_samples, 2); }
  void Load(const Packed& j) override {
    in_run_ = j.at(0).get<bool>();
    run_value_ = LoadDouble(j.at(1));
    run_start_ = j.at(2).get<std::int64_t>();
    n_ = j.at(3).get<std::uint64_t>();
  }

 private:
  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  bool in_run_ = false;
  double run_value_ = 0;
  std::int64_t run_start_ = 0;
  std::uint64_t n_ = 0;
};

class RangeDetector final : public Detector {
 public:
  explicit RangeDetector(const DetectorSpec& spec) : spec_(spec) {}
  Detection Observe(double x, std::int64_t) override {
    Detection d;
    d.ready = ++n_ > spec_.min_samples;
    double below = spec_.min && x < *spec_.min ? *spec_.min - x : 0;
    double above = spec_.max && x > *spec_.max ? x - *spec_.max : 0;
    d.score = below + above;
    d.anomaly = d.ready && d.score > 0;
    return d;
  }
  void Save(Packer& p) const override { p.Array(1).Uint(n_); }
  bool Warm() const override { return n_ >= std::max<std::uint64_t>(spec_.min_samples, 2); }
  void Load(const Packed& j) override { n_ = j.at(0).get<std::uint64_t>(); }

 private:
  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  std::uint64_t n_ = 0;
};

// Readings are what `absent` waits for; the engine decides by processing time.
class AbsentDetector final : public Detector {
 public:
  Detection Observe(double, std::int64_t) override { return {true, 0, false}; }
  void Save(Packer& p) const override { p.Array(0); }
  void Load(const Packed&) override {}
};

// Readings are finite (ingest rejects the rest), but a detector beside a window watches an
// aggregate, and a sum of huge readings overflows to ±inf (NaN after). Such a value is neither
// scored nor added: it would poison a baseline for good, and NaN breaks the median's order.
class FiniteInput final : public Detector {
 public:
  explicit FiniteInput(std::unique_ptr<Detector> inner) : inner_(std::move(inner)) {}
  Detection Observe(double x, std::int64_t t) override {
    if (!std::isfinite(x)) return {false, std::nan(""), false};
    return inner_->Observe(x, t);
  }
  void Save(Packer& p) const override { inner_->Save(p); }
  bool Warm() const override { return inner_->Warm(); }
  void Load(const Packed& j) override { inner_->Load(j); }

 private:
  std::unique_ptr<Detector> inner_;
};

std::unique_ptr<Detector> MakeValueDetector(const DetectorSpec& spec) {
  switch (spec.method) {
    case DetectorSpec::Method::kZscore:
    case DetectorSpec::Method::kMad:
      return std::make_unique<RollingDetector>(spec);
    case DetectorSpec::Method::kEwma:
      return std::make_unique<EwmaDetector>(spec);
    case DetectorSpec::Method::kSpike:
      return std::make_unique<SpikeDetector>(spec);
    case DetectorSpec::Method::kFlatline:
      return std::make_unique<FlatlineDetector>(spec);
    case DetectorSpec::Method::kRange:
      return std::make_unique<RangeDetector>(spec);
    case DetectorSpec::Method::kAbsent:
      break;
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Detector> MakeDetector(const DetectorSpec& spec) {
  if (spec.method == DetectorSpec::Method::kAbsent) return std::make_unique<AbsentDetector>();
  return std::make_unique<FiniteInput>(MakeValueDetector(spec));
}

}  // namespace vigil::rules
