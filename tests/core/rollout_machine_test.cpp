#include "core/rollout_machine.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace tranche::core {
namespace {

using S = RolloutState;
using E = RolloutEvent;

constexpr std::array<S, kRolloutStateCount> kStates = {
    S::kPending,     S::kRunning,    S::kPaused,    S::kHalted,
    S::kRollingBack, S::kRolledBack, S::kCompleted, S::kAborted};
constexpr std::array<E, kRolloutEventCount> kEvents = {E::kStart, E::kPromote,  E::kHold,
                                                       E::kHalt,  E::kPause,    E::kResume,
                                                       E::kAbort, E::kRollback, E::kRollbackDone};

constexpr TimeMs kT0 = 1'721'362'140'000;  // 2024-07-19 04:09 UTC

Plan plan_with(OnFailure on_failure, std::size_t stage_count = 5) {
  Plan plan;
  plan.name = "rings";
  const std::uint32_t shares[] = {1'000, 10'000, 100'000, 500'000, Ppm::kWhole};
  for (std::size_t i = 0; i < stage_count; ++i) {
    Stage s;
    s.name = "stage-" + std::to_string(i);
    s.percent = Ppm::from_ppm(i + 1 == stage_count ? Ppm::kWhole : shares[i]);
    plan.stages.push_back(s);
  }
  plan.on_failure = on_failure;
  plan.gate.tick = kMinute;
  return plan;
}

RolloutStatus in_state(S state, S paused_from = S::kRunning, std::uint32_t stage = 1) {
  RolloutStatus s;
  s.state = state;
  s.stage = stage;
  s.stage_started_at = kT0;
  s.paused_from = paused_from;
  s.reason = "earlier";
  return s;
}

Transition apply_ok(const RolloutStatus& status, E event, const Plan& plan, TimeMs now,
                    std::string reason = "", const Coverage& coverage = {}) {
  auto r = apply_event(status, event, plan, now, std::move(reason), coverage);
  EXPECT_TRUE(r.ok()) << to_string(event) << " in " << to_string(status.state) << ": "
                      << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Transition{status, RolloutEffect::kNone};
}

bool is_terminal(S s) {
  return s == S::kRolledBack || s == S::kCompleted || s == S::kAborted;
}

// The diagram of rollout_machine.h, written out independently of the table.
bool diagram_allows(S s, E e) {
  switch (e) {
    case E::kStart:
      return s == S::kPending;
    case E::kPromote:
    case E::kHold:
    case E::kHalt:
      return s == S::kRunning;
    case E::kPause:
      return s == S::kRunning || s == S::kHalted;
    case E::kResume:
      return s == S::kPaused;
    case E::kRollback:
      return s == S::kRunning || s == S::kPaused || s == S::kHalted;
    case E::kRollbackDone:
      return s == S::kRollingBack;
    case E::kAbort:
      return !is_terminal(s);
  }
  return false;
}

// --- names ---------------------------------------------------------------------------

TEST(RolloutMachineTest, NamesAreDistinctSnakeCase) {
  std::set<std::string> names;
  for (S s : kStates) names.insert(std::string(to_string(s)));
  for (E e : kEvents) names.insert(std::string(to_string(e)));
  EXPECT_EQ(names.size(), kRolloutStateCount + kRolloutEventCount);
  for (const auto& n : names) {
    for (char c : n) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << n;
  }
  EXPECT_EQ(to_string(S::kRollingBack), "rolling_back");
  EXPECT_EQ(to_string(E::kRollbackDone), "rollback_done");
}

// --- every (state, event) pair ---------------------------------------------------------

TEST(RolloutMachineTest, EveryPairIsEitherATransitionOrRefused) {
  for (OnFailure on_failure : {OnFailure::kHalt, OnFailure::kRollback}) {
    const Plan plan = plan_with(on_failure);
    for (S s : kStates) {
      for (S from : {S::kRunning, S::kHalted}) {
        const RolloutStatus status = in_state(s, from);
        for (E e : kEvents) {
          const std::string pair = std::string(to_string(s)) + " x " + std::string(to_string(e));
          EXPECT_EQ(is_allowed(s, e), diagram_allows(s, e)) << pair;
          auto r = apply_event(status, e, plan, kT0 + kMinute, "why");
          EXPECT_EQ(r.ok(), is_allowed(s, e)) << pair;
          if (!r.ok()) {
            EXPECT_EQ(r.error().code, ErrorCode::kInvalidTransition) << pair;
            EXPECT_NE(r.error().message.find("'" + std::string(to_string(s)) + "'"),
                      std::string::npos)
                << r.error().message;
            EXPECT_NE(r.error().message.find("'" + std::string(to_string(e)) + "'"),
                      std::string::npos)
                << r.error().message;
          } else {
            EXPECT_EQ(r->next.reason, "why") << pair;
            EXPECT_LT(r->next.stage, plan.stages.size()) << pair;
          }
        }
      }
    }
  }
}

TEST(RolloutMachineTest, TerminalStatesAcceptNothing) {
  const Plan plan = plan_with(OnFailure::kRollback);
  for (S s : {S::kRolledBack, S::kCompleted, S::kAborted}) {
    for (E e : kEvents) {
      EXPECT_FALSE(is_allowed(s, e));
      EXPECT_FALSE(apply_event(in_state(s), e, plan, kT0, "").ok());
    }
  }
}

// --- operator paths ---------------------------------------------------------------------

TEST(RolloutMachineTest, PauseThenResumeReturnsWhereItWas) {
  const Plan plan = plan_with(OnFailure::kHalt);
  for (S s : {S::kRunning, S::kHalted}) {
    const RolloutStatus before = in_state(s);
    const Transition paused = apply_ok(before, E::kPause, plan, kT0 + kMinute, "operator");
    EXPECT_EQ(paused.next.state, S::kPaused);
    EXPECT_EQ(paused.next.paused_from, s);
    EXPECT_EQ(paused.effect,
              s == S::kRunning ? RolloutEffect::kStopDispatch : RolloutEffect::kNone);
    // Paused is not pausable again, and a paused rollout does not take gate events.
    EXPECT_FALSE(apply_event(paused.next, E::kPause, plan, kT0, "").ok());
    EXPECT_FALSE(apply_event(paused.next, E::kPromote, plan, kT0, "").ok());

    const Transition resumed = apply_ok(paused.next, E::kResume, plan, kT0 + kHour, "go");
    EXPECT_EQ(resumed.next.state, s);
    EXPECT_EQ(resumed.next.stage, before.stage);
    EXPECT_EQ(resumed.next.stage_started_at, before.stage_started_at);
    EXPECT_EQ(resumed.effect, s == S::kRunning ? RolloutEffect::kEnterStage : RolloutEffect::kNone);
  }
}

TEST(RolloutMachineTest, ResumeWithACorruptPausedFromIsRefused) {
  const Plan plan = plan_with(OnFailure::kHalt);
  auto r = apply_event(in_state(S::kPaused, S::kCompleted), E::kResume, plan, kT0, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidTransition);
  EXPECT_NE(r.error().message.find("completed"), std::string::npos) << r.error().message;
}

TEST(RolloutMachineTest, AbortFromEveryLiveState) {
  const Plan plan = plan_with(OnFailure::kRollback);
  for (S s : kStates) {
    auto r = apply_event(in_state(s), E::kAbort, plan, kT0, "operator abort");
    if (is_terminal(s)) {
      EXPECT_FALSE(r.ok()) << to_string(s);
      continue;
    }
    ASSERT_TRUE(r.ok()) << to_string(s);
    EXPECT_EQ(r->next.state, S::kAborted);
    EXPECT_EQ(r->effect, RolloutEffect::kFinish);
    EXPECT_EQ(r->next.reason, "operator abort");
  }
}

TEST(RolloutMachineTest, RollbackFromRunningPausedHaltedThenDone) {
  const Plan plan = plan_with(OnFailure::kHalt);
  for (S s : {S::kRunning, S::kPaused, S::kHalted}) {
    const Transition back = apply_ok(in_state(s), E::kRollback, plan, kT0, "bad build");
    EXPECT_EQ(back.next.state, S::kRollingBack);
    EXPECT_EQ(back.effect, RolloutEffect::kSendPrevious);
    const Transition done = apply_ok(back.next, E::kRollbackDone, plan, kT0 + kHour);
    EXPECT_EQ(done.next.state, S::kRolledBack);
    EXPECT_EQ(done.effect, RolloutEffect::kFinish);
    EXPECT_EQ(done.next.reason, "rollback_done");  // an empty reason names the event
  }
  for (S s : {S::kPending, S::kRollingBack, S::kRolledBack, S::kCompleted, S::kAborted}) {
    EXPECT_FALSE(apply_event(in_state(s), E::kRollback, plan, kT0, "").ok()) << to_string(s);
  }
}

// --- engine paths -----------------------------------------------------------------------

TEST(RolloutMachineTest, PromoteWalksEveryStageToCompleted) {
  for (std::size_t n : {1u, 2u, 5u}) {
    const Plan plan = plan_with(OnFailure::kRollback, n);
    RolloutStatus status;
    Transition t = apply_ok(status, E::kStart, plan, kT0, "operator start");
    EXPECT_EQ(t.next.state, S::kRunning);
    EXPECT_EQ(t.next.stage, 0u);
    EXPECT_EQ(t.next.stage_started_at, kT0);
    EXPECT_EQ(t.effect, RolloutEffect::kEnterStage);
    for (std::size_t k = 1; k < n; ++k) {
      const TimeMs now = kT0 + static_cast<TimeMs>(k) * kHour;
      t = apply_ok(t.next, E::kPromote, plan, now, "clean");
      EXPECT_EQ(t.next.state, S::kRunning);
      EXPECT_EQ(t.next.stage, k);
      EXPECT_EQ(t.next.stage_started_at, now);
      EXPECT_EQ(t.effect, RolloutEffect::kEnterStage);
    }
    // Out of the last stage only when enough devices run it (Plan::completion_share).
    auto refused = apply_event(t.next, E::kPromote, plan, kT0 + 100 * kHour, "clean", Coverage{0, 0});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidTransition);
    auto short_of = apply_event(t.next, E::kPromote, plan, kT0 + 100 * kHour, "clean", Coverage{94, 100});
    ASSERT_FALSE(short_of.ok()) << "94 of 100 is under the default 95%";
    auto r = apply_event(t.next, E::kPromote, plan, kT0 + 100 * kHour, "clean", Coverage{95, 100});
    ASSERT_TRUE(r.ok()) << r.error().message;
    const Transition last = *r;
    EXPECT_EQ(last.next.state, S::kCompleted);
    EXPECT_EQ(last.effect, RolloutEffect::kFinish);
    EXPECT_EQ(last.next.stage, n - 1);
  }
}

TEST(RolloutMachineTest, StartNeedsAPlanWithStages) {
  const Plan empty = plan_with(OnFailure::kHalt, 0);
  auto r = apply_event(RolloutStatus{}, E::kStart, empty, kT0, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidTransition);
  EXPECT_NE(r.error().message.find("the plan has stages"), std::string::npos);
}

TEST(RolloutMachineTest, HoldRecordsReasonAndRecheckAndKeepsTheStageClock) {
  const Plan plan = plan_with(OnFailure::kHalt);
  const RolloutStatus running = in_state(S::kRunning);
  const Transition t = apply_ok(running, E::kHold, plan, kT0 + 5 * kMinute, "bake 5m of 30m");
  EXPECT_EQ(t.next.state, S::kRunning);
  EXPECT_EQ(t.effect, RolloutEffect::kNone);
  EXPECT_EQ(t.next.reason, "bake 5m of 30m");
  EXPECT_EQ(t.next.recheck_at, kT0 + 5 * kMinute + plan.gate.tick);
  EXPECT_EQ(t.next.stage, running.stage);
  EXPECT_EQ(t.next.stage_started_at, running.stage_started_at);
  // A transition other than hold clears the recheck time.
  EXPECT_EQ(apply_ok(t.next, E::kPromote, plan, kT0 + kHour).next.recheck_at, 0);
}

TEST(RolloutMachineTest, HaltHonoursOnFailure) {
  const Transition halted =
      apply_ok(in_state(S::kRunning), E::kHalt, plan_with(OnFailure::kHalt), kT0, "crashes");
  EXPECT_EQ(halted.next.state, S::kHalted);
  EXPECT_EQ(halted.effect, RolloutEffect::kStopDispatch);
  EXPECT_EQ(halted.next.reason, "crashes");

  const Transition rolling =
      apply_ok(in_state(S::kRunning), E::kHalt, plan_with(OnFailure::kRollback), kT0, "crashes");
  EXPECT_EQ(rolling.next.state, S::kRollingBack);
  EXPECT_EQ(rolling.effect, RolloutEffect::kSendPrevious);
}

// Random event sequences: refusals are exactly the pairs is_allowed refuses, the
// stage index never leaves the plan and never goes down, and a terminal state is
// never left.
TEST(RolloutMachineTest, RandomWalksStayInsideTheTable) {
  std::mt19937 rng(1907);
  std::uniform_int_distribution<std::size_t> pick(0, kEvents.size() - 1);
  for (int walk = 0; walk < 2'000; ++walk) {
    const Plan plan = plan_with(walk % 2 ? OnFailure::kHalt : OnFailure::kRollback,
                                1 + static_cast<std::size_t>(walk % 5));
    RolloutStatus status;
    TimeMs now = kT0;
    for (int step = 0; step < 40; ++step) {
      const E e = kEvents[pick(rng)];
      now += kMinute;
      auto r = apply_event(status, e, plan, now, "", Coverage{1, 1});
      ASSERT_EQ(r.ok(), is_allowed(status.state, e))
          << "seed 1907 walk " << walk << " step " << step << ": " << to_string(e) << " in "
          << to_string(status.state);
      if (!r.ok()) continue;
      ASSERT_FALSE(is_terminal(status.state));
      EXPECT_GE(r->next.stage, status.stage);
      EXPECT_LT(r->next.stage, plan.stages.size());
      status = r->next;
    }
  }
}

TEST(RolloutMachineTest, CompletionNeedsAtLeastOneDeviceAndTheShare) {
  Plan plan = plan_with(OnFailure::kRollback, 1);
  EXPECT_FALSE(covers(plan, Coverage{0, 0})) << "a release nobody runs never completes";
  EXPECT_TRUE(covers(plan, Coverage{1, 1}));
  EXPECT_TRUE(covers(plan, Coverage{3, 3}));
  EXPECT_FALSE(covers(plan, Coverage{2, 3})) << "ceil(95% of 3) = 3";
  EXPECT_TRUE(covers(plan, Coverage{950'000, 1'000'000}));
  EXPECT_FALSE(covers(plan, Coverage{949'999, 1'000'000}));
  EXPECT_FALSE(covers(plan, Coverage{UINT64_MAX / 2, UINT64_MAX})) << "no overflow";
  plan.completion_share = Ppm::from_ppm(Ppm::kWhole);
  EXPECT_FALSE(covers(plan, Coverage{99, 100}));
  EXPECT_TRUE(covers(plan, Coverage{100, 100}));
}

TEST(RolloutMachineTest, FinalLiveAndStoppedAreOneDefinition) {
  for (S s : kStates) {
    EXPECT_EQ(is_final(s), is_terminal(s)) << to_string(s);
    // Final states accept no event; live ones are watched by the engine.
    EXPECT_EQ(is_live(s), s == S::kRunning || s == S::kPaused || s == S::kHalted || s == S::kRollingBack);
    EXPECT_FALSE(is_final(s) && is_live(s));
    EXPECT_EQ(parse_rollout_state(to_string(s)), s);
  }
  EXPECT_EQ(parse_rollout_state("runing"), std::nullopt);
  for (E e : kEvents) EXPECT_EQ(parse_rollout_event(to_string(e)), e);
}

// --- decide_tick ---------------------------------------------------------------------

GateObservation observation(std::uint64_t exposed_failures, std::uint64_t control_failures,
                            std::uint64_t acknowledged, DurationMs elapsed) {
  GateObservation o;
  o.exposed.exposure_s = 1'000.0 * 3'600;  // 1,000 device-hours each
  o.control.exposure_s = 1'000.0 * 3'600;
  o.exposed.failures = exposed_failures;
  o.control.failures = control_failures;
  o.acknowledged = acknowledged;
  o.stage_elapsed = elapsed;
  o.stage_bake = 30 * kMinute;
  return o;
}

TEST(DecideTickTest, WaitBecomesHoldWithRecheckNextTick) {
  const Plan plan = plan_with(OnFailure::kRollback);
  const RolloutStatus running = in_state(S::kRunning);
  const TimeMs now = kT0 + 5 * kMinute;
  const TickDecision d =
      decide_tick(running, plan, GateState{}, observation(0, 0, 500, 5 * kMinute), now);
  EXPECT_EQ(d.event, E::kHold);
  EXPECT_EQ(d.recheck_at, now + plan.gate.tick);
  EXPECT_EQ(d.gate.verdict.kind, GateVerdict::Kind::kWait);
  EXPECT_EQ(d.reason, d.gate.verdict.reason);
  EXPECT_FALSE(d.reason.empty());
  // The decision applies to the rollout it was made for.
  const Transition t = apply_ok(running, d.event, plan, now, d.reason);
  EXPECT_EQ(t.next.recheck_at, d.recheck_at);
}

TEST(DecideTickTest, AHugeTickMeansNeverRatherThanAWrappedTime) {
  // Plan::validate bounds gate.tick below only; a plan file may say
  // 9223372036854775807ms. The recheck time saturates (UBSan checks the sum).
  Plan plan = plan_with(OnFailure::kRollback);
  plan.gate.tick = std::numeric_limits<DurationMs>::max();
  ASSERT_TRUE(plan.validate().ok());
  const TimeMs now = kT0 + 5 * kMinute;
  const TickDecision d =
      decide_tick(in_state(S::kRunning), plan, GateState{}, observation(0, 0, 500, 0), now);
  ASSERT_EQ(d.event, E::kHold) << d.reason;
  EXPECT_EQ(d.recheck_at, std::numeric_limits<TimeMs>::max());
  EXPECT_EQ(apply_ok(in_state(S::kRunning), E::kHold, plan, now).next.recheck_at,
            std::numeric_limits<TimeMs>::max());
}

TEST(DecideTickTest, CleanAfterBakeBecomesPromote) {
  const Plan plan = plan_with(OnFailure::kRollback);
  const TickDecision d = decide_tick(in_state(S::kRunning), plan, GateState{},
                                     observation(0, 0, 500, 31 * kMinute), kT0 + kHour);
  EXPECT_EQ(d.event, E::kPromote) << d.reason;
  EXPECT_EQ(d.reason, d.gate.verdict.reason);
}

TEST(DecideTickTest, ExposedFailingFarAboveControlBecomesHalt) {
  const Plan plan = plan_with(OnFailure::kRollback);
  const TickDecision d = decide_tick(in_state(S::kRunning), plan, GateState{},
                                     observation(200, 2, 500, 2 * kMinute), kT0 + kHour);
  EXPECT_EQ(d.event, E::kHalt) << d.reason;
  EXPECT_TRUE(d.gate.state.halted);
  EXPECT_FALSE(d.reason.empty());
  const Transition t = apply_ok(in_state(S::kRunning), d.event, plan, kT0 + kHour, d.reason);
  EXPECT_EQ(t.next.state, S::kRollingBack);
  EXPECT_EQ(t.next.reason, d.reason);
}

// The lab of 2024's lesson: three devices, all refuse the release. The sequential
// test cannot decide on so little device-time; the absolute limit must.
TEST(DecideTickTest, AbsoluteLimitHaltsALabsBadReleaseBeforeTheStatistics) {
  Plan plan = plan_with(OnFailure::kRollback);
  plan.gate.min_acknowledged = 1;
  GateObservation o;
  o.exposed = {30.0, 3};   // 30 device-seconds: nothing for the statistics
  o.control = {0.0, 0};
  o.exposed_devices = 3;
  o.stage_elapsed = 2 * kHour;
  o.stage_bake = 30 * kMinute;
  const TickDecision d = decide_tick(in_state(S::kRunning), plan, GateState{}, o, kT0);
  EXPECT_EQ(d.event, E::kHalt) << d.reason;
  EXPECT_TRUE(d.gate.verdict.limit_crossed);
  EXPECT_NE(d.reason.find("3 of 3 exposed devices failed"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("max_failure_rate 50%"), std::string::npos) << d.reason;

  // Below min_exposed the share says nothing; but a stage whose exposed devices
  // all failed never promotes.
  o.exposed = {20.0, 2};
  o.exposed_devices = 2;
  const TickDecision wait = decide_tick(in_state(S::kRunning), plan, GateState{}, o, kT0);
  EXPECT_EQ(wait.event, E::kHold) << wait.reason;
  EXPECT_NE(wait.reason.find("all 2 exposed devices failed"), std::string::npos) << wait.reason;
}

TEST(DecideTickTest, AStageOverridesThePlansLimits) {
  Plan plan = plan_with(OnFailure::kRollback);
  plan.gate.min_acknowledged = 0;
  FailureLimits canary = plan.gate.limits;
  canary.max_failures = 1;
  plan.stages[0].limits = canary;
  GateObservation o;
  o.exposed = {1000.0 * 3600, 2};
  o.control = {1000.0 * 3600, 2};
  o.exposed_devices = 1000;
  o.stage_elapsed = 2 * kHour;
  o.stage_bake = 30 * kMinute;
  const TickDecision in_canary = decide_tick(in_state(S::kRunning, S::kRunning, 0), plan, GateState{}, o, kT0);
  EXPECT_EQ(in_canary.event, E::kHalt) << in_canary.reason;
  EXPECT_NE(in_canary.reason.find("max_failures 1"), std::string::npos) << in_canary.reason;
  const TickDecision later = decide_tick(in_state(S::kRunning, S::kRunning, 1), plan, GateState{}, o, kT0);
  EXPECT_EQ(later.event, E::kPromote) << later.reason;
}

TEST(DecideTickTest, TheLastStageCompletesOnlyWhenEnoughDevicesRunIt) {
  const Plan plan = plan_with(OnFailure::kRollback, 2);
  const RolloutStatus last = in_state(S::kRunning, S::kRunning, 1);
  const GateObservation o = observation(0, 0, 500, 31 * kMinute);
  const TickDecision none = decide_tick(last, plan, GateState{}, o, kT0, Coverage{0, 3});
  EXPECT_EQ(none.event, E::kHold) << none.reason;
  EXPECT_NE(none.reason.find("0 do"), std::string::npos) << none.reason;
  EXPECT_EQ(none.recheck_at, kT0 + plan.gate.tick);
  const TickDecision all = decide_tick(last, plan, GateState{}, o, kT0, Coverage{3, 3});
  EXPECT_EQ(all.event, E::kPromote) << all.reason;
  EXPECT_EQ(apply_ok(last, all.event, plan, kT0, all.reason, Coverage{3, 3}).next.state, S::kCompleted);
}

TEST(DecideTickTest, OnlyForARunningRollout) {
  const Plan plan = plan_with(OnFailure::kRollback);
  EXPECT_DEATH(
      (void)decide_tick(in_state(S::kPaused), plan, GateState{}, observation(0, 0, 0, 0), kT0),
      "running rollout");
}

}  // namespace
}  // namespace tranche::core
