// Assignment: which version of a channel should this device run now, and why.
// The question staged-rollout users ask most — "why has (or hasn't) this device
// got V?" — is answered by the reason this returns, in the same words everywhere
// (server API, dashboard, CLI, simulator).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/cohort.h"
#include "core/plan.h"
#include "core/rollout_machine.h"
#include "core/types.h"

namespace tranche::core {

struct DeviceView {
  std::string id;  // a DeviceId's text
  Tags tags;
  std::int32_t utc_offset_minutes = 0;  // the device's local time = UTC + this
  std::optional<Version> current;       // what it runs on this channel
  std::vector<Version> failed;          // versions it reported as failed here
};

// A rollout of `version` on a channel, as the engine last left it.
struct RolloutView {
  std::string id;
  std::uint64_t salt = 0;
  Version version;
  std::optional<Version> previous;  // what exposed devices go back to on rollback
  const Plan* plan = nullptr;
  RolloutStatus status;
  std::uint64_t eligible_devices = 0;  // for each stage's min_devices
  // Eligible devices per stratum of plan->strata, counted at the rollout's
  // start, for each stage's min_per_stratum; null or empty: not counted.
  const StratumCounts* strata = nullptr;
};

// The share stage `index` of the rollout admits for a device with `tags`: the
// stage's percent raised to min_devices over the eligible devices, and — when
// the stage sets min_per_stratum — raised again so that min_per_stratum of the
// device's stratum are expected in (effective_share over the stratum's count).
// A stratum not counted at the start (new since) gets the stage's share.
// Expected, not exact: a stratum is missed with probability about
// e^-min_per_stratum (5% at 3, 0.7% at 5).
Ppm stage_share(const RolloutView& rollout, std::size_t index, const Tags& tags);

// The first stage whose share (stage_share) admits a device with cohort bucket
// `bucket` and `tags` — the stage its hash places it in, selectors and critical
// devices aside; nullopt when none does yet. What the fleet's by_stage counts
// and a device view shows.
std::optional<std::size_t> first_admitting_stage(const RolloutView& rollout, std::uint32_t bucket,
                                                 const Tags& tags);

// The devices stage `index` is expected to admit out of `eligible`, cumulative
// (a device admitted at stage k stays admitted later, so each stratum counts at
// the largest share of this stage and those before it): the stage's share of
// the fleet, plus, for each stratum in `strata`, what min_per_stratum raises
// above it. At most `eligible`. What the API shows as a stage's target and the
// simulator's plan model admits.
std::uint64_t stage_target(const Plan& plan, std::size_t index, std::uint64_t eligible,
                           const StratumCounts& strata);

// Releases of one channel, oldest first: N is back(), N-1 the one before.
struct ChannelReleases {
  std::vector<Version> versions;
};

struct AssignmentReason {
  enum class Code : std::uint8_t {
    kInStage,           // admitted by the current stage
    kNotYetInStage,     // bucket above the current stage's share
    kSelectorExcludes,  // the stage's selector does not match
    kCriticalWaits,     // critical devices only from a later stage
    kOutsideWindow,     // outside the tenant's maintenance window
    kPinned,            // tenant pin chooses another version
    kRolledBack,        // the rollout halted or was rolled back: previous version
    kFailedHere,        // the version failed on this device before
    kNoRollout,         // no rollout for the channel: newest completed release
    kPaused,            // rollout paused, halted (on_failure: halt) or aborted: no new devices
  };
  Code code = Code::kNoRollout;
  std::string text;
};

struct Assignment {
  std::optional<Version> desired;  // nullopt: keep what it runs
  AssignmentReason reason;
  std::optional<TimeMs> ask_again_at;  // e.g. when the maintenance window opens
  // The version the server marks bad on this channel, for every device: the
  // rollout's version while the rollout sends devices back (rule 3).
  std::optional<Version> revoked;
};

// Whether a rollout in `state` sends its exposed devices back (and so revokes
// its version): RollingBack, RolledBack, or Halted under on_failure: rollback.
// The server's assignment and the simulator both ask this.
bool sends_back(RolloutState state, OnFailure on_failure);

// Pure: the desired version of one channel for one device. `rollout` is the
// channel's active rollout, if any; `baseline` the version the fleet runs without
// it (the newest completed release).
//
// Rules, first match wins:
//  1. Tenant pin for `channel` (every channel, content included — in 2024 N-1
//     pins did not cover content). kPrevious pins to releases.versions[size-2]
//     (N-1), kExact to its version, kLatest adds no constraint. A pin to a version
//     other than the rollout's gives that version (kPinned; a device that runs it
//     stays). A pin to the rollout's own version lets the rollout decide when, and
//     until then the device keeps what it runs (or gets the baseline, if that is
//     the pinned version). kPrevious with fewer than two releases: keep.
//  2. A version that failed on this device is never desired again, by any rule:
//     the rollout's version falls back to the baseline (kFailedHere); a failed
//     baseline or pinned version means keep what it runs.
//  3. The rollout's state:
//     - RollingBack, RolledBack, or Halted under on_failure: rollback: devices
//       that run the rollout's version get `previous` (kRolledBack); others the
//       baseline. Safety beats a pin to the rollout's own version.
//     - Paused, Halted (on_failure: halt), Aborted: no new devices; devices that
//       run the version keep it (kPaused).
//     - Running: the device is in when, for some stage up to the current one, its
//       cohort_bucket(device.id, salt) is below the stage's effective_share
//       (percent, min_devices, eligible_devices), the stage's selector matches,
//       and — for a device the tenant marks critical — the stage admits critical
//       devices. So a device in at stage k is in at stage k+1. A device that
//       already runs the version keeps it. Otherwise the reason names the current
//       stage: kSelectorExcludes, then kCriticalWaits, then kNotYetInStage.
//     - Completed: the version, for every device. Pending: as if no rollout.
//  4. Maintenance windows: a change of version (desired != current) outside the
//     tenant's windows is deferred — desired = nullopt (keep), kOutsideWindow,
//     ask_again_at = the next opening. Except a move off a version that was
//     rolled back or failed here: safety goes first, a rollback never waits.
//  5. Otherwise the baseline (kNoRollout, or the reason of rule 3 that left the
//     device out). No baseline: nullopt.
Assignment assign(const DeviceView& device, const TenantPolicy& policy,
                  const ChannelReleases& releases, const std::optional<Version>& baseline,
                  const RolloutView* rollout, const std::string& channel, TimeMs now);

// Whether `now` falls in one of the windows, in the device's local time; when it
// does not, the start of the next window (UTC) — within 8 days. Local time is
// UTC + utc_offset_minutes; MaintenanceWindow::days bit 0 is Monday; a window
// that crosses midnight belongs to the day it starts on; a window with
// start == end is empty. No windows: always open. Not open and no next_open: no
// window has an allowed day.
struct WindowCheck {
  bool open = true;
  std::optional<TimeMs> next_open;
};
WindowCheck check_windows(const std::vector<MaintenanceWindow>& windows,
                          std::int32_t utc_offset_minutes, TimeMs now);

}  // namespace tranche::core
