// core/result.h: the kinds callers decide by, and the one propagation macro.
#include "core/result.h"

#include <gtest/gtest.h>

#include <string>

namespace tranche::core {
namespace {

TEST(ErrorKind, StoreAndNetworkFaultsAreRetryLaterNeverBadInput) {
  EXPECT_EQ(error_kind(ErrorCode::kUnavailable), ErrorKind::kUnavailable);
  EXPECT_EQ(error_kind(ErrorCode::kTimeout), ErrorKind::kUnavailable);
  EXPECT_EQ(error_kind(ErrorCode::kCancelled), ErrorKind::kUnavailable);
  EXPECT_EQ(error_kind(ErrorCode::kIo), ErrorKind::kInternal);
  EXPECT_EQ(error_kind(ErrorCode::kInternal), ErrorKind::kInternal);
  EXPECT_EQ(error_kind(ErrorCode::kParse), ErrorKind::kBadInput);
  EXPECT_EQ(error_kind(ErrorCode::kInvalidArgument), ErrorKind::kBadInput);
  EXPECT_EQ(error_kind(ErrorCode::kConflict), ErrorKind::kBadInput);
}

TEST(ErrorCodeName, EveryCodeHasItsStableNameAndNumber) {
  // Codes cross the wire and are stored: the numbers and names never change.
  EXPECT_EQ(Error({ErrorCode::kUnavailable, "disk full"}).to_string(), "E0011 unavailable: disk full");
  EXPECT_EQ(Error({ErrorCode::kIo, "x"}).to_string(), "E0012 io: x");
  EXPECT_EQ(Error({ErrorCode::kInternal, "x"}).to_string(), "E0013 internal: x");
  EXPECT_EQ(Error({ErrorCode::kTimeout, "x"}).to_string(), "E0014 timeout: x");
  EXPECT_EQ(Error({ErrorCode::kCancelled, "x"}).to_string(), "E0015 cancelled: x");
  for (int c = 1; c <= 15; ++c) {
    EXPECT_NE(error_code_name(static_cast<ErrorCode>(c)), "unknown") << c;
  }
}

Result<int> half(int n) {
  if (n % 2 != 0) return make_error(ErrorCode::kInvalidArgument, std::to_string(n) + " is odd");
  return n / 2;
}

Result<int> quarter(int n) {
  TRANCHE_ASSIGN_OR_RETURN(const int h, half(n));
  TRANCHE_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status even(int n) {
  TRANCHE_RETURN_IF_ERROR(half(n));
  return Ok{};
}

struct Failure {
  int exit_code;
  std::string message;
};
Failure exit_two(const Error& e) { return {2, e.message}; }

Failure first_failure(int n) {
  TRANCHE_ASSIGN_OR_RETURN_AS(const int h, half(n), exit_two);
  return {0, std::to_string(h)};
}

TEST(Propagation, AssignOrReturnBindsTheValueOrReturnsTheFirstError) {
  ASSERT_TRUE(quarter(8).ok());
  EXPECT_EQ(*quarter(8), 2);
  ASSERT_FALSE(quarter(6).ok());
  EXPECT_EQ(quarter(6).error().message, "3 is odd");
  EXPECT_TRUE(even(4).ok());
  EXPECT_EQ(even(5).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(first_failure(3).exit_code, 2);
  EXPECT_EQ(first_failure(3).message, "3 is odd");
  EXPECT_EQ(first_failure(4).message, "2");
}

}  // namespace
}  // namespace tranche::core
