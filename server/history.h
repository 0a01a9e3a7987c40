// What the dashboard's charts draw, kept by the server: every few seconds each
// rollout's gate evidence and counts, so a page opened (or reloaded) mid-rollout
// shows its whole recent course, not only what it saw since it loaded.
//
// Each server samples its own published snapshot (a follower's comes from the
// store), so any server of a cluster answers. Kept in memory, bounded per
// rollout; a restarted server starts a new history (docs/dashboard.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/types.h"

namespace tranche::server {

struct RolloutSample {
  core::TimeMs at = 0;
  std::string state;            // the rollout's state then (core::to_string)
  std::size_t stage = 0;
  std::optional<double> log_lr;          // null before the gate's first look
  std::optional<double> halt_threshold;
  std::int64_t exposed_failures = 0;
  std::int64_t control_failures = 0;
  double exposed_device_s = 0;
  double control_device_s = 0;
  std::int64_t exposed_devices = 0;
  std::uint64_t on_version = 0;      // devices of the stage's target running the version
  std::uint64_t target_devices = 0;  // the current stage's target
};

class RolloutHistory {
 public:
  // At most `per_rollout` samples are kept for each rollout, the newest.
  explicit RolloutHistory(std::size_t per_rollout) : per_rollout_(per_rollout) {}

  void add(const std::string& rollout, RolloutSample sample);
  // Oldest first.
  std::vector<RolloutSample> samples(const std::string& rollout) const;
  // The newest sample of `rollout`, if any.
  std::optional<RolloutSample> last(const std::string& rollout) const;
  // Forgets rollouts not in `known` (gone from the snapshot).
  void keep_only(const std::set<std::string>& known);

 private:
  const std::size_t per_rollout_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<RolloutSample>> by_rollout_;
};

}  // namespace tranche::server
