#include "rules/detector.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "rules/checkpoint.h"
#include "rules/ring_deque.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

// A score when the baseline has no spread and no floor: 0 for the same value, else "very far".
constexpr double kFar = 1e9;
// The floor of a series that has never moved, relative to its magnitude.
constexpr double kRelativeFloor = 1e-3;

// The signal's resolution: the smallest non-zero step between consecutive values so far. A
// quantized sensor (integer steps, a value that holds still) has windows with no spread; the
// spread a score divides by is never less than half this step (the standard deviation of a
// value alternating between two adjacent steps), so one step scores 2, not 10⁹.
class Resolution {
 public:
  void Add(double x) {
    if (has_last_) {
      const double step = std::fabs(x - last_);
      if (step > 0 && (step_ == 0 || step < step_)) step_ = step;
    }
    has_last_ = true;
    last_ = x;
  }
  // The least spread to score `x` against around `center`: half the resolution; for a series
  // that has never moved, 0.1% of its magnitude (a stuck sensor's first move scores at most
  // 2 000).
  double Floor(double x, double center) const {
    if (step_ > 0) return step_ / 2;
    return kRelativeFloor * std::max(std::fabs(center), std::fabs(x));
  }
  void Save(Packer& p) const { p.Array(3).Bool(has_last_).Double(last_).Double(step_); }
  void Load(const Packed& j) {
    has_last_ = j.at(0).get<bool>();
    last_ = LoadDouble(j.at(1));
    step_ = LoadDouble(j.at(2));
  }

 private:
  bool has_last_ = false;
  double last_ = 0;
  double step_ = 0;  // 0: no step seen yet
};

// distance / spread, the spread raised to `floor` where it is smaller (Resolution).
double Ratio(double distance, double spread, double floor) {
  spread = std::max(spread, floor);
  if (spread > 0) return distance / spread;
  return distance == 0 ? 0 : kFar;
}

// The values of a rolling window (by count or by event-time duration), with running sums
// for mean/variance (Welford with removal) and an ordered multiset for the median.
class Rolling {
 public:
  explicit Rolling(const DetectorSpec& spec)
      : spec_(spec),
        times_(timed() ? std::make_unique<RingDeque<std::int64_t>>() : nullptr),
        sorted_(sorted() ? std::make_unique<std::multiset<double>>() : nullptr) {}

  void Add(double x, std::int64_t t) {
    resolution_.Add(x);
    // A window by count of up to kReserveUpTo values is made whole at its first value.
    if (values_.empty() && !timed() && spec_.window_count < kReserveUpTo) {
      values_.reserve(spec_.window_count + 1);
    }
    values_.push_back(x);
    if (timed()) times_->push_back(t);
    if (sorted()) sorted_->insert(x);
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
  const Resolution& resolution() const { return resolution_; }
  double stddev() const {
    return n_ == 0 ? 0 : std::sqrt(std::max(0.0, m2_ / static_cast<double>(n_)));
  }

  double Median() const { return Quantile(*sorted_); }
  double Mad() const {
    const double med = Median();
    std::multiset<double> dev;
    for (double x : *sorted_) dev.insert(std::fabs(x - med));
    return Quantile(dev);
  }

  // The running sums are saved as they are, so a restored detector scores bit-for-bit alike.
  void Save(Packer& p) const {
    // [time, value] pairs; the time is 0 for a window by count, which keeps none.
    p.Map(5).Str("values").Array(values_.size());
    for (std::size_t i = 0; i < values_.size(); ++i) {
      p.Array(2).Int(timed() ? (*times_)[i] : 0).Double(values_[i]);
    }
    p.Str("n").Uint(n_).Str("mean").Double(mean_).Str("m2").Double(m2_).Str("res");
    resolution_.Save(p);
  }
  void Load(const Packed& j) {
    for (Packed v : j.at("values")) {
      const std::int64_t t = v.at(0).get<std::int64_t>();
      values_.push_back(v.at(1).get<double>());
      if (timed()) times_->push_back(t);
      if (sorted()) sorted_->insert(values_.back());
    }
    n_ = j.at("n").get<std::uint64_t>();
    mean_ = LoadDouble(j.at("mean"));
    m2_ = LoadDouble(j.at("m2"));
    if (j.contains("res")) resolution_.Load(j.at("res"));  // absent in older checkpoints
  }

 private:
  // Only mad needs the values in order (a multiset: ~48 bytes a value and a tree insert).
  bool sorted() const { return spec_.method == DetectorSpec::Method::kMad; }
  // Only a window by duration needs the values' times.
  bool timed() const { return spec_.window_count == 0; }
  bool Expired(std::int64_t now) const {
    if (!timed()) return values_.size() > spec_.window_count;
    return times_->front() <= now - spec_.window_duration.count();
  }
  void Remove() {
    const double x = values_.front();
    values_.pop_front();
    if (timed()) times_->pop_front();
    if (sorted()) sorted_->erase(sorted_->find(x));
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

  static constexpr std::size_t kReserveUpTo = 256;

  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  RingDeque<double> values_;
  // Made only where read (a key of a z-score window by count would hold 80 empty bytes).
  std::unique_ptr<RingDeque<std::int64_t>> times_;  // beside values_ for a window by duration
  std::unique_ptr<std::multiset<double>> sorted_;   // mad's values in order
  Resolution resolution_;
  std::uint64_t n_ = 0;
  double mean_ = 0;
  double m2_ = 0;
};

// zscore (|x − mean| / stddev) or mad (0.6745·|x − median| / MAD) over a rolling window.
class RollingDetector : public Detector {
 public:
  explicit RollingDetector(const DetectorSpec& spec) : spec_(spec), rolling_(spec_) {}
  Detection Observe(double x, std::int64_t t) override {
    Detection d;
    if (rolling_.size() >= std::max<std::uint64_t>(spec_.min_samples, 2)) {
      d.ready = true;
      if (spec_.method == DetectorSpec::Method::kMad) {
        const double median = rolling_.Median();
        d.score = 0.6745 * Ratio(std::fabs(x - median), rolling_.Mad(),
                                 rolling_.resolution().Floor(x, median));
      } else {
        d.score = Ratio(std::fabs(x - rolling_.mean()), rolling_.stddev(),
                        rolling_.resolution().Floor(x, rolling_.mean()));
      }
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
class EwmaDetector : public Detector {
 public:
  explicit EwmaDetector(const DetectorSpec& spec) : spec_(spec) {}
  Detection Observe(double x, std::int64_t) override {
    Detection d;
    if (n_ >= std::max<std::uint64_t>(spec_.min_samples, 2)) {
      d.ready = true;
      d.score = Ratio(std::fabs(x - mean_), std::sqrt(var_), resolution_.Floor(x, mean_));
      d.anomaly = d.score > spec_.threshold;
    }
    resolution_.Add(x);
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
  void Save(Packer& p) const override {
    p.Array(4).Uint(n_).Double(mean_).Double(var_);
    resolution_.Save(p);
  }
  bool Warm() const override { return n_ >= std::max<std::uint64_t>(spec_.min_samples, 2); }
  void Load(const Packed& j) override {
    n_ = j.at(0).get<std::uint64_t>();
    mean_ = LoadDouble(j.at(1));
    var_ = LoadDouble(j.at(2));
    if (j.size() > 3) resolution_.Load(j.at(3));  // absent in older checkpoints
  }

 private:
  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  std::uint64_t n_ = 0;
  double mean_ = 0;
  double var_ = 0;
  Resolution resolution_;
};

// |Δvalue / Δt| between consecutive readings, in units per second.
class SpikeDetector : public Detector {
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
class FlatlineDetector : public Detector {
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

class RangeDetector : public Detector {
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

// adaptive (rules/README.md, "adaptive"): two signs that a key is doing something it does not
// usually do, both learned per key, both O(1) a reading.
// - A surprise: each value is scored against a level that follows the series (Holt's linear
//   trend), in units of the series' typical deviation from it (an EWMA of the absolute
//   deviation, never below the resolution), capped at kCap; those raw scores are smoothed (an
//   EWMA over a few readings) and that recent score level is compared with its own long-run mean
//   and variance (an EWMA over about kLongRun readings): z, in long-run standard deviations. A
//   surprise counts when z > `threshold` and the value is also more than kBand long-run
//   standard deviations from the key's long-run mean value: a fast swing within the key's usual
//   range (a daily cycle, a machine's usual on/off) is not an anomaly.
// - A departure: the value's distance from its long-run mean, in long-run standard deviations,
//   smoothed over about 1/kDepartureAlpha readings, beyond kDeparture: a slow slide out of the
//   usual range (a failing machine cooling down over a day) that the level follows too closely
//   to surprise.
// `score` is the larger of z and the departure scaled so that both fire at `threshold`. An
// episode goes on while either stays above half its bar. The long runs learn no surprising
// stretch, so frequent anomalies do not widen what counts as usual; they do learn a departure,
// so a lasting level shift becomes the new normal (after about kLongRun / 10 readings).
class AdaptiveDetector : public Detector {
 public:
  static constexpr double kLevelAlpha = 0.05;       // the level: about 20 readings
  static constexpr double kTrendBeta = 0.02;        // its slope: about 50 readings
  static constexpr double kDevAlpha = 0.01;         // the typical deviation: about 100 readings
  static constexpr double kShortAlpha = 0.3;        // the recent score level: a few readings
  static constexpr double kLongRun = 5000;          // the long-run distributions
  static constexpr double kCap = 20;                // a raw score's cap: one wild value is bounded
  static constexpr double kClamp = 3;               // what one value adds to the typical deviation
  static constexpr double kMinSigma = 0.05;         // the long-run deviation's floor
  static constexpr double kBand = 4;                // a surprise must leave the usual range by this
  static constexpr double kDeparture = 1.5;         // the smoothed distance a departure needs
  static constexpr double kDepartureAlpha = 0.005;  // its smoothing: about 200 readings
  static constexpr std::uint64_t kSettle = 30;      // readings before the long run is learned

  explicit AdaptiveDetector(const DetectorSpec& spec) : spec_(spec) {}
  Detection Observe(double x, std::int64_t) override {
    Detection d;
    if (n_ == 0) {
      level_ = x;
      resolution_.Add(x);
      n_ = 1;
      return d;
    }
    const double expected = level_ + trend_;
    const double distance = std::fabs(x - expected);
    const double spread = std::max(dev_, resolution_.Floor(x, expected));
    const double raw = spread > 0 ? std::min(distance / spread, kCap) : (distance > 0 ? kCap : 0);
    recent_ += kShortAlpha * (raw - recent_);
    const double z = (recent_ - mean_) / std::max(std::sqrt(var_), kMinSigma);
    const double band =
        Ratio(std::fabs(x - value_mean_), std::sqrt(value_var_), resolution_.Floor(x, value_mean_));
    if (Warm()) {
      d.ready = true;
      // The departure counts once the value's long run has min_samples values.
      const bool learned = values_ >= spec_.min_samples;
      if (learned) departure_ += kDepartureAlpha * ((x < value_mean_ ? -band : band) - departure_);
      const double half = in_episode_ ? 0.5 : 1.0;
      const bool surprise = z > half * spec_.threshold && (in_episode_ || band > kBand);
      const bool departed = learned && std::fabs(departure_) > half * kDeparture;
      d.score = std::max({0.0, z, std::fabs(departure_) / kDeparture * spec_.threshold});
      d.anomaly = surprise || departed;
      in_episode_ = d.anomaly;
    }
    // Learn, this value included (it is scored first: not part of its own baseline). The long
    // runs learn no surprising stretch (above threshold, warm or not).
    if (n_ >= kSettle && !(m_ >= 2 && z > spec_.threshold)) {
      ++m_;
      Learn(recent_, m_, &mean_, &var_);
      ++values_;
      Learn(x, values_, &value_mean_, &value_var_);
    }
    const double b = std::max(1.0 / static_cast<double>(n_), kDevAlpha);
    dev_ += b * (std::min(distance, kClamp * spread) - dev_);
    const double level = expected + kLevelAlpha * (x - expected);  // Holt's linear trend
    trend_ += kTrendBeta * (level - level_ - trend_);
    level_ = level;
    resolution_.Add(x);
    ++n_;
    return d;
  }
  bool Warm() const override {
    return n_ >= std::max<std::uint64_t>(spec_.min_samples, 2) && m_ >= 2;
  }
  // A checkpoint of the first form (10 elements, before the departure) restores with the
  // value's long run empty: the departure learns it again over min_samples readings.
  void Save(Packer& p) const override {
    p.Array(14).Uint(n_).Uint(m_).Double(level_).Double(dev_).Double(recent_).Double(mean_);
    p.Double(var_).Double(trend_).Bool(in_episode_);
    resolution_.Save(p);
    p.Uint(values_).Double(value_mean_).Double(value_var_).Double(departure_);
  }
  void Load(const Packed& j) override {
    n_ = j.at(0).get<std::uint64_t>();
    m_ = j.at(1).get<std::uint64_t>();
    level_ = LoadDouble(j.at(2));
    dev_ = LoadDouble(j.at(3));
    recent_ = LoadDouble(j.at(4));
    mean_ = LoadDouble(j.at(5));
    var_ = LoadDouble(j.at(6));
    trend_ = LoadDouble(j.at(7));
    in_episode_ = j.at(8).get<bool>();
    resolution_.Load(j.at(9));
    if (j.size() >= 14) {
      values_ = j.at(10).get<std::uint64_t>();
      value_mean_ = LoadDouble(j.at(11));
      value_var_ = LoadDouble(j.at(12));
      departure_ = LoadDouble(j.at(13));
    }
  }

 private:
  // An exponentially weighted mean and variance, a plain average over the first kLongRun.
  static void Learn(double v, std::uint64_t count, double* mean, double* var) {
    const double a = std::max(1.0 / static_cast<double>(count), 1.0 / kLongRun);
    const double diff = v - *mean;
    *mean += a * diff;
    *var = (1 - a) * (*var + a * diff * diff);
  }

  const DetectorSpec& spec_;  // the rule's, which outlives its detectors
  std::uint64_t n_ = 0;       // values seen
  std::uint64_t m_ = 0;       // values in the long run of the score level (after kSettle)
  double level_ = 0;
  double trend_ = 0;
  bool in_episode_ = false;  // the last value was flagged: an episode goes on at half the bars
  double dev_ = 0;
  double recent_ = 0;
  double mean_ = 0;
  double var_ = 0;
  std::uint64_t values_ = 0;  // values in the value's long run
  double value_mean_ = 0;
  double value_var_ = 0;
  double departure_ = 0;  // smoothed signed distance from value_mean_, in its long-run σ
  Resolution resolution_;
};

// `suppress`: an episode is a run of flagged values; after one ends, a new one is not flagged
// until `suppress` has passed since the episode's last flagged value (a count of readings, or
// a duration of event time), so a key that keeps tripping pages once, not once a reading. A
// flagged value inside the quiet time is muted (its score stays) and does not extend it. An
// episode in progress is never cut.
class Suppressed : public Detector {
 public:
  Suppressed(std::unique_ptr<Detector> inner, const DetectorSpec& spec)
      : inner_(std::move(inner)), count_(spec.suppress_count), duration_(spec.suppress.count()) {}
  Detection Observe(double x, std::int64_t t) override {
    Detection d = inner_->Observe(x, t);
    if (since_ < std::numeric_limits<std::uint64_t>::max()) ++since_;
    const bool quiet = count_ > 0 ? since_ <= count_ : t - last_ < duration_;
    if (!d.anomaly) {
      in_episode_ = false;
    } else if (!in_episode_ && active_ && quiet) {
      d.anomaly = false;  // muted: inside the quiet time after the last episode
    } else {
      active_ = in_episode_ = true;
      last_ = t;
      since_ = 0;
    }
    return d;
  }
  void Prefetch() const override { inner_->Prefetch(); }
  bool Warm() const override { return inner_->Warm(); }
  void Save(Packer& p) const override {
    p.Array(5);
    inner_->Save(p);
    p.Bool(active_).Bool(in_episode_).Int(last_).Uint(since_);
  }
  void Load(const Packed& j) override {
    inner_->Load(j.at(0));
    active_ = j.at(1).get<bool>();
    in_episode_ = j.at(2).get<bool>();
    last_ = j.at(3).get<std::int64_t>();
    since_ = j.at(4).get<std::uint64_t>();
  }

 private:
  std::unique_ptr<Detector> inner_;
  std::uint64_t count_;      // quiet time in readings, or 0…
  std::int64_t duration_;    // …in event time (ms)
  bool active_ = false;      // an episode has been flagged
  bool in_episode_ = false;  // the last value was flagged (and not muted)
  std::int64_t last_ = 0;    // event time of the last flagged value
  std::uint64_t since_ = 0;  // readings since then
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
// The check is a subclass of the detector it guards, not an object of its own: one heap
// object a key, not two.
template <typename D>
class FiniteInput final : public D {
 public:
  using D::D;
  Detection Observe(double x, std::int64_t t) override {
    if (!std::isfinite(x)) return {false, std::nan(""), false};
    return D::Observe(x, t);
  }
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
    case DetectorSpec::Method::kAdaptive:
      return std::make_unique<AdaptiveDetector>(spec);
    case DetectorSpec::Method::kAbsent:
      break;
  }
  return nullptr;
}

template <typename D>
std::unique_ptr<Detector> MakeFinite(const DetectorSpec& spec) {
  return std::make_unique<FiniteInput<D>>(spec);
}

}  // namespace

std::unique_ptr<Detector> MakeDetector(const DetectorSpec& spec) {
  if (spec.method == DetectorSpec::Method::kAbsent) return std::make_unique<AbsentDetector>();
  if (spec.suppress_count > 0 || spec.suppress.count() > 0) {
    return std::make_unique<FiniteInput<Suppressed>>(MakeValueDetector(spec), spec);
  }
  switch (spec.method) {
    case DetectorSpec::Method::kZscore:
    case DetectorSpec::Method::kMad:
      return MakeFinite<RollingDetector>(spec);
    case DetectorSpec::Method::kEwma:
      return MakeFinite<EwmaDetector>(spec);
    case DetectorSpec::Method::kSpike:
      return MakeFinite<SpikeDetector>(spec);
    case DetectorSpec::Method::kFlatline:
      return MakeFinite<FlatlineDetector>(spec);
    case DetectorSpec::Method::kRange:
      return MakeFinite<RangeDetector>(spec);
    case DetectorSpec::Method::kAdaptive:
      return MakeFinite<AdaptiveDetector>(spec);
    case DetectorSpec::Method::kAbsent:
      break;
  }
  return nullptr;
}

}  // namespace vigil::rules
