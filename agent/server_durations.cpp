#include "agent/server_durations.h"

#include <algorithm>
#include <cstdint>

#include "agent/config.h"

namespace tranche::agent {

std::optional<core::DurationMs> clamp_ask_again_s(const boost::json::value& v) {
  constexpr std::int64_t kLeast = kMinCheckinWait / core::kSecond;
  constexpr std::int64_t kMost = kMaxCheckinWait / core::kSecond;
  std::int64_t seconds = 0;
  if (v.is_int64()) {
    seconds = std::clamp<std::int64_t>(v.get_int64(), kLeast, kMost);
  } else if (v.is_uint64()) {
    seconds = kMost;  // Boost.JSON keeps only integers past INT64_MAX as uint64
  } else if (v.is_double()) {
    seconds = core::clamp_to_int64(v.get_double(), kLeast, kMost);
  } else {
    return std::nullopt;
  }
  return core::seconds_to_ms(seconds);
}

}  // namespace tranche::agent
