// Evidence: what the gate counts, from what devices do. One definition, used by
// the server (server/fleet.cpp), the simulator (sim/fleet_sim.cpp) and anything
// else that feeds the gate; docs/gate.md ("Evidence") says the same in words.
//
// A device stands in each live rollout in one of five places:
//
//   control ──offered / runs it healthily──> exposed ──runs it healthily──> acknowledged
//      │                                        │                              │
//      └─failure─> control failed               └──────────failure─────────────┴─> exposed failed
//
//  - exposed: from the moment the server offers it the release (a check-in
//    answer that tells it to install the version), or reports running it. A
//    release that kills its device before it can say anything must still be
//    counted, so exposure starts at the offer, not at the first healthy report.
//  - acknowledged: the device reports running the release healthily — installed
//    and past its trial (its start budget). Only acknowledged devices count
//    toward min_acknowledged and promotion.
//  - a failure — install failure, crash report, a fallback on the device, or
//    silence (missed heartbeats without a goodbye) — is never an
//    acknowledgement. Each device fails at most once per rollout: its first
//    failure is counted, to the group it stood in then, and it leaves the
//    evidence (accrues no more exposure). A failure of an exposed device counts
//    as exposed whatever version it names: exposure runs from the offer, so the
//    time before the install is in both the exposure and the failures.
//  - download_failed, downloading, goodbye and offer_refused are not evidence: a
//    transfer that failed is retried and says nothing about the release, a
//    goodbye only ends the device's online time, and a refused offer says why the
//    device does not move (the offer itself already made it exposed).
//
// Exposure is device-time, accrued per tick: at each tick every device that is
// online then (a held check-in, or heard within heartbeat_interval x
// silent_after_missed without a goodbye) and has not failed adds the interval
// since the previous tick to its group; a device that failed during the
// interval adds it too, to the group it failed in (it was at risk until then).
// The tally is cumulative from the rollout's start: it carries over from stage
// to stage, like the gate's state.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/gate.h"
#include "core/types.h"

namespace tranche::core {

// --- what a device reports (the wire's event kinds, one codec) -----------------

enum class DeviceEventKind : std::uint8_t {
  kInstalled,       // the new version is in its slot and started (trial begins)
  kInstallFailed,   // refused or failed to install (contract, slot, health)
  kDownloadFailed,  // transfer or TUF verification failed: transient, retried
  kCrashed,         // the service died on the version (within its start budget)
  kRolledBack,      // the device fell back to last-known-good by itself
  kGoodbye,         // clean shutdown: silence after it is not a failure
  kOfferRefused,    // the agent did not take up an offer (detail.reason: known_bad,
                    // trial_pending): not evidence, reported once per (reason, version)
  // Progress, not evidence (a DDI client's feedback, docs/ddi.md): once per
  // action, so a device's events and its `last_reported` show where it is.
  kDownloading,  // fetching the release (DDI execution download / downloaded)
  kInstalling,   // installing it (DDI execution proceeding)
};
inline constexpr std::size_t kDeviceEventKindCount = 9;

std::string_view to_string(DeviceEventKind kind);  // "installed", "install_failed", ...
std::optional<DeviceEventKind> parse_device_event_kind(std::string_view text);
// install_failed, crashed, rolled_back: a failure of the version the event names.
bool is_failure(DeviceEventKind kind);
// install_failed, rolled_back: the device will never take that version again (a
// crash alone may be retried within the start budget).
bool bans_version(DeviceEventKind kind);

// --- one device in one rollout ----------------------------------------------------

enum class Standing : std::uint8_t {
  kControl,        // not offered the release
  kExposed,        // offered (or seen running it), no healthy report yet
  kAcknowledged,   // runs it healthily, past its trial
  kExposedFailed,  // failed after exposure: an exposed failure
  kControlFailed,  // failed while in control: a control failure
};
std::string_view to_string(Standing standing);  // "control", "exposed", ...
std::optional<Standing> parse_standing(std::string_view text);

// Why a device failed (the first failure, the one counted).
enum class FailureCause : std::uint8_t { kNone, kInstallFailed, kCrashed, kFellBack, kSilent };
inline constexpr std::size_t kFailureCauseCount = 5;
std::string_view to_string(
    FailureCause cause);  // "none", "install_failed", "crashed", "fell_back", "silent"
std::optional<FailureCause> parse_failure_cause(std::string_view text);

// What a shell observed about one device in one rollout.
enum class Fact : std::uint8_t {
  kOffered,      // a check-in answer told it to install the release
  kDownloading,  // not evidence
  kRunsHealthy,  // it reports running the release past its trial
  kInstallFailed,
  kDownloadFailed,  // not evidence
  kCrashed,
  kFellBack,
  kSilent,   // missed its heartbeats without a goodbye
  kGoodbye,  // not evidence (ends its online time)
  kOfferRefused,  // not evidence: the device said why it does not take the offer
};

// The cause a fact fails a device for; kNone for facts that are no failure.
FailureCause failure_cause_of(Fact fact);

// The fact a device event is, for the rollout's channel.
Fact fact_of(DeviceEventKind kind);

// The group a device's online time accrues to, from its standing.
enum class Group : std::uint8_t { kNone, kExposed, kControl };
Group accrual_group(Standing standing);
bool is_exposed(Standing standing);  // exposed, acknowledged or exposed failed
bool is_failed(Standing standing);

// --- the tally of one rollout ---------------------------------------------------------

struct EvidenceTally {
  GroupCounts exposed;  // exposure_s and failing devices
  GroupCounts control;
  std::uint64_t exposed_devices = 0;  // devices ever exposed (failed ones included)
  std::uint64_t acknowledged = 0;     // acknowledged and not failed since
  std::array<std::uint64_t, kFailureCauseCount> exposed_by_cause{};  // of exposed.failures
  // Failures since the last accrual, per group: they accrue that interval too.
  std::uint64_t exposed_failed_since_accrual = 0;
  std::uint64_t control_failed_since_accrual = 0;

  std::uint64_t exposed_failures_of(FailureCause cause) const {
    return exposed_by_cause[static_cast<std::size_t>(cause)];
  }
  bool operator==(const EvidenceTally&) const = default;
};

// Applies one fact to a device's standing and to the tally. Returns whether the
// standing changed. `cause` of a failure is recorded in the tally by cause.
bool record(Standing& standing, Fact fact, EvidenceTally& tally);

// One tick's accrual: `exposed_online` and `control_online` devices (counted by
// the shell at the tick: online and not failed, by accrual_group) add `elapsed`
// each, and so does every device that failed since the previous accrual.
void accrue(EvidenceTally& tally, std::uint64_t exposed_online, std::uint64_t control_online,
            DurationMs elapsed);

// How far along its one-way path a standing is: control 0, exposed 1,
// acknowledged 2, either failure 3. record() only ever moves a standing to a
// higher rank, so a store that keeps each (rollout, device) at the highest rank
// any server wrote, first failure kept, holds the standing every report of the
// device together implies — whichever servers heard which report, in any order.
int standing_rank(Standing standing);

// What a store keeps when a server writes `incoming` over a stored standing:
// the higher rank (equal ranks keep what is stored: the first failure stays),
// except that a control failure written over a standing that was exposed is an
// exposed failure — the server that saw the failure had not yet heard that
// another had offered the release. Commutative for any two standings that
// record() can reach on one device.
Standing merge_standing(Standing stored, Standing incoming);

// Adds `devices` devices standing at `standing` (failed for `cause`) to a tally:
// the counts record() would have reached for them. With exposure summed
// separately, this turns stored rows into the tally a cluster's gate reads.
void count_standing(EvidenceTally& tally, Standing standing, FailureCause cause,
                    std::uint64_t devices);

// The gate's view of a tally, for the current stage.
GateObservation observe(const EvidenceTally& tally, DurationMs stage_elapsed,
                        DurationMs stage_bake);

}  // namespace tranche::core
