#include "server/membership.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace tranche::server {
using core::ErrorCode;

bool same_hash(const std::string& a, const std::string& b);  // api.cpp: in constant time

Membership::Membership(Ports ports, Settings settings)
    : ports_(std::move(ports)), settings_(std::move(settings)) {}

void Membership::take_claims() {
  // A claim is stamped with its server's clock before it commits, so one may
  // become visible after a later one: look back a little (disown is idempotent).
  constexpr TimeMs kLookBack = 5 * core::kSecond;
  constexpr std::size_t kPage = 10'000;
  TimeMs since = std::max<TimeMs>(0, claims_seen_until_ - kLookBack);
  for (;;) {
    core::Result<std::vector<store::ClaimRow>> claims = std::vector<store::ClaimRow>{};
    {
      std::lock_guard lock(ports_.store_mu);
      claims = ports_.store.load_claims(since, kPage);
    }
    if (!claims) {
      spdlog::warn("claims: not read: {}", claims.error().to_string());
      return;
    }
    std::size_t moved = 0;
    for (const auto& c : *claims) {
      claims_seen_until_ = std::max(claims_seen_until_, c.owner_since);
      since = std::max(since, c.owner_since);
      if (c.owner != settings_.server_id && ports_.fleet.disown(c.device, c.owner, c.owner_since)) ++moved;
    }
    if (moved > 0) spdlog::debug("claims: {} devices moved to other servers", moved);
    if (claims->size() < kPage) return;
  }
}

void Membership::evict_if_due() {
  const TimeMs now = ports_.clock.now();
  constexpr TimeMs kEvery = 10 * core::kSecond;
  if (now - evicted_at_ < kEvery) return;
  evicted_at_ = now;
  if (auto n = ports_.fleet.evict_unneeded(now, settings_.forget_idle, ports_.unwritten);
      n > 0) {
    spdlog::debug("fleet: forgot {} devices served elsewhere, never seen or idle ({} held)", n,
                  ports_.fleet.device_count());
  }
}

void Membership::adopt_orphans() {
  const TimeMs now = ports_.clock.now();
  // A server that has not said it is alive for this long has stopped (its
  // engine thread says so every tick).
  const TimeMs alive_since = now - std::max<TimeMs>(5 * settings_.tick, 3 * core::kSecond);
  constexpr std::size_t kPerTick = 2'000;
  core::Result<std::vector<std::string>> orphans = std::vector<std::string>{};
  {
    std::lock_guard lock(ports_.store_mu);
    orphans = ports_.store.find_orphans(settings_.server_id, alive_since, kPerTick);
  }
  if (!orphans) {
    spdlog::warn("engine: devices of stopped servers not looked up: {}", orphans.error().to_string());
    return;
  }
  std::size_t taken = 0;
  for (const auto& id : *orphans) {
    core::Result<store::DeviceRecord> record = core::make_error(ErrorCode::kUnavailable, "no store");
    {
      std::lock_guard lock(ports_.store_mu);
      record = ports_.store.claim_device(id, settings_.server_id, now, {});
    }
    if (!record) {
      spdlog::warn("engine: device {} of a stopped server not taken: {}", id, record.error().to_string());
      continue;
    }
    install_claimed(*record, now);
    ++taken;
  }
  if (taken > 0) {
    spdlog::info("engine: took {} devices whose server stopped; their silence is judged here", taken);
  }
}

void Membership::install_claimed(const store::DeviceRecord& record, TimeMs now) {
  Device d = device_from_rows(record.device, &record.state, record.marks);
  // The stored last contact is coarse: judge silence from the latest it may be.
  d.last_seen = core::latest_contact(d.last_seen, settings_.last_seen_every, now);
  ports_.fleet.install_claimed(std::move(d));
}

core::Status Membership::ensure_owned(const std::string& id, const std::string& hash) {
  if (ports_.fleet.owns(id)) return core::Ok{};
  core::Result<store::DeviceRecord> record = core::make_error(ErrorCode::kUnavailable, "no store");
  {
    std::lock_guard lock(ports_.store_mu);
    // One transaction: the stored token hash is checked before anything is
    // written, so a wrong secret moves nothing (nor costs a write).
    record = ports_.store.claim_device(id, settings_.server_id, ports_.clock.now(), [&](const store::DeviceRow& row) {
      return same_hash(row.token_hash, hash);
    });
  }
  if (!record) return record.error();
  install_claimed(*record, ports_.clock.now());
  return core::Ok{};
}

}  // namespace tranche::server
