#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>

namespace vigil::rules {

// A double-ended queue in one ring buffer whose capacity is a power of two: at most twice
// what it holds or was reserved for (it halves once it holds a quarter, as it pops), where a vector
// with a dead prefix held up to four times. std::deque allocates a 512-byte block even when empty.
// This matters for state kept per key: sliding windows, monotonic min/max queues, rolling
// detectors. Elements are default-constructible; a popped slot is reset to T{} at once, so what it
// held is freed. insert() and the pops invalidate iterators and references, as a vector's do.
template <typename T>
class RingDeque {
  template <bool kConst>
  class Iter {
    using Owner = std::conditional_t<kConst, const RingDeque, RingDeque>;

   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<kConst, const T*, T*>;
    using reference = std::conditional_t<kConst, const T&, T&>;

    Iter() = default;
    Iter(Owner* owner, std::ptrdiff_t i) : owner_(owner), i_(i) {}
    // An iterator converts to a const_iterator, as a vector's does.
    template <bool kOther>
    requires(kConst && !kOther) Iter(const Iter<kOther>& o)  // NOLINT(google-explicit-constructor)
        : owner_(o.owner_), i_(o.i_) {}

    reference operator*() const { return (*owner_)[static_cast<std::size_t>(i_)]; }
    pointer operator->() const { return &**this; }
    reference operator[](difference_type n) const { return *(*this + n); }
    Iter& operator++() { return *this += 1; }
    Iter& operator--() { return *this -= 1; }
    Iter operator++(int) { return std::exchange(*this, *this + 1); }
    Iter operator--(int) { return std::exchange(*this, *this - 1); }
    Iter& operator+=(difference_type n) {
      i_ += n;
      return *this;
    }
    Iter& operator-=(difference_type n) { return *this += -n; }
    friend Iter operator+(Iter it, difference_type n) { return it += n; }
    friend Iter operator+(difference_type n, Iter it) { return it += n; }
    friend Iter operator-(Iter it, difference_type n) { return it -= n; }
    friend difference_type operator-(const Iter& a, const Iter& b) { return a.i_ - b.i_; }
    friend bool operator==(const Iter& a, const Iter& b) { return a.i_ == b.i_; }
    friend auto operator<=>(const Iter& a, const Iter& b) { return a.i_ <=> b.i_; }

   private:
    friend class Iter<!kConst>;
    Owner* owner_ = nullptr;
    std::ptrdiff_t i_ = 0;
  };

 public:
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  T& operator[](std::size_t i) { return items_[(head_ + i) & (capacity_ - 1)]; }
  const T& operator[](std::size_t i) const { return items_[(head_ + i) & (capacity_ - 1)]; }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }
  iterator begin() { return {this, 0}; }
  iterator end() { return {this, static_cast<std::ptrdiff_t>(size_)}; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, static_cast<std::ptrdiff_t>(size_)}; }

  template <typename... Args>
  T& emplace_back(Args&&... args) {
    if (size_ == capacity_) Reallocate(capacity_ == 0 ? 4 : capacity_ * 2);
    T& slot = (*this)[size_++];
    slot = T(std::forward<Args>(args)...);
    return slot;
  }
  void push_back(T item) { emplace_back(std::move(item)); }
  // Before `pos`: the elements from it on move one place back.
  iterator insert(const_iterator pos, T item) {
    const auto at = static_cast<std::size_t>(pos - const_iterator(begin()));
    push_back(std::move(item));
    for (std::size_t i = size_ - 1; i > at; --i) std::swap((*this)[i], (*this)[i - 1]);
    return {this, static_cast<std::ptrdiff_t>(at)};
  }
  void pop_back() {
    back() = T{};
    --size_;
    ShrinkIfSparse();
  }
  void pop_front() {
    front() = T{};
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    ShrinkIfSparse();
  }
  // Room for `n` without growing (capacity: the power of two at or above), so that a ring whose
  // final size is known is made once, not grown 4, 8, 16… with each smaller buffer left as a
  // hole in the heap.
  void reserve(std::size_t n) {
    std::size_t capacity = capacity_ == 0 ? 4 : capacity_;
    while (capacity < n) capacity *= 2;
    if (capacity != capacity_) Reallocate(capacity);
  }
  void clear() {
    items_.reset();
    capacity_ = head_ = size_ = 0;
  }

 private:
  void Reallocate(std::size_t capacity) {
    auto items = std::make_unique<T[]>(capacity);
    for (std::size_t i = 0; i < size_; ++i) items[i] = std::move((*this)[i]);
    items_ = std::move(items);
    capacity_ = capacity;
    head_ = 0;
  }
  void ShrinkIfSparse() {
    if (capacity_ > 8 && size_ * 4 <= capacity_) Reallocate(capacity_ / 2);
  }

  std::unique_ptr<T[]> items_;
  std::size_t capacity_ = 0;  // 0 or a power of two
  std::size_t head_ = 0;      // where element 0 is
  std::size_t size_ = 0;
};

}  // namespace vigil::rules
