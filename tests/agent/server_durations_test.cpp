// agent/server_durations.h: a check-in answer's ask_again_s, whatever number a
// broken proxy or a hostile server puts there, is a wait of 1 s .. 1 day.
#include "agent/server_durations.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <limits>
#include <optional>
#include <string>

#include "agent/config.h"

namespace tranche::agent {
namespace {

namespace json = boost::json;

std::optional<core::DurationMs> ask(const std::string& number) {
  return clamp_ask_again_s(json::parse(number));
}

TEST(AskAgain, TheRangeIsASecondToADay) {
  EXPECT_EQ(kMinCheckinWait, core::kSecond);
  EXPECT_EQ(kMaxCheckinWait, core::kDay);
}

TEST(AskAgain, IntegersAreClampedBeforeTheyBecomeMilliseconds) {
  EXPECT_EQ(ask("60"), 60 * core::kSecond);
  EXPECT_EQ(ask("1"), core::kSecond);
  EXPECT_EQ(ask("86400"), core::kDay);
  EXPECT_EQ(ask("86401"), core::kDay);
  EXPECT_EQ(ask("0"), core::kSecond) << "0 must not mean at once";
  EXPECT_EQ(ask("-1"), core::kSecond);
  EXPECT_EQ(ask("4611686018427387904"), core::kDay) << "2^62: times 1000 overflows";
  EXPECT_EQ(ask("-4611686018427387904"), core::kSecond);
  EXPECT_EQ(ask("9223372036854775807"), core::kDay);
  EXPECT_EQ(ask("-9223372036854775808"), core::kSecond);
  EXPECT_EQ(ask("9223372036854775808"), core::kDay) << "past int64: a uint64";
  EXPECT_EQ(ask("18446744073709551615"), core::kDay);
  EXPECT_EQ(ask("18446744073709551616"), core::kDay) << "past uint64: a double";
  EXPECT_EQ(ask("-9223372036854775809"), core::kSecond);
}

TEST(AskAgain, FractionsAndExponentsAreClampedToo) {
  EXPECT_EQ(ask("0.5"), core::kSecond);
  EXPECT_EQ(ask("0.001"), core::kSecond);
  EXPECT_EQ(ask("2.9"), 2 * core::kSecond) << "truncated";
  EXPECT_EQ(ask("-0.0"), core::kSecond);
  EXPECT_EQ(ask("1e300"), core::kDay);
  EXPECT_EQ(ask("-1e300"), core::kSecond);
  EXPECT_EQ(ask("1e-300"), core::kSecond);
  EXPECT_EQ(ask("4.611686018427388e18"), core::kDay);
  // JSON has no NaN nor infinity; a number too large for a double parses as one.
  boost::system::error_code ec;
  const json::value huge = json::parse("1e400", ec);
  if (!ec) {
    EXPECT_EQ(clamp_ask_again_s(huge), core::kDay);
  }
  EXPECT_EQ(clamp_ask_again_s(json::value(std::numeric_limits<double>::quiet_NaN())), core::kSecond);
  EXPECT_EQ(clamp_ask_again_s(json::value(std::numeric_limits<double>::infinity())), core::kDay);
}

TEST(AskAgain, AnythingButANumberIsIgnored) {
  for (const char* v : {"\"60\"", "null", "true", "[60]", "{\"s\": 60}"}) {
    EXPECT_EQ(ask(v), std::nullopt) << v;
  }
}

}  // namespace
}  // namespace tranche::agent
