#include "core/cohort.h"

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace tranche::core {
namespace {

// The bucket of a device must never change for a given (device, rollout): a
// device admitted to a stage would otherwise fall out of it. So these constants
// are part of the contract; tests/core/cohort_test.cpp pins values computed with
// them, and a change to any of them is a change of every device's cohort.
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a: cheap, byte-wise, and stable across platforms (no dependence on
// std::hash). Its output is weak in the high bits for short inputs, which is why
// every use is finished with mix64.
std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h) {
  for (const char c : bytes) {
    h ^= static_cast<std::uint8_t>(c);
    h *= kFnvPrime;
  }
  return h;
}

std::uint64_t fnv1a_u64(std::uint64_t value, std::uint64_t h) {
  for (int i = 0; i < 8; ++i) {  // little-endian byte order, whatever the host's
    h ^= (value >> (8 * i)) & 0xff;
    h *= kFnvPrime;
  }
  return h;
}

// splitmix64's finalizer (Stafford's "Mix13"): every input bit flips each output
// bit with probability close to 1/2.
std::uint64_t mix64(std::uint64_t z) {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z;
}

// floor(h * n / 2^64): the multiply-shift reduction of a 64-bit hash to [0, n).
// Computed exactly from 32-bit halves (no 128-bit type needed); each of the n
// outcomes takes floor or ceil of 2^64 / n inputs, a relative bias of n / 2^64
// (5e-14 for n = 10^6), where `h % n` would favour the low buckets.
std::uint32_t reduce(std::uint64_t h, std::uint32_t n) {
  const std::uint64_t hi = h >> 32;
  const std::uint64_t lo = h & 0xffffffffULL;
  const std::uint64_t t = hi * n + ((lo * n) >> 32);  // < 2^52: no overflow
  return static_cast<std::uint32_t>(t >> 32);
}

}  // namespace

std::uint64_t rollout_salt(std::string_view rollout_id) {
  return mix64(fnv1a(rollout_id, kFnvOffset));
}

std::uint32_t cohort_bucket(std::string_view device_id, std::uint64_t salt) {
  // The salt goes in first, so the whole id is hashed under it: two rollouts see
  // unrelated orders of the fleet, not the same order shifted.
  const std::uint64_t h = fnv1a(device_id, fnv1a_u64(salt, kFnvOffset));
  return reduce(mix64(h), kBucketCount);
}

std::string stratum_of(const Tags& tags, const std::vector<std::string>& keys) {
  std::string out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += '|';
    const auto it = tags.find(keys[i]);
    out += it == tags.end() ? std::string("-") : it->second;
  }
  return out;
}

Ppm effective_share(Ppm percent, std::uint32_t min_devices, std::uint64_t eligible_devices) {
  if (min_devices == 0 || eligible_devices == 0) return percent;
  if (min_devices >= eligible_devices) return Ppm::from_ppm(Ppm::kWhole);
  // The smallest share whose expected count reaches min_devices:
  // ceil(min * 10^6 / eligible). min < 2^32 and 10^6 < 2^20, so no overflow. The
  // count actually admitted is a hash sample around that expectation.
  const std::uint64_t wanted = std::uint64_t{min_devices} * Ppm::kWhole;
  const std::uint64_t needed = wanted / eligible_devices + (wanted % eligible_devices != 0 ? 1 : 0);
  const auto share = static_cast<std::uint32_t>(std::min<std::uint64_t>(needed, Ppm::kWhole));
  return Ppm::from_ppm(std::max(percent.value(), share));
}

}  // namespace tranche::core
