// The rollout engine. At each tick, what the devices did becomes evidence
// (Fleet::scan: exposure, silence, coverage), the gate looks at it, and the
// rollout machine (core/rollout_machine.h) decides for every running rollout:
// hold, promote, halt, or end a rollback. Every transition — the engine's and
// an operator's — is applied here: persisted with its audit row, then published
// to the fleet's snapshot, so nothing acts on a state the store does not have.
//
// It has no thread and no HTTP of its own: the server's engine thread calls
// tick(), its routes call transition(). It works through ports — the Fleet,
// a Store (shared with the server's other parts, so every call on it is made
// under the store's mutex), a Clock, a sink for device writes — and is tested in
// process with a fake clock (tests/server/engine_test.cpp).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/gate.h"
#include "core/result.h"
#include "core/rollout_machine.h"
#include "server/fleet.h"
#include "server/metrics.h"
#include "server/server.h"
#include "store/store.h"

namespace tranche::server {

class RolloutEngine {
 public:
  struct Ports {
    Fleet& fleet;
    store::Store& store;
    std::mutex& store_mu;  // held for every call on `store`
    const Clock& clock;
    Metrics& metrics;
    // A device whose rollout marks a tick changed (found silent): to be written.
    std::function<void(DeviceWrite)> write;
  };
  struct Settings {
    // Several servers on one store: each saves its share of the exposure, and
    // the leader decides on the sum of every server's rows.
    bool shared = false;
    std::string server_id;
    core::DurationMs tick = core::kSecond;  // the engine thread's period
  };

  RolloutEngine(Ports ports, Settings settings);

  // One tick at the clock's now. Every server counts its devices' evidence
  // (and, sharing the store, saves its share); only the `leader` decides.
  void tick(bool leader);

  // Applies `event` to a rollout: persists the transition and its audit entry
  // (store first), then publishes. `amend` (the engine's) sets what the
  // decision came from — the gate's state and verdict, the coverage — on the
  // rollout before the event applies, so they are persisted and published with
  // the new state, never before it.
  core::Result<std::shared_ptr<const RolloutInfo>> transition(
      const std::string& rollout_id, core::RolloutEvent event, const std::string& actor,
      std::string reason, TimeMs now, const std::function<void(RolloutInfo&)>& amend = nullptr);

  // Serialises transitions, ticks' decisions and whatever must not interleave
  // with them (a rollout's creation, a sync from the store). Recursive: a tick
  // decides under it and then applies through transition().
  std::recursive_mutex& mutex() { return mu_; }

 private:
  core::GateObservation observe(const RolloutInfo& rollout, TimeMs now);
  void save_gate_evidence(const RolloutInfo& rollout, TimeMs now);
  // Several servers: the rollout's evidence summed from every server's rows,
  // and the coverage and devices on the version of the servers alive (`scan`).
  core::Result<core::EvidenceTally> summed_evidence(const std::string& rollout, TimeMs now,
                                                    Fleet::ScanResult& scan);

  Ports ports_;
  Settings settings_;
  std::recursive_mutex mu_;
  TimeMs last_accrual_ = 0;  // the last tick's exposure accrual
};

}  // namespace tranche::server
