#include "server/history.h"

#include <iterator>
#include <utility>

namespace tranche::server {

void RolloutHistory::add(const std::string& rollout, RolloutSample sample) {
  std::lock_guard lock(mu_);
  auto& samples = by_rollout_[rollout];
  samples.push_back(std::move(sample));
  while (samples.size() > per_rollout_) samples.pop_front();
}

std::vector<RolloutSample> RolloutHistory::samples(const std::string& rollout) const {
  std::lock_guard lock(mu_);
  auto it = by_rollout_.find(rollout);
  if (it == by_rollout_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::optional<RolloutSample> RolloutHistory::last(const std::string& rollout) const {
  std::lock_guard lock(mu_);
  auto it = by_rollout_.find(rollout);
  if (it == by_rollout_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

void RolloutHistory::keep_only(const std::set<std::string>& known) {
  std::lock_guard lock(mu_);
  for (auto it = by_rollout_.begin(); it != by_rollout_.end();) {
    it = known.count(it->first) > 0 ? std::next(it) : by_rollout_.erase(it);
  }
}

}  // namespace tranche::server
