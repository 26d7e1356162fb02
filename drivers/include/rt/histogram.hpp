// Fixed-bin latency histogram: 1 us bins up to 100 ms plus an overflow bin and an exact max.
// One writer (the loop thread) and any number of readers (Python asking for stats); bins are
// relaxed atomics, so a reader sees a slightly stale but never torn histogram.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace rt {

class Histogram {
 public:
  static constexpr std::size_t kBins = 100000;  // 1 us each
  Histogram() : bins_(new std::atomic<std::uint32_t>[kBins + 1]) { clear(); }
  void clear() {
    for (std::size_t i = 0; i <= kBins; ++i) bins_[i].store(0, std::memory_order_relaxed);
    count_.store(0, std::memory_order_relaxed);
    max_ns_.store(0, std::memory_order_relaxed);
    sum_ns_.store(0, std::memory_order_relaxed);
  }
  void add(std::int64_t ns) {  // single writer
    if (ns < 0) ns = 0;
    const std::size_t b = std::min<std::size_t>(static_cast<std::size_t>(ns / 1000), kBins);
    bins_[b].store(bins_[b].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_ns_.store(sum_ns_.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
    if (ns > max_ns_.load(std::memory_order_relaxed)) max_ns_.store(ns, std::memory_order_relaxed);
  }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double max_us() const { return max_ns_.load(std::memory_order_relaxed) / 1000.0; }
  double mean_us() const {
    const auto c = count();
    return c ? sum_ns_.load(std::memory_order_relaxed) / 1000.0 / static_cast<double>(c) : 0.0;
  }
  // Upper edge of the bin holding quantile q, in us (0 when empty).
  double quantile_us(double q) const {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= kBins; ++i) total += bins_[i].load(std::memory_order_relaxed);
    if (total == 0) return 0.0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
    std::uint64_t acc = 0;
    for (std::size_t i = 0; i <= kBins; ++i) {
      acc += bins_[i].load(std::memory_order_relaxed);
      if (acc >= rank) return i == kBins ? max_us() : static_cast<double>(i) + 0.5;
    }
    return max_us();
  }

 private:
  std::unique_ptr<std::atomic<std::uint32_t>[]> bins_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::int64_t> max_ns_{0}, sum_ns_{0};
};

}  // namespace rt
