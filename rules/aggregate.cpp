#include "rules/aggregate.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "rules/checkpoint.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

const double kGamma = (1 + Quantiles::kAlpha) / (1 - Quantiles::kAlpha);
const double kLogGamma = std::log(kGamma);
// The fields of Acc an aggregate function reads (Result), so Add updates, Save writes and Load
// needs only those. kMean and kM2 are Welford's running mean and sum of squared deviations.
enum : unsigned {
  kCount = 1,
  kSum = 2,
  kMean = 4,
  kMin = 8,
  kMax = 16,
  kFirst = 32,
  kLast = 64,
  kQuantiles = 128,
  kM2 = 256,  // with kMean
};

unsigned FieldsOf(AggregateSpec::Fn fn) {
  using Fn = AggregateSpec::Fn;
  switch (fn) {
    case Fn::kSum:
      return kCount | kSum;
    case Fn::kAvg:
      return kCount | kMean;
    case Fn::kStddev:
      return kCount | kMean | kM2;
    case Fn::kMin:
      return kCount | kMin;
    case Fn::kMax:
      return kCount | kMax;
    case Fn::kFirst:
      return kCount | kFirst;
    case Fn::kLast:
      return kCount | kLast;
    case Fn::kDelta:
    case Fn::kRate:
      return kCount | kFirst | kLast;
    case Fn::kPercentile:
      return kCount | kQuantiles;
    case Fn::kCount:
    case Fn::kDistinct:
      break;
  }
  return kCount;
}

// Each field by the name Save gives it in checkpoints.
constexpr std::pair<unsigned, std::string_view> kFieldNames[] = {
    {kCount, "n"}, {kSum, "s"},       {kMean, "mean"}, {kM2, "m2"},      {kMin, "min"},
    {kMax, "max"}, {kFirst, "first"}, {kLast, "last"}, {kQuantiles, "q"}};

unsigned FieldNamed(std::string_view name) {
  for (const auto& [bit, field] : kFieldNames) {
    if (field == name) return bit;
  }
  return 0;
}

// Magnitudes below this count as zero in the sketch.
constexpr double kMinMagnitude = 1e-12;

int BucketOf(double magnitude) {
  return static_cast<int>(std::ceil(std::log(magnitude) / kLogGamma));
}
double BucketValue(int index) { return 2 * std::pow(kGamma, index) / (kGamma + 1); }

}  // namespace

void Quantiles::Add(double x) {
  ++n_;
  if (!sketch_) {
    exact_.push_back(x);
    if (exact_.size() > kExactLimit) ToSketch();
    return;
  }
  AddToSketch(x, 1);
}

void Quantiles::AddToSketch(double x, std::uint64_t count) {
  if (std::fabs(x) < kMinMagnitude) {
    zero_ += count;
  } else if (x > 0) {
    positive_[BucketOf(x)] += count;
  } else {
    negative_[BucketOf(-x)] += count;
  }
}

void Quantiles::ToSketch() {
  sketch_ = true;
  for (double x : exact_) AddToSketch(x, 1);
  exact_.clear();
  exact_.shrink_to_fit();
}

void Quantiles::Merge(const Quantiles& other) {
  if (!sketch_ && !other.sketch_ && exact_.size() + other.exact_.size() <= kExactLimit) {
    exact_.insert(exact_.end(), other.exact_.begin(), other.exact_.end());
    n_ += other.n_;
    return;
  }
  if (!sketch_) ToSketch();
  for (double x : other.exact_) AddToSketch(x, 1);
  for (const auto& [i, c] : other.positive_) positive_[i] += c;
  for (const auto& [i, c] : other.negative_) negative_[i] += c;
  zero_ += other.zero_;
  n_ += other.n_;
}

double Quantiles::ValueAtRank(std::uint64_t rank) const {
  // Ascending: negatives by decreasing magnitude, zeros, positives by increasing magnitude.
  std::uint64_t seen = 0;
  for (auto it = negative_.rbegin(); it != negative_.rend(); ++it) {
    seen += it->second;
    if (rank < seen) return -BucketValue(it->first);
  }
  seen += zero_;
  if (rank < seen) return 0;
  for (const auto& [i, c] : positive_) {
    seen += c;
    if (rank < seen) return BucketValue(i);
  }
  return positive_.empty() ? 0 : BucketValue(positive_.rbegin()->first);
}

double Quantiles::Percentile(double p) const {
  const double rank = p / 100.0 * static_cast<double>(n_ - 1);
  const auto lo = static_cast<std::uint64_t>(std::floor(rank));
  const std::uint64_t hi = std::min(lo + 1, n_ - 1);
  const double frac = rank - static_cast<double>(lo);
  if (!sketch_) {
    std::vector<double> v = exact_;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
    double a = v[lo];
    if (hi == lo || frac == 0) return a;
    double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
    return a + (b - a) * frac;
  }
  double a = ValueAtRank(lo);
  double b = ValueAtRank(hi);
  return a + (b - a) * frac;
}

void Quantiles::Save(Packer& p) const {
  if (!sketch_) {
    p.Map(2).Str("n").Uint(n_).Str("exact").Array(exact_.size());
    for (double x : exact_) p.Double(x);
    return;
  }
  // The buckets as arrays of [index, count] pairs.
  p.Map(4).Str("n").Uint(n_);
  for (const auto* side : {&positive_, &negative_}) {
    p.Str(side == &positive_ ? "pos" : "neg").Array(side->size());
    for (const auto& [index, count] : *side) p.Array(2).Int(index).Uint(count);
  }
  p.Str("zero").Uint(zero_);
}

void Quantiles::Load(const Packed& j) {
  n_ = j.at("n").get<std::uint64_t>();
  sketch_ = !j.contains("exact");
  if (!sketch_) {
    for (Packed x : j.at("exact")) exact_.push_back(x.get<double>());
  } else {
    // A map with integer keys is saved as an array of [key, count] pairs.
    for (Packed e : j.at("pos")) positive_[e.at(0).get<int>()] = e.at(1).get<std::uint64_t>();
    for (Packed e : j.at("neg")) negative_[e.at(0).get<int>()] = e.at(1).get<std::uint64_t>();
    zero_ = j.at("zero").get<std::uint64_t>();
  }
}

template <bool kFull>
bool BasicAcc<kFull>::Fits(const AggregateSpec& spec) {
  return spec.fn != AggregateSpec::Fn::kDistinct &&
         (FieldsOf(spec.fn) & ~(kCount | kSum | kMean | kMin | kMax)) == 0;
}

template <bool kFull>
void BasicAcc<kFull>::Add(const AggregateSpec& spec, double x, const std::string* tag,
                          std::int64_t t, std::uint64_t arrival) {
  if constexpr (kFull) {
    if (spec.fn == AggregateSpec::Fn::kDistinct) {
      if (tag != nullptr) ++distinct()[*tag];
      return;
    }
  }
  ++n;
  const unsigned fields = FieldsOf(spec.fn);
  if ((fields & kSum) != 0) v += x;
  if ((fields & kMean) != 0) {
    const double d = x - v;
    v += d / static_cast<double>(n);
    if constexpr (kFull) {
      if ((fields & kM2) != 0) tail.m2 += d * (x - v);
    }
  }
  if ((fields & kMin) != 0 && (n == 1 || x < v)) v = x;
  if ((fields & kMax) != 0 && (n == 1 || x > v)) v = x;
  if constexpr (!kFull) {
    (void)tag, (void)t, (void)arrival;
  } else {
    if ((fields & (kFirst | kLast)) != 0) {
      Ends& e = ends();
      if ((fields & kFirst) != 0 &&
          (n == 1 || t < e.first_t || (t == e.first_t && arrival < e.first_arrival))) {
        e.first_t = t;
        e.first_arrival = arrival;
        e.first_v = x;
      }
      if ((fields & kLast) != 0 &&
          (n == 1 || t > e.last_t || (t == e.last_t && arrival > e.last_arrival))) {
        e.last_t = t;
        e.last_arrival = arrival;
        e.last_v = x;
      }
    }
    if ((fields & kQuantiles) != 0) quantiles().Add(x);
  }
}

template <bool kFull>
void BasicAcc<kFull>::Merge(const AggregateSpec& spec, const BasicAcc& o) {
  if constexpr (kFull) {
    if (const auto* d = o.find_distinct()) {
      for (const auto& [tag, count] : *d) distinct()[tag] += count;
    }
  }
  if (o.n == 0) return;
  if (n == 0) {
    *this = o;
    return;
  }
  const unsigned fields = FieldsOf(spec.fn);
  if ((fields & kMean) != 0) {
    // Chan et al.: parallel combination of Welford states.
    const double total = static_cast<double>(n + o.n);
    const double delta = o.v - v;
    if constexpr (kFull) {
      tail.m2 +=
          o.tail.m2 + delta * delta * static_cast<double>(n) * static_cast<double>(o.n) / total;
    }
    v += delta * static_cast<double>(o.n) / total;
  }
  if ((fields & kSum) != 0) v += o.v;
  if ((fields & kMin) != 0) v = std::min(v, o.v);
  if ((fields & kMax) != 0) v = std::max(v, o.v);
  n += o.n;
  if constexpr (kFull) MergeExtras(fields, o);
}

template <bool kFull>
void BasicAcc<kFull>::MergeExtras(unsigned fields, const BasicAcc& o) requires kFull {
  if (const Ends* oe = o.find_ends()) {
    Ends& e = ends();
    if (oe->first_t < e.first_t ||
        (oe->first_t == e.first_t && oe->first_arrival < e.first_arrival)) {
      e.first_t = oe->first_t;
      e.first_arrival = oe->first_arrival;
      e.first_v = oe->first_v;
    }
    if (oe->last_t > e.last_t || (oe->last_t == e.last_t && oe->last_arrival > e.last_arrival)) {
      e.last_t = oe->last_t;
      e.last_arrival = oe->last_arrival;
      e.last_v = oe->last_v;
    }
  }
  if ((fields & kQuantiles) != 0 && o.find_quantiles() != nullptr) {
    quantiles().Merge(*o.find_quantiles());
  }
}

template <bool kFull>
Value BasicAcc<kFull>::Result(const AggregateSpec& spec) const {
  using Fn = AggregateSpec::Fn;
  if (spec.fn == Fn::kCount) return Value::Int(static_cast<double>(n));
  if (spec.fn == Fn::kDistinct) {
    return Value::Int(find_distinct() ? static_cast<double>(find_distinct()->size()) : 0.0);
  }
  if (n == 0) return Value::Null();
  switch (spec.fn) {
    case Fn::kSum:
    case Fn::kAvg:
    case Fn::kMin:
    case Fn::kMax:
      return Value::Double(v);
    default:
      break;
  }
  if constexpr (kFull) {
    const Ends* e = find_ends();  // n > 0: set for the functions that read it
    switch (spec.fn) {
      case Fn::kStddev:
        return Value::Double(std::sqrt(std::max(0.0, tail.m2 / static_cast<double>(n))));
      case Fn::kFirst:
        return Value::Double(e->first_v);
      case Fn::kLast:
        return Value::Double(e->last_v);
      case Fn::kDelta:
        return n < 2 ? Value::Null() : Value::Double(e->last_v - e->first_v);
      case Fn::kRate:
        if (n < 2 || e->last_t == e->first_t) return Value::Null();
        return Value::Double((e->last_v - e->first_v) /
                             (static_cast<double>(e->last_t - e->first_t) / 1000.0));
      case Fn::kPercentile:
        return Value::Double(find_quantiles()->Percentile(spec.percentile));  // n > 0
      default:
        break;
    }
  }
  return Value::Null();
}

template <bool kFull>
void BasicAcc<kFull>::Save(const AggregateSpec& spec, Packer& p) const {
  if (spec.fn == AggregateSpec::Fn::kDistinct) {
    p.Map(1).Str("d");
    SaveCounts(find_distinct(), p);
    return;
  }
  // Only what the function reads (earlier versions saved every field: Load takes both).
  const unsigned fields = FieldsOf(spec.fn);
  p.Map(static_cast<std::size_t>(std::popcount(fields))).Str("n").Uint(n);
  if ((fields & kSum) != 0) p.Str("s").Double(v);
  if ((fields & kMean) != 0) p.Str("mean").Double(v);
  if constexpr (kFull) {
    if ((fields & kM2) != 0) p.Str("m2").Double(tail.m2);
  }
  if ((fields & kMin) != 0) p.Str("min").Double(v);
  if ((fields & kMax) != 0) p.Str("max").Double(v);
  if constexpr (kFull) SaveExtras(fields, p);
}

template <bool kFull>
void BasicAcc<kFull>::SaveExtras(unsigned fields, Packer& p) const requires kFull {
  const Ends e = find_ends() != nullptr ? *find_ends() : Ends{};
  if ((fields & kFirst) != 0) {
    p.Str("first").Array(3).Int(e.first_t).Uint(e.first_arrival).Double(e.first_v);
  }
  if ((fields & kLast) != 0) {
    p.Str("last").Array(3).Int(e.last_t).Uint(e.last_arrival).Double(e.last_v);
  }
  if ((fields & kQuantiles) != 0) {
    p.Str("q");
    if (find_quantiles() != nullptr) {
      find_quantiles()->Save(p);
    } else {
      p.Null();
    }
  }
}

template <bool kFull>
BasicAcc<kFull> BasicAcc<kFull>::Load(const AggregateSpec& spec, const Packed& j) {
  BasicAcc a;
  if constexpr (kFull) {
    if (spec.fn == AggregateSpec::Fn::kDistinct) {
      LoadCounts(j.at("d"), &a.distinct());
      return a;
    }
  }
  const unsigned fields = FieldsOf(spec.fn);
  unsigned seen = 0;
  auto load_end = [](const Packed& value, std::int64_t* t, std::uint64_t* arrival, double* x) {
    const auto [t_at, arrival_at, x_at] = value.Elements<3>();
    *t = t_at.get<std::int64_t>();
    *arrival = arrival_at.get<std::uint64_t>();
    *x = x_at.get<double>();
  };
  j.ForEachItem([&](std::string_view name, const Packed& value) {
    // Fields the function does not read (earlier versions saved them all) are skipped.
    const unsigned bit = FieldNamed(name) & fields;
    switch (bit) {
      case kCount:
        a.n = value.get<std::uint64_t>();
        break;
      case kSum:
      case kMean:
        a.v = LoadDouble(value);
        break;
      case kMin:
      case kMax:
        a.v = value.get<double>();
        break;
      case kM2:
      case kFirst:
      case kLast:
      case kQuantiles:  // a SmallAcc's function reads none of these
        if constexpr (kFull) {
          if (bit == kM2) {
            a.tail.m2 = LoadDouble(value);
          } else if (bit == kFirst) {
            load_end(value, &a.ends().first_t, &a.ends().first_arrival, &a.ends().first_v);
          } else if (bit == kLast) {
            load_end(value, &a.ends().last_t, &a.ends().last_arrival, &a.ends().last_v);
          } else if (!value.is_null()) {
            a.quantiles().Load(value);
          }
        }
        break;
      default:
        return;
    }
    seen |= bit;
  });
  // A field the function reads is missing: at() names it in the error.
  for (const auto& [bit, name] : kFieldNames) {
    if ((fields & bit) != 0 && (seen & bit) == 0) j.at(name);
  }
  return a;
}

// The members each accumulator uses, instantiated here (not the whole classes: SmallAcc has
// no tail for ends(), quantiles() or distinct()).
template bool BasicAcc<true>::Fits(const AggregateSpec&);
template void BasicAcc<true>::Add(const AggregateSpec&, double, const std::string*, std::int64_t,
                                  std::uint64_t);
template void BasicAcc<true>::Merge(const AggregateSpec&, const BasicAcc<true>&);
template Value BasicAcc<true>::Result(const AggregateSpec&) const;
template void BasicAcc<true>::Save(const AggregateSpec&, Packer&) const;
template BasicAcc<true> BasicAcc<true>::Load(const AggregateSpec&, const Packed&);
template bool BasicAcc<false>::Fits(const AggregateSpec&);
template void BasicAcc<false>::Add(const AggregateSpec&, double, const std::string*, std::int64_t,
                                   std::uint64_t);
template void BasicAcc<false>::Merge(const AggregateSpec&, const BasicAcc<false>&);
template Value BasicAcc<false>::Result(const AggregateSpec&) const;
template void BasicAcc<false>::Save(const AggregateSpec&, Packer&) const;
template BasicAcc<false> BasicAcc<false>::Load(const AggregateSpec&, const Packed&);

}  // namespace vigil::rules
