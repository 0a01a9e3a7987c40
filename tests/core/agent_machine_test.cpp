// Properties of the agent's update state machine. The unit cases walk one device
// by hand; the drivers at the bottom run a tiny shell (disk, active-slot pointer,
// protected service, machine crashes) around the reducer, kill the machine at every
// action and at random ones, and check where every run ends.
#include "core/agent_machine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tranche::core {

// Readable failure messages: GoogleTest finds PrintTo by argument-dependent lookup,
// so the name is fixed.
// NOLINTNEXTLINE(readability-identifier-naming)
void PrintTo(const Version& v, std::ostream* os) {
  *os << v.to_string();
}
// NOLINTNEXTLINE(readability-identifier-naming)
void PrintTo(const AgentRecord& r, std::ostream* os) {
  *os << "{" << to_string(r.phase) << " good=" << (r.good ? r.good->to_string() : "-")
      << " candidate=" << (r.candidate ? r.candidate->to_string() : "-")
      << " starts_left=" << r.starts_left << " bad=[";
  for (const Version& v : r.bad) *os << " " << v.to_string();
  *os << " ]}";
}

namespace {

using Kind = AgentEvent::Kind;
using Act = AgentAction::Kind;
using Rep = AgentAction::Report;

constexpr TimeMs kT0 = 1'721'362'140'000;  // 2024-07-19 04:09 UTC

Version ver(std::string_view text) {
  Result<Version> v = Version::parse(text);
  if (!v.ok()) {
    ADD_FAILURE() << "Version::parse(" << text << "): " << v.error().to_string();
    std::abort();
  }
  return std::move(v).value();
}

const Version& v1() {
  static const Version kV = ver("7.11.1");
  return kV;
}
const Version& v2() {
  static const Version kV = ver("7.11.2");
  return kV;
}
const Version& v3() {
  static const Version kV = ver("7.11.3");
  return kV;
}

AgentEvent event(Kind kind) {
  AgentEvent e;
  e.kind = kind;
  return e;
}
AgentEvent offer(const Version& v) {
  AgentEvent e = event(Kind::kOffer);
  e.version = v;
  return e;
}
AgentEvent exited(std::string detail = "signal 11") {
  AgentEvent e = event(Kind::kServiceExited);
  e.detail = std::move(detail);
  return e;
}
AgentEvent health_failed() {
  AgentEvent e = event(Kind::kHealthFailed);
  e.detail = "health: exit 1";
  return e;
}
AgentEvent boot(bool clean) {
  AgentEvent e = event(Kind::kBoot);
  e.clean = clean;
  return e;
}
AgentEvent revoked(const Version& v) {
  AgentEvent e = event(Kind::kRevoked);
  e.version = v;
  return e;
}
AgentEvent verify_failed(bool permanent) {
  AgentEvent e = event(Kind::kVerifyFailed);
  e.detail = permanent ? "contract: field 21 not supplied" : "hash mismatch";
  e.permanent = permanent;
  return e;
}

std::vector<Act> kinds(const AgentStep& s) {
  std::vector<Act> out;
  for (const AgentAction& a : s.actions) out.push_back(a.kind);
  return out;
}

std::string describe(const AgentStep& s) {
  std::string out = std::string(to_string(s.record.phase)) + " [";
  for (const AgentAction& a : s.actions) {
    out += " " + std::string(to_string(a.kind));
    if (a.kind == Act::kReport) out += ":" + std::string(to_string(a.report));
    if (a.version) out += "(" + a.version->to_string() + ")";
  }
  return out + " ] " + s.reason;
}

std::size_t count_of(const AgentStep& s, Act kind) {
  return static_cast<std::size_t>(std::count_if(
      s.actions.begin(), s.actions.end(), [&](const AgentAction& a) { return a.kind == kind; }));
}
std::size_t count_reports(const AgentStep& s, Rep what) {
  return static_cast<std::size_t>(std::count_if(
      s.actions.begin(), s.actions.end(),
      [&](const AgentAction& a) { return a.kind == Act::kReport && a.report == what; }));
}
std::optional<std::size_t> position(const AgentStep& s, Act kind) {
  for (std::size_t i = 0; i < s.actions.size(); ++i) {
    if (s.actions[i].kind == kind) return i;
  }
  return std::nullopt;
}

// Every action list, whatever the path to it, obeys these. `before` is the record
// the step was computed from.
void expect_action_list_contract(const AgentConfig& config, const AgentRecord& before,
                                 const AgentStep& s) {
  SCOPED_TRACE(describe(s));
  // One kPersist at most, so "the record" the shell writes is unambiguous.
  EXPECT_LE(count_of(s, Act::kPersist), 1U);
  // Persist intent before acting: a change to anything that must survive a crash
  // is written first, before any other action.
  const bool durable_change = s.record.good != before.good || s.record.bad != before.bad ||
                              s.record.candidate != before.candidate ||
                              s.record.starts_left != before.starts_left ||
                              s.record.previous_in_slot != before.previous_in_slot ||
                              s.record.unclean_boots != before.unclean_boots;
  if (durable_change) {
    ASSERT_FALSE(s.actions.empty());
    EXPECT_EQ(s.actions.front().kind, Act::kPersist);
  }
  // The start budget is durable before activation.
  if (const auto activate = position(s, Act::kActivate)) {
    const auto persist = position(s, Act::kPersist);
    if (persist) {
      EXPECT_LT(*persist, *activate);
    }
    const bool resume_after_clean_boot =
        before.phase == AgentPhase::kActivating && s.record == before;
    if (!resume_after_clean_boot) {
      EXPECT_TRUE(persist.has_value());
    }
    if (s.record.phase == AgentPhase::kActivating) {
      EXPECT_EQ(s.record.starts_left, config.start_budget);
      EXPECT_EQ(s.record.candidate, s.actions[*activate].version);
    } else {  // no fallback: committed at once
      EXPECT_FALSE(config.fallback);
      EXPECT_EQ(s.record.phase, AgentPhase::kCommitted);
      EXPECT_EQ(s.record.good, s.actions[*activate].version);
    }
  }
  // Every start of a candidate on trial is paid for durably first.
  if (const auto start = position(s, Act::kStartService)) {
    if (s.record.phase == AgentPhase::kTrial) {
      const auto persist = position(s, Act::kPersist);
      ASSERT_TRUE(persist.has_value());
      EXPECT_LT(*persist, *start);
      EXPECT_EQ(s.record.starts_left + 1, before.starts_left);
      EXPECT_EQ(s.actions[*start].version, s.record.candidate);
    } else {
      EXPECT_EQ(s.actions[*start].version, s.record.running());
    }
    // A revert happens before the start it protects; reports are sent before a
    // start that may take the machine down.
    if (const auto revert = position(s, Act::kRevert)) {
      EXPECT_LT(*revert, *start);
    }
    for (std::size_t i = *start; i < s.actions.size(); ++i) {
      EXPECT_NE(s.actions[i].kind, Act::kReport) << "report after start_service";
    }
  }
  EXPECT_FALSE(s.reason.empty());
}

// Applies `e` and checks the action-list contract; fails the test on an error.
AgentStep apply(const AgentConfig& config, const AgentRecord& r, const AgentEvent& e,
                TimeMs now = kT0) {
  Result<AgentStep> s = agent_step(config, r, e, now);
  if (!s.ok()) {
    ADD_FAILURE() << to_string(e.kind) << " in " << to_string(r.phase) << ": "
                  << s.error().to_string();
    return AgentStep{r, {}, "error", std::nullopt};
  }
  expect_action_list_contract(config, r, *s);
  return std::move(s).value();
}

AgentRecord committed_on(const Version& v) {
  AgentRecord r;
  r.phase = AgentPhase::kCommitted;
  r.good = v;
  return r;
}

// Walks an offer of `v` from `r` to the phase `until` through the happy path.
AgentRecord walk_to(const AgentConfig& config, AgentRecord r, const Version& v, AgentPhase until,
                    TimeMs now = kT0) {
  r = apply(config, r, offer(v), now).record;
  const std::array<Kind, 4> path = {Kind::kDownloaded, Kind::kVerified, Kind::kSlotWritten,
                                    Kind::kActivated};
  for (const Kind k : path) {
    if (r.phase == until) break;
    r = apply(config, r, event(k), now).record;
  }
  EXPECT_EQ(r.phase, until);
  return r;
}

// A representative valid record for each phase: running v1, installing v2.
AgentRecord record_in(AgentPhase phase, const AgentConfig& config) {
  AgentRecord r;
  r.phase = phase;
  r.good = v1();
  switch (phase) {
    case AgentPhase::kIdle:
      r.good.reset();
      break;
    case AgentPhase::kDownloading:
    case AgentPhase::kVerifying:
    case AgentPhase::kStaged:
      r.candidate = v2();
      break;
    case AgentPhase::kActivating:
      r.candidate = v2();
      r.starts_left = config.start_budget;
      r.trial_started_at = kT0;
      break;
    case AgentPhase::kTrial:
      r.candidate = v2();
      r.starts_left = config.start_budget - 1;
      r.trial_started_at = kT0;
      break;
    case AgentPhase::kCommitted:
    case AgentPhase::kRolledBack:
      break;
  }
  return r;
}

std::vector<AgentPhase> all_phases() {
  std::vector<AgentPhase> out;
  for (std::size_t i = 0; i < kAgentPhaseCount; ++i) out.push_back(static_cast<AgentPhase>(i));
  return out;
}
std::vector<Kind> all_kinds() {
  std::vector<Kind> out;
  for (std::size_t i = 0; i < kAgentEventKindCount; ++i) out.push_back(static_cast<Kind>(i));
  return out;
}

// Every variant of an event kind the machine distinguishes.
std::vector<AgentEvent> variants_of(Kind k) {
  switch (k) {
    case Kind::kOffer:
      return {offer(v1()), offer(v2()), offer(v3())};
    case Kind::kVerifyFailed:
      return {verify_failed(false), verify_failed(true)};
    case Kind::kBoot:
      return {boot(true), boot(false)};
    case Kind::kRevoked:
      return {revoked(v1()), revoked(v2()), revoked(v3())};
    default:
      return {event(k)};
  }
}

// ---- the table ----------------------------------------------------------------

TEST(AgentTable, NamesAreDistinctAndKnown) {
  std::set<std::string_view> phases;
  for (const AgentPhase p : all_phases()) phases.insert(to_string(p));
  EXPECT_EQ(phases.size(), kAgentPhaseCount);
  std::set<std::string_view> events;
  for (const Kind k : all_kinds()) events.insert(to_string(k));
  EXPECT_EQ(events.size(), kAgentEventKindCount);
  EXPECT_EQ(phases.count("unknown") + events.count("unknown"), 0U);
  EXPECT_EQ(to_string(static_cast<AgentPhase>(kAgentPhaseCount)), "unknown");
}

// The spec's matrix: which events each phase takes. Columns in Kind order:
// offer downloaded download_failed verified verify_failed slot_written activated
// service_exited trial_passed health_failed boot revoked stayed_up.
constexpr std::array<std::string_view, kAgentPhaseCount> kAccepted = {
    "X......X..XX.",  // idle
    "XXX....X..XX.",  // downloading
    "X..XX..X..XX.",  // verifying
    "X....X.X..XX.",  // staged
    "X.....XX..XX.",  // activating
    "X......XXXXX.",  // trial
    "X......X..XXX",  // committed
    "X......X..XX.",  // rolled_back
};

TEST(AgentTable, EveryPairIsHandledOrAnExplicitInvalidTransition) {
  for (const bool fallback : {true, false}) {
    AgentConfig config;
    config.fallback = fallback;
    for (const AgentPhase p : all_phases()) {
      const AgentRecord r = record_in(p, config);
      for (const Kind k : all_kinds()) {
        const bool expected =
            kAccepted[static_cast<std::size_t>(p)][static_cast<std::size_t>(k)] == 'X';
        SCOPED_TRACE(std::string(to_string(p)) + " x " + std::string(to_string(k)));
        EXPECT_EQ(agent_accepts(p, k), expected);
        for (const AgentEvent& e : variants_of(k)) {
          const Result<AgentStep> s = agent_step(config, r, e, kT0);
          if (!expected) {
            ASSERT_FALSE(s.ok());
            EXPECT_EQ(s.error().code, ErrorCode::kInvalidTransition);
            EXPECT_NE(s.error().message.find(std::string(to_string(p))), std::string::npos)
                << s.error().message;
            EXPECT_NE(s.error().message.find(std::string(to_string(k))), std::string::npos)
                << s.error().message;
            continue;
          }
          if (s.ok()) {
            expect_action_list_contract(config, r, *s);
            continue;
          }
          // The one refusal of a handled pair: another version during a trial.
          EXPECT_EQ(s.error().code, ErrorCode::kConflict) << s.error().to_string();
          EXPECT_EQ(k, Kind::kOffer);
          EXPECT_TRUE(p == AgentPhase::kActivating || p == AgentPhase::kTrial);
        }
      }
    }
  }
}

TEST(AgentTable, RefusesBrokenConfigAndRecords) {
  const AgentRecord r = committed_on(v1());
  AgentConfig no_budget;
  no_budget.start_budget = 0;
  EXPECT_EQ(agent_step(no_budget, r, offer(v2()), kT0).error().code, ErrorCode::kInvalidArgument);
  AgentConfig no_memory;
  no_memory.max_bad_versions = 0;
  EXPECT_EQ(agent_step(no_memory, r, offer(v2()), kT0).error().code, ErrorCode::kInvalidArgument);
  AgentConfig negative_window;
  negative_window.trial_window = -1;
  EXPECT_EQ(agent_step(negative_window, r, offer(v2()), kT0).error().code,
            ErrorCode::kInvalidArgument);
  // Without fallback there is no budget to spend: 0 is fine.
  AgentConfig legacy;
  legacy.fallback = false;
  legacy.start_budget = 0;
  EXPECT_TRUE(agent_step(legacy, r, offer(v2()), kT0).ok());

  const AgentConfig config;
  AgentRecord trial_without_candidate;
  trial_without_candidate.phase = AgentPhase::kTrial;
  trial_without_candidate.good = v1();
  const Result<AgentStep> s = agent_step(config, trial_without_candidate, exited(), kT0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("trial"), std::string::npos);

  AgentRecord committed_with_candidate = committed_on(v1());
  committed_with_candidate.candidate = v2();
  EXPECT_EQ(agent_step(config, committed_with_candidate, boot(true), kT0).error().code,
            ErrorCode::kInvalidArgument);

  AgentEvent no_version = event(Kind::kOffer);
  EXPECT_EQ(agent_step(config, r, no_version, kT0).error().code, ErrorCode::kInvalidArgument);
}

// ---- the record ---------------------------------------------------------------

TEST(AgentRecord, RunningIsTheCandidateOnlyOnceItIsActive) {
  const AgentConfig config;
  for (const AgentPhase p : all_phases()) {
    const AgentRecord r = record_in(p, config);
    SCOPED_TRACE(std::string(to_string(p)));
    if (p == AgentPhase::kActivating || p == AgentPhase::kTrial) {
      EXPECT_EQ(r.running(), v2());
    } else {
      EXPECT_EQ(r.running(), r.good);
    }
  }
  AgentRecord r;
  EXPECT_FALSE(r.running().has_value());  // whatever shipped
  EXPECT_FALSE(r.is_bad(v1()));
  r.bad = {v2(), v3()};
  EXPECT_TRUE(r.is_bad(ver("7.11.2.0")));  // same version, spelled longer
  EXPECT_FALSE(r.is_bad(v1()));
}

// ---- offers -------------------------------------------------------------------

TEST(AgentOffer, FromAStablePhaseDownloadsANewVersionAndPersistsFirst) {
  const AgentConfig config;
  for (const AgentPhase p : {AgentPhase::kIdle, AgentPhase::kCommitted, AgentPhase::kRolledBack}) {
    SCOPED_TRACE(std::string(to_string(p)));
    const AgentStep s = apply(config, record_in(p, config), offer(v3()));
    EXPECT_EQ(s.record.phase, AgentPhase::kDownloading);
    EXPECT_EQ(s.record.candidate, v3());
    EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kPersist, Act::kDownload}));
    EXPECT_EQ(s.actions[1].version, v3());
    EXPECT_EQ(s.record.running(), record_in(p, config).good);  // nothing switched yet
  }
}

TEST(AgentOffer, TheRunningVersionIsNothingToDo) {
  const AgentConfig config;
  const AgentStep s = apply(config, committed_on(v1()), offer(ver("7.11.1.0")));
  EXPECT_TRUE(s.actions.empty());
  EXPECT_EQ(s.record.phase, AgentPhase::kCommitted);
  EXPECT_NE(s.reason.find("already running"), std::string::npos) << s.reason;
  // During a trial the candidate is what runs.
  const AgentRecord trial = walk_to(config, committed_on(v1()), v2(), AgentPhase::kTrial);
  EXPECT_TRUE(apply(config, trial, offer(v2())).actions.empty());
}

TEST(AgentOffer, TheSameVersionWhileInstallingIsANoOp) {
  const AgentConfig config;
  for (const AgentPhase p : {AgentPhase::kDownloading, AgentPhase::kVerifying, AgentPhase::kStaged,
                             AgentPhase::kActivating, AgentPhase::kTrial}) {
    SCOPED_TRACE(std::string(to_string(p)));
    const AgentRecord r = walk_to(config, committed_on(v1()), v2(), p);
    const AgentStep s = apply(config, r, offer(v2()));
    EXPECT_TRUE(s.actions.empty());
    EXPECT_EQ(s.record, r);
  }
}

TEST(AgentOffer, AnotherVersionReplacesTheCandidateBeforeActivation) {
  const AgentConfig config;
  for (const AgentPhase p :
       {AgentPhase::kDownloading, AgentPhase::kVerifying, AgentPhase::kStaged}) {
    SCOPED_TRACE(std::string(to_string(p)));
    const AgentRecord r = walk_to(config, committed_on(v1()), v2(), p);
    const AgentStep s = apply(config, r, offer(v3()));
    EXPECT_EQ(s.record.phase, AgentPhase::kDownloading);
    EXPECT_EQ(s.record.candidate, v3());
    EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kPersist, Act::kDownload}));
    EXPECT_EQ(s.actions[1].version, v3());
    EXPECT_FALSE(s.record.is_bad(v2()));  // abandoned, not failed
    // The running version cancels the install instead (a fleet rollback).
    const AgentStep back = apply(config, r, offer(v1()));
    EXPECT_EQ(back.record.phase, AgentPhase::kCommitted);
    EXPECT_FALSE(back.record.candidate.has_value());
    EXPECT_EQ(kinds(back), (std::vector<Act>{Act::kPersist}));
  }
}

TEST(AgentOffer, AnotherVersionDuringATrialIsAConflict) {
  const AgentConfig config;
  for (const AgentPhase p : {AgentPhase::kActivating, AgentPhase::kTrial}) {
    SCOPED_TRACE(std::string(to_string(p)));
    const AgentRecord r = walk_to(config, committed_on(v1()), v2(), p);
    for (const Version& other : {v1(), v3()}) {
      const Result<AgentStep> s = agent_step(config, r, offer(other), kT0);
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.error().code, ErrorCode::kConflict);
      EXPECT_NE(s.error().message.find(other.to_string()), std::string::npos);
    }
  }
}

// ---- install failures ---------------------------------------------------------

TEST(AgentInstall, ADownloadFailureReturnsToWhatRuns) {
  const AgentConfig config;
  AgentEvent failed = event(Kind::kDownloadFailed);
  failed.detail = "HTTP 503";
  for (const bool had_good : {true, false}) {
    AgentRecord start = committed_on(v1());
    if (!had_good) start = AgentRecord{};
    const AgentRecord r = walk_to(config, start, v2(), AgentPhase::kDownloading);
    const AgentStep s = apply(config, r, failed);
    EXPECT_EQ(s.record.phase, had_good ? AgentPhase::kCommitted : AgentPhase::kIdle);
    EXPECT_EQ(s.record.running(), start.good);
    EXPECT_FALSE(s.record.candidate.has_value());
    EXPECT_FALSE(s.record.is_bad(v2()));  // transient: offered again, it downloads again
    ASSERT_EQ(kinds(s), (std::vector<Act>{Act::kPersist, Act::kReport}));
    EXPECT_EQ(s.actions[1].report, Rep::kDownloadFailed);
    EXPECT_EQ(s.actions[1].detail, "HTTP 503");
    EXPECT_EQ(kinds(apply(config, s.record, offer(v2()))),
              (std::vector<Act>{Act::kPersist, Act::kDownload}));
  }
}

TEST(AgentInstall, OnlyAPermanentVerifyFailureMarksTheVersionBad) {
  const AgentConfig config;
  for (const bool permanent : {false, true}) {
    SCOPED_TRACE(permanent ? "permanent" : "transient");
    const AgentRecord r = walk_to(config, committed_on(v1()), v2(), AgentPhase::kVerifying);
    const AgentStep s = apply(config, r, verify_failed(permanent));
    EXPECT_EQ(s.record.phase, AgentPhase::kCommitted);
    EXPECT_EQ(s.record.running(), v1());
    EXPECT_EQ(s.record.is_bad(v2()), permanent);
    EXPECT_EQ(count_reports(s, Rep::kInstallFailed), permanent ? 1U : 0U);
    EXPECT_EQ(count_reports(s, Rep::kDownloadFailed), permanent ? 0U : 1U);
    const AgentStep again = apply(config, s.record, offer(v2()));
    EXPECT_EQ(count_of(again, Act::kDownload), permanent ? 0U : 1U);
  }
}

TEST(AgentInstall, TheHappyPathCommitsAfterTheTrialWindow) {
  AgentConfig config;
  config.trial_window = 5 * kMinute;
  AgentRecord r = committed_on(v1());
  r = apply(config, r, offer(v2())).record;
  EXPECT_EQ(kinds(apply(config, r, event(Kind::kDownloaded))), (std::vector<Act>{Act::kVerify}));
  r = apply(config, r, event(Kind::kDownloaded)).record;
  EXPECT_EQ(kinds(apply(config, r, event(Kind::kVerified))), (std::vector<Act>{Act::kWriteSlot}));
  r = apply(config, r, event(Kind::kVerified)).record;
  const TimeMs written_at = kT0 + 7 * kSecond;
  const AgentStep activating = apply(config, r, event(Kind::kSlotWritten), written_at);
  EXPECT_EQ(kinds(activating), (std::vector<Act>{Act::kPersist, Act::kActivate}));
  EXPECT_EQ(activating.record.running(), v2());
  const AgentStep trial = apply(config, activating.record, event(Kind::kActivated), written_at + 1);
  EXPECT_EQ(trial.record.phase, AgentPhase::kTrial);
  EXPECT_EQ(count_reports(trial, Rep::kInstalled), 1U);
  EXPECT_EQ(count_of(trial, Act::kStartService), 1U);
  // The window runs from the moment the budget was persisted and never moves.
  ASSERT_TRUE(trial.recheck_at.has_value());
  EXPECT_EQ(*trial.recheck_at, written_at + config.trial_window);
  const AgentStep restarted = apply(config, trial.record, exited(), written_at + kMinute);
  EXPECT_EQ(restarted.recheck_at, trial.recheck_at);

  const AgentStep done =
      apply(config, restarted.record, event(Kind::kTrialPassed), *trial.recheck_at);
  EXPECT_EQ(done.record.phase, AgentPhase::kCommitted);
  EXPECT_EQ(done.record.good, v2());
  EXPECT_FALSE(done.record.candidate.has_value());
  EXPECT_EQ(done.record.starts_left, 0U);
  EXPECT_EQ(kinds(done), (std::vector<Act>{Act::kPersist, Act::kReport}));
  EXPECT_EQ(done.actions[1].report, Rep::kCommitted);
  EXPECT_FALSE(done.recheck_at.has_value());
}

TEST(AgentTrial, AnEndlessTrialWindowSaturatesTheRecheckTime) {
  // check_config bounds trial_window below only; a config file may say
  // 9223372036854775807ms. The end of the window is "never", not a wrapped
  // time in the past (UBSan checks the sum).
  AgentConfig config;
  config.trial_window = std::numeric_limits<DurationMs>::max();
  AgentRecord r = committed_on(v1());
  r = apply(config, r, offer(v2())).record;
  r = apply(config, r, event(Kind::kDownloaded)).record;
  r = apply(config, r, event(Kind::kVerified)).record;
  r = apply(config, r, event(Kind::kSlotWritten), kT0).record;
  const AgentStep trial = apply(config, r, event(Kind::kActivated), kT0 + 1);
  ASSERT_EQ(trial.record.phase, AgentPhase::kTrial);
  ASSERT_TRUE(trial.recheck_at.has_value());
  EXPECT_EQ(*trial.recheck_at, std::numeric_limits<TimeMs>::max());
}

// ---- the trial ----------------------------------------------------------------

// Counts how often the candidate is started, and what is reported, when its
// service exits (or fails its health check) every time it starts.
struct CrashLoop {
  std::uint32_t candidate_starts = 0;
  std::uint32_t crash_reports = 0;
  std::uint32_t exits_until_fallback = 0;
  AgentStep last;
};
CrashLoop crash_loop(const AgentConfig& config, bool health) {
  CrashLoop out;
  AgentRecord r = walk_to(config, committed_on(v1()), v2(), AgentPhase::kActivating);
  AgentStep s = apply(config, r, event(Kind::kActivated));
  for (int guard = 0; guard < 100; ++guard) {
    for (const AgentAction& a : s.actions) {
      if (a.kind == Act::kStartService && a.version == v2()) ++out.candidate_starts;
      if (a.kind == Act::kReport && a.report == Rep::kCrash) ++out.crash_reports;
    }
    if (s.record.phase != AgentPhase::kTrial) break;
    ++out.exits_until_fallback;
    s = apply(config, s.record, health ? health_failed() : exited("exit code 139"));
  }
  out.last = s;
  return out;
}

// Crashes the candidate until the trial ends (bounded, should the machine not end it).
AgentRecord crash_until_fallback(const AgentConfig& config, AgentRecord r) {
  for (int guard = 0; guard < 100 && r.phase == AgentPhase::kTrial; ++guard) {
    r = apply(config, r, exited()).record;
  }
  EXPECT_NE(r.phase, AgentPhase::kTrial) << "a crash loop never ended the trial";
  return r;
}

TEST(AgentTrial, ACrashLoopSpendsExactlyTheBudgetThenFallsBack) {
  AgentConfig config;
  config.start_budget = 3;
  const CrashLoop loop = crash_loop(config, /*health=*/false);
  // Budget 3 = three starts of the candidate: the first start, then two restarts
  // after the 1st and 2nd crash (each reported); the 3rd crash falls back.
  EXPECT_EQ(loop.candidate_starts, 3U);
  EXPECT_EQ(loop.crash_reports, 2U);
  EXPECT_EQ(loop.exits_until_fallback, 3U);
  const AgentStep& s = loop.last;
  EXPECT_EQ(s.record.phase, AgentPhase::kRolledBack);
  EXPECT_EQ(s.record.running(), v1());
  EXPECT_EQ(s.record.good, v1());
  EXPECT_TRUE(s.record.is_bad(v2()));
  EXPECT_FALSE(s.record.candidate.has_value());
  EXPECT_EQ(kinds(s),
            (std::vector<Act>{Act::kPersist, Act::kRevert, Act::kReport, Act::kStartService}));
  EXPECT_EQ(s.actions[1].version, v1());
  EXPECT_EQ(s.actions[2].report, Rep::kRolledBack);
  EXPECT_EQ(s.actions[2].version, v2());
  EXPECT_NE(s.actions[2].detail.find("exit code 139"), std::string::npos) << s.actions[2].detail;
  EXPECT_EQ(s.actions[3].version, v1());
}

TEST(AgentTrial, TheCandidateRunsExactlyStartBudgetTimesForAnyBudget) {
  for (std::uint32_t budget = 1; budget <= 6; ++budget) {
    for (const bool health : {false, true}) {
      SCOPED_TRACE("budget " + std::to_string(budget) + (health ? " health" : " exit"));
      AgentConfig config;
      config.start_budget = budget;
      const CrashLoop loop = crash_loop(config, health);
      EXPECT_EQ(loop.candidate_starts, budget);
      EXPECT_EQ(loop.crash_reports, budget - 1);
      EXPECT_EQ(loop.last.record.phase, AgentPhase::kRolledBack);
      EXPECT_EQ(loop.last.record.running(), v1());
    }
  }
}

TEST(AgentTrial, AFallbackFromAFirstInstallRevertsToTheShippedVersion) {
  AgentConfig config;
  config.start_budget = 1;
  AgentRecord r = walk_to(config, AgentRecord{}, v2(), AgentPhase::kTrial);
  const AgentStep s = apply(config, r, exited());
  EXPECT_EQ(s.record.phase, AgentPhase::kRolledBack);
  EXPECT_FALSE(s.record.running().has_value());
  EXPECT_TRUE(s.record.is_bad(v2()));
  ASSERT_TRUE(position(s, Act::kRevert).has_value());
  EXPECT_FALSE(s.actions[*position(s, Act::kRevert)].version.has_value());
}

TEST(AgentTrial, AnUncleanMachineRestartFallsBackAtOnce) {
  const AgentConfig config;
  // In Activating and at every point of the trial's budget.
  std::vector<AgentRecord> states;
  AgentRecord r = walk_to(config, committed_on(v1()), v2(), AgentPhase::kActivating);
  states.push_back(r);
  r = apply(config, r, event(Kind::kActivated)).record;
  for (int guard = 0; guard < 100 && r.phase == AgentPhase::kTrial; ++guard) {
    states.push_back(r);
    r = apply(config, r, exited()).record;
  }
  ASSERT_EQ(states.size(), 1U + config.start_budget);
  for (const AgentRecord& state : states) {
    SCOPED_TRACE(std::string(to_string(state.phase)) + ", starts left " +
                 std::to_string(state.starts_left));
    const AgentStep s = apply(config, state, boot(/*clean=*/false));
    EXPECT_EQ(s.record.phase, AgentPhase::kRolledBack);
    EXPECT_TRUE(s.record.is_bad(v2()));
    const auto revert = position(s, Act::kRevert);
    const auto start = position(s, Act::kStartService);
    ASSERT_TRUE(revert && start);
    EXPECT_LT(*revert, *start);
    EXPECT_EQ(s.actions[*start].version, v1());
    ASSERT_EQ(count_reports(s, Rep::kRolledBack), 1U);
    // The candidate never runs again, whatever happens next.
    AgentRecord after = s.record;
    const std::vector<AgentEvent> next = {exited(), boot(false), boot(true), offer(v2()),
                                          exited(), boot(false), offer(v2())};
    for (const AgentEvent& e : next) {
      const AgentStep n = apply(config, after, e);
      for (const AgentAction& a : n.actions) {
        const bool runs_it =
            a.kind == Act::kStartService || a.kind == Act::kActivate || a.kind == Act::kDownload;
        EXPECT_FALSE(runs_it && a.version == v2()) << describe(n);
      }
      after = n.record;
    }
  }
}

TEST(AgentTrial, ACleanRestartContinuesTheTrialAndSpendsAStart) {
  const AgentConfig config;
  AgentRecord r = walk_to(config, committed_on(v1()), v2(), AgentPhase::kTrial);
  std::uint32_t starts = 1;  // the Activated start
  for (int guard = 0; guard < 100 && r.phase == AgentPhase::kTrial; ++guard) {
    const AgentStep s = apply(config, r, boot(/*clean=*/true));
    if (s.record.phase == AgentPhase::kTrial) {
      ++starts;
      EXPECT_EQ(s.actions.back().kind, Act::kStartService);
      EXPECT_EQ(s.actions.back().version, v2());
    }
    r = s.record;
  }
  EXPECT_EQ(starts, config.start_budget);
  EXPECT_EQ(r.phase, AgentPhase::kRolledBack);
  EXPECT_TRUE(r.is_bad(v2()));
  // A clean restart while activating activates again: nothing ran yet.
  const AgentRecord activating = walk_to(config, committed_on(v1()), v2(), AgentPhase::kActivating);
  const AgentStep s = apply(config, activating, boot(true));
  EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kActivate}));
  EXPECT_EQ(s.record, activating);
}

TEST(AgentBoot, ResumesAnInstallAndKeepsTheOldVersionRunning) {
  const AgentConfig config;
  for (const AgentPhase p :
       {AgentPhase::kDownloading, AgentPhase::kVerifying, AgentPhase::kStaged}) {
    for (const bool clean : {true, false}) {
      SCOPED_TRACE(std::string(to_string(p)) + (clean ? " clean" : " unclean"));
      const AgentRecord r = walk_to(config, committed_on(v1()), v2(), p);
      const AgentStep s = apply(config, r, boot(clean));
      EXPECT_EQ(s.record.phase, AgentPhase::kDownloading);
      ASSERT_EQ(kinds(s), (std::vector<Act>{Act::kRevert, Act::kStartService, Act::kDownload}));
      EXPECT_EQ(s.actions[0].version, v1());
      EXPECT_EQ(s.actions[1].version, v1());
      EXPECT_EQ(s.actions[2].version, v2());
    }
  }
  for (const AgentPhase p : {AgentPhase::kIdle, AgentPhase::kCommitted, AgentPhase::kRolledBack}) {
    const AgentRecord r = record_in(p, config);
    const AgentStep s = apply(config, r, boot(false));
    EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kRevert, Act::kStartService}));
    EXPECT_EQ(s.actions[0].version, r.good);
    EXPECT_EQ(s.record, r);
  }
}

// Found by the kill-at-every-action driver: the machine dies after a fallback is
// persisted but before the active slot moved back. The record says "running v1";
// the slot still holds the candidate. Boot must not start whatever the slot holds.
TEST(AgentBoot, TheRecordWinsOverAStaleActiveSlot) {
  const AgentConfig config;
  AgentRecord r = walk_to(config, committed_on(v1()), v2(), AgentPhase::kTrial);
  r = crash_until_fallback(config, r);
  ASSERT_EQ(r.phase, AgentPhase::kRolledBack);  // persisted; kRevert never ran
  for (const bool clean : {true, false}) {
    const AgentStep s = apply(config, r, boot(clean));
    const auto revert = position(s, Act::kRevert);
    const auto start = position(s, Act::kStartService);
    ASSERT_TRUE(revert && start);
    EXPECT_LT(*revert, *start);
    EXPECT_EQ(s.actions[*revert].version, v1());
    EXPECT_EQ(s.actions[*start].version, v1());
  }
}

TEST(AgentService, AnExitOutsideATrialRestartsWithoutBudget) {
  const AgentConfig config;
  for (const AgentPhase p :
       {AgentPhase::kIdle, AgentPhase::kDownloading, AgentPhase::kVerifying, AgentPhase::kStaged,
        AgentPhase::kCommitted, AgentPhase::kRolledBack}) {
    SCOPED_TRACE(std::string(to_string(p)));
    AgentRecord r = record_in(p, config);
    for (int i = 0; i < 50; ++i) {
      const AgentStep s = apply(config, r, exited("exit code 3"));
      ASSERT_EQ(kinds(s), (std::vector<Act>{Act::kReport, Act::kStartService}));
      EXPECT_EQ(s.actions[0].report, Rep::kCrash);
      EXPECT_EQ(s.actions[0].detail, "exit code 3");
      EXPECT_EQ(s.actions[1].version, r.good);
      EXPECT_EQ(s.record, r);
      r = s.record;
    }
  }
}

// ---- never retried, bounded memory -------------------------------------------

// Every way a version can fail on a device.
std::vector<AgentRecord> failed_v2_records(const AgentConfig& config) {
  std::vector<AgentRecord> out;
  const AgentRecord base = committed_on(v1());
  const AgentRecord verifying = walk_to(config, base, v2(), AgentPhase::kVerifying);
  out.push_back(apply(config, verifying, verify_failed(true)).record);
  const AgentRecord activating = walk_to(config, base, v2(), AgentPhase::kActivating);
  out.push_back(apply(config, activating, boot(false)).record);
  AgentRecord trial = apply(config, activating, event(Kind::kActivated)).record;
  out.push_back(apply(config, trial, boot(false)).record);
  out.push_back(crash_until_fallback(config, trial));
  return out;
}

TEST(AgentBadVersions, AVersionThatFailedIsNeverRetried) {
  const AgentConfig config;
  for (const AgentRecord& failed : failed_v2_records(config)) {
    SCOPED_TRACE(std::string(to_string(failed.phase)));
    ASSERT_TRUE(failed.is_bad(v2()));
    // Offered in every phase it can be offered in (installing v3 meanwhile).
    std::vector<AgentRecord> where = {failed};
    for (const AgentPhase p :
         {AgentPhase::kDownloading, AgentPhase::kVerifying, AgentPhase::kStaged,
          AgentPhase::kActivating, AgentPhase::kTrial, AgentPhase::kCommitted}) {
      if (p == AgentPhase::kCommitted) {
        AgentRecord r = walk_to(config, failed, v3(), AgentPhase::kTrial);
        where.push_back(apply(config, r, event(Kind::kTrialPassed)).record);
      } else {
        where.push_back(walk_to(config, failed, v3(), p));
      }
    }
    for (const AgentRecord& r : where) {
      const AgentStep s = apply(config, r, offer(ver("7.11.2")));
      EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kReport})) << describe(s);
      EXPECT_EQ(s.actions[0].report, Rep::kRejected);
      EXPECT_EQ(s.actions[0].version, v2());
      EXPECT_NE(s.reason.find("failed on this device before"), std::string::npos);
      EXPECT_EQ(s.record, r);
    }
  }
}

TEST(AgentBadVersions, TheListIsBoundedOldestFirstWithoutDuplicates) {
  AgentConfig config;
  config.max_bad_versions = 3;
  AgentRecord r = committed_on(v1());
  std::vector<Version> failed;
  for (int i = 0; i < 7; ++i) {
    const Version v = ver("8.0." + std::to_string(i));
    failed.push_back(v);
    r = walk_to(config, r, v, AgentPhase::kVerifying);
    r = apply(config, r, verify_failed(true)).record;
    ASSERT_LE(r.bad.size(), config.max_bad_versions);
    // The newest failures are remembered, in order.
    const std::size_t keep = std::min<std::size_t>(failed.size(), config.max_bad_versions);
    EXPECT_EQ(r.bad,
              std::vector<Version>(failed.end() - static_cast<std::ptrdiff_t>(keep), failed.end()));
  }
  // A forgotten version may be tried again; a remembered one may not.
  EXPECT_EQ(count_of(apply(config, r, offer(failed.front())), Act::kDownload), 1U);
  EXPECT_EQ(count_of(apply(config, r, offer(failed.back())), Act::kDownload), 0U);

  // Failing a version already on the list does not duplicate it.
  AgentRecord odd = record_in(AgentPhase::kTrial, config);
  odd.bad = {v2()};
  odd.starts_left = 0;
  const AgentStep s = apply(config, odd, exited());
  EXPECT_EQ(s.record.bad, std::vector<Version>{v2()});
}

// ---- the 2024 model: no fallback -----------------------------------------------

// ---- a committed version that breaks late (issue 16) ------------------------------

// Committed on `v` after a trial that passed, from a device committed on `from`
// (nullopt: the shipped version): the other slot holds `from`.
AgentRecord committed_after_trial(const AgentConfig& config, const std::optional<Version>& from,
                                  const Version& v) {
  AgentRecord start;
  if (from) start = committed_on(*from);
  AgentRecord r = walk_to(config, start, v, AgentPhase::kTrial);
  r = apply(config, r, event(Kind::kTrialPassed), kT0 + config.trial_window).record;
  EXPECT_EQ(r.phase, AgentPhase::kCommitted);
  EXPECT_TRUE(r.previous_in_slot);
  EXPECT_EQ(r.previous, from);
  return r;
}

TEST(AgentCommitted, TheKthUncleanBootInARowFallsBackToTheOtherSlot) {
  AgentConfig config;
  config.max_unclean_boots = 3;
  AgentRecord r = committed_after_trial(config, v1(), v2());
  for (std::uint32_t n = 1; n < 3; ++n) {
    const AgentStep s = apply(config, r, boot(false), kT0 + kHour);
    SCOPED_TRACE(describe(s));
    EXPECT_EQ(s.record.phase, AgentPhase::kCommitted);
    EXPECT_EQ(s.record.unclean_boots, n);
    // The count is durable before the version that may crash the machine runs.
    EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kPersist, Act::kRevert, Act::kStartService}));
    EXPECT_EQ(s.actions[2].version, v2());
    ASSERT_TRUE(s.recheck_at.has_value());
    EXPECT_EQ(*s.recheck_at, kT0 + kHour + config.trial_window);
    r = s.record;
  }
  const AgentStep s = apply(config, r, boot(false), kT0 + kHour);
  SCOPED_TRACE(describe(s));
  EXPECT_EQ(s.record.phase, AgentPhase::kRolledBack);
  EXPECT_EQ(s.record.good, v1());
  EXPECT_TRUE(s.record.is_bad(v2()));
  EXPECT_FALSE(s.record.previous_in_slot);
  EXPECT_EQ(s.record.unclean_boots, 0U);
  EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kPersist, Act::kStopService, Act::kRevert,
                                         Act::kReport, Act::kStartService}));
  EXPECT_EQ(s.actions[2].version, v1());
  EXPECT_EQ(s.actions[3].report, Rep::kRolledBack);
  EXPECT_EQ(s.actions[3].version, v2());
  EXPECT_NE(s.actions[3].detail.find("3 unclean boots in a row"), std::string::npos)
      << s.actions[3].detail;
  EXPECT_EQ(s.actions[4].version, v1());
  // And it is never installed again.
  EXPECT_EQ(count_reports(apply(config, s.record, offer(v2())), Rep::kRejected), 1U);
}

TEST(AgentCommitted, StayingUpOrACleanBootForgivesTheUncleanBoots) {
  AgentConfig config;  // k = 2
  ASSERT_EQ(config.max_unclean_boots, 2U);
  AgentRecord r = committed_after_trial(config, v1(), v2());
  r = apply(config, r, boot(false)).record;
  ASSERT_EQ(r.unclean_boots, 1U);
  const AgentStep up = apply(config, r, event(Kind::kStayedUp));
  EXPECT_EQ(up.record.unclean_boots, 0U);
  EXPECT_EQ(kinds(up), (std::vector<Act>{Act::kPersist}));
  EXPECT_TRUE(up.record.previous_in_slot);
  // Nothing to forgive: nothing to write.
  EXPECT_TRUE(apply(config, up.record, event(Kind::kStayedUp)).actions.empty());
  // Two power cuts a day apart are not a boot loop.
  r = apply(config, up.record, boot(false)).record;
  EXPECT_EQ(r.unclean_boots, 1U);
  const AgentStep clean = apply(config, r, boot(true));
  EXPECT_EQ(clean.record.unclean_boots, 0U);
  EXPECT_EQ(clean.actions.front().kind, Act::kPersist);
  EXPECT_EQ(apply(config, clean.record, boot(false)).record.phase, AgentPhase::kCommitted);
  // A clean boot with nothing to forgive writes nothing.
  EXPECT_EQ(kinds(apply(config, clean.record, boot(true))),
            (std::vector<Act>{Act::kRevert, Act::kStartService}));
}

TEST(AgentCommitted, AFirstInstallFallsBackToTheShippedVersion) {
  AgentConfig config;
  config.max_unclean_boots = 1;
  const AgentRecord r = committed_after_trial(config, std::nullopt, v1());
  const AgentStep s = apply(config, r, boot(false));
  EXPECT_EQ(s.record.phase, AgentPhase::kRolledBack);
  EXPECT_FALSE(s.record.good.has_value());
  EXPECT_EQ(s.actions.back().kind, Act::kStartService);
  EXPECT_FALSE(s.actions.back().version.has_value());
}

TEST(AgentCommitted, WithoutTheOtherSlotOrWithKZeroItOnlyCounts) {
  AgentConfig config;
  config.max_unclean_boots = 1;
  // Committed long ago (or the other slot was written since): nothing to go to.
  AgentRecord r = committed_on(v1());
  for (int i = 0; i < 5; ++i) {
    const AgentStep s = apply(config, r, boot(false));
    EXPECT_EQ(s.record.phase, AgentPhase::kCommitted);
    EXPECT_NE(s.reason.find("nothing to fall back to"), std::string::npos) << s.reason;
    r = s.record;
  }
  // A new install gives the other slot up as soon as it starts.
  AgentRecord installing = committed_after_trial(config, v1(), v2());
  installing = apply(config, installing, offer(v3())).record;
  EXPECT_FALSE(installing.previous_in_slot);
  installing = apply(config, installing, event(Kind::kDownloadFailed)).record;
  EXPECT_EQ(installing.phase, AgentPhase::kCommitted);
  EXPECT_EQ(apply(config, installing, boot(false)).record.phase, AgentPhase::kCommitted);

  AgentConfig never = config;
  never.max_unclean_boots = 0;
  AgentRecord k0 = committed_after_trial(never, v1(), v2());
  for (int i = 0; i < 5; ++i) k0 = apply(never, k0, boot(false)).record;
  EXPECT_EQ(k0.phase, AgentPhase::kCommitted);
  EXPECT_EQ(k0.good, v2());
}

TEST(AgentRevoked, TheRunningVersionIsLeftAtOnceForTheOtherSlot) {
  const AgentConfig config;
  const AgentRecord r = committed_after_trial(config, v1(), v2());
  const AgentStep s = apply(config, r, revoked(v2()));
  EXPECT_EQ(s.record.phase, AgentPhase::kRolledBack);
  EXPECT_EQ(s.record.good, v1());
  EXPECT_TRUE(s.record.is_bad(v2()));
  EXPECT_EQ(kinds(s), (std::vector<Act>{Act::kPersist, Act::kStopService, Act::kRevert,
                                         Act::kReport, Act::kStartService}));
  EXPECT_NE(s.actions[3].detail.find("the server marks 7.11.2 bad"), std::string::npos);
  // Every later check-in says it again: nothing more happens.
  const AgentStep again = apply(config, s.record, revoked(v2()));
  EXPECT_TRUE(again.actions.empty());
  EXPECT_EQ(again.record, s.record);
  // The server's rollback offer is what already runs.
  EXPECT_TRUE(apply(config, s.record, offer(v1())).actions.empty());
}

TEST(AgentRevoked, ATrialFallsBackAnInstallIsAbandonedAnythingElseIsLeftAlone) {
  const AgentConfig config;
  const AgentRecord trial = walk_to(config, committed_on(v1()), v2(), AgentPhase::kTrial);
  const AgentStep t = apply(config, trial, revoked(v2()));
  EXPECT_EQ(t.record.phase, AgentPhase::kRolledBack);
  EXPECT_EQ(count_reports(t, Rep::kRolledBack), 1U);
  EXPECT_EQ(t.actions.back().version, v1());
  EXPECT_TRUE(t.record.is_bad(v2()));

  const AgentRecord downloading = walk_to(config, committed_on(v1()), v2(), AgentPhase::kDownloading);
  const AgentStep d = apply(config, downloading, revoked(v2()));
  EXPECT_EQ(d.record.phase, AgentPhase::kCommitted);
  EXPECT_FALSE(d.record.candidate.has_value());
  EXPECT_EQ(kinds(d), (std::vector<Act>{Act::kPersist}));

  // Never ran here: not condemned here. The server decides what it offers; an
  // operator may roll it out again after a false halt.
  const AgentStep other = apply(config, committed_on(v1()), revoked(v3()));
  EXPECT_TRUE(other.actions.empty());
  EXPECT_FALSE(other.record.is_bad(v3()));
  EXPECT_EQ(apply(config, other.record, offer(v3())).record.phase, AgentPhase::kDownloading);

  // Running it with nothing in the other slot: the server's rollback offer decides.
  const AgentStep stuck = apply(config, committed_on(v2()), revoked(v2()));
  EXPECT_TRUE(stuck.actions.empty());
  EXPECT_EQ(stuck.record.phase, AgentPhase::kCommitted);
  EXPECT_NE(stuck.reason.find("the server's offer decides"), std::string::npos) << stuck.reason;
  EXPECT_EQ(apply(config, stuck.record, offer(v1())).record.phase, AgentPhase::kDownloading);

  AgentEvent no_version = event(Kind::kRevoked);
  EXPECT_EQ(agent_step(config, committed_on(v1()), no_version, kT0).error().code,
            ErrorCode::kInvalidArgument);
}

TEST(AgentRevoked, ARecordWithAnOtherSlotOutsideCommittedIsRefused) {
  const AgentConfig config;
  AgentRecord r = committed_on(v1());
  r.phase = AgentPhase::kRolledBack;
  r.previous_in_slot = true;
  EXPECT_EQ(agent_step(config, r, boot(true), kT0).error().code, ErrorCode::kInvalidArgument);
  r.previous_in_slot = false;
  r.unclean_boots = 1;
  EXPECT_EQ(agent_step(config, r, boot(true), kT0).error().code, ErrorCode::kInvalidArgument);
}

TEST(AgentNoFallback, CommitsAtOnceAndRestartsForever) {
  AgentConfig config;
  config.fallback = false;
  AgentRecord r = walk_to(config, committed_on(v1()), v2(), AgentPhase::kStaged);
  const AgentStep s = apply(config, r, event(Kind::kSlotWritten));
  EXPECT_EQ(s.record.phase, AgentPhase::kCommitted);
  EXPECT_EQ(s.record.good, v2());
  EXPECT_EQ(kinds(s),
            (std::vector<Act>{Act::kPersist, Act::kActivate, Act::kReport, Act::kStartService}));
  EXPECT_EQ(s.actions[3].version, v2());
  EXPECT_FALSE(s.recheck_at.has_value());
  // A crash loop, and boot loop, forever: the bad version is never left.
  r = s.record;
  for (int i = 0; i < 1000; ++i) {
    const AgentStep n = apply(config, r, i % 3 == 2 ? boot(false) : exited());
    EXPECT_EQ(n.record.phase, AgentPhase::kCommitted);
    EXPECT_EQ(n.actions.back().kind, Act::kStartService);
    for (const AgentAction& a : n.actions) {
      if (a.kind != Act::kReport) {
        EXPECT_EQ(a.version, v2()) << describe(n);
      }
    }
    EXPECT_FALSE(n.record.is_bad(v2()));
    r = n.record;
  }
}

// ---- drivers: a tiny shell around the reducer ----------------------------------

// One device: its disk (the persisted record and the active-slot pointer), its
// memory (the agent's current record and queued callbacks) and its protected
// service. Executes actions like a shell would: downloads and verification
// succeed; the service started on a broken version crashes.
struct Device {
  AgentConfig config;
  std::set<Version> broken;  // the service crashes on these
  // These pass their trial, then take the machine down at every start once
  // committed (content that breaks hours later, at every boot from then on).
  std::set<Version> late_broken;
  // When a broken service crashes, how likely it takes the whole machine down.
  double machine_crash_on_exit = 0.0;

  // Durable.
  AgentRecord disk;
  std::optional<Version> active;
  // Volatile.
  AgentRecord memory;
  std::deque<AgentEvent> queue;
  std::optional<Version> service;  // running, on this version
  std::optional<TimeMs> recheck_at;
  TimeMs now = kT0;

  // Fault injection. A kill interrupts an action list: the machine crashes (an
  // unclean boot follows). A restart happens between steps (a clean boot).
  std::set<std::uint64_t> kill_before;     // action ordinals
  std::set<std::uint64_t> restart_before;  // step ordinals
  std::mt19937_64* rng = nullptr;
  double random_kill = 0.0;     // per action
  double random_restart = 0.0;  // per step
  int random_faults_left = 0;
  std::uint64_t actions_run = 0;
  std::uint64_t step_slots = 0;

  std::optional<Version> offered;  // re-offered at random check-ins
  bool crashed = false;            // the machine went down during the current step

  // Observations.
  std::map<Version, std::uint32_t> starts;  // of each version, in all
  std::uint32_t trial_starts = 0;           // of the candidate since it was activated
  std::set<Version> fell_back_unclean;      // candidates whose trial an unclean boot ended
  bool restart_during_trial = false;
  std::uint64_t events = 0;
  std::uint32_t late_starts = 0;  // starts of a late-broken version that crashed the machine
  std::uint32_t unclean_in_a_row = 0;  // unclean boots on the committed version, as seen here
  bool uncleanly_given_up = false;     // ... and a committed version given up at the k-th
  bool forgive_on_persist = false;

  Device(AgentConfig c, const Version& installed) : config(c) {
    disk = committed_on(installed);
    memory = disk;
    active = installed;
  }

  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); }

  void machine_down(bool clean) {
    crashed = true;
    // The shell's clean marker: a boot that has not run its step yet keeps an
    // unclean verdict, however the next stop goes.
    const bool unclean_pending = std::any_of(queue.begin(), queue.end(), [](const AgentEvent& e) {
      return e.kind == Kind::kBoot && !e.clean;
    });
    clean = clean && !unclean_pending;
    memory = disk;
    queue.clear();
    service.reset();
    recheck_at.reset();
    queue.push_back(boot(clean));
  }

  // Feeds one event to the agent and runs the actions it returns.
  void feed(const AgentEvent& e) {
    ++events;
    if (e.kind == Kind::kBoot &&
        (memory.phase == AgentPhase::kActivating || memory.phase == AgentPhase::kTrial)) {
      restart_during_trial = true;
      if (!e.clean) fell_back_unclean.insert(*memory.candidate);
    }
    const AgentRecord before = memory;
    // A clean boot or a stay forgives once its list has persisted that: a
    // machine that dies during the boot step has not booted cleanly.
    forgive_on_persist = (e.kind == Kind::kBoot && e.clean) || e.kind == Kind::kStayedUp;
    if (e.kind == Kind::kBoot && !e.clean && memory.phase == AgentPhase::kCommitted) {
      ++unclean_in_a_row;
    }
    Result<AgentStep> r = agent_step(config, memory, e, now);
    ASSERT_TRUE(r.ok()) << to_string(e.kind) << " in " << to_string(memory.phase) << ": "
                        << r.error().to_string();
    const AgentStep s = std::move(r).value();
    expect_action_list_contract(config, before, s);
    if (before.phase == AgentPhase::kCommitted && s.record.phase == AgentPhase::kRolledBack &&
        e.kind == Kind::kBoot) {
      // Only at the k-th unclean boot in a row, with the count forgiven by a
      // clean boot or a stay of a trial window.
      EXPECT_FALSE(e.clean);
      EXPECT_GE(unclean_in_a_row, config.max_unclean_boots);
      uncleanly_given_up = true;
    }
    memory = s.record;
    recheck_at = s.recheck_at;
    crashed = false;
    for (const AgentAction& a : s.actions) {
      const std::uint64_t ordinal = actions_run++;
      if (kill_before.count(ordinal) > 0) {
        machine_down(/*clean=*/false);
      } else if (rng != nullptr && random_faults_left > 0 && uniform() < random_kill) {
        --random_faults_left;
        machine_down(/*clean=*/false);
      } else {
        run(a);
      }
      if (crashed) return;  // the rest of the list died with the machine
    }
    // The machine is never left unprotected: after a step the service runs, or an
    // event that starts it again is already on its way.
    const bool restart_pending = std::any_of(queue.begin(), queue.end(), [](const AgentEvent& q) {
      return q.kind == Kind::kServiceExited || q.kind == Kind::kActivated || q.kind == Kind::kBoot;
    });
    EXPECT_TRUE(service.has_value() || restart_pending) << "service down after " << describe(s);
  }

  void run(const AgentAction& a) {
    switch (a.kind) {
      case Act::kPersist:
        disk = memory;
        if (forgive_on_persist) unclean_in_a_row = 0;
        break;
      case Act::kDownload:
        EXPECT_EQ(a.version, memory.candidate);
        queue.push_back(event(Kind::kDownloaded));
        break;
      case Act::kVerify:
        queue.push_back(event(Kind::kVerified));
        break;
      case Act::kWriteSlot:
        queue.push_back(event(Kind::kSlotWritten));
        break;
      case Act::kActivate:
        if (config.fallback) {
          // The durable record pays for the trial before the pointer moves.
          EXPECT_EQ(disk.phase, AgentPhase::kActivating);
          EXPECT_EQ(disk.candidate, a.version);
          EXPECT_EQ(disk.starts_left, config.start_budget);
        }
        active = a.version;
        trial_starts = 0;
        if (memory.phase == AgentPhase::kActivating) queue.push_back(event(Kind::kActivated));
        break;
      case Act::kRevert:
        active = a.version;
        break;
      case Act::kStartService: {
        EXPECT_EQ(a.version, active) << "the agent and the active slot disagree";
        ASSERT_TRUE(active.has_value());
        EXPECT_EQ(fell_back_unclean.count(*active), 0U)
            << active->to_string() << " started again after an unclean boot ended its trial";
        ++starts[*active];
        if (config.fallback && disk.good != active) {
          // A version on trial: the disk already counts this start (and maybe one
          // more, spent by a persist whose start died with the machine).
          ++trial_starts;
          EXPECT_EQ(disk.phase, AgentPhase::kTrial);
          EXPECT_EQ(disk.candidate, active);
          EXPECT_LE(disk.starts_left + trial_starts, config.start_budget);
        }
        service = active;
        if (late_broken.count(*active) > 0 && disk.phase == AgentPhase::kCommitted &&
            disk.good == active) {
          ++late_starts;
          machine_down(/*clean=*/false);
          break;
        }
        if (broken.count(*active) > 0) {
          const bool takes_machine =
              machine_crash_on_exit >= 1.0 ||
              (rng != nullptr && machine_crash_on_exit > 0.0 && uniform() < machine_crash_on_exit);
          if (takes_machine) {
            machine_down(/*clean=*/false);
          } else {
            service.reset();
            queue.push_back(exited("signal 11"));
          }
        }
        break;
      }
      case Act::kStopService:
        service.reset();
        break;
      case Act::kReport:
        break;
    }
  }

  // Runs until nothing is left to do, the trial passing when it is due. Returns
  // false if the device never settles (a crash loop).
  bool settle(std::uint64_t max_events = 400) {
    const std::uint64_t limit = events + max_events;
    while (events < limit) {
      if (::testing::Test::HasFatalFailure()) return false;
      now += kSecond;
      if (rng != nullptr && offered && uniform() < 0.05) queue.push_back(offer(*offered));
      const std::uint64_t slot = step_slots++;
      const bool random_restart_now =
          rng != nullptr && random_faults_left > 0 && uniform() < random_restart;
      if (random_restart_now) --random_faults_left;
      if (restart_before.count(slot) > 0 || random_restart_now) {
        machine_down(/*clean=*/true);  // the pending callback is lost with it
        continue;
      }
      if (!queue.empty()) {
        const AgentEvent e = queue.front();
        queue.pop_front();
        feed(e);
      } else if (memory.phase == AgentPhase::kTrial && service) {
        now = std::max(now, *recheck_at);
        feed(event(Kind::kTrialPassed));
      } else if (memory.phase == AgentPhase::kCommitted && memory.unclean_boots > 0 && service &&
                 recheck_at) {
        now = std::max(now, *recheck_at);
        feed(event(Kind::kStayedUp));
        recheck_at.reset();
      } else {
        return true;
      }
    }
    return false;
  }
};

struct Scenario {
  std::uint32_t budget = 3;
  bool target_broken = true;
  double machine_crash_on_exit = 0.0;
  std::set<std::uint64_t> kill_before;     // unclean, before these actions
  std::set<std::uint64_t> restart_before;  // clean, before these steps
  std::uint64_t seed = 0;                  // 0: no random faults
};

// What a run did: its size (the ranges the exhaustive driver faults over) and
// how it ended (so the drivers can show they reached every kind of ending).
struct RunSize {
  std::uint64_t actions = 0;
  std::uint64_t steps = 0;
  bool committed = false;    // the target runs, committed
  bool used_budget = false;  // the target started start_budget times
  bool restart_in_trial = false;
};

// Installs one version on a device committed on v1 and checks where it ends.
RunSize run_install(const Scenario& sc) {
  AgentConfig config;
  config.start_budget = sc.budget;
  Device d(config, v1());
  const Version target = sc.target_broken ? ver("291.2024071904") : v2();
  if (sc.target_broken) d.broken.insert(target);
  d.machine_crash_on_exit = sc.machine_crash_on_exit;
  d.kill_before = sc.kill_before;
  d.restart_before = sc.restart_before;
  std::mt19937_64 rng(sc.seed);
  if (sc.seed != 0) {
    d.rng = &rng;
    d.random_kill = 0.06;
    d.random_restart = 0.04;
    d.random_faults_left = 5;
  }
  // The machine boots, the server offers the target; a real server offers again
  // at each check-in, so do that too, after each settle and at random points.
  d.offered = target;
  d.queue.push_back(boot(true));
  d.queue.push_back(offer(target));
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(d.settle()) << "device never settled";
    if (::testing::Test::HasFatalFailure()) return {};
    d.queue.push_back(offer(target));
  }
  EXPECT_TRUE(d.settle());

  // It ends running a version whose service stays up, and agrees with its disk.
  EXPECT_TRUE(d.service.has_value()) << "the protected service is down";
  EXPECT_EQ(d.service, d.active);
  EXPECT_TRUE(d.active && d.broken.count(*d.active) == 0) << "ends on a broken version";
  EXPECT_EQ(d.memory.running(), d.active);
  EXPECT_EQ(d.disk.phase, d.memory.phase);
  EXPECT_EQ(d.disk.good, d.memory.good);
  EXPECT_EQ(d.disk.bad, d.memory.bad);
  if (sc.target_broken) {
    EXPECT_TRUE(d.memory.is_bad(target));
    EXPECT_EQ(d.active, v1());
    EXPECT_LE(d.starts[target], sc.budget) << "the broken version ran past its budget";
  } else if (d.memory.is_bad(target)) {
    // Only a restart during its trial can condemn a good version (an unclean
    // one at once, a clean one by spending the last start of the budget), or
    // k unclean boots in a row once it is committed.
    EXPECT_TRUE(d.restart_during_trial || d.uncleanly_given_up)
        << "a good version given up without a restart in its trial or k unclean boots";
    EXPECT_EQ(d.active, v1());
  } else {
    EXPECT_EQ(d.active, target);
    EXPECT_EQ(d.memory.phase, AgentPhase::kCommitted);
  }
  // Offering it again, without faults, changes nothing: a failed version is
  // rejected (one report), a committed one is already running (no action).
  const RunSize size{d.actions_run, d.step_slots,
                     d.active == target && d.memory.phase == AgentPhase::kCommitted,
                     d.starts[target] == sc.budget, d.restart_during_trial};
  d.kill_before.clear();
  d.restart_before.clear();
  d.random_faults_left = 0;
  d.offered.reset();
  d.queue.push_back(offer(target));
  const std::uint64_t before = d.actions_run;
  const AgentRecord settled = d.memory;
  EXPECT_TRUE(d.settle());
  EXPECT_EQ(d.memory, settled);
  EXPECT_EQ(d.actions_run - before, d.memory.is_bad(target) ? 1U : 0U);
  return size;
}

std::string describe(const Scenario& sc) {
  std::string kills;
  for (const std::uint64_t k : sc.kill_before) kills += " " + std::to_string(k);
  std::string restarts;
  for (const std::uint64_t k : sc.restart_before) restarts += " " + std::to_string(k);
  return std::string(sc.target_broken ? "broken" : "good") + " target, budget " +
         std::to_string(sc.budget) + ", machine crash on exit " +
         std::to_string(sc.machine_crash_on_exit) + ", kill before action" + kills +
         ", clean restart before step" + restarts + ", seed " + std::to_string(sc.seed);
}

// Mender's "kill the daemon in every state", on the pure machine: every single
// and every pair of faults — a machine crash before any action, a clean restart
// before any step, and one of each — for a broken and a good version.
TEST(AgentDriver, AFaultAtEveryPointEndsOnAWorkingVersion) {
  int runs = 0;
  for (const bool broken : {true, false}) {
    for (const std::uint32_t budget : {1U, 2U, 3U}) {
      for (const double on_exit : {0.0, 1.0}) {
        Scenario base;
        base.target_broken = broken;
        base.budget = budget;
        base.machine_crash_on_exit = on_exit;
        const RunSize n = run_install(base);
        // Faults add work, so look a little past the end of the fault-free run.
        const std::uint64_t actions = n.actions + 6;
        const std::uint64_t steps = n.steps + 4;
        const auto check = [&](std::set<std::uint64_t> kills, std::set<std::uint64_t> restarts) {
          Scenario sc = base;
          sc.kill_before = std::move(kills);
          sc.restart_before = std::move(restarts);
          SCOPED_TRACE(describe(sc));
          run_install(sc);
          ++runs;
          return !::testing::Test::HasFailure();
        };
        for (std::uint64_t i = 0; i < actions; ++i) {
          for (std::uint64_t j = i; j < actions; ++j) {
            if (!check({i, j}, {})) return;
          }
          for (std::uint64_t j = 0; j < steps; ++j) {
            if (!check({i}, {j})) return;
          }
        }
        for (std::uint64_t i = 0; i < steps; ++i) {
          for (std::uint64_t j = i; j < steps; ++j) {
            if (!check({}, {i, j})) return;
          }
        }
      }
    }
  }
  EXPECT_GE(runs, 1000);
}

TEST(AgentDriver, RandomFaultsEndOnAWorkingVersion) {
  const std::uint64_t base_seed = 20240719;
  std::mt19937_64 pick(base_seed);
  // Endings seen: {broken, good} x {budget spent by crashes, restart in trial,
  // committed}; each must occur, or the driver is not testing what it claims.
  std::map<std::string, int> endings;
  for (std::uint64_t run = 0; run < 3000; ++run) {
    Scenario sc;
    sc.seed = base_seed + run + 1;
    sc.target_broken = (pick() % 3) != 0;
    sc.budget = 1U + static_cast<std::uint32_t>(pick() % 4);
    sc.machine_crash_on_exit = static_cast<double>(pick() % 3) / 2.0;
    SCOPED_TRACE(describe(sc));
    const RunSize r = run_install(sc);
    if (::testing::Test::HasFailure()) return;
    const std::string target = sc.target_broken ? "broken " : "good ";
    if (r.committed) ++endings[target + "committed"];
    if (r.used_budget && !r.committed) ++endings[target + "budget spent"];
    if (r.restart_in_trial && !r.committed) ++endings[target + "restart in trial"];
  }
  for (const char* ending : {"broken budget spent", "broken restart in trial", "good committed",
                             "good restart in trial"}) {
    EXPECT_GT(endings[ending], 20) << ending;
  }
  EXPECT_EQ(endings["broken committed"], 0);
}

TEST(AgentDriver, AVersionThatBreaksAfterItsTrialIsLeftAfterKUncleanBoots) {
  for (const std::uint32_t k : {1U, 2U, 3U}) {
    SCOPED_TRACE("k = " + std::to_string(k));
    AgentConfig config;
    config.max_unclean_boots = k;
    Device d(config, v1());
    const Version late = ver("291.2024071904");
    d.late_broken.insert(late);
    d.queue.push_back(boot(true));
    d.queue.push_back(offer(late));
    ASSERT_TRUE(d.settle());
    ASSERT_EQ(d.memory.phase, AgentPhase::kCommitted);  // its trial passed
    ASSERT_EQ(d.active, late);
    // Hours later it takes the machine down, and again at every boot.
    d.machine_down(/*clean=*/false);
    ASSERT_TRUE(d.settle()) << "a boot loop";
    EXPECT_EQ(d.active, v1());
    EXPECT_EQ(d.service, v1());
    EXPECT_EQ(d.memory.phase, AgentPhase::kRolledBack);
    EXPECT_TRUE(d.memory.is_bad(late));
    EXPECT_EQ(d.disk, d.memory);
    // The late crash was unclean boot 1: k - 1 more boots ran it.
    EXPECT_EQ(d.late_starts + 1, k);
    // Offered again, it is refused.
    d.queue.push_back(offer(late));
    ASSERT_TRUE(d.settle());
    EXPECT_EQ(d.active, v1());
  }
}

TEST(AgentDriver, WithoutFallbackABrokenVersionLoopsForever) {
  // The 2024 model, through the same shell: it never settles, and the machine
  // keeps starting the broken version.
  for (const double on_exit : {0.0, 1.0}) {
    AgentConfig config;
    config.fallback = false;
    Device d(config, v1());
    const Version bad = ver("291.2024071904");
    d.broken.insert(bad);
    d.machine_crash_on_exit = on_exit;
    d.queue.push_back(boot(true));
    d.queue.push_back(offer(bad));
    EXPECT_FALSE(d.settle(/*max_events=*/500));
    EXPECT_EQ(d.active, bad);
    EXPECT_EQ(d.memory.phase, AgentPhase::kCommitted);
    EXPECT_FALSE(d.memory.is_bad(bad));
    EXPECT_GT(d.starts[bad], 400U);
  }
}

}  // namespace
}  // namespace tranche::core
