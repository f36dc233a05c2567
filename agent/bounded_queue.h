#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

namespace vigil::agent {

// A bounded multi-producer, single-consumer queue that carries work between threads in
// batches. Push blocks while the queue is full: that is vigil's back-pressure (the Paho
// callback blocks, Paho stops reading the socket, the broker keeps the rest). Nothing is
// ever dropped. Full means `capacity` items, or `byte_budget` bytes as `bytes(item)` counts
// them (an item larger than the budget still goes into an empty queue, so nothing is stuck).
// Thread-safe: all state is guarded by mu_.
template <typename T>
class BoundedQueue {
 public:
  using ByteCount = std::function<std::size_t(const T&)>;

  explicit BoundedQueue(
      std::size_t capacity, std::size_t byte_budget = std::numeric_limits<std::size_t>::max(),
      ByteCount bytes = [](const T&) { return std::size_t{0}; })
      : capacity_(capacity), byte_budget_(byte_budget), bytes_of_(std::move(bytes)) {}

  // Blocks while full. False (and nothing queued) once Close() was called.
  bool Push(T item) {
    const std::size_t size = bytes_of_(item);
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] {
      return closed_ || items_.empty() ||
             (items_.size() < capacity_ && size <= byte_budget_ - std::min(bytes_, byte_budget_));
    });
    if (closed_) return false;
    bytes_ += size;
    items_.push_back(std::move(item));
    if (items_.size() == 1) not_empty_.notify_one();
    return true;
  }

  // Moves up to `max` items into *out (appended), waiting up to `timeout` for the first one.
  // Returns the number moved; 0 on timeout or when closed and empty.
  template <typename Rep, typename Period>
  std::size_t PopBatch(std::vector<T>* out, std::size_t max,
                       std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock(mu_);
    not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
    std::size_t n = 0;
    while (n < max && !items_.empty()) {
      bytes_ -= bytes_of_(items_.front());
      out->push_back(std::move(items_.front()));
      items_.pop_front();
      ++n;
    }
    if (n > 0) not_full_.notify_all();
    return n;
  }

  // Wakes every waiter; later pushes fail, pops drain what is left.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  // `read(item)` of the oldest item, or nothing when the queue is empty.
  template <typename F>
  auto Front(F read) const -> std::optional<std::invoke_result_t<F, const T&>> {
    std::lock_guard lock(mu_);
    if (items_.empty()) return std::nullopt;
    return read(items_.front());
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

  // The bytes queued, as `bytes(item)` counts them.
  std::size_t bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
  }

 private:
  const std::size_t capacity_;
  const std::size_t byte_budget_;
  const ByteCount bytes_of_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> items_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
};

}  // namespace vigil::agent
