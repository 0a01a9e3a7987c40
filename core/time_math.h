// Time arithmetic that cannot overflow. Times and durations come from plan,
// scenario and agent files (parse_duration accepts anything up to INT64_MAX ms)
// and from servers, so a sum, difference or product of two of them may not fit
// an int64: every such computation in core and the agent goes through these
// helpers, which saturate at the ends of the range instead of wrapping (signed
// overflow is undefined behaviour; a wrapped deadline lies in the past, so
// "never" would become "at once"). Doubles (jitter factors, seconds a server
// sent as a fraction) reach an integer duration only through clamp_to_int64:
// casting a double outside the int64 range, or NaN, is undefined as well.
//
// All constexpr and header-only; tests/core/time_math_test.cpp checks them at
// INT64_MAX/MIN, 2^62, negative values, NaN and infinities.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace tranche::core {

// Milliseconds since the Unix epoch, and durations in milliseconds. Core never
// reads a clock: every "now" is an argument.
using TimeMs = std::int64_t;
using DurationMs = std::int64_t;
inline constexpr DurationMs kSecond = 1000;
inline constexpr DurationMs kMinute = 60 * kSecond;
inline constexpr DurationMs kHour = 60 * kMinute;
inline constexpr DurationMs kDay = 24 * kHour;
// The ends of the range: kMaxTime is "never" for a deadline.
inline constexpr TimeMs kMaxTime = std::numeric_limits<TimeMs>::max();
inline constexpr TimeMs kMinTime = std::numeric_limits<TimeMs>::min();

// a + b, clamped to [kMinTime, kMaxTime] (a deadline t + d saturates at "never").
constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kMaxTime : kMinTime;
  return r;
}

// a - b, clamped (the time left until a deadline, or since an instant).
constexpr std::int64_t saturating_sub(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? kMaxTime : kMinTime;
  return r;
}

// a * b, clamped (a doubled backoff, seconds to milliseconds).
constexpr std::int64_t saturating_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? kMinTime : kMaxTime;
  return r;
}

// Whole seconds (a server's ask_again_s, a long poll's wait_s) as milliseconds.
constexpr DurationMs seconds_to_ms(std::int64_t seconds) {
  return saturating_mul(seconds, kSecond);
}

// x truncated toward zero and clamped to [lo, hi] (lo <= hi); NaN gives lo, the
// infinities give lo or hi. Bounds that a double cannot represent exactly are
// still kept: the result is clamped again as an integer.
constexpr std::int64_t clamp_to_int64(double x, std::int64_t lo, std::int64_t hi) {
  if (x != x) return lo;  // NaN (std::isnan is not constexpr in C++20)
  if (x <= static_cast<double>(lo)) return lo;
  if (x >= static_cast<double>(hi)) return hi;
  // Here -2^63 <= lo < x < hi <= 2^63 as doubles, so the truncation fits an int64.
  return std::clamp(static_cast<std::int64_t>(x), lo, hi);
}

// d * factor (a jittered wait), clamped to the range of DurationMs.
constexpr DurationMs scale_duration(DurationMs d, double factor) {
  return clamp_to_int64(static_cast<double>(d) * factor, kMinTime, kMaxTime);
}

// The next wait of an exponential backoff: `first` after the first failure
// (previous <= 0), then twice the previous wait, at most `cap`.
constexpr DurationMs next_backoff(DurationMs previous, DurationMs first, DurationMs cap) {
  if (previous <= 0) return first;
  return std::min(cap, saturating_mul(previous, 2));
}

}  // namespace tranche::core
