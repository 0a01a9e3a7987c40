#include "core/result.h"

#include <cstdio>
#include <cstdlib>

namespace tranche::core {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kParse: return "parse";
    case ErrorCode::kOutOfRange: return "out_of_range";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kInvalidTransition: return "invalid_transition";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kVersionRejected: return "version_rejected";
    case ErrorCode::kContractViolation: return "contract_violation";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kUnverified: return "unverified";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kCancelled: return "cancelled";
  }
  return "unknown";
}

ErrorKind error_kind(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kParse:
    case ErrorCode::kOutOfRange:
    case ErrorCode::kTooLarge:
    case ErrorCode::kInvalidTransition:
    case ErrorCode::kNotFound:
    case ErrorCode::kVersionRejected:
    case ErrorCode::kContractViolation:
    case ErrorCode::kConflict:
    case ErrorCode::kUnverified:
      return ErrorKind::kBadInput;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
    case ErrorCode::kCancelled:
      return ErrorKind::kUnavailable;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return ErrorKind::kInternal;
  }
  return ErrorKind::kInternal;
}

Error Error::with_context(std::string_view context) const {
  return Error{code, std::string(context) + message};
}

std::string Error::to_string() const {
  char num[8];
  std::snprintf(num, sizeof num, "E%04u", static_cast<unsigned>(code));
  return std::string(num) + " " + std::string(error_code_name(code)) + ": " + message;
}

// The one place core writes to stderr: a broken invariant is about to abort.
void assertion_failed(const char* expr, const char* file, int line, const char* message) {
  std::fprintf(stderr, "tranche: invariant broken at %s:%d: %s (%s)\n", file, line, message,
               expr);
  std::abort();
}

}  // namespace tranche::core
