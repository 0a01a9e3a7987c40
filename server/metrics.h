// Counters and a latency histogram for /metrics (Prometheus text format 0.0.4).
// Lock-free on the hot path: every field is an atomic.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace tranche::server {

class Histogram {
 public:
  // Upper bounds in seconds; +Inf is implicit.
  static constexpr std::array<double, 10> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025,  0.05,  0.1,    0.25,  1.0};
  void observe(double seconds);
  // "# TYPE name histogram" and its _bucket, _sum and _count lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_us_{0};
};

struct Metrics {
  std::atomic<std::uint64_t> checkins{0};
  std::atomic<std::uint64_t> checkins_held{0};  // long polls currently held
  std::atomic<std::uint64_t> enrollments{0};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> decisions_install{0};  // desired != current
  std::atomic<std::uint64_t> decisions_keep{0};
  std::atomic<std::uint64_t> requests_rejected{0};  // 4xx
  std::atomic<std::uint64_t> transitions{0};
  std::atomic<std::uint64_t> engine_ticks{0};
  std::atomic<std::uint64_t> engine_leader{0};  // 1 while this server runs the engine
  std::atomic<std::uint64_t> store_flushes{0};
  std::atomic<std::uint64_t> store_flush_records{0};
  std::atomic<std::uint64_t> store_flush_errors{0};
  Histogram store_flush_seconds;

  std::string render() const;  // every counter above
};

}  // namespace tranche::server
