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
//    cannot hide behind a 0.1% sample that missed it.
#pragma once

#include <cstdint>
#include <string_view>

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

}  // namespace tranche::core
