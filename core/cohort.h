// Cohorts: which devices a stage of a rollout admits.
//
// Each (device, rollout) pair gets a stable bucket in [0, 1,000,000). A stage that
// admits p ppm takes the devices whose bucket is below p, so
//  - a device admitted at p is admitted at every q >= p (stages only grow),
//  - the same device and rollout always get the same bucket (no state to keep),
//  - a different rollout salt reshuffles the fleet (the same devices are not
//    always first),
//  - buckets are uniform within every stratum, so a stage samples each stratum
//    (tenant, class, region, OS build) in proportion: a crash on one OS build
//    cannot hide behind a 0.1% sample that missed it. In proportion is not
//    enough for a step of 10 devices and a stratum of 1%: a stage's
//    min_per_stratum raises the share within each small stratum
//    (core/assignment.h, stage_share).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/plan.h"
#include "core/types.h"

namespace tranche::core {

inline constexpr std::uint32_t kBucketCount = Ppm::kWhole;

// Salt of a rollout, derived from its id.
std::uint64_t rollout_salt(std::string_view rollout_id);

// Stable bucket of a device in a rollout, uniform over [0, kBucketCount).
std::uint32_t cohort_bucket(std::string_view device_id, std::uint64_t salt);

inline bool bucket_admitted(std::uint32_t bucket, Ppm stage_share) {
  return bucket < stage_share.value();
}

// The share a stage really admits: its percent, raised so that at least
// `min_devices` of `eligible_devices` are in (an asleep or tiny ring cannot pass
// empty). Never above 100%.
Ppm effective_share(Ppm percent, std::uint32_t min_devices, std::uint64_t eligible_devices);

// A device's stratum under a plan's strata keys: its value of each key, joined
// with '|' in the keys' order ("laptop|emea"); a missing tag is "-". No keys: "".
std::string stratum_of(const Tags& tags, const std::vector<std::string>& keys);

// Eligible devices per stratum, counted when a rollout starts (for min_per_stratum).
using StratumCounts = std::map<std::string, std::uint64_t>;

}  // namespace tranche::core
