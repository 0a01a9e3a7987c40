// The rollout state machine: one transition table (rollout_machine.cpp), read top
// to bottom. An event with no entry for the current state is refused with
// ErrorCode::kInvalidTransition — never a silent no-op.
//
//   Pending --start--> Running(stage 0)
//   Running --promote--> Running(stage k+1) | Completed (after the last stage, once
//                        enough devices run the release: covers())
//   Running --hold--> Running (reason and recheck time recorded)
//   Running --halt--> Halted (plan on_failure: halt) | RollingBack (on_failure: rollback)
//   Running/Halted --pause--> Paused ; Paused --resume--> the state it left
//   Running/Paused/Halted --rollback--> RollingBack --rollback_done--> RolledBack
//   any live state --abort--> Aborted (dispatch stops, devices keep what they run)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gate.h"
#include "core/plan.h"
#include "core/result.h"
#include "core/types.h"

namespace tranche::core {

enum class RolloutState : std::uint8_t {
  kPending,
  kRunning,
  kPaused,
  kHalted,
  kRollingBack,
  kRolledBack,
  kCompleted,
  kAborted,
};
inline constexpr std::size_t kRolloutStateCount = 8;

enum class RolloutEvent : std::uint8_t {
  kStart,
  kPromote,       // gate (or an operator) says the stage may grow
  kHold,          // gate says wait
  kHalt,          // gate says stop
  kPause,         // operator
  kResume,        // operator
  kAbort,         // operator
  kRollback,      // operator
  kRollbackDone,  // every exposed device reports the previous version
};
inline constexpr std::size_t kRolloutEventCount = 9;

std::string_view to_string(RolloutState state);  // "running", "rolling_back", ...
std::string_view to_string(RolloutEvent event);
std::optional<RolloutState> parse_rollout_state(std::string_view text);
std::optional<RolloutEvent> parse_rollout_event(std::string_view text);

// Completed, rolled back or aborted: no transition leaves the state. The one
// definition the API, the CLI, the dashboard and the demo use.
bool is_final(RolloutState state);
// Running, paused, halted or rolling back: the engine watches it and check-ins
// count toward its evidence.
bool is_live(RolloutState state);
// Halted, rolling back or rolled back: the gate (or an operator) stopped it.
bool is_stopped(RolloutState state);

// How far the last stage has come, for completion (Plan::completion_share):
// online devices the stage targets that have not failed the release, and how
// many of them run it healthily (acknowledged). Counted by the shell.
struct Coverage {
  std::uint64_t running = 0;
  std::uint64_t target = 0;
};
// Whether `coverage` lets the rollout complete: running >= 1 and running >=
// completion_share x target (rounded up).
bool covers(const Plan& plan, const Coverage& coverage);

// What the shell must do after a transition (after persisting it).
enum class RolloutEffect : std::uint8_t {
  kNone,
  kEnterStage,     // dispatch to the (new) current stage
  kStopDispatch,   // no device may receive the release any more
  kSendPrevious,   // stop dispatch and send the previous version to every exposed device
  kFinish,         // the rollout is over (completed, rolled back or aborted)
};

struct RolloutStatus {
  RolloutState state = RolloutState::kPending;
  std::uint32_t stage = 0;            // index into Plan::stages
  TimeMs stage_started_at = 0;
  RolloutState paused_from = RolloutState::kRunning;  // where resume returns
  std::string reason;                 // why the last transition happened
  TimeMs recheck_at = 0;              // for kHold: when to look again
};

struct Transition {
  RolloutStatus next;
  RolloutEffect effect = RolloutEffect::kNone;
};

// Apply one event. `plan` gives the stage count and on_failure. A promotion out
// of the last stage (into Completed) needs `coverage` to cover the plan (see
// covers()); without it the promotion is refused, by the engine and an operator
// alike: a rollout is never completed while its version runs nowhere.
Result<Transition> apply_event(const RolloutStatus& status, RolloutEvent event, const Plan& plan,
                               TimeMs now, std::string reason, const Coverage& coverage = {});

// Whether the table has an entry for (state, event) — for tests and for the API
// to tell an operator which buttons apply.
bool is_allowed(RolloutState state, RolloutEvent event);

// One engine tick for a running rollout: ask the gate (with the current stage's
// failure limits) and turn its verdict into an event (kPromote, kHold or kHalt)
// with a reason. In the last stage a promotion the coverage does not allow is a
// hold that says how many devices run the release. Returns the event to apply
// and the gate state to persist with it.
struct TickDecision {
  RolloutEvent event = RolloutEvent::kHold;
  std::string reason;
  TimeMs recheck_at = 0;
  GateStep gate;
};
TickDecision decide_tick(const RolloutStatus& status, const Plan& plan, const GateState& gate,
                         const GateObservation& observation, TimeMs now,
                         const Coverage& coverage = {});

}  // namespace tranche::core
