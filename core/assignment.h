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

#include "core/plan.h"
#include "core/rollout_machine.h"
#include "core/types.h"

namespace tranche::core {

struct DeviceView {
  std::string id;                 // a DeviceId's text
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
};

// Releases of one channel, oldest first: N is back(), N-1 the one before.
struct ChannelReleases {
  std::vector<Version> versions;
};

struct AssignmentReason {
  enum class Code : std::uint8_t {
    kInStage,          // admitted by the current stage
    kNotYetInStage,    // bucket above the current stage's share
    kSelectorExcludes, // the stage's selector does not match
    kCriticalWaits,    // critical devices only from a later stage
    kOutsideWindow,    // outside the tenant's maintenance window
    kPinned,           // tenant pin chooses another version
    kRolledBack,       // the rollout halted or was rolled back: previous version
    kFailedHere,       // the version failed on this device before
    kNoRollout,        // no rollout for the channel: newest completed release
    kPaused,           // rollout paused: no new devices
  };
  Code code = Code::kNoRollout;
  std::string text;
};

struct Assignment {
  std::optional<Version> desired;  // nullopt: keep what it runs
  AssignmentReason reason;
  std::optional<TimeMs> ask_again_at;  // e.g. when the maintenance window opens
};

// Pure: the desired version of one channel for one device. `rollout` is the
// channel's active rollout, if any; `baseline` the version the fleet runs without
// it (the newest completed release).
Assignment assign(const DeviceView& device, const TenantPolicy& policy,
                  const ChannelReleases& releases, const std::optional<Version>& baseline,
                  const RolloutView* rollout, const std::string& channel, TimeMs now);

// Whether `now` falls in one of the windows, in the device's local time; when it
// does not, the start of the next window (UTC) — within 8 days.
struct WindowCheck {
  bool open = true;
  std::optional<TimeMs> next_open;
};
WindowCheck check_windows(const std::vector<MaintenanceWindow>& windows,
                          std::int32_t utc_offset_minutes, TimeMs now);

}  // namespace tranche::core
