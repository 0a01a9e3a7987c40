// The agent's update state machine, as a pure reducer.
//
//   Idle/Committed/RolledBack --offer(V)--> Downloading --downloaded--> Verifying
//   --verified--> Staged --slot_written--> Activating --activated--> Trial
//   Trial --trial_passed--> Committed
//   Trial --service_exited, budget left--> Trial (restart)
//   Trial --service_exited, budget spent--> RolledBack (last-known-good, V marked bad)
//   Activating/Trial --boot(unclean)--> RolledBack at once, before V runs again
//
// The shell persists the record whenever an action list contains kPersist, and
// runs the actions strictly in order: the record that says "trial of V, n starts
// left" is durable before V is activated or started, so a crash that takes the
// whole machine down is still counted. A version marked bad is never installed
// again on this device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/types.h"

namespace tranche::core {

enum class AgentPhase : std::uint8_t {
  kIdle,         // nothing installed through tranche yet (running whatever shipped)
  kDownloading,
  kVerifying,
  kStaged,
  kActivating,
  kTrial,
  kCommitted,
  kRolledBack,
};
inline constexpr std::size_t kAgentPhaseCount = 8;
std::string_view to_string(AgentPhase phase);

struct AgentConfig {
  std::uint32_t start_budget = 3;         // starts allowed within one trial
  DurationMs trial_window = 10 * kMinute; // the service must stay up this long
  // false models an agent without tranche's fallback (the 2024 sensor): new
  // content is committed at once and a crash loop repeats forever.
  bool fallback = true;
  std::size_t max_bad_versions = 64;      // oldest forgotten first
};

// What the agent persists (the shell stores it durably).
struct AgentRecord {
  AgentPhase phase = AgentPhase::kIdle;
  std::optional<Version> good;       // last-known-good: what runs after a fallback
  std::optional<Version> candidate;  // being installed or on trial
  std::uint32_t starts_left = 0;     // budget left in the current trial
  TimeMs trial_started_at = 0;
  std::vector<Version> bad;          // failed on this device: never retried

  bool is_bad(const Version& v) const;
  // The version that runs now (candidate during Activating/Trial, else good).
  std::optional<Version> running() const;
};

struct AgentEvent {
  enum class Kind : std::uint8_t {
    kOffer,          // server's desired version: `version`
    kDownloaded,
    kDownloadFailed, // transient: `detail`
    kVerified,
    kVerifyFailed,   // `detail`; `permanent` marks the version bad (e.g. contract violation)
    kSlotWritten,
    kActivated,      // active pointer switched to the candidate
    kServiceExited,  // protected process died: `detail` has exit code or signal
    kTrialPassed,    // trial window elapsed with the service up (and healthy)
    kHealthFailed,   // health command failed during the trial: counts like a crash
    kBoot,           // agent (re)started; `clean` = previous run ended cleanly
  };
  Kind kind = Kind::kBoot;
  std::optional<Version> version;
  std::string detail;
  bool permanent = false;
  bool clean = true;
};

struct AgentAction {
  enum class Kind : std::uint8_t {
    kPersist,       // write the record durably before anything after it
    kDownload,      // fetch `version`
    kVerify,        // verify signatures, hashes and the content contract
    kWriteSlot,     // write the candidate into the inactive slot
    kActivate,      // switch the active pointer to the candidate
    kRevert,        // switch the active pointer back to last-known-good
    kStartService,  // start the protected service on the active slot
    kStopService,
    kReport,        // tell the server: `report` and `detail`
  };
  enum class Report : std::uint8_t {
    kNone,
    kInstallFailed,
    kInstalled,        // trial started
    kCommitted,
    kCrash,            // protected process died during trial, restarting
    kRolledBack,       // fell back to last-known-good
    kRejected,         // offered a version that failed here before
  };
  Kind kind = Kind::kPersist;
  std::optional<Version> version;
  Report report = Report::kNone;
  std::string detail;
};

struct AgentStep {
  AgentRecord record;
  std::vector<AgentAction> actions;
  std::string reason;
  std::optional<TimeMs> recheck_at;  // e.g. when the trial window ends
};

// Apply one event at time `now`. An event that makes no sense in the phase (a
// `downloaded` while idle) is an error: the shell has a bug or a stale callback.
Result<AgentStep> agent_step(const AgentConfig& config, const AgentRecord& record,
                             const AgentEvent& event, TimeMs now);

}  // namespace tranche::core
