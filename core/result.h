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
  kUnavailable = 11,        // a service it needs cannot be reached now (retry later: store down)
};

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

// A broken invariant: crash with a message. Never compiled out.
#define TRANCHE_ASSERT(expr, message)                                                \
  do {                                                                               \
    if (!(expr)) ::tranche::core::assertion_failed(#expr, __FILE__, __LINE__, message); \
  } while (false)
