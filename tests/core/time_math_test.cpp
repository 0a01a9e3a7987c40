// core/time_math.h at the extremes: INT64_MAX/MIN, 2^62, negative values, NaN
// and the infinities. Every case is one the asan-ubsan preset would flag as
// signed overflow or as an out-of-range float-to-integer cast if a helper
// computed it naively; the static_asserts also prove the helpers constexpr.
#include "core/time_math.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace tranche::core {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t k2p62 = std::int64_t{1} << 62;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

static_assert(kMaxTime == kMax && kMinTime == kMin);
static_assert(saturating_add(kDay, kHour) == kDay + kHour);
static_assert(saturating_add(kMax, 1) == kMax);
static_assert(saturating_sub(kMin, 1) == kMin);
static_assert(saturating_mul(k2p62, 2) == kMax);
static_assert(seconds_to_ms(k2p62) == kMax);
static_assert(clamp_to_int64(kNaN, 1, 10) == 1);
static_assert(scale_duration(kMax, 1.5) == kMax);
static_assert(next_backoff(0, kSecond, kMinute) == kSecond);

TEST(TimeMath, SaturatingAddClampsInsteadOfWrapping) {
  EXPECT_EQ(saturating_add(1, kMax), kMax);
  EXPECT_EQ(saturating_add(kMax, kMax), kMax);
  EXPECT_EQ(saturating_add(kMax - 1, 1), kMax);
  EXPECT_EQ(saturating_add(kMax, 0), kMax);
  EXPECT_EQ(saturating_add(-1, kMin), kMin);
  EXPECT_EQ(saturating_add(kMin, -kMax), kMin);
  EXPECT_EQ(saturating_add(kMin, kMin), kMin);
  EXPECT_EQ(saturating_add(kMin, kMax), -1);
  EXPECT_EQ(saturating_add(kMax, kMin), -1);
  EXPECT_EQ(saturating_add(k2p62, k2p62), kMax) << "2^63 is one past the end";
  EXPECT_EQ(saturating_add(k2p62, k2p62 - 1), kMax);
  EXPECT_EQ(saturating_add(-k2p62, -k2p62), kMin) << "-2^63 is the end itself";
  EXPECT_EQ(saturating_add(-k2p62, -k2p62 - 1), kMin);
  EXPECT_EQ(saturating_add(-5, 3), -2);
}

TEST(TimeMath, SaturatingSubClampsInsteadOfWrapping) {
  EXPECT_EQ(saturating_sub(kMax, -1), kMax);
  EXPECT_EQ(saturating_sub(kMax, kMin), kMax);
  EXPECT_EQ(saturating_sub(0, kMin), kMax) << "-INT64_MIN does not exist";
  EXPECT_EQ(saturating_sub(-1, kMin), kMax);
  EXPECT_EQ(saturating_sub(-2, kMin), kMax - 1);
  EXPECT_EQ(saturating_sub(kMin, 1), kMin);
  EXPECT_EQ(saturating_sub(kMin, kMax), kMin);
  EXPECT_EQ(saturating_sub(-k2p62, k2p62), kMin);
  EXPECT_EQ(saturating_sub(k2p62, -k2p62), kMax);
  EXPECT_EQ(saturating_sub(kMax, kMax), 0);
  EXPECT_EQ(saturating_sub(kMin, kMin), 0);
  // A deadline of "never" minus now, and now minus an instant far in the past.
  const TimeMs now = 1'795'694'209'123;
  EXPECT_EQ(saturating_sub(kMaxTime, now), kMax - now);
  EXPECT_EQ(saturating_sub(now, kMinTime), kMax);
}

TEST(TimeMath, SaturatingMulClampsWithTheSignOfTheProduct) {
  EXPECT_EQ(saturating_mul(k2p62, 2), kMax);
  EXPECT_EQ(saturating_mul(-k2p62, 2), kMin) << "-2^63 fits";
  EXPECT_EQ(saturating_mul(-k2p62, 4), kMin);
  EXPECT_EQ(saturating_mul(k2p62, -4), kMin);
  EXPECT_EQ(saturating_mul(-k2p62, -4), kMax);
  EXPECT_EQ(saturating_mul(kMax, kMax), kMax);
  EXPECT_EQ(saturating_mul(kMin, kMin), kMax);
  EXPECT_EQ(saturating_mul(kMin, -1), kMax) << "-INT64_MIN does not exist";
  EXPECT_EQ(saturating_mul(kMin, 1), kMin);
  EXPECT_EQ(saturating_mul(kMax, -1), -kMax);
  EXPECT_EQ(saturating_mul(kMax, 0), 0);
  EXPECT_EQ(saturating_mul(kMin, 0), 0);
  EXPECT_EQ(saturating_mul(-3, 7), -21);
}

TEST(TimeMath, SecondsToMilliseconds) {
  EXPECT_EQ(seconds_to_ms(0), 0);
  EXPECT_EQ(seconds_to_ms(60), kMinute);
  EXPECT_EQ(seconds_to_ms(-1), -kSecond);
  EXPECT_EQ(seconds_to_ms(kMax / 1000), kMax / 1000 * 1000);
  EXPECT_EQ(seconds_to_ms(kMax / 1000 + 1), kMax);
  EXPECT_EQ(seconds_to_ms(k2p62), kMax) << "a broken proxy's ask_again_s";
  EXPECT_EQ(seconds_to_ms(-k2p62), kMin);
  EXPECT_EQ(seconds_to_ms(kMax), kMax);
  EXPECT_EQ(seconds_to_ms(kMin), kMin);
}

TEST(TimeMath, ClampToInt64TruncatesAndClamps) {
  EXPECT_EQ(clamp_to_int64(0.0, kMin, kMax), 0);
  EXPECT_EQ(clamp_to_int64(2.9, kMin, kMax), 2);
  EXPECT_EQ(clamp_to_int64(-2.9, kMin, kMax), -2) << "toward zero";
  EXPECT_EQ(clamp_to_int64(0.5, 1, 86400), 1);
  EXPECT_EQ(clamp_to_int64(-0.0, 1, 86400), 1);
  // Outside the int64 range: a cast would be undefined.
  EXPECT_EQ(clamp_to_int64(9.3e18, kMin, kMax), kMax);
  EXPECT_EQ(clamp_to_int64(-9.3e18, kMin, kMax), kMin);
  EXPECT_EQ(clamp_to_int64(1e300, kMin, kMax), kMax);
  EXPECT_EQ(clamp_to_int64(-1e300, kMin, kMax), kMin);
  EXPECT_EQ(clamp_to_int64(std::numeric_limits<double>::max(), kMin, kMax), kMax);
  EXPECT_EQ(clamp_to_int64(std::numeric_limits<double>::lowest(), kMin, kMax), kMin);
  // 2^63 exactly: static_cast<double>(INT64_MAX) rounds up to it.
  EXPECT_EQ(clamp_to_int64(9223372036854775808.0, kMin, kMax), kMax);
  EXPECT_EQ(clamp_to_int64(-9223372036854775808.0, kMin, kMax), kMin);
  // The largest double below 2^63 fits, and 2^62 is exact.
  EXPECT_EQ(clamp_to_int64(9223372036854774784.0, kMin, kMax), kMax - 1023);
  EXPECT_EQ(clamp_to_int64(static_cast<double>(k2p62), kMin, kMax), k2p62);
  EXPECT_EQ(clamp_to_int64(static_cast<double>(k2p62), 1, 86400), 86400);
  // NaN and the infinities.
  EXPECT_EQ(clamp_to_int64(kNaN, kMin, kMax), kMin);
  EXPECT_EQ(clamp_to_int64(-kNaN, 1, 86400), 1);
  EXPECT_EQ(clamp_to_int64(kInf, kMin, kMax), kMax);
  EXPECT_EQ(clamp_to_int64(-kInf, kMin, kMax), kMin);
  EXPECT_EQ(clamp_to_int64(kInf, 1, 86400), 86400);
  EXPECT_EQ(clamp_to_int64(-kInf, 1, 86400), 1);
  // Bounds a double cannot hold exactly are still kept.
  EXPECT_EQ(clamp_to_int64(static_cast<double>(k2p62 + 1), k2p62 + 1, kMax), k2p62 + 1);
  EXPECT_EQ(clamp_to_int64(static_cast<double>(kMax - 1), kMin, kMax - 1), kMax - 1);
  EXPECT_EQ(clamp_to_int64(5.0, 7, 7), 7);
}

TEST(TimeMath, ScaleDurationIsAJitterThatCannotOverflow) {
  EXPECT_EQ(scale_duration(kMinute, 1.0), kMinute);
  EXPECT_EQ(scale_duration(kMinute, 0.9), 54 * kSecond);
  EXPECT_EQ(scale_duration(kMinute, 1.1), 66 * kSecond);
  EXPECT_EQ(scale_duration(kMax, 1.5), kMax);
  EXPECT_EQ(scale_duration(kMax, 0.5), kMax / 2 + 1) << "2^62, the nearest double";
  EXPECT_EQ(scale_duration(k2p62, 2.0), kMax);
  EXPECT_EQ(scale_duration(k2p62, 1.5), k2p62 + k2p62 / 2);
  EXPECT_EQ(scale_duration(kMin, 1.5), kMin);
  EXPECT_EQ(scale_duration(kMax, -1.5), kMin);
  EXPECT_EQ(scale_duration(-kSecond, 0.5), -500);
  EXPECT_EQ(scale_duration(kSecond, 0.0), 0);
  EXPECT_EQ(scale_duration(kSecond, kNaN), kMin);
  EXPECT_EQ(scale_duration(kSecond, kInf), kMax);
  EXPECT_EQ(scale_duration(kSecond, -kInf), kMin);
  EXPECT_EQ(scale_duration(0, kInf), kMin) << "0 * inf is NaN";
}

TEST(TimeMath, NextBackoffDoublesUpToTheCap) {
  EXPECT_EQ(next_backoff(0, kSecond, 5 * kMinute), kSecond);
  EXPECT_EQ(next_backoff(-kSecond, kSecond, 5 * kMinute), kSecond);
  EXPECT_EQ(next_backoff(kMin, kSecond, 5 * kMinute), kSecond);
  EXPECT_EQ(next_backoff(kSecond, kSecond, 5 * kMinute), 2 * kSecond);
  EXPECT_EQ(next_backoff(4 * kMinute, kSecond, 5 * kMinute), 5 * kMinute);
  EXPECT_EQ(next_backoff(k2p62, kSecond, 5 * kMinute), 5 * kMinute);
  EXPECT_EQ(next_backoff(kMax, kSecond, 5 * kMinute), 5 * kMinute);
  EXPECT_EQ(next_backoff(k2p62, kSecond, kMax), kMax) << "doubled 2^62 saturates";
  EXPECT_EQ(next_backoff(kMax, kSecond, kMax), kMax);
  // A first wait above the cap (download.retry_backoff over checkin.max_backoff)
  // is used once, then the cap holds.
  EXPECT_EQ(next_backoff(0, kHour, kMinute), kHour);
  EXPECT_EQ(next_backoff(kHour, kHour, kMinute), kMinute);
  // The sequence reaches the cap and stays there.
  DurationMs b = 0;
  for (int i = 0; i < 200; ++i) b = next_backoff(b, kSecond, kDay);
  EXPECT_EQ(b, kDay);
}

}  // namespace
}  // namespace tranche::core
