// The health gate: is the release hurting the devices that run it?
//
// Evidence is two groups over the same window: the exposed devices (offered the
// release) and a concurrent control group (not offered it). For each: exposure
// (device-seconds online) and failing devices (install failures, crashes,
// device-side fallbacks, and silence — missed heartbeats with no goodbye). Each
// failing device counts once. What counts, and from when, is defined once in
// core/evidence.h; the server and the simulator both count through it.
//
// Before the statistics, absolute limits (plan.h, FailureLimits): a share or a
// count of failed exposed devices that halts whatever the control says.
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
  double exposure_s = 0;       // device-seconds online
  std::uint64_t failures = 0;  // failing devices (each once)
  bool operator==(const GroupCounts&) const = default;
};

// One look at the evidence: cumulative counts for both groups, plus how many
// devices of the current stage have acknowledged the release.
struct GateObservation {
  GroupCounts exposed;
  GroupCounts control;
  std::uint64_t exposed_devices = 0;  // devices ever exposed (the failure share's denominator)
  std::uint64_t acknowledged = 0;     // acknowledged and not failed (core/evidence.h)
  DurationMs stage_elapsed = 0;  // time since the current stage started
  DurationMs stage_bake = 0;     // the stage's bake time
};

// What the gate carries between looks (persisted with the rollout). A default
// GateState is the start of a release; carry it from stage to stage, never reset
// it at a stage boundary (that would spend alpha again).
struct GateState {
  static constexpr std::size_t kComponents = 4;
  // What the test has consumed so far: the exposures at the previous look, and the
  // failures up to the previous look — except failures that arrived in a look in
  // which their group gained no exposure (no exposure, no model of where a failure
  // can land): those are held back and enter the test with the next look in which
  // the group gains exposure.
  GroupCounts seen_exposed;
  GroupCounts seen_control;
  std::array<double, kComponents> log_lr{};  // per mixture component, see gate_mixture()
  // The early-promotion test (sequential promotion): log of the likelihood
  // ratio of rho = 1 (as good as control) against rho = tolerance, on the same
  // increments. Under any rho >= tolerance it is a nonnegative supermartingale,
  // so P(it ever reaches log(1/(1 - promote_confidence))) <= 1 - promote_confidence:
  // {rho < tolerance} at that confidence, however often the gate looks.
  double log_lr_harm = 0;
  bool halted = false;                       // once set, every later verdict is kHalt
};

struct GateVerdict {
  enum class Kind : std::uint8_t {
    kHalt,     // an absolute limit crossed, or significantly worse than control
    kPromote,  // bake done, enough acknowledgements, ratio bound under tolerance
    kWait,     // keep watching (reason says for what)
  };
  Kind kind = Kind::kWait;
  std::string reason;
  double log_lr = 0;               // log of the mixture likelihood ratio
  double threshold = 0;            // log(1/alpha): halt at or above it
  double ratio_estimate = 0;       // (k1/E1) / (k0/E0); 0 when undefined (E1, E0 or k0 zero)
  double ratio_upper = 0;          // upper confidence bound; +inf when no evidence
  double expected_background = 0;  // k0/E0 * E1: failures the exposed group would show
                                   // at the control's rate (0 without control failures)
  bool limit_crossed = false;      // this halt (or the first one) came from settings.limits
  double log_lr_harm = 0;          // the early-promotion test's log LR (GateState::log_lr_harm)
  double promote_threshold = 0;    // log(1/(1 - promote_confidence)): promote early at or above
  bool early = false;              // a kPromote before the bake ended
};

struct GateStep {
  GateState state;
  GateVerdict verdict;
};

// Pure: the verdict for this look, and the state for the next one. Counts must
// not go down between looks, and exposures are finite and >= 0 (asserted), as are
// the settings' ranges (alpha and confidence in (0, 1), alternative_ratio > 1,
// tolerance > 0: Plan::validate's job).
//
// Verdict, in order:
//  - kHalt when the state was halted before;
//  - kHalt when an absolute limit of settings.limits is crossed: more than
//    max_failure_rate of the exposed devices failed (once min_exposed are
//    exposed), or more than max_failures failed; the reason names the limit;
//  - kHalt when log(mixture LR) >= log(1/alpha); the reason names both groups'
//    failures and exposures and the log LR;
//  - kPromote early (verdict.early), before the bake ends, when
//    settings.early_promotion, the stage has run min_stage_time, the exposed
//    devices have min_promote_device_hours since the release started, at least
//    min_acknowledged acknowledged, not every exposed device failed, and the
//    early-promotion test rules out rho >= tolerance (log_lr_harm >=
//    log(1/(1 - promote_confidence))) — the bake is then a maximum;
//  - kPromote when the stage has baked (stage_elapsed >= stage_bake), at least
//    min_acknowledged devices acknowledged, not every exposed device failed (a
//    stage whose exposed devices all failed never promotes, whatever the
//    settings), and — once expected_background >= ratio_check_min_expected —
//    ratio_upper <= tolerance;
//  - kWait otherwise, the reason listing each missing condition with its numbers
//    ("bake 12m of 30m; acknowledged 31 of 50; ratio upper bound 2.7 > tolerance 2").
// The ratio bound uses the cumulative counts since the release started.
GateStep evaluate_gate(const GateSettings& settings, const GateState& state,
                       const GateObservation& observation);

// One component of the mixture: the rate ratio it bets on and its prior weight.
struct GateComponent {
  double ratio = 1;
  double weight = 0;
};

// The mixture the gate runs for `settings`: component 0 is alternative_ratio with
// most of the weight (it sets the power on moderate regressions); the others are
// rate ratios 4, 16 and 64 with small weights, so a release that breaks most of
// its devices halts after a handful of failures. Weights sum to 1. The settings
// must not change during a release (the state's log_lr are per component).
std::array<GateComponent, GateState::kComponents> gate_mixture(const GateSettings& settings);

// One-sided upper confidence bound, at `confidence`, on the failure-rate ratio
// (exposed / control) from k1 failures in exposure e1 and k0 failures in e0:
// the exact conditional (Clopper-Pearson) bound on the exposed share of the
// k1 + k0 failures, converted to a ratio. +inf when there is no evidence (e1 or e0
// not positive, or k0 == 0).
double rate_ratio_upper_bound(std::uint64_t k1, double e1, std::uint64_t k0, double e0,
                              double confidence);

// Whether a device that acknowledged a release has gone silent by `now`.
// `last_heard` is its last heartbeat (or acknowledgement); a goodbye means it shut
// down cleanly and is not silent. Silent iff no goodbye and
//   now - last_heard > silent_after_missed * heartbeat_interval
// (strictly: at exactly 3 intervals the third heartbeat may still be in flight).
bool is_silent(const GateSettings& settings, TimeMs last_heard, bool said_goodbye, TimeMs now);

// The same rule as a line in time: a device heard before the horizon (and not
// since, nor said goodbye) is silent at `now` — is_silent(s, t, false, now) iff
// t < silence_horizon(s, now). now - silent_after_missed * heartbeat_interval,
// saturated at the smallest TimeMs. A shell that keeps its devices ordered by
// last contact finds the newly silent ones below it without visiting the rest.
TimeMs silence_horizon(const GateSettings& settings, TimeMs now);

// The store keeps a device's last contact coarsely, so that a check-in that
// changes nothing costs no write: such a check-in writes it only when the stored
// value is `every` or more behind (`every` <= 0: each time).
bool last_seen_write_due(TimeMs stored, TimeMs now, DurationMs every);

// A stored last contact may thus be up to `every` behind the true one. A server
// that takes a device from the store (at its start, or from a server that
// stopped) judges its silence from the latest it may have been heard —
// min(stored + every, now) — so it never counts it silent early. 0 (never
// heard) stays 0.
TimeMs latest_contact(TimeMs stored, DurationMs every, TimeMs now);

}  // namespace tranche::core
