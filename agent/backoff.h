// The agent's one way to wait after a failure: capped doubling (core::next_backoff)
// with jitter, for check-ins, posts of events and downloads alike, so no part
// hand-rolls its own and a fleet that fails together does not retry together.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

#include "core/time_math.h"

namespace tranche::agent {

// Spreads waits by ±spread (0.1: ±10%), at least 1 ms. One per thread.
class Jitter {
 public:
  explicit Jitter(double spread, std::uint64_t seed = std::random_device{}())
      : spread_(spread), rng_(seed) {}
  core::DurationMs operator()(core::DurationMs ms) {
    std::uniform_real_distribution<double> d(1.0 - spread_, 1.0 + spread_);
    return std::max<core::DurationMs>(1, core::scale_duration(ms, d(rng_)));
  }

 private:
  double spread_;
  std::mt19937_64 rng_;
};

// Capped doubling: first `first`, then twice the last, never above `cap`.
class Backoff {
 public:
  Backoff(core::DurationMs first, core::DurationMs cap) : first_(first), cap_(cap) {}
  // Another failure in a row: the wait before the next try (un-jittered).
  core::DurationMs failed() {
    current_ = core::next_backoff(current_, first_, cap_);
    return current_;
  }
  void succeeded() { current_ = 0; }
  core::DurationMs current() const { return current_; }  // 0 after a success

 private:
  core::DurationMs first_;
  core::DurationMs cap_;
  core::DurationMs current_ = 0;
};

}  // namespace tranche::agent
