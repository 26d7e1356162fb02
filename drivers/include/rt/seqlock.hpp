// Seqlock: one writer publishes a small fixed-size record, readers copy it without blocking the
// writer. The loop thread never waits on Python (and never takes the GIL); Python never waits
// on the loop. Fields are relaxed atomics so concurrent copies are data-race free.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

namespace rt {

template <std::size_t N>
class Seqlock {
 public:
  // Writer: values[0..n) become visible together; returns the new version (always even).
  std::uint64_t write(const double* values, std::size_t n) {
    const std::uint64_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (std::size_t i = 0; i < n && i < N; ++i) data_[i].store(values[i], std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
    return s + 2;
  }
  // Reader: copies a consistent snapshot; returns its version.
  std::uint64_t read(double* out, std::size_t n) const {
    for (;;) {
      const std::uint64_t s1 = seq_.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      for (std::size_t i = 0; i < n && i < N; ++i) out[i] = data_[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == s1) return s1;
    }
  }
  std::uint64_t version() const { return seq_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::uint64_t> seq_{0};
  std::array<std::atomic<double>, N> data_{};
};

}  // namespace rt
