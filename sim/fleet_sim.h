// The fleet simulator: a discrete-event simulation of a fleet receiving one
// release under several rollout policies at once.
//
// Every policy runs twice on the same fleet — once with the scenario's bad
// release, once with a good one (crash probability 0) — and all runs share one
// pass over the devices' online/offline sessions, so the policies face exactly
// the same fleet. Devices run core's agent machine (tranche's agent, or the 2024
// sensor's behaviour with fallback off); the control plane runs core's rollout
// machine and gate. Heartbeats are implied by device state: silence is checked
// once, when a device that stopped without a goodbye would have missed enough of
// them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "sim/scenario.h"

namespace tranche::sim {

struct SimOptions {
  std::uint64_t seed = 1;
  std::vector<std::string> policies;  // names in the scenario; empty: its defaults
  bool bad_run = true;                // simulate the scenario's bad release
  bool good_run = true;               // and a good one (for t99 and false halts)
  // 2: the bad and the good release's runs in two threads (same results, about
  // half the time, a second copy of the session state); 1: one pass.
  unsigned threads = 2;
  // Called now and then with (simulated time, horizon) for progress output.
  std::function<void(core::DurationMs, core::DurationMs)> progress;
};

struct RunMetrics {
  std::uint64_t devices_crashed = 0;
  double device_hours_down = 0;
  std::uint64_t still_down_at_horizon = 0;
  std::uint64_t manual_repairs = 0;   // devices that needed a person
  std::uint64_t exposed = 0;          // devices that ran the release
  std::optional<double> time_to_detect_s;
  std::optional<double> time_to_halt_s;
  std::optional<double> time_to_rollback99_s;
  std::optional<double> t99_all_s;     // 99% of all devices run the release
  // The first minute at which 99% of the devices online at that moment run the
  // release (up, on the new version).
  std::optional<double> t99_online_s;
  // The former definition: 99% of the devices online at least once so far.
  std::optional<double> t99_ever_online_s;
  bool halted = false;
  bool halted_by_limit = false;       // the halt came from an absolute failure limit
  std::string halt_reason;
  std::string final_state;            // rollout state at the horizon
  std::optional<double> last_exposure_s;  // when the last device took the release
  std::uint64_t down_day6 = 0;        // devices down at 6 d and 10.8 d
  std::uint64_t down_day10_8 = 0;
  std::vector<std::uint32_t> down_series;  // devices down, one sample per minute
};

struct PolicyResult {
  std::string policy;
  RunMetrics bad;   // valid when SimOptions::bad_run
  RunMetrics good;  // valid when SimOptions::good_run
};

struct SimResult {
  std::string scenario;
  std::uint64_t devices = 0;
  std::uint64_t seed = 0;
  core::DurationMs sample_every = core::kMinute;
  std::vector<PolicyResult> policies;
  std::uint64_t events = 0;
};

core::Result<SimResult> run_simulation(const Scenario& scenario, const SimOptions& options);

// K good releases under one policy (seeds seed, seed+1, ...): how many were halted.
struct FalseHaltResult {
  std::string policy;
  std::uint64_t trials = 0;
  std::uint64_t halts = 0;
  std::uint64_t limit_halts = 0;  // of halts: by an absolute failure limit
  double per_1000() const { return trials ? 1000.0 * static_cast<double>(halts) / static_cast<double>(trials) : 0; }
};
core::Result<FalseHaltResult> run_false_halt_trials(const Scenario& scenario,
                                                    const std::string& policy,
                                                    std::uint64_t trials, std::uint64_t seed,
                                                    const std::function<void(std::uint64_t)>& progress);

}  // namespace tranche::sim
