#include "server/throttle.h"

#include <algorithm>
#include <cmath>

namespace tranche::server {

FailureThrottle::Bucket& FailureThrottle::refill(const std::string& source, core::TimeMs now) {
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    // Bounded memory: when full, forget the sources whose buckets are full again
    // (they would start full anyway); if none, start over.
    if (buckets_.size() >= max_sources_) {
      std::erase_if(buckets_, [&](const auto& kv) {
        const double elapsed = static_cast<double>(std::max<core::TimeMs>(0, now - kv.second.at)) / 1000.0;
        return kv.second.tokens + elapsed * per_second_ >= burst_;
      });
      if (buckets_.size() >= max_sources_) buckets_.clear();
    }
    it = buckets_.emplace(source, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = static_cast<double>(std::max<core::TimeMs>(0, now - b.at)) / 1000.0;
  b.tokens = std::min(burst_, b.tokens + elapsed * per_second_);
  b.at = std::max(b.at, now);
  return b;
}

bool FailureThrottle::allowed(const std::string& source, core::TimeMs now, std::int64_t* retry_after_s) {
  std::lock_guard lock(mu_);
  Bucket& b = refill(source, now);
  if (b.tokens >= 1.0) return true;
  if (retry_after_s != nullptr) {
    *retry_after_s = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil((1.0 - b.tokens) / per_second_)));
  }
  return false;
}

void FailureThrottle::failed(const std::string& source, core::TimeMs now) {
  std::lock_guard lock(mu_);
  Bucket& b = refill(source, now);
  b.tokens = std::max(0.0, b.tokens - 1.0);
}

}  // namespace tranche::server
