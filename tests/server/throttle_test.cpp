// server::FailureThrottle on a fake clock: wrong guesses per source drain a
// bucket that refills; only failures count; sources are independent.
#include "server/throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace tranche::server {
namespace {

constexpr core::TimeMs kT0 = 1'800'000'000'000;

TEST(FailureThrottle, ASourceThatGuessesWrongTooOftenWaitsAndTheOthersDoNot) {
  FailureThrottle t(20, 1);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(t.allowed("10.0.0.1", kT0)) << i;
    t.failed("10.0.0.1", kT0);
  }
  std::int64_t retry = 0;
  EXPECT_FALSE(t.allowed("10.0.0.1", kT0, &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_TRUE(t.allowed("10.0.0.2", kT0)) << "another source is not slowed";
  // One guess per second after that.
  EXPECT_FALSE(t.allowed("10.0.0.1", kT0 + 999));
  EXPECT_TRUE(t.allowed("10.0.0.1", kT0 + 1000));
  t.failed("10.0.0.1", kT0 + 1000);
  EXPECT_FALSE(t.allowed("10.0.0.1", kT0 + 1500));
  // Full again after burst / rate.
  EXPECT_TRUE(t.allowed("10.0.0.1", kT0 + 1000 + 20'000));
  for (int i = 0; i < 20; ++i) t.failed("10.0.0.1", kT0 + 21'000);
  EXPECT_FALSE(t.allowed("10.0.0.1", kT0 + 21'000));
}

TEST(FailureThrottle, SuccessesDrawNothing) {
  FailureThrottle t(2, 1);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(t.allowed("10.0.0.1", kT0));
}

TEST(FailureThrottle, MemoryIsBoundedBySources) {
  FailureThrottle t(2, 1, 100);
  for (int i = 0; i < 1000; ++i) {
    const std::string s = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    ASSERT_TRUE(t.allowed(s, kT0));
    t.failed(s, kT0);
  }
  // The last source is still throttled after its bucket was emptied.
  t.failed("10.0.3.231", kT0);
  EXPECT_FALSE(t.allowed("10.0.3.231", kT0));
}

}  // namespace
}  // namespace tranche::server
