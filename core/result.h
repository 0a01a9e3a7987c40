// Errors as values. Everything that can fail for a reason outside the program's
// control returns Result<T>; a broken invariant is a crash (TRANCHE_ASSERT), not a
// Result. ErrorCode values are stable: they cross the wire and are stored, so a
// number is never reused or renumbered.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tranche::core {

enum class ErrorCode : std::uint16_t {
  kInvalidArgument = 1,     // a value failed validation (names the field)
  kParse = 2,               // text could not be parsed (names where)
  kOutOfRange = 3,          // a number outside its allowed range
  kTooLarge = 4,            // a size limit was exceeded
  kInvalidTransition = 5,   // an event that the state machine does not accept
  kNotFound = 6,            // a named thing does not exist
  kVersionRejected = 7,     // a version refused on this device (failed before)
  kContractViolation = 8,   // content uses what its consumer does not supply
  kConflict = 9,            // the request contradicts current state
  kUnverified = 10,         // signatures or hashes do not verify (TUF: below threshold)
  kUnavailable = 11,        // a service it needs cannot be reached now (retry later: store
                            // down, disk full, over a connection or memory budget)
  kIo = 12,                 // a local file or device operation failed (names the file)
  kInternal = 13,           // a fault of this program or its library, not of the input
  kTimeout = 14,            // a deadline passed before the work finished (retry later)
  kCancelled = 15,          // the caller stopped the work (shutdown, a newer request)
};

// The kind of an error, for a caller deciding what to do next: fix the input,
// try again later, or report a bug. One mapping, used by the HTTP layer (400 /
// 503 / 500), the CLI (exit codes) and the agent (retry or give up).
enum class ErrorKind : std::uint8_t {
  kBadInput,     // the request or file is wrong: retrying it unchanged fails again
  kUnavailable,  // a dependency or budget is exhausted now: retry later
  kInternal,     // a bug or a broken environment: retrying may not help
};

ErrorKind error_kind(ErrorCode code);

std::string_view error_code_name(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;

  // Prefixes context as the error travels up: "plan.yaml:3: " + message.
  Error with_context(std::string_view context) const;
  // "E0002 parse: <message>"
  std::string to_string() const;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}      // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

[[noreturn]] void assertion_failed(const char* expr, const char* file, int line,
                                   const char* message);

}  // namespace tranche::core

#define TRANCHE_RESULT_CONCAT_INNER(a, b) a##b
#define TRANCHE_RESULT_CONCAT(a, b) TRANCHE_RESULT_CONCAT_INNER(a, b)

// Propagation, the one way: `TRANCHE_ASSIGN_OR_RETURN(auto x, parse(...));`
// declares (or assigns) lhs from a Result's value, or returns its error from the
// enclosing function (whose return type is any Result). `..._AS(lhs, expr, f)`
// returns f(error) instead, for a function whose failure type is not a Result
// (the CLI's exit-code Failure). `TRANCHE_RETURN_IF_ERROR` does the same for a
// Status, keeping nothing.
#define TRANCHE_ASSIGN_OR_RETURN(lhs, expr) TRANCHE_ASSIGN_OR_RETURN_AS(lhs, expr, )
#define TRANCHE_ASSIGN_OR_RETURN_AS(lhs, expr, map_error) \
  TRANCHE_ASSIGN_OR_RETURN_IMPL(TRANCHE_RESULT_CONCAT(tranche_result_, __LINE__), lhs, expr, map_error)
#define TRANCHE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr, map_error) \
  auto tmp = (expr);                                             \
  if (!tmp) return map_error(tmp.error());                       \
  lhs = std::move(tmp).value()

#define TRANCHE_RETURN_IF_ERROR(expr)                      \
  do {                                                     \
    if (auto tranche_status_ = (expr); !tranche_status_) { \
      return tranche_status_.error();                      \
    }                                                      \
  } while (false)

// A broken invariant: crash with a message. Never compiled out.
#define TRANCHE_ASSERT(expr, message)                                                \
  do {                                                                               \
    if (!(expr)) ::tranche::core::assertion_failed(#expr, __FILE__, __LINE__, message); \
  } while (false)
