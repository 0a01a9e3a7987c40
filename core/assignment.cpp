#include "core/assignment.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "core/cohort.h"

namespace tranche::core {

namespace {

using Code = AssignmentReason::Code;

// Floor division and modulo: local times before 1970 (negative) still land on
// the right day.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
std::int64_t floor_mod(std::int64_t a, std::int64_t b) {
  // From the remainder, not a - floor_div(a, b) * b: that product overflows
  // near the ends of the range.
  std::int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// Day 0 (1970-01-01) was a Thursday; weekdays count from Monday = 0.
int weekday_of_day(std::int64_t day) {
  return static_cast<int>(floor_mod(day + 3, 7));
}

bool day_allowed(const MaintenanceWindow& w, int weekday) {
  return (w.days & (1u << static_cast<unsigned>(weekday))) != 0;
}

// "2024-07-19 22:00 UTC" (days-to-civil after Howard Hinnant's algorithm).
std::string format_utc(TimeMs t) {
  const std::int64_t days = floor_div(t, kDay);
  const std::int64_t minute_of_day = floor_mod(t, kDay) / kMinute;
  const std::int64_t z = days + 719468;
  const std::int64_t era = floor_div(z, 146097);
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[80];  // room for any int64 year, so the format cannot truncate
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld %02lld:%02lld UTC",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(minute_of_day / 60),
                static_cast<long long>(minute_of_day % 60));
  return buf;
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

bool failed_here(const DeviceView& device, const Version& v) {
  return std::find(device.failed.begin(), device.failed.end(), v) != device.failed.end();
}

// The rollout states in which exposed devices are sent back. The machine turns a
// halt under `on_failure: rollback` into RollingBack itself; a Halted rollout whose
// plan says rollback is treated the same, so no path leaves bad devices in place.
bool sends_back(const RolloutView& r) {
  return sends_back(r.status.state, r.plan != nullptr ? r.plan->on_failure : OnFailure::kHalt);
}

// What a tenant pin allows on this channel.
struct PinTarget {
  bool constrained = false;        // kPrevious or kExact
  std::optional<Version> version;  // unset: kPrevious with no N-1 release
  std::string label;               // "N-1 (7.10.2)", "7.10.2"
};

PinTarget resolve_pin(const TenantPolicy& policy, const ChannelReleases& releases,
                      const std::string& channel) {
  PinTarget target;
  const auto it = policy.pins.find(channel);
  if (it == policy.pins.end()) return target;
  const Pin& pin = it->second;
  switch (pin.kind) {
    case Pin::Kind::kLatest:
      return target;
    case Pin::Kind::kPrevious:
      target.constrained = true;
      if (releases.versions.size() >= 2) {
        target.version = releases.versions[releases.versions.size() - 2];
        target.label = "N-1 (" + target.version->to_string() + ")";
      } else {
        target.label = "N-1";
      }
      return target;
    case Pin::Kind::kExact:
      TRANCHE_ASSERT(pin.exact.has_value(), "an exact pin carries its version");
      target.constrained = true;
      target.version = pin.exact;
      target.label = pin.exact->to_string();
      return target;
  }
  return target;
}

Assignment make(std::optional<Version> desired, Code code, std::string text) {
  Assignment a;
  a.desired = desired;
  a.reason.code = code;
  a.reason.text = std::move(text);
  return a;
}

std::string runs_text(const std::optional<Version>& v) {
  return v ? "runs " + v->to_string() : "keeps what it runs";
}

// Step 3 for a running rollout: is the device in any stage up to the current one?
Assignment assign_running(const DeviceView& device, const TenantPolicy& policy,
                          const RolloutView& rollout, const std::optional<Version>& fallback) {
  const Plan& plan = *rollout.plan;
  const std::uint32_t current = rollout.status.stage;
  TRANCHE_ASSERT(current < plan.stages.size(), "a running rollout's stage is in its plan");

  const std::uint32_t bucket = cohort_bucket(device.id, rollout.salt);
  const bool critical = policy.is_critical(device.tags);
  const std::string version = rollout.version.to_string();

  // Any stage up to the current one: a device admitted at stage k stays admitted
  // at every later stage even if a later stage's selector would not take it.
  for (std::uint32_t k = 0; k <= current; ++k) {
    const Stage& stage = plan.stages[k];
    const Ppm share = stage_share(rollout, k, device.tags);
    if (bucket_admitted(bucket, share) && stage.selector.matches(device.tags) &&
        (!critical || stage.admits_critical)) {
      return make(rollout.version, Code::kInStage,
                  "in stage " + quoted(stage.name) + " (bucket " + std::to_string(bucket) + " < " +
                      std::to_string(share.value()) + " ppm)");
    }
  }

  // Not admitted. A device that already runs the version keeps it while the
  // rollout runs: taking it away would be churn, not safety (the gate decides that).
  if (device.current && *device.current == rollout.version) {
    return make(rollout.version, Code::kInStage, "already runs " + version);
  }

  // Explain against the current stage, in the order an operator would fix it.
  const Stage& stage = plan.stages[current];
  if (!stage.selector.matches(device.tags)) {
    return make(fallback, Code::kSelectorExcludes,
                "not in stage " + quoted(stage.name) + ": its selector excludes this device; " +
                    runs_text(fallback));
  }
  if (critical && !stage.admits_critical) {
    const auto later = std::find_if(plan.stages.begin() + current + 1, plan.stages.end(),
                                    [](const Stage& s) { return s.admits_critical; });
    return make(fallback, Code::kCriticalWaits,
                later == plan.stages.end()
                    ? std::string("critical devices wait for the rollout to complete")
                    : "critical devices wait for stage " + quoted(later->name));
  }
  const Ppm share = stage_share(rollout, current, device.tags);
  return make(fallback, Code::kNotYetInStage,
              "not yet: bucket " + std::to_string(bucket) + " is above stage " +
                  quoted(stage.name) + " share " + share.to_string());
}

// Steps 1-3 and 5: what the device should run, ignoring maintenance windows.
Assignment choose(const DeviceView& device, const TenantPolicy& policy,
                  const ChannelReleases& releases, const std::optional<Version>& baseline,
                  const RolloutView* rollout, const std::string& channel) {
  // (1) Tenant pin.
  const PinTarget pin = resolve_pin(policy, releases, channel);
  std::optional<Version> fallback = baseline;
  if (pin.constrained) {
    if (!pin.version) {
      return make(std::nullopt, Code::kPinned,
                  "pinned to N-1 by tenant policy; channel '" + channel +
                      "' has no N-1 release: keeps what it runs");
    }
    if (failed_here(device, *pin.version)) {
      return make(std::nullopt, Code::kFailedHere,
                  pin.version->to_string() + " failed on this device; pinned to " + pin.label +
                      " by tenant policy: keeps what it runs");
    }
    if (rollout == nullptr || rollout->version != *pin.version) {
      return make(pin.version, Code::kPinned, "pinned to " + pin.label + " by tenant policy");
    }
    // The pin names the rollout's own version: the pin picks the version, the
    // rollout picks when. Until then the device may only run the baseline if the
    // pin allows it; otherwise it keeps what it runs.
    if (baseline != pin.version) fallback.reset();
  }
  const bool baseline_failed = fallback && failed_here(device, *fallback);
  if (baseline_failed) fallback.reset();

  if (rollout == nullptr) {
    if (baseline_failed) {
      return make(std::nullopt, Code::kFailedHere,
                  baseline->to_string() + " failed on this device; keeps what it runs");
    }
    return make(fallback, Code::kNoRollout,
                fallback ? "no rollout: baseline " + fallback->to_string() + " (the newest completed release)"
                         : std::string("no rollout and no release for this device"));
  }

  // (2) A version that failed here is never desired again.
  const std::string version = rollout->version.to_string();
  if (failed_here(device, rollout->version)) {
    return make(fallback, Code::kFailedHere, version + " failed on this device");
  }

  // (3) The rollout's state.
  const bool exposed = device.current && *device.current == rollout->version;
  if (sends_back(*rollout)) {
    if (exposed) {
      std::optional<Version> back = rollout->previous ? rollout->previous : fallback;
      if (back && failed_here(device, *back)) back = fallback;
      return make(back, Code::kRolledBack,
                  back ? "rollout rolled back: back to " + back->to_string()
                       : std::string("rollout rolled back: no previous version to go back to"));
    }
    return make(fallback, Code::kRolledBack,
                "rollout rolled back: " + version + " not sent; " + runs_text(fallback));
  }

  switch (rollout->status.state) {
    case RolloutState::kPending:
      return make(fallback, Code::kNoRollout,
                  "rollout " + quoted(rollout->id) + " not started; " + runs_text(fallback));
    case RolloutState::kPaused:
    case RolloutState::kHalted:
    case RolloutState::kAborted: {
      const std::string what = rollout->status.state == RolloutState::kPaused   ? "rollout paused"
                               : rollout->status.state == RolloutState::kHalted ? "rollout halted"
                                                                                : "rollout aborted";
      if (exposed) {
        return make(rollout->version, Code::kPaused, what + ": keeps " + version);
      }
      return make(fallback, Code::kPaused, what + ": no new devices; " + runs_text(fallback));
    }
    case RolloutState::kRunning:
      TRANCHE_ASSERT(rollout->plan != nullptr, "a running rollout has a plan");
      return assign_running(device, policy, *rollout, fallback);
    case RolloutState::kCompleted:
      return make(rollout->version, Code::kInStage,
                  "rollout complete: " + version + " for every device");
    case RolloutState::kRollingBack:
    case RolloutState::kRolledBack:
      break;  // handled by sends_back above
  }
  TRANCHE_ASSERT(false, "every rollout state has an assignment rule");
  return {};
}

}  // namespace

Ppm stage_share(const RolloutView& rollout, std::size_t index, const Tags& tags) {
  const Stage& stage = rollout.plan->stages[index];
  const Ppm share = effective_share(stage.percent, stage.min_devices, rollout.eligible_devices);
  if (stage.min_per_stratum == 0 || rollout.strata == nullptr) return share;
  const auto it = rollout.strata->find(stratum_of(tags, rollout.plan->strata));
  if (it == rollout.strata->end()) return share;
  return std::max(share, effective_share(stage.percent, stage.min_per_stratum, it->second));
}

std::optional<std::size_t> first_admitting_stage(const RolloutView& rollout, std::uint32_t bucket,
                                                 const Tags& tags) {
  for (std::size_t k = 0; k < rollout.plan->stages.size(); ++k) {
    if (bucket_admitted(bucket, stage_share(rollout, k, tags))) return k;
  }
  return std::nullopt;
}

std::uint64_t stage_target(const Plan& plan, std::size_t index, std::uint64_t eligible,
                           const StratumCounts& strata) {
  std::uint32_t share = 0;
  for (std::size_t k = 0; k <= index && k < plan.stages.size(); ++k) {
    const Stage& st = plan.stages[k];
    share = std::max(share, effective_share(st.percent, st.min_devices, eligible).value());
  }
  double expected = static_cast<double>(share) / Ppm::kWhole * static_cast<double>(eligible);
  for (const auto& [key, n] : strata) {
    std::uint32_t raised = share;
    for (std::size_t k = 0; k <= index && k < plan.stages.size(); ++k) {
      const Stage& st = plan.stages[k];
      if (st.min_per_stratum > 0) raised = std::max(raised, effective_share(st.percent, st.min_per_stratum, n).value());
    }
    expected += static_cast<double>(raised - share) / Ppm::kWhole * static_cast<double>(n);
  }
  return std::min<std::uint64_t>(eligible, static_cast<std::uint64_t>(expected + 0.5));
}

bool sends_back(RolloutState state, OnFailure on_failure) {
  switch (state) {
    case RolloutState::kRollingBack:
    case RolloutState::kRolledBack:
      return true;
    case RolloutState::kHalted:
      return on_failure == OnFailure::kRollback;
    default:
      return false;
  }
}

WindowCheck check_windows(const std::vector<MaintenanceWindow>& windows,
                          std::int32_t utc_offset_minutes, TimeMs now) {
  WindowCheck check;
  if (windows.empty()) return check;  // no windows: any time

  const DurationMs offset = static_cast<DurationMs>(utc_offset_minutes) * kMinute;
  // Saturating: a clock at the ends of the range (a broken RTC, a hostile
  // config) must not wrap into another week.
  const TimeMs local = saturating_add(now, offset);
  const std::int64_t today = floor_div(local, kDay);
  const DurationMs into_day = floor_mod(local, kDay);
  const int weekday = weekday_of_day(today);
  const int yesterday = weekday_of_day(today - 1);

  for (const MaintenanceWindow& w : windows) {
    const DurationMs start = static_cast<DurationMs>(w.start_minute) * kMinute;
    const DurationMs end = static_cast<DurationMs>(w.end_minute) * kMinute;
    if (start < end) {
      if (day_allowed(w, weekday) && into_day >= start && into_day < end) return check;
    } else if (end < start) {
      // Crosses midnight: belongs to the day it starts on.
      if (day_allowed(w, weekday) && into_day >= start) return check;
      if (day_allowed(w, yesterday) && into_day < end) return check;
    }
    // start == end: an empty window, never open.
  }

  check.open = false;
  // The earliest opening after now. Windows repeat weekly, so today plus seven
  // days holds the next opening of every window that has an allowed day.
  for (std::int64_t day = today; day <= today + 7; ++day) {
    for (const MaintenanceWindow& w : windows) {
      if (w.start_minute == w.end_minute || !day_allowed(w, weekday_of_day(day))) continue;
      const TimeMs opens =
          saturating_add(saturating_mul(day, kDay), static_cast<DurationMs>(w.start_minute) * kMinute);
      if (opens <= local) continue;
      const TimeMs opens_utc = saturating_sub(opens, offset);
      if (!check.next_open || opens_utc < *check.next_open) check.next_open = opens_utc;
    }
    if (check.next_open) break;  // later days only open later
  }
  return check;
}

Assignment assign(const DeviceView& device, const TenantPolicy& policy,
                  const ChannelReleases& releases, const std::optional<Version>& baseline,
                  const RolloutView* rollout, const std::string& channel, TimeMs now) {
  Assignment chosen = choose(device, policy, releases, baseline, rollout, channel);
  // A rollout that sends devices back marks its version bad for every device:
  // an agent that runs it leaves it at once (its other slot), without waiting
  // for a download.
  if (rollout != nullptr && sends_back(*rollout)) chosen.revoked = rollout->version;

  // Whatever rule chose it, a version that failed here is never desired again.
  TRANCHE_ASSERT(!chosen.desired || !failed_here(device, *chosen.desired),
                 "a version that failed on the device is never desired again");

  // (4) Maintenance windows defer a change of version, except a move off a version
  // that was rolled back or failed on this device: safety goes first, a device
  // running a bad release does not wait for its window.
  if (!chosen.desired || chosen.desired == device.current) return chosen;
  const bool leaving_bad =
      device.current &&
      ((rollout != nullptr && sends_back(*rollout) && *device.current == rollout->version) ||
       failed_here(device, *device.current));
  if (leaving_bad) return chosen;

  const WindowCheck window = check_windows(policy.windows, device.utc_offset_minutes, now);
  if (window.open) return chosen;
  Assignment deferred = make(
      std::nullopt, Code::kOutsideWindow,
      window.next_open ? "outside maintenance window; opens at " + format_utc(*window.next_open)
                       : std::string("outside maintenance window; no window opens"));
  deferred.ask_again_at = window.next_open;
  deferred.revoked = chosen.revoked;
  return deferred;
}

}  // namespace tranche::core
