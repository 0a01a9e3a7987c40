#include "server/throttle.h"

#include <algorithm>
#include <cmath>

namespace tranche::server {

double FailureThrottle::level(const Bucket& b, core::TimeMs now) const {
  const double elapsed = static_cast<double>(std::max<core::TimeMs>(0, now - b.at)) / 1000.0;
  return std::min(burst_, b.tokens + elapsed * per_second_);
}

FailureThrottle::Bucket& FailureThrottle::refill(const std::string& source, core::TimeMs now) {
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    // Bounded memory: when full, forget the sources whose buckets are full again
    // (they would start full anyway); if none, start over.
    if (buckets_.size() >= max_sources_) {
      std::erase_if(buckets_, [&](const auto& kv) { return level(kv.second, now) >= burst_; });
      if (buckets_.size() >= max_sources_) buckets_.clear();
    }
    it = buckets_.emplace(source, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = level(b, now);
  b.at = std::max(b.at, now);
  return b;
}

bool FailureThrottle::allowed(const std::string& source, core::TimeMs now, std::int64_t* retry_after_s) {
  std::lock_guard lock(mu_);
  // Only a source that failed has a bucket: the devices that know the key cost
  // no memory here.
  auto it = buckets_.find(source);
  if (it == buckets_.end()) return true;
  const double tokens = level(it->second, now);
  if (tokens >= 1.0) return true;
  if (retry_after_s != nullptr) {
    *retry_after_s = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil((1.0 - tokens) / per_second_)));
  }
  return false;
}

void FailureThrottle::failed(const std::string& source, core::TimeMs now) {
  std::lock_guard lock(mu_);
  Bucket& b = refill(source, now);
  b.tokens = std::max(0.0, b.tokens - 1.0);
}

}  // namespace tranche::server
