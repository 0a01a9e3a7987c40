// Failed guesses, throttled per source: each source (a peer address) has a
// bucket of `burst` failures that refills at `per_second`; a source whose bucket
// is empty is refused before its next guess is even checked, until it refills.
// Only failures draw from the bucket, so devices that know the key are never
// slowed, and one source guessing does not lock out the others.
//
// Time comes in as an argument (no clock here): the server passes its clock's
// now, tests a fake one. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/types.h"

namespace tranche::server {

class FailureThrottle {
 public:
  FailureThrottle(double burst, double per_second, std::size_t max_sources = 100'000)
      : burst_(burst), per_second_(per_second), max_sources_(max_sources) {}

  // Whether `source` may make a guess at `now`; when not, `retry_after_s` says
  // in how many seconds (at least 1) its next guess is allowed.
  bool allowed(const std::string& source, core::TimeMs now, std::int64_t* retry_after_s = nullptr);
  // `source` guessed wrong at `now`.
  void failed(const std::string& source, core::TimeMs now);

 private:
  struct Bucket {
    double tokens = 0;
    core::TimeMs at = 0;
  };
  // What `b` holds at `now`, refilled since it was last drawn from.
  double level(const Bucket& b, core::TimeMs now) const;
  // The bucket of `source` refilled up to `now` (a new one is full).
  Bucket& refill(const std::string& source, core::TimeMs now);

  const double burst_;
  const double per_second_;
  const std::size_t max_sources_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace tranche::server
