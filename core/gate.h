// The health gate: is the release hurting the devices that run it?
//
// Evidence is two groups over the same window: the exposed devices (acknowledged
// the release) and a concurrent control group (same strata, not yet exposed). For
// each: exposure (device-seconds online) and failures (install failures, crashes,
// device-side rollbacks, and silence — acknowledged, then missed heartbeats with
// no goodbye). Each failing device counts once.
//
// Comparing two Poisson rates has an exact conditional form: given that a new
// failure happened, it is in the exposed group with probability
//   p(rho) = rho*dE1 / (rho*dE1 + dE0)
// where dE1, dE0 are the exposures gained in that interval and rho the rate ratio.
// The gate runs a mixture sequential probability ratio test of rho = 1 (no worse
// than control) against rho = alternative_ratio (and a few larger ratios, so a
// release that crashes everything is caught within a few failures). The
// likelihood ratio, updated tick by tick with the increments, is a nonnegative
// martingale under "no worse than control" whatever the exposures do, so by
// Ville's inequality P(it ever exceeds 1/alpha) <= alpha: the false-halt rate
// holds however often the gate looks, across every stage of the release (the test
// state is carried from stage to stage).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/plan.h"
#include "core/types.h"

namespace tranche::core {

// Cumulative counts of one group since the release started.
struct GroupCounts {
  double exposure_s = 0;        // device-seconds online
  std::uint64_t failures = 0;   // failing devices (each once)
};

// One look at the evidence: cumulative counts for both groups, plus how many
// devices of the current stage have acknowledged the release.
struct GateObservation {
  GroupCounts exposed;
  GroupCounts control;
  std::uint64_t acknowledged = 0;
  DurationMs stage_elapsed = 0;  // time since the current stage started
  DurationMs stage_bake = 0;     // the stage's bake time
};

// What the gate carries between looks (persisted with the rollout).
struct GateState {
  static constexpr std::size_t kComponents = 4;
  GroupCounts seen_exposed;  // counts at the previous look
  GroupCounts seen_control;
  std::array<double, kComponents> log_lr{};  // per mixture component
  bool halted = false;
};

struct GateVerdict {
  enum class Kind : std::uint8_t {
    kHalt,     // significantly worse than control
    kPromote,  // bake done, enough acknowledgements, ratio bound under tolerance
    kWait,     // keep watching (reason says for what)
  };
  Kind kind = Kind::kWait;
  std::string reason;
  double log_lr = 0;           // log of the mixture likelihood ratio
  double threshold = 0;        // log(1/alpha): halt at or above it
  double ratio_estimate = 0;   // (k1/E1) / (k0/E0); 0 when undefined
  double ratio_upper = 0;      // upper confidence bound; +inf when no evidence
  double expected_background = 0;  // failures the exposed group would show at the control's rate
};

struct GateStep {
  GateState state;
  GateVerdict verdict;
};

// Pure: the verdict for this look, and the state for the next one. Counts must
// not go down between looks (asserted).
GateStep evaluate_gate(const GateSettings& settings, const GateState& state,
                       const GateObservation& observation);

// Whether a device that acknowledged a release has gone silent by `now`.
// `last_heard` is its last heartbeat (or acknowledgement); a goodbye means it shut
// down cleanly and is not silent.
bool is_silent(const GateSettings& settings, TimeMs last_heard, bool said_goodbye, TimeMs now);

}  // namespace tranche::core
