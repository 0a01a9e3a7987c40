#include "core/rollout_machine.h"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

namespace tranche::core {

std::string_view to_string(RolloutState state) {
  switch (state) {
    case RolloutState::kPending:
      return "pending";
    case RolloutState::kRunning:
      return "running";
    case RolloutState::kPaused:
      return "paused";
    case RolloutState::kHalted:
      return "halted";
    case RolloutState::kRollingBack:
      return "rolling_back";
    case RolloutState::kRolledBack:
      return "rolled_back";
    case RolloutState::kCompleted:
      return "completed";
    case RolloutState::kAborted:
      return "aborted";
  }
  return "unknown_state";
}

std::string_view to_string(RolloutEvent event) {
  switch (event) {
    case RolloutEvent::kStart:
      return "start";
    case RolloutEvent::kPromote:
      return "promote";
    case RolloutEvent::kHold:
      return "hold";
    case RolloutEvent::kHalt:
      return "halt";
    case RolloutEvent::kPause:
      return "pause";
    case RolloutEvent::kResume:
      return "resume";
    case RolloutEvent::kAbort:
      return "abort";
    case RolloutEvent::kRollback:
      return "rollback";
    case RolloutEvent::kRollbackDone:
      return "rollback_done";
  }
  return "unknown_event";
}

std::optional<RolloutState> parse_rollout_state(std::string_view text) {
  for (std::size_t i = 0; i < kRolloutStateCount; ++i) {
    const auto state = static_cast<RolloutState>(i);
    if (to_string(state) == text) return state;
  }
  return std::nullopt;
}

std::optional<RolloutEvent> parse_rollout_event(std::string_view text) {
  for (std::size_t i = 0; i < kRolloutEventCount; ++i) {
    const auto event = static_cast<RolloutEvent>(i);
    if (to_string(event) == text) return event;
  }
  return std::nullopt;
}

bool is_final(RolloutState state) {
  return state == RolloutState::kCompleted || state == RolloutState::kRolledBack ||
         state == RolloutState::kAborted;
}

bool is_live(RolloutState state) {
  return state == RolloutState::kRunning || state == RolloutState::kPaused ||
         state == RolloutState::kHalted || state == RolloutState::kRollingBack;
}

bool is_stopped(RolloutState state) {
  return state == RolloutState::kHalted || state == RolloutState::kRollingBack ||
         state == RolloutState::kRolledBack;
}

bool covers(const Plan& plan, const Coverage& coverage) {
  if (coverage.running == 0) return false;
  // ceil(share x target) in integers, without overflow: target = q x 10^6 + r.
  const std::uint64_t share = plan.completion_share.value();
  const std::uint64_t q = coverage.target / Ppm::kWhole;
  const std::uint64_t r = coverage.target % Ppm::kWhole;
  const std::uint64_t need = q * share + (r * share + Ppm::kWhole - 1) / Ppm::kWhole;
  return coverage.running >= need;
}

namespace {

using S = RolloutState;
using E = RolloutEvent;
using Fx = RolloutEffect;

// A row applies when its guard holds. Rows of the same (from, event) have guards
// that exclude each other, so at most one applies; together they cover every
// valid status and plan.
enum class Guard : std::uint8_t {
  kAlways,
  kPlanHasStages,
  kMoreStages,     // the current stage is not the last one
  kLastCovered,    // the current stage is the last one, and the coverage lets it complete
  kOnFailureHalt,  // plan.on_failure == kHalt
  kOnFailureRollback,
  kPausedFromRunning,
  kPausedFromHalted,
};

using G = Guard;

struct Row {
  RolloutState from;
  RolloutEvent event;
  Guard guard;
  RolloutState to;
  RolloutEffect effect;
};

// The transition table: the diagram of rollout_machine.h, one row per arrow.
// Anything not listed is refused with kInvalidTransition.
// clang-format off
constexpr Row kTable[] = {
    // from           event             guard                  to               effect
    {S::kPending,     E::kStart,        G::kPlanHasStages,     S::kRunning,     Fx::kEnterStage},

    {S::kRunning,     E::kPromote,      G::kMoreStages,        S::kRunning,     Fx::kEnterStage},
    {S::kRunning,     E::kPromote,      G::kLastCovered,       S::kCompleted,   Fx::kFinish},
    {S::kRunning,     E::kHold,         G::kAlways,            S::kRunning,     Fx::kNone},
    {S::kRunning,     E::kHalt,         G::kOnFailureHalt,     S::kHalted,      Fx::kStopDispatch},
    {S::kRunning,     E::kHalt,         G::kOnFailureRollback, S::kRollingBack, Fx::kSendPrevious},

    {S::kRunning,     E::kPause,        G::kAlways,            S::kPaused,      Fx::kStopDispatch},
    {S::kHalted,      E::kPause,        G::kAlways,            S::kPaused,      Fx::kNone},
    {S::kPaused,      E::kResume,       G::kPausedFromRunning, S::kRunning,     Fx::kEnterStage},
    {S::kPaused,      E::kResume,       G::kPausedFromHalted,  S::kHalted,      Fx::kNone},

    {S::kRunning,     E::kRollback,     G::kAlways,            S::kRollingBack, Fx::kSendPrevious},
    {S::kPaused,      E::kRollback,     G::kAlways,            S::kRollingBack, Fx::kSendPrevious},
    {S::kHalted,      E::kRollback,     G::kAlways,            S::kRollingBack, Fx::kSendPrevious},
    {S::kRollingBack, E::kRollbackDone, G::kAlways,            S::kRolledBack,  Fx::kFinish},

    {S::kPending,     E::kAbort,        G::kAlways,            S::kAborted,     Fx::kFinish},
    {S::kRunning,     E::kAbort,        G::kAlways,            S::kAborted,     Fx::kFinish},
    {S::kPaused,      E::kAbort,        G::kAlways,            S::kAborted,     Fx::kFinish},
    {S::kHalted,      E::kAbort,        G::kAlways,            S::kAborted,     Fx::kFinish},
    {S::kRollingBack, E::kAbort,        G::kAlways,            S::kAborted,     Fx::kFinish},
    // RolledBack, Completed and Aborted are final: no row leaves them.
};
// clang-format on

bool holds(Guard guard, const RolloutStatus& status, const Plan& plan, const Coverage& coverage) {
  switch (guard) {
    case Guard::kAlways:
      return true;
    case Guard::kPlanHasStages:
      return !plan.stages.empty();
    // `stage + 1 >= size` rather than `==`: a status past the end (a plan edited
    // under a running rollout) completes instead of walking off the table.
    case Guard::kMoreStages:
      return std::size_t{status.stage} + 1 < plan.stages.size();
    case Guard::kLastCovered:
      return std::size_t{status.stage} + 1 >= plan.stages.size() && covers(plan, coverage);
    case Guard::kOnFailureHalt:
      return plan.on_failure == OnFailure::kHalt;
    case Guard::kOnFailureRollback:
      return plan.on_failure == OnFailure::kRollback;
    case Guard::kPausedFromRunning:
      return status.paused_from == RolloutState::kRunning;
    case Guard::kPausedFromHalted:
      return status.paused_from == RolloutState::kHalted;
  }
  return false;
}

std::string_view describe(Guard guard) {
  switch (guard) {
    case Guard::kAlways:
      return "always";
    case Guard::kPlanHasStages:
      return "the plan has stages";
    case Guard::kMoreStages:
      return "a stage follows the current one";
    case Guard::kLastCovered:
      return "the current stage is the last and enough devices run the release";
    case Guard::kOnFailureHalt:
      return "on_failure is halt";
    case Guard::kOnFailureRollback:
      return "on_failure is rollback";
    case Guard::kPausedFromRunning:
      return "paused from running";
    case Guard::kPausedFromHalted:
      return "paused from halted";
  }
  return "?";
}

}  // namespace

bool is_allowed(RolloutState state, RolloutEvent event) {
  for (const Row& row : kTable) {
    if (row.from == state && row.event == event) return true;
  }
  return false;
}

Result<Transition> apply_event(const RolloutStatus& status, RolloutEvent event, const Plan& plan,
                               TimeMs now, std::string reason, const Coverage& coverage) {
  const Row* row = nullptr;
  std::string unmet;  // guards of rows that matched (state, event) but did not hold
  for (const Row& r : kTable) {
    if (r.from != status.state || r.event != event) continue;
    if (holds(r.guard, status, plan, coverage)) {
      row = &r;
      break;
    }
    unmet += (unmet.empty() ? "" : ", ") + std::string(describe(r.guard));
  }
  if (row == nullptr) {
    std::string message = "event '" + std::string(to_string(event)) + "' in state '" +
                          std::string(to_string(status.state)) + "'";
    if (unmet.empty()) {
      message += ": no such transition";
    } else {
      message += ": none of [" + unmet + "] holds (stage " + std::to_string(status.stage) + " of " +
                 std::to_string(plan.stages.size()) + ", paused from '" +
                 std::string(to_string(status.paused_from)) + "')";
    }
    return make_error(ErrorCode::kInvalidTransition, std::move(message));
  }

  Transition t;
  t.next = status;
  t.next.state = row->to;
  t.effect = row->effect;
  t.next.reason = reason.empty() ? std::string(to_string(event)) : std::move(reason);
  t.next.recheck_at = 0;  // only a hold says when to look again

  // Bookkeeping that follows from the event, whatever the row.
  switch (event) {
    case RolloutEvent::kStart:
      t.next.stage = 0;
      t.next.stage_started_at = now;
      break;
    case RolloutEvent::kPromote:
      if (row->to == RolloutState::kRunning) {  // into the next stage; Completed keeps the last
        ++t.next.stage;
        t.next.stage_started_at = now;
      }
      break;
    case RolloutEvent::kHold:
      // apply_event has no recheck argument: a hold means "look again next tick",
      // the same time decide_tick reports. Saturating: Plan::validate bounds the
      // tick below only.
      t.next.recheck_at = saturating_add(now, plan.gate.tick);
      break;
    case RolloutEvent::kPause:
      t.next.paused_from = status.state;
      break;
    case RolloutEvent::kHalt:
    case RolloutEvent::kResume:  // the stage clock keeps running through a pause
    case RolloutEvent::kAbort:
    case RolloutEvent::kRollback:
    case RolloutEvent::kRollbackDone:
      break;
  }
  return t;
}

TickDecision decide_tick(const RolloutStatus& status, const Plan& plan, const GateState& gate,
                         const GateObservation& observation, TimeMs now,
                         const Coverage& coverage) {
  TRANCHE_ASSERT(status.state == RolloutState::kRunning,
                 "decide_tick is for a running rollout only");
  TickDecision d;
  const GateSettings settings = plan.gate_for(status.stage);
  d.gate = evaluate_gate(settings, gate, observation);
  const bool last = std::size_t{status.stage} + 1 >= plan.stages.size();
  switch (d.gate.verdict.kind) {
    case GateVerdict::Kind::kHalt:
      d.event = RolloutEvent::kHalt;
      break;
    case GateVerdict::Kind::kPromote:
      if (last && !covers(plan, coverage)) {
        d.event = RolloutEvent::kHold;
        d.recheck_at = saturating_add(now, plan.gate.tick);
        d.reason = "completes when " + plan.completion_share.to_string() + " of the " +
                   std::to_string(coverage.target) +
                   " online devices of the last stage run the release healthily (at least one): " +
                   std::to_string(coverage.running) + " do; " + d.gate.verdict.reason;
        return d;
      }
      d.event = RolloutEvent::kPromote;
      break;
    case GateVerdict::Kind::kWait:
      d.event = RolloutEvent::kHold;
      d.recheck_at = saturating_add(now, plan.gate.tick);
      break;
  }
  d.reason =
      d.gate.verdict.reason.empty() ? std::string(to_string(d.event)) : d.gate.verdict.reason;
  return d;
}

}  // namespace tranche::core
