#include "rules/window.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "rules/aggregate.h"
#include "rules/checkpoint.h"
#include "rules/ring_deque.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// The accumulators of one window, one per aggregate of the rule, in an array of
// rule.aggregates.size() that the caller owns (A: Acc, or SmallAcc when each fits).
template <typename A>
void AddToAccs(const CompiledRule& rule, A* accs, const Sample& s) {
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
    const AggregateSpec& spec = rule.aggregates[i];
    if (spec.fn == AggregateSpec::Fn::kCount) {
      accs[i].Add(spec, 0, nullptr, s.t, s.arrival);
    } else if (spec.fn == AggregateSpec::Fn::kDistinct) {  // never a SmallAcc's
      accs[i].Add(spec, 0, s.tags[i], s.t, s.arrival);
    } else if (std::isfinite(s.xs[i])) {
      accs[i].Add(spec, s.xs[i], nullptr, s.t, s.arrival);
    }
  }
}

template <typename A>
std::vector<Value> AccsValues(const CompiledRule& rule, const A* accs) {
  std::vector<Value> out;
  out.reserve(rule.aggregates.size());
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
    out.push_back(accs[i].Result(rule.aggregates[i]));
  }
  return out;
}

template <typename A>
void SaveAccs(const CompiledRule& rule, const A* accs, Packer& p) {
  p.Array(rule.aggregates.size());
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) accs[i].Save(rule.aggregates[i], p);
}

template <typename A>
void LoadAccs(const CompiledRule& rule, A* accs, const Packed& j) {
  if (!j.is_array() || j.size() != rule.aggregates.size()) {
    throw json::type_error::create(302, "aggregate count differs", nullptr);
  }
  for (std::size_t i = 0; i < rule.aggregates.size(); ++i) {
    accs[i] = A::Load(rule.aggregates[i], j[i]);
  }
}

// The accumulators of one window on the heap (an array, not a vector: 8 bytes less a window).
template <typename A>
class Accs {
 public:
  explicit Accs(const CompiledRule& rule)
      : rule_(&rule), accs_(std::make_unique<A[]>(rule.aggregates.size())) {}

  void Add(const Sample& s) { AddToAccs(*rule_, accs_.get(), s); }
  void Prefetch() const { __builtin_prefetch(accs_.get()); }
  void Merge(const Accs& o) {
    for (std::size_t i = 0; i < rule_->aggregates.size(); ++i) {
      accs_[i].Merge(rule_->aggregates[i], o.accs_[i]);
    }
  }
  std::vector<Value> Values() const { return AccsValues(*rule_, accs_.get()); }
  void Save(Packer& p) const { SaveAccs(*rule_, accs_.get(), p); }
  void Load(const Packed& j) { LoadAccs(*rule_, accs_.get(), j); }
  A* data() { return accs_.get(); }

 private:
  const CompiledRule* rule_;
  std::unique_ptr<A[]> accs_;
};

// Where AlignedWindows keeps its oldest open window's N accumulators: in the object for the
// usual rule (up to 4 aggregates), on the heap (N = 0) for one with more.
template <std::size_t N, typename A>
struct FirstAccs {
  explicit FirstAccs(std::size_t) {}
  A* data() { return accs.data(); }
  const A* data() const { return accs.data(); }
  std::array<A, N> accs;
};
template <typename A>
struct FirstAccs<0, A> {
  explicit FirstAccs(std::size_t n) : accs(std::make_unique<A[]>(n)) {}
  A* data() { return accs.get(); }
  const A* data() const { return accs.get(); }
  std::unique_ptr<A[]> accs;
};

// Tumbling and hopping windows: [k·slide, k·slide + size), aligned to the epoch. The oldest
// open window is kept in the object, the others in `more_`, made only while there are any:
// a tumbling key has one window open but for the moment between a reading of the next window
// and the watermark closing the last (one heap object a key, not three). A: the accumulator,
// SmallAcc when every aggregate fits one (a tumbling avg/max/count key: 88 bytes, not 136).
template <std::size_t N, typename A>
class AlignedWindows final : public WindowState {
 public:
  explicit AlignedWindows(const CompiledRule& rule) : rule_(rule), first_(rule.aggregates.size()) {}

  bool IsLate(std::int64_t t, std::int64_t watermark) const override {
    const std::int64_t size = Size(), slide = Slide();
    for (std::int64_t start = FloorDiv(t, slide) * slide; start > t - size; start -= slide) {
      if (!Closed(start + size, watermark)) return false;
    }
    return true;
  }

  void Add(const Sample& s, std::int64_t watermark, std::vector<ClosedWindow>*) override {
    const std::int64_t size = Size(), slide = Slide();
    for (std::int64_t start = FloorDiv(s.t, slide) * slide; start > s.t - size; start -= slide) {
      if (Closed(start + size, watermark)) continue;
      const std::size_t at = LowerBound(start);
      if (at == Count() || StartOf(at) != start) Insert(at, start);
      AddToAccs(rule_, AccsOf(at), s);
    }
  }

  void Advance(std::int64_t watermark, std::vector<ClosedWindow>* out) override {
    while (HasFirst() && watermark != kNoWatermark && first_start_ + Size() <= watermark) {
      CloseFirst(out);
    }
  }

  void CloseAll(std::vector<ClosedWindow>* out) override {
    while (HasFirst()) CloseFirst(out);
  }

  bool HasOpen() const override { return HasFirst(); }

  void Prefetch() const override {  // the newest window takes most readings
    if (more_) {
      more_->back().second.Prefetch();
    } else if (HasFirst()) {
      __builtin_prefetch(first_.data());
      if constexpr (N > 1) __builtin_prefetch(first_.data() + (N - 1));
    }
  }

  void Save(Packer& p) const override {
    p.Map(2).Str("closed_through").Int(closed_through_).Str("open").Array(Count());
    for (std::size_t i = 0; i < Count(); ++i) {
      p.Array(2).Int(StartOf(i));
      SaveAccs(rule_, AccsOf(i), p);
    }
  }

  void Load(const Packed& j) override {
    closed_through_ = j.at("closed_through").get<std::int64_t>();
    for (Packed w : j.at("open")) {
      const std::int64_t start = w.at(0).get<std::int64_t>();
      if (start == kNone || (HasFirst() && start <= StartOf(Count() - 1))) {
        throw json::type_error::create(302, "open windows out of order", nullptr);
      }
      Insert(Count(), start);
      LoadAccs(rule_, AccsOf(Count() - 1), w.at(1));
    }
  }

 private:
  using Open = std::pair<std::int64_t, Accs<A>>;

  bool HasFirst() const { return first_start_ != kNone; }
  std::size_t Count() const { return HasFirst() ? 1 + (more_ ? more_->size() : 0) : 0; }
  std::int64_t StartOf(std::size_t i) const {
    return i == 0 ? first_start_ : (*more_)[i - 1].first;
  }
  A* AccsOf(std::size_t i) { return i == 0 ? first_.data() : (*more_)[i - 1].second.data(); }
  const A* AccsOf(std::size_t i) const {
    return i == 0 ? first_.data() : (*more_)[i - 1].second.data();
  }

  // The position of the first open window starting at or after `start` (a hopping key may
  // have up to 1 000 open).
  std::size_t LowerBound(std::int64_t start) const {
    std::size_t lo = 0, hi = Count();
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (StartOf(mid) < start) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  // A new, empty window at position `at` (0: the oldest).
  void Insert(std::size_t at, std::int64_t start) {
    if (!HasFirst()) {
      first_start_ = start;
      return;
    }
    if (!more_) more_ = std::make_unique<std::vector<Open>>();
    if (at > 0) {
      more_->emplace(more_->begin() + static_cast<std::ptrdiff_t>(at - 1), start, Accs<A>(rule_));
      return;
    }
    // Older than the oldest: that one moves out of the object.
    Open moved(first_start_, Accs<A>(rule_));
    MoveAccs(first_.data(), moved.second.data());
    more_->insert(more_->begin(), std::move(moved));
    first_start_ = start;
  }

  void CloseFirst(std::vector<ClosedWindow>* out) {
    const std::int64_t end = first_start_ + Size();
    closed_through_ = closed_through_ == kNoWatermark ? end : std::max(closed_through_, end);
    out->push_back({{Millis(first_start_), Millis(end)}, AccsValues(rule_, first_.data()), -1});
    if (more_) {  // the next window moves into the object
      first_start_ = more_->front().first;
      MoveAccs(more_->front().second.data(), first_.data());
      more_->erase(more_->begin());
      if (more_->empty()) more_.reset();
    } else {
      first_start_ = kNone;
      MoveAccs(nullptr, first_.data());
    }
  }

  // Moves `from`'s accumulators (nullptr: empty ones) into `to`, leaving `from` empty.
  void MoveAccs(A* from, A* to) const {
    for (std::size_t i = 0; i < rule_.aggregates.size(); ++i) {
      to[i] = from != nullptr ? std::exchange(from[i], A{}) : A{};
    }
  }

  bool Closed(std::int64_t end, std::int64_t watermark) const {
    return (closed_through_ != kNoWatermark && end <= closed_through_) ||
           (watermark != kNoWatermark && end <= watermark);
  }
  std::int64_t Size() const { return rule_.window.size.count(); }
  std::int64_t Slide() const { return rule_.window.slide.count(); }

  const CompiledRule& rule_;
  std::int64_t closed_through_ = kNoWatermark;  // every window ending at or before is closed
  // The oldest open window's start, kNone without one (a start is a multiple of the slide at
  // or after the reading's time less the size: never the smallest int64 for a reading's time).
  static constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::min();
  std::int64_t first_start_ = kNone;
  FirstAccs<N, A> first_;
  std::unique_ptr<std::vector<Open>> more_;  // the later open windows by start, or null
};

template <typename A>
std::unique_ptr<WindowState> MakeAlignedWindowsOf(const CompiledRule& rule) {
  switch (rule.aggregates.size()) {
    case 1:
      return std::make_unique<AlignedWindows<1, A>>(rule);
    case 2:
      return std::make_unique<AlignedWindows<2, A>>(rule);
    case 3:
      return std::make_unique<AlignedWindows<3, A>>(rule);
    case 4:
      return std::make_unique<AlignedWindows<4, A>>(rule);
    default:
      return std::make_unique<AlignedWindows<0, A>>(rule);
  }
}

std::unique_ptr<WindowState> MakeAlignedWindows(const CompiledRule& rule) {
  const bool small = std::all_of(rule.aggregates.begin(), rule.aggregates.end(), SmallAcc::Fits);
  return small ? MakeAlignedWindowsOf<SmallAcc>(rule) : MakeAlignedWindowsOf<Acc>(rule);
}

// Session windows: readings less than `gap` apart form one session; it closes when the
// watermark reaches its last reading + gap (SPEC §12.7: [first, last + gap)).
class SessionWindows final : public WindowState {
 public:
  explicit SessionWindows(const CompiledRule& rule) : rule_(rule), gap_(rule.window.gap.count()) {}

  bool IsLate(std::int64_t t, std::int64_t watermark) const override {
    for (const auto& s : open_) {
      if (Joins(s, t)) return false;
    }
    return (watermark != kNoWatermark && t + gap_ <= watermark) ||
           (closed_through_ != kNoWatermark && t < closed_through_);
  }

  void Add(const Sample& s, std::int64_t, std::vector<ClosedWindow>*) override {
    Session merged{s.t, s.t, Accs<Acc>(rule_)};
    merged.accs.Add(s);
    std::vector<Session> kept;
    kept.reserve(open_.size() + 1);
    for (auto& session : open_) {
      if (Joins(session, s.t)) {
        merged.start = std::min(merged.start, session.start);
        merged.last = std::max(merged.last, session.last);
        session.accs.Merge(merged.accs);
        merged.accs = std::move(session.accs);
      } else {
        kept.push_back(std::move(session));
      }
    }
    auto pos =
        std::lower_bound(kept.begin(), kept.end(), merged.start,
                         [](const Session& a, std::int64_t start) { return a.start < start; });
    kept.insert(pos, std::move(merged));
    open_ = std::move(kept);
  }

  void Advance(std::int64_t watermark, std::vector<ClosedWindow>* out) override {
    if (watermark == kNoWatermark) return;
    std::vector<Session> kept;
    for (auto& s : open_) {
      if (s.last + gap_ <= watermark) {
        Close(s, out);
      } else {
        kept.push_back(std::move(s));
      }
    }
    open_ = std::move(kept);
  }

  void CloseAll(std::vector<ClosedWindow>* out) override {
    for (auto& s : open_) Close(s, out);
    open_.clear();
  }

  bool HasOpen() const override { return !open_.empty(); }

  void Save(Packer& p) const override {
    p.Map(2).Str("closed_through").Int(closed_through_).Str("open").Array(open_.size());
    for (const auto& s : open_) {
      p.Array(3).Int(s.start).Int(s.last);
      s.accs.Save(p);
    }
  }

  void Load(const Packed& j) override {
    closed_through_ = j.at("closed_through").get<std::int64_t>();
    for (Packed s : j.at("open")) {
      Session session{s.at(0).get<std::int64_t>(), s.at(1).get<std::int64_t>(), Accs<Acc>(rule_)};
      session.accs.Load(s.at(2));
      open_.push_back(std::move(session));
    }
  }

 private:
  struct Session {
    std::int64_t start;
    std::int64_t last;
    Accs<Acc> accs;
  };

  bool Joins(const Session& s, std::int64_t t) const {
    return t > s.start - gap_ && t < s.last + gap_;
  }

  void Close(Session& s, std::vector<ClosedWindow>* out) {
    const std::int64_t end = s.last + gap_;
    closed_through_ = closed_through_ == kNoWatermark ? end : std::max(closed_through_, end);
    out->push_back({{Millis(s.start), Millis(end)}, s.accs.Values(), -1});
  }

  const CompiledRule& rule_;
  const std::int64_t gap_;
  std::vector<Session> open_;  // sorted by start, never overlapping
  std::int64_t closed_through_ = kNoWatermark;
};

// Count windows: every `count` readings of the key, in arrival order (SPEC §12.6–12.7).
class CountWindows final : public WindowState {
 public:
  explicit CountWindows(const CompiledRule& rule) : rule_(rule), accs_(rule) {}

  bool IsLate(std::int64_t, std::int64_t) const override { return false; }

  void Add(const Sample& s, std::int64_t, std::vector<ClosedWindow>* out) override {
    accs_.Add(s);
    min_t_ = n_ == 0 ? s.t : std::min(min_t_, s.t);
    max_t_ = n_ == 0 ? s.t : std::max(max_t_, s.t);
    if (++n_ >= rule_.window.count) CloseAll(out);
  }

  void Advance(std::int64_t, std::vector<ClosedWindow>*) override {}

  void CloseAll(std::vector<ClosedWindow>* out) override {
    if (n_ == 0) return;
    out->push_back({{Millis(min_t_), Millis(max_t_)}, accs_.Values(), seq_++});
    accs_ = Accs<Acc>(rule_);
    n_ = 0;
  }

  bool HasOpen() const override { return n_ > 0; }

  void Save(Packer& p) const override {
    p.Map(5).Str("n").Uint(n_).Str("min_t").Int(min_t_).Str("max_t").Int(max_t_);
    p.Str("seq").Int(seq_).Str("accs");
    accs_.Save(p);
  }

  void Load(const Packed& j) override {
    n_ = j.at("n").get<std::uint64_t>();
    min_t_ = j.at("min_t").get<std::int64_t>();
    max_t_ = j.at("max_t").get<std::int64_t>();
    seq_ = j.at("seq").get<std::int64_t>();
    accs_.Load(j.at("accs"));
  }

 private:
  const CompiledRule& rule_;
  Accs<Acc> accs_;
  std::uint64_t n_ = 0;
  std::int64_t min_t_ = 0;
  std::int64_t max_t_ = 0;
  std::int64_t seq_ = 0;
};

// The aggregate arguments of one sliding-window entry: up to two inline (most rules), more on
// the heap. A std::vector would add 24 bytes and an allocation to every entry.
class EntryValues {
 public:
  EntryValues() = default;
  EntryValues(const double* xs, std::size_t n) : n_(static_cast<std::uint32_t>(n)) {
    if (n > kInline) u_.heap = new double[n];
    std::copy(xs, xs + n, data());
  }
  EntryValues(const EntryValues& o) : EntryValues(o.data(), o.n_) {}
  EntryValues(EntryValues&& o) noexcept : n_(o.n_), u_(o.u_) { o.n_ = 0; }
  EntryValues& operator=(EntryValues o) noexcept {
    std::swap(n_, o.n_);
    std::swap(u_, o.u_);
    return *this;
  }
  ~EntryValues() {
    if (n_ > kInline) delete[] u_.heap;
  }

  std::size_t size() const { return n_; }
  double operator[](std::size_t i) const { return data()[i]; }
  const double* begin() const { return data(); }
  const double* end() const { return data() + n_; }

 private:
  static constexpr std::size_t kInline = 2;
  double* data() { return n_ > kInline ? u_.heap : u_.values; }
  const double* data() const { return n_ > kInline ? u_.heap : u_.values; }

  std::uint32_t n_ = 0;
  union Storage {
    double values[kInline];
    double* heap;
  } u_{};
};

// The entries of a sliding window, in one ring buffer whose capacity is a power of two: each
// entry's time and the first aggregate's argument side by side in 12 bytes, not 16 (one cache
// line holds both: the entry that leaves the window is read from memory, not cache). A time is
// kept as a 32-bit offset from a base (the entries of a window span its size and lateness, far
// less than the ±24 days an offset reaches), or as a 64-bit time once they do not fit (a window
// or a lateness of weeks), until the window is empty again. The arguments stay doubles: results
// are exact.
class EntryRing {
 public:
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::int64_t t(std::size_t i) const {
    const unsigned char* e = At(Slot(i));
    if (wide_) return Read<std::int64_t>(e);
    return base_ + Read<std::int32_t>(e);
  }
  double x(std::size_t i) const { return Read<double>(At(Slot(i)) + TimeBytes()); }

  // Before entry `at` (≤ size()): the entries from it on move one place back.
  void Insert(std::size_t at, std::int64_t t, double x) {
    if (size_ == capacity_) Reallocate(capacity_ == 0 ? 4 : capacity_ * 2, wide_);
    if (size_ == 0) {
      if (wide_) Reallocate(capacity_, false);
      base_ = t;
    } else if (!wide_ && !Fits(t)) {
      Rebase(t);
    }
    for (std::size_t i = size_; i > at; --i) {
      std::memcpy(At(Slot(i)), At(Slot(i - 1)), Stride());
    }
    ++size_;
    Set(Slot(at), t, x);
  }
  void PopFront() {
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    if (capacity_ > 8 && size_ * 4 <= capacity_) Reallocate(capacity_ / 2, wide_);
  }
  void Prefetch() const {
    if (size_ == 0) return;
    __builtin_prefetch(At(Slot(size_ - 1)));
    __builtin_prefetch(At(head_));
  }

 private:
  template <typename T>
  static T Read(const unsigned char* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  template <typename T>
  static void Write(unsigned char* p, T v) {
    std::memcpy(p, &v, sizeof v);
  }
  std::size_t TimeBytes() const { return wide_ ? 8 : 4; }
  std::size_t Stride() const { return TimeBytes() + 8; }
  std::size_t Slot(std::size_t i) const { return (head_ + i) & (capacity_ - 1); }
  unsigned char* At(std::size_t j) { return bytes_.get() + j * Stride(); }
  const unsigned char* At(std::size_t j) const { return bytes_.get() + j * Stride(); }
  bool Fits(std::int64_t t) const {
    std::int64_t offset = 0;
    return !__builtin_sub_overflow(t, base_, &offset) && offset >= 0 &&
           offset <= std::numeric_limits<std::int32_t>::max();
  }
  void Set(std::size_t j, std::int64_t t, double x) {
    unsigned char* e = At(j);
    if (wide_) {
      Write<std::int64_t>(e, t);
    } else {
      Write<std::int32_t>(e, static_cast<std::int32_t>(t - base_));
    }
    Write<double>(e + TimeBytes(), x);
  }
  // A time that does not fit the offsets: the earliest time becomes the base, or, when the
  // entries and `t` span more than offsets reach, times are kept whole.
  void Rebase(std::int64_t t) {
    std::int64_t lo = t, hi = t;
    for (std::size_t i = 0; i < size_; ++i) {
      lo = std::min(lo, this->t(i));
      hi = std::max(hi, this->t(i));
    }
    std::int64_t span = 0;
    if (__builtin_sub_overflow(hi, lo, &span) || span > std::numeric_limits<std::int32_t>::max()) {
      Reallocate(capacity_, true);
      return;
    }
    for (std::size_t i = 0; i < size_; ++i) {
      // t(i) is read before its slot is written.
      Write<std::int32_t>(At(Slot(i)), static_cast<std::int32_t>(this->t(i) - lo));
    }
    base_ = lo;
  }
  void Reallocate(std::size_t capacity, bool wide) {
    EntryRing next;
    next.bytes_ = std::make_unique<unsigned char[]>(capacity * ((wide ? 8 : 4) + 8));
    next.capacity_ = capacity;
    next.wide_ = wide;
    next.base_ = base_;
    for (std::size_t i = 0; i < size_; ++i) next.Set(i, t(i), x(i));
    next.size_ = size_;
    *this = std::move(next);
  }

  std::unique_ptr<unsigned char[]> bytes_;  // capacity_ entries: time (offset or whole), argument
  std::int64_t base_ = 0;                   // what offsets count from
  std::size_t capacity_ = 0;                // 0 or a power of two
  std::size_t head_ = 0;                    // where entry 0 is
  std::size_t size_ = 0;
  bool wide_ = false;
};

// Sliding windows: each reading, once the watermark reaches it, is evaluated over the
// readings in (t − size, t] up to and including itself, in (time, arrival) order. The
// aggregates are kept incrementally as readings enter and leave the window: count, sum,
// avg and stddev (Welford with removal) in O(1), min and max with monotonic deques
// (amortised O(1)), first/last from the ends of the window, distinct with a counted map;
// percentile sorts the window's values (exact).
class SlidingWindows final : public WindowState {
 public:
  explicit SlidingWindows(const CompiledRule& rule)
      : rule_(rule),
        size_(rule.window.size.count()),
        aggs_(rule.aggregates.size()),
        has_distinct_(std::any_of(
            rule.aggregates.begin(), rule.aggregates.end(),
            [](const AggregateSpec& a) { return a.fn == AggregateSpec::Fn::kDistinct; })),
        has_more_(has_distinct_ || aggs_.size() > 1) {}

  bool IsLate(std::int64_t t, std::int64_t watermark) const override {
    return (watermark != kNoWatermark && t < watermark) ||
           (evaluated_ != kNoWatermark && t < evaluated_);
  }

  void Add(const Sample& s, std::int64_t, std::vector<ClosedWindow>*) override {
    More more;
    if (has_more_) {
      more.xs = EntryValues(s.xs + 1, aggs_.size() - std::min<std::size_t>(aggs_.size(), 1));
      if (has_distinct_) {  // else no tags: they would cost 40 bytes an aggregate an entry
        more.tags = std::make_unique<EntryTags>(aggs_.size());
        for (std::size_t i = 0; i < aggs_.size(); ++i) {
          if (s.tags[i] != nullptr) (*more.tags)[i] = *s.tags[i];
        }
      }
    }
    // After every reading of an equal or earlier time: (time, arrival) order.
    std::size_t lo = in_window_, hi = entries_.size();
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (s.t < entries_.t(mid)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    entries_.Insert(lo, s.t, aggs_.empty() ? 0.0 : s.xs[0]);
    if (has_more_) more_.insert(more_.begin() + static_cast<std::ptrdiff_t>(lo), std::move(more));
  }

  void Advance(std::int64_t watermark, std::vector<ClosedWindow>* out) override {
    while (in_window_ < entries_.size() && watermark != kNoWatermark &&
           entries_.t(in_window_) <= watermark) {
      Evaluate(out);
    }
  }

  void CloseAll(std::vector<ClosedWindow>* out) override {
    while (in_window_ < entries_.size()) Evaluate(out);
  }

  bool HasOpen() const override { return in_window_ < entries_.size(); }

  void Prefetch() const override {
    // A reading goes after the newest entry; its evaluation drops the oldest.
    entries_.Prefetch();
    __builtin_prefetch(aggs_.data());
  }

  void Save(Packer& p) const override {
    // The incremental state is saved as it is (not rebuilt on load), so a restored engine
    // computes bit-for-bit what the uninterrupted one would.
    p.Map(6).Str("evaluated").Int(evaluated_).Str("in_window").Uint(in_window_);
    p.Str("seq").Int(seq_).Str("next_order").Uint(next_order_);
    p.Str("entries").Array(entries_.size());
    for (std::size_t k = 0; k < entries_.size(); ++k) {
      // The arrival (0: not kept, never read) and the order in the window (0 before it).
      p.Array(5).Int(entries_.t(k)).Uint(0).Uint(k < in_window_ ? Order(k) : 0);
      p.Array(aggs_.size());
      for (std::size_t i = 0; i < aggs_.size(); ++i) p.Double(X(k, i));
      p.Array(aggs_.size());
      for (std::size_t i = 0; i < aggs_.size(); ++i) {
        if (const std::string* tag = Tag(k, i)) {
          p.Str(*tag);
        } else {
          p.Null();
        }
      }
    }
    p.Str("aggs").Array(aggs_.size());
    for (const Agg& a : aggs_) {
      p.Map(7).Str("n").Uint(a.n).Str("sum").Double(a.sum).Str("mean").Double(a.mean);
      p.Str("m2").Double(a.m2);
      for (const bool min : {true, false}) {
        const RingDeque<Extreme>* extremes = a.extra == nullptr ? nullptr
                                             : min              ? &a.extra->min
                                                                : &a.extra->max;
        p.Str(min ? "min" : "max").Array(extremes == nullptr ? 0 : extremes->size());
        if (extremes == nullptr) continue;
        for (const auto& [order, value] : *extremes) p.Array(2).Uint(order).Double(value);
      }
      p.Str("distinct");
      SaveCounts(a.extra == nullptr ? nullptr : &a.extra->distinct, p);
    }
  }

  void Load(const Packed& j) override {
    const auto [evaluated, seq, next_order, in_window, entries, aggs] =
        j.Fields<6>({"evaluated", "seq", "next_order", "in_window", "entries", "aggs"});
    evaluated_ = evaluated.get<std::int64_t>();
    seq_ = seq.get<std::int64_t>();
    next_order_ = next_order.get<std::uint64_t>();
    in_window_ = in_window.get<std::size_t>();
    for (Packed e : entries) {
      const auto [t, arrival, order, xs, tags] = e.Elements<5>();
      // Orders in the window are consecutive up to next_order (Order()), as always saved.
      if (entries_.size() < in_window_ &&
          order.get<std::uint64_t>() != next_order_ - in_window_ + entries_.size()) {
        throw json::type_error::create(302, "sliding window orders are not consecutive", nullptr);
      }
      std::vector<double> values;
      values.reserve(aggs_.size());
      for (Packed x : xs) values.push_back(LoadDouble(x));
      auto entry_tags = std::make_unique<EntryTags>();
      for (Packed tag : tags) {
        entry_tags->push_back(tag.is_null() ? std::nullopt
                                            : std::optional<std::string>(tag.get<std::string>()));
      }
      if (values.size() != aggs_.size() || entry_tags->size() != aggs_.size()) {
        throw json::type_error::create(302, "aggregate count differs", nullptr);
      }
      entries_.Insert(entries_.size(), t.get<std::int64_t>(), values.empty() ? 0.0 : values[0]);
      if (has_more_) {
        more_.push_back({EntryValues(values.data() + 1, values.size() - 1),
                         has_distinct_ ? std::move(entry_tags) : nullptr});
      }
    }
    if (in_window_ > entries_.size() || in_window_ > next_order_ || aggs.size() != aggs_.size()) {
      throw json::type_error::create(302, "malformed sliding window state", nullptr);
    }
    for (std::size_t i = 0; i < aggs_.size(); ++i) {
      Agg& a = aggs_[i];
      a.n = aggs[i].at("n").get<std::uint64_t>();
      a.sum = LoadDouble(aggs[i].at("sum"));
      a.mean = LoadDouble(aggs[i].at("mean"));
      a.m2 = LoadDouble(aggs[i].at("m2"));
      // Checkpoints written before the queues were kept only for min and max have both.
      const AggregateSpec::Fn fn = rule_.aggregates[i].fn;
      for (Packed m : aggs[i].at("min")) {
        if (fn == AggregateSpec::Fn::kMin) a.Extra().min.push_back(LoadExtreme(m));
      }
      for (Packed m : aggs[i].at("max")) {
        if (fn == AggregateSpec::Fn::kMax) a.Extra().max.push_back(LoadExtreme(m));
      }
      std::map<std::string, std::uint64_t> distinct;
      LoadCounts(aggs[i].at("distinct"), &distinct);
      if (!distinct.empty()) a.Extra().distinct = std::move(distinct);
    }
  }

 private:
  using EntryTags = std::vector<std::optional<std::string>>;  // distinct() values, by aggregate
  // An entry: its time and the first aggregate's argument, in entries_ (most rules have one
  // aggregate); the other aggregates' arguments and the distinct() values, where the rule has
  // them, are in More at the same index. An entry's order, which the min/max queues refer to,
  // is not kept: entries enter the window in ring order and leave from its front, so the
  // orders of [0, in_window_) are consecutive (Order()).
  struct More {
    EntryValues xs;                   // the arguments of aggregates 1, 2, …
    std::unique_ptr<EntryTags> tags;  // only for rules with distinct()
  };
  // The argument of aggregate i for entry k, and its distinct() tag value (or nullptr).
  double X(std::size_t k, std::size_t i) const {
    return i == 0 ? entries_.x(k) : more_[k].xs[i - 1];
  }
  const std::string* Tag(std::size_t k, std::size_t i) const {
    if (!has_distinct_ || !more_[k].tags || !(*more_[k].tags)[i]) return nullptr;
    return &*(*more_[k].tags)[i];
  }
  using Extreme = std::pair<std::uint64_t, double>;  // (entry order, value)
  static Extreme LoadExtreme(const Packed& m) {
    return {m.at(0).get<std::uint64_t>(), m.at(1).get<double>()};
  }
  // What min(), max() and distinct() keep besides: made for those functions only (112 bytes
  // every other aggregate of every key would hold empty).
  struct AggExtra {
    RingDeque<Extreme> min;  // increasing values (min() only)
    RingDeque<Extreme> max;  // decreasing values (max() only)
    std::map<std::string, std::uint64_t> distinct;
  };
  // The incremental state of one aggregate over the entries in the window.
  struct Agg {
    std::uint64_t n = 0;  // finite arguments in the window
    double sum = 0;
    double mean = 0;
    double m2 = 0;
    std::unique_ptr<AggExtra> extra;  // null until min(), max() or distinct() needs it

    AggExtra& Extra() {
      if (!extra) extra = std::make_unique<AggExtra>();
      return *extra;
    }
  };

  // The order of the window's k-th entry (k < in_window_).
  std::uint64_t Order(std::size_t k) const { return next_order_ - in_window_ + k; }

  void Enter(std::size_t k) {
    const std::uint64_t order = next_order_++;
    for (std::size_t i = 0; i < aggs_.size(); ++i) {
      Agg& a = aggs_[i];
      if (const std::string* tag = Tag(k, i)) ++a.Extra().distinct[*tag];
      const double x = X(k, i);
      if (!std::isfinite(x)) continue;
      ++a.n;
      a.sum += x;
      const double d = x - a.mean;
      a.mean += d / static_cast<double>(a.n);
      a.m2 += d * (x - a.mean);
      // The monotonic queues only for the function that reads each.
      const AggregateSpec::Fn fn = rule_.aggregates[i].fn;
      if (fn == AggregateSpec::Fn::kMin) {
        auto& min = a.Extra().min;
        while (!min.empty() && min.back().second >= x) min.pop_back();
        min.emplace_back(order, x);
      } else if (fn == AggregateSpec::Fn::kMax) {
        auto& max = a.Extra().max;
        while (!max.empty() && max.back().second <= x) max.pop_back();
        max.emplace_back(order, x);
      }
    }
  }

  // The window's first entry leaves it.
  void Leave() {
    const std::uint64_t order = Order(0);
    for (std::size_t i = 0; i < aggs_.size(); ++i) {
      Agg& a = aggs_[i];
      if (const std::string* tag = Tag(0, i)) {
        auto it = a.extra->distinct.find(*tag);
        if (--it->second == 0) a.extra->distinct.erase(it);
      }
      const double x = X(0, i);
      if (!std::isfinite(x)) continue;
      if (a.n == 1) {
        a.n = 0;
        a.sum = a.mean = a.m2 = 0;
      } else {
        const double old_mean = a.mean;
        a.mean = (static_cast<double>(a.n) * a.mean - x) / static_cast<double>(a.n - 1);
        a.m2 = std::max(0.0, a.m2 - (x - old_mean) * (x - a.mean));
        a.sum -= x;
        --a.n;
        if (a.n == 1) a.m2 = 0;  // exactly: one value has no spread
      }
      if (a.extra != nullptr) {
        if (!a.extra->min.empty() && a.extra->min.front().first == order) a.extra->min.pop_front();
        if (!a.extra->max.empty() && a.extra->max.front().first == order) a.extra->max.pop_front();
      }
    }
  }

  void Evaluate(std::vector<ClosedWindow>* out) {
    const std::int64_t t = entries_.t(in_window_);
    Enter(in_window_++);
    while (entries_.t(0) <= t - size_) {
      Leave();
      entries_.PopFront();
      if (has_more_) more_.pop_front();
      --in_window_;
    }
    evaluated_ = t;
    out->push_back({{Millis(t - size_), Millis(t)}, Values(), seq_++});
  }

  std::vector<Value> Values() const {
    using Fn = AggregateSpec::Fn;
    std::vector<Value> out;
    out.reserve(aggs_.size());
    for (std::size_t i = 0; i < aggs_.size(); ++i) {
      const AggregateSpec& spec = rule_.aggregates[i];
      const Agg& a = aggs_[i];
      if (spec.fn == Fn::kCount) {
        out.push_back(Value::Int(static_cast<double>(in_window_)));
        continue;
      }
      if (spec.fn == Fn::kDistinct) {
        out.push_back(Value::Int(static_cast<double>(a.extra ? a.extra->distinct.size() : 0)));
        continue;
      }
      if (a.n == 0) {
        out.push_back(Value::Null());
        continue;
      }
      // first/last: the window's entries are in (time, arrival) order.
      std::size_t first = in_window_;  // the first and the last entry with a finite argument
      std::size_t last = in_window_;
      if (spec.fn == Fn::kFirst || spec.fn == Fn::kLast || spec.fn == Fn::kDelta ||
          spec.fn == Fn::kRate) {
        for (std::size_t k = 0; k < in_window_ && first == in_window_; ++k) {
          if (std::isfinite(X(k, i))) first = k;
        }
        for (std::size_t k = in_window_; k > 0 && last == in_window_; --k) {
          if (std::isfinite(X(k - 1, i))) last = k - 1;
        }
      }
      switch (spec.fn) {
        case Fn::kSum:
          out.push_back(Value::Double(a.sum));
          break;
        case Fn::kAvg:
          out.push_back(Value::Double(a.mean));
          break;
        case Fn::kMin:
          out.push_back(Value::Double(a.extra->min.front().second));
          break;
        case Fn::kMax:
          out.push_back(Value::Double(a.extra->max.front().second));
          break;
        case Fn::kStddev:
          out.push_back(Value::Double(std::sqrt(std::max(0.0, a.m2 / static_cast<double>(a.n)))));
          break;
        case Fn::kFirst:
          out.push_back(Value::Double(X(first, i)));
          break;
        case Fn::kLast:
          out.push_back(Value::Double(X(last, i)));
          break;
        case Fn::kDelta:
          out.push_back(a.n < 2 ? Value::Null() : Value::Double(X(last, i) - X(first, i)));
          break;
        case Fn::kRate: {
          const std::int64_t span = entries_.t(last) - entries_.t(first);
          out.push_back(a.n < 2 || span == 0 ? Value::Null()
                                             : Value::Double((X(last, i) - X(first, i)) /
                                                             (static_cast<double>(span) / 1000.0)));
          break;
        }
        case Fn::kPercentile: {
          Quantiles q;  // exact up to its limit: a sliding window is evaluated from its values
          for (std::size_t k = 0; k < in_window_; ++k) {
            if (std::isfinite(X(k, i))) q.Add(X(k, i));
          }
          out.push_back(Value::Double(q.Percentile(spec.percentile)));
          break;
        }
        default:
          out.push_back(Value::Null());
          break;
      }
    }
    return out;
  }

  const CompiledRule& rule_;
  const std::int64_t size_;
  EntryRing entries_;     // (time, arrival) order; [0, in_window_) are in the window
  RingDeque<More> more_;  // beside entries_, index for index, where has_more_; else empty
  std::size_t in_window_ = 0;
  std::vector<Agg> aggs_;
  const bool has_distinct_;  // entries keep tag values only for distinct()
  const bool has_more_;      // more than one aggregate, or a distinct()
  std::uint64_t next_order_ = 0;
  std::int64_t evaluated_ = kNoWatermark;  // time of the last evaluation
  std::int64_t seq_ = 0;
};

}  // namespace

std::unique_ptr<WindowState> MakeWindowState(const CompiledRule& rule) {
  switch (rule.window.type) {
    case WindowSpec::Type::kTumbling:
    case WindowSpec::Type::kHopping:
      return MakeAlignedWindows(rule);
    case WindowSpec::Type::kSliding:
      return std::make_unique<SlidingWindows>(rule);
    case WindowSpec::Type::kSession:
      return std::make_unique<SessionWindows>(rule);
    case WindowSpec::Type::kCount:
      return std::make_unique<CountWindows>(rule);
  }
  return nullptr;
}

}  // namespace vigil::rules
