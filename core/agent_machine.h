// The agent's update state machine, as a pure reducer. One transition table
// (agent_machine.cpp), read top to bottom; a (phase, event) pair with no entry is
// refused with ErrorCode::kInvalidTransition, never a silent no-op.
//
//   Idle/Committed/RolledBack --offer(V)--> Downloading --downloaded--> Verifying
//   --verified--> Staged --slot_written--> Activating --activated--> Trial
//   Trial --trial_passed--> Committed
//   Trial --service_exited, budget left--> Trial (restart)
//   Trial --service_exited, budget spent--> RolledBack (last-known-good, V marked bad)
//   Activating/Trial --boot(unclean)--> RolledBack at once, before V runs again
//   Committed --boot(unclean), the k-th in a row--> RolledBack to the version
//     still in the other slot (V marked bad): a late crash needs no person
//   any phase --revoked(V)--> running or on trial: fall back now (V marked bad)
//   Downloading/Verifying --*_failed--> Committed (or Idle when nothing was installed)
//   Staged --slot_written, config.fallback = false--> Committed at once (the 2024 model)
//
// Offers: a version marked bad is answered with a kRejected report in every phase;
// the running version, or the candidate already in progress, is a no-op. Another
// version replaces the candidate in Downloading..Staged (the running version
// cancels it), and is refused with kConflict in Activating/Trial.
//
// The shell persists `AgentStep::record` whenever an action list contains kPersist
// (at most one per list, always before anything it protects), and runs the actions
// strictly in order: the record that says "trial of V, n starts left" is durable
// before V is activated or started, so a crash that takes the whole machine down is
// still counted. Every start of a version on trial has been paid for durably before
// it happens; a version marked bad is never installed again on this device.
//
// At boot outside a trial the record wins over the active slot: the list starts
// with kRevert(good), since the machine may have died between persisting a
// fallback and moving the pointer.
//
// Reports come before kStartService in a list: if starting the service takes the
// machine down (the 2024 failure), the server has already been told what it ran.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/evidence.h"
#include "core/result.h"
#include "core/types.h"

namespace tranche::core {

enum class AgentPhase : std::uint8_t {
  kIdle,  // nothing installed through tranche yet (running whatever shipped)
  kDownloading,
  kVerifying,
  kStaged,
  kActivating,
  kTrial,
  kCommitted,
  kRolledBack,
};
inline constexpr std::size_t kAgentPhaseCount = 8;
std::string_view to_string(AgentPhase phase);  // "idle", "downloading", ...

// Checked by agent_step (kInvalidArgument): start_budget >= 1 when fallback is
// on, trial_window >= 0, max_bad_versions >= 1.
struct AgentConfig {
  std::uint32_t start_budget = 3;          // starts allowed within one trial, the first included
  DurationMs trial_window = 10 * kMinute;  // from the moment the budget is persisted
  // false models an agent without tranche's fallback (the 2024 sensor): new
  // content is committed at once and a crash loop repeats forever.
  bool fallback = true;
  std::size_t max_bad_versions = 64;  // oldest forgotten first
  // k: a committed version that the machine died on k boots in a row (no stay of
  // trial_window up in between) is given up for the version still in the other
  // slot. Set it below the number of failed boots after which the OS stops
  // booting on its own. 0: never by itself (the server's revoke still works).
  std::uint32_t max_unclean_boots = 2;
};

// What the agent persists (the shell stores it durably). `candidate` is set exactly
// in Downloading..Trial; agent_step refuses a record that breaks this
// (kInvalidArgument: a corrupt or mis-converted record, not a transition).
struct AgentRecord {
  AgentPhase phase = AgentPhase::kIdle;
  std::optional<Version> good;       // last-known-good: what runs after a fallback
  std::optional<Version> candidate;  // being installed or on trial
  std::uint32_t starts_left = 0;     // budget left in the current trial
  TimeMs trial_started_at = 0;
  std::vector<Version> bad;  // failed on this device, oldest first; no duplicates
  // What the other slot holds and ran before `good` (nullopt: the shipped
  // version), when `previous_in_slot`. Set when a trial passes; given up as soon
  // as another install starts. Only ever set in Committed.
  std::optional<Version> previous;
  bool previous_in_slot = false;
  // Unclean boots in a row on `good` since the service last stayed up for a
  // trial window. Only ever non-zero in Committed.
  std::uint32_t unclean_boots = 0;

  bool is_bad(const Version& v) const;
  // The version that runs now (candidate during Activating/Trial, else good).
  std::optional<Version> running() const;
  bool operator==(const AgentRecord&) const = default;
};

struct AgentEvent {
  enum class Kind : std::uint8_t {
    kOffer,  // server's desired version: `version`
    kDownloaded,
    kDownloadFailed,  // transient: `detail`
    kVerified,
    kVerifyFailed,  // `detail`; `permanent` marks the version bad (e.g. contract violation)
    kSlotWritten,
    kActivated,      // active pointer switched to the candidate
    kServiceExited,  // protected process died: `detail` has exit code or signal
    kTrialPassed,    // trial window elapsed with the service up (and healthy)
    kHealthFailed,   // health command failed during the trial: counts like a crash
    kBoot,           // agent (re)started. `clean`: every run since the last boot step
                     // that ran to the end stopped between steps (its last action list
                     // ran to the end). A machine crash or a stop in the middle of a list
                     // is unclean, and stays so until a boot step has run to the end.
    kRevoked,   // the server marks `version` bad (its rollout is sent back)
    kStayedUp,  // Committed after an unclean boot: the service has been up for the
                // trial window since (the shell sends it at AgentStep::recheck_at)
  };
  Kind kind = Kind::kBoot;
  std::optional<Version> version;
  std::string detail;
  bool permanent = false;
  bool clean = true;
};
inline constexpr std::size_t kAgentEventKindCount = 13;

struct AgentAction {
  enum class Kind : std::uint8_t {
    kPersist,       // write the record durably before anything after it
    kDownload,      // fetch `version`
    kVerify,        // verify signatures, hashes and the content contract
    kWriteSlot,     // write the candidate into the inactive slot
    kActivate,      // switch the active pointer to the candidate
    kRevert,        // point the active slot at last-known-good (`version`); idempotent,
                    // also issued at boot outside a trial to re-assert what the record says
    kStartService,  // (re)start the protected service on the active slot (`version`)
    kStopService,
    kReport,  // tell the server: `report` and `detail`
  };
  enum class Report : std::uint8_t {
    kNone,
    kInstallFailed,   // permanent: the version is bad here (contract violation)
    kDownloadFailed,  // transient (network, TUF, hash): offered again, it is tried again
    kInstalled,  // trial started: about to run the candidate for the first time
    kCommitted,
    kCrash,       // protected process died (or failed health in trial), restarting
    kRolledBack,  // fell back to last-known-good
    kRejected,    // offered a version that failed here before
  };
  Kind kind = Kind::kPersist;
  // kDownload/kVerify/kWriteSlot/kActivate: the candidate. kRevert/kStartService:
  // the version the active slot holds afterwards (nullopt: the shipped version).
  // kReport: the version the report is about.
  std::optional<Version> version;
  Report report = Report::kNone;
  std::string detail;
};

struct AgentStep {
  AgentRecord record;
  std::vector<AgentAction> actions;
  std::string reason;
  // Set whenever the new phase is Trial: when the trial window ends (the largest
  // TimeMs if that is later). The shell sends kTrialPassed at or after it if the
  // service is up and healthy. Also set in Committed after an unclean boot: the
  // shell sends kStayedUp at or after it if the service has been up since.
  std::optional<TimeMs> recheck_at;
};

// Apply one event at time `now`. An event that makes no sense in the phase (a
// `downloaded` while idle) is an error: the shell has a bug or a stale callback.
// Other errors: kInvalidArgument (bad config or record, an offer without a
// version); kConflict (an offer of another version while a trial is running:
// finish the trial first, the server offers again at the next check-in).
Result<AgentStep> agent_step(const AgentConfig& config, const AgentRecord& record,
                             const AgentEvent& event, TimeMs now);

// Whether the table has an entry for (phase, event kind): exactly the pairs for
// which agent_step does not answer kInvalidTransition.
bool agent_accepts(AgentPhase phase, AgentEvent::Kind kind);

std::string_view to_string(AgentEvent::Kind kind);       // "offer", "slot_written", ...
std::string_view to_string(AgentAction::Kind kind);      // "persist", "start_service", ...
std::string_view to_string(AgentAction::Report report);  // "crash", "rolled_back", ...
// The event a report becomes on the wire (core/evidence.h's vocabulary: a
// kCrash is "crashed", a kRejected "offer_refused"); nullopt for reports the
// server learns otherwise (kCommitted: from the next check-in) or kNone.
std::optional<DeviceEventKind> device_event_of(AgentAction::Report report);

}  // namespace tranche::core
