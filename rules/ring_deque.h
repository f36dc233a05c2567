#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace vigil::rules {

// A double-ended queue on one vector: pop_front moves an offset, and the dead prefix is
// reclaimed once it is half the storage. std::deque allocates a 512-byte block even when
// empty; this costs only its elements, which matters for state kept per key (sliding windows,
// rolling detectors). Iterators and references are invalidated by pop_front as by a vector's
// erase.
template <typename T>
class VectorDeque {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& operator[](std::size_t i) { return items_[head_ + i]; }
  const T& operator[](std::size_t i) const { return items_[head_ + i]; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  const T& back() const { return items_.back(); }
  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }

  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return items_.emplace_back(std::forward<Args>(args)...);
  }
  void push_back(T item) { items_.push_back(std::move(item)); }
  iterator insert(const_iterator pos, T item) { return items_.insert(pos, std::move(item)); }
  void pop_back() {
    items_.pop_back();
    if (empty()) clear();
  }
  void pop_front() {
    items_[head_] = T{};  // frees what it holds now, not at the next compaction
    if (++head_ == items_.size()) {
      clear();
    } else if (head_ >= 8 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;  // items_[0, head_) are popped
};

}  // namespace vigil::rules
