// Several servers on one store: which devices this server holds. A device
// belongs to the server that last claimed it in the store (its owner), which
// counts its evidence and judges its silence; any server answers any device,
// claiming it on its first request there. This part keeps this server's share
// of the fleet in memory and no more:
//  - a device's first request here claims it (ensure_owned), only for its own
//    token, so a wrong secret moves nothing;
//  - claims other servers made are read each tick, and the devices they took
//    stop counting here (take_claims);
//  - the leader takes the devices of servers that stopped, so a device that
//    went quiet with its server is still counted silent (adopt_orphans);
//  - every 10 s, devices claimed elsewhere, never seen, or idle with nothing
//    left to judge leave memory (evict_if_due).
// Tested in process over a SQLite store and a fake clock
// (tests/server/membership_test.cpp); across real servers in tests/cluster.
#pragma once

#include <functional>
#include <mutex>
#include <string>

#include "core/result.h"
#include "server/fleet.h"
#include "server/server.h"
#include "store/store.h"

namespace tranche::server {

class Membership {
 public:
  struct Ports {
    Fleet& fleet;
    store::Store& store;
    std::mutex& store_mu;  // held for every call on `store`
    const Clock& clock;
    // Whether a state write of the device waits (the batch writer's): such a
    // device is not forgotten.
    std::function<bool(const std::string&)> unwritten;
  };
  struct Settings {
    std::string server_id;
    core::DurationMs tick = core::kSecond;             // the engine thread's period
    core::DurationMs last_seen_every = 600 * core::kSecond;  // the store's coarse last contact
    core::DurationMs forget_idle = 900 * core::kSecond;
  };

  Membership(Ports ports, Settings settings);

  // Makes this server the owner of `id` unless it is already — only for the
  // device's own token (`hash` of it). kNotFound when no such device is
  // enrolled or the token is not its.
  core::Status ensure_owned(const std::string& id, const std::string& hash);
  // The engine thread, each tick.
  void take_claims();
  void adopt_orphans();  // the leader only
  void evict_if_due();

 private:
  // A device claimed from the store, held from now on; its silence is judged
  // from the latest it may have been heard (core::latest_contact).
  void install_claimed(const store::DeviceRecord& record, TimeMs now);

  Ports ports_;
  Settings settings_;
  TimeMs claims_seen_until_ = 0;  // engine thread
  TimeMs evicted_at_ = 0;         // engine thread
};

}  // namespace tranche::server
