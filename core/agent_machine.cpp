#include "core/agent_machine.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <utility>

namespace tranche::core {
namespace {

using Phase = AgentPhase;
using Event = AgentEvent::Kind;
using Act = AgentAction::Kind;
using Report = AgentAction::Report;

// What every handler sees.
struct Input {
  const AgentConfig& config;
  const AgentRecord& record;
  const AgentEvent& event;
  TimeMs now;
};
using Handler = Result<AgentStep> (*)(const Input&);

// Handlers, defined below the table. Each one reads as the row's right-hand side.
Result<AgentStep> offer_when_stable(const Input& in);
Result<AgentStep> offer_while_installing(const Input& in);
Result<AgentStep> offer_during_trial(const Input& in);
Result<AgentStep> restart_running_version(const Input& in);
Result<AgentStep> boot_when_stable(const Input& in);
Result<AgentStep> boot_resume_install(const Input& in);
Result<AgentStep> boot_during_trial(const Input& in);
Result<AgentStep> downloaded(const Input& in);
Result<AgentStep> install_failed(const Input& in);
Result<AgentStep> verified(const Input& in);
Result<AgentStep> slot_written(const Input& in);
Result<AgentStep> activated(const Input& in);
Result<AgentStep> exit_while_activating(const Input& in);
Result<AgentStep> trial_crashed(const Input& in);
Result<AgentStep> trial_passed(const Input& in);
Result<AgentStep> boot_when_committed(const Input& in);
Result<AgentStep> stayed_up(const Input& in);
Result<AgentStep> revoked(const Input& in);

struct Transition {
  Phase phase;
  Event event;
  Handler handler;
};

// The transition table: the whole machine, top to bottom. A (phase, event) pair
// that is not listed is refused with kInvalidTransition.
constexpr std::array kTransitions = {
    // A stable version runs (or the shipped one, in Idle).
    Transition{Phase::kIdle, Event::kOffer, &offer_when_stable},
    Transition{Phase::kIdle, Event::kServiceExited, &restart_running_version},
    Transition{Phase::kIdle, Event::kBoot, &boot_when_stable},
    Transition{Phase::kIdle, Event::kRevoked, &revoked},
    Transition{Phase::kCommitted, Event::kOffer, &offer_when_stable},
    Transition{Phase::kCommitted, Event::kServiceExited, &restart_running_version},
    Transition{Phase::kCommitted, Event::kBoot, &boot_when_committed},
    Transition{Phase::kCommitted, Event::kStayedUp, &stayed_up},
    Transition{Phase::kCommitted, Event::kRevoked, &revoked},
    Transition{Phase::kRolledBack, Event::kOffer, &offer_when_stable},
    Transition{Phase::kRolledBack, Event::kServiceExited, &restart_running_version},
    Transition{Phase::kRolledBack, Event::kBoot, &boot_when_stable},
    Transition{Phase::kRolledBack, Event::kRevoked, &revoked},

    // Installing: the old version keeps running and protecting the machine.
    Transition{Phase::kDownloading, Event::kOffer, &offer_while_installing},
    Transition{Phase::kDownloading, Event::kDownloaded, &downloaded},
    Transition{Phase::kDownloading, Event::kDownloadFailed, &install_failed},
    Transition{Phase::kDownloading, Event::kServiceExited, &restart_running_version},
    Transition{Phase::kDownloading, Event::kBoot, &boot_resume_install},
    Transition{Phase::kDownloading, Event::kRevoked, &revoked},
    Transition{Phase::kVerifying, Event::kOffer, &offer_while_installing},
    Transition{Phase::kVerifying, Event::kVerified, &verified},
    Transition{Phase::kVerifying, Event::kVerifyFailed, &install_failed},
    Transition{Phase::kVerifying, Event::kServiceExited, &restart_running_version},
    Transition{Phase::kVerifying, Event::kBoot, &boot_resume_install},
    Transition{Phase::kVerifying, Event::kRevoked, &revoked},
    Transition{Phase::kStaged, Event::kOffer, &offer_while_installing},
    Transition{Phase::kStaged, Event::kSlotWritten, &slot_written},
    Transition{Phase::kStaged, Event::kServiceExited, &restart_running_version},
    Transition{Phase::kStaged, Event::kBoot, &boot_resume_install},
    Transition{Phase::kStaged, Event::kRevoked, &revoked},

    // On trial: the candidate runs on a durable start budget.
    Transition{Phase::kActivating, Event::kOffer, &offer_during_trial},
    Transition{Phase::kActivating, Event::kActivated, &activated},
    Transition{Phase::kActivating, Event::kServiceExited, &exit_while_activating},
    Transition{Phase::kActivating, Event::kBoot, &boot_during_trial},
    Transition{Phase::kActivating, Event::kRevoked, &revoked},
    Transition{Phase::kTrial, Event::kOffer, &offer_during_trial},
    Transition{Phase::kTrial, Event::kServiceExited, &trial_crashed},
    Transition{Phase::kTrial, Event::kHealthFailed, &trial_crashed},
    Transition{Phase::kTrial, Event::kTrialPassed, &trial_passed},
    Transition{Phase::kTrial, Event::kBoot, &boot_during_trial},
    Transition{Phase::kTrial, Event::kRevoked, &revoked},
};

constexpr std::size_t index_of(Phase p) {
  return static_cast<std::size_t>(p);
}
constexpr std::size_t index_of(Event e) {
  return static_cast<std::size_t>(e);
}

constexpr bool table_has_no_duplicates() {
  for (std::size_t i = 0; i < kTransitions.size(); ++i) {
    for (std::size_t j = i + 1; j < kTransitions.size(); ++j) {
      if (kTransitions[i].phase == kTransitions[j].phase &&
          kTransitions[i].event == kTransitions[j].event) {
        return false;
      }
    }
  }
  return true;
}
static_assert(table_has_no_duplicates(), "a (phase, event) pair is listed twice");

// The table as a dense index, built at compile time, so a step costs one lookup
// (the simulator runs millions of devices through it).
using Index = std::array<std::array<Handler, kAgentEventKindCount>, kAgentPhaseCount>;
constexpr Index build_index() {
  Index index{};
  for (const Transition& t : kTransitions) index[index_of(t.phase)][index_of(t.event)] = t.handler;
  return index;
}
constexpr Index kIndex = build_index();

Handler lookup(Phase phase, Event event) {
  if (index_of(phase) >= kAgentPhaseCount || index_of(event) >= kAgentEventKindCount) {
    return nullptr;
  }
  return kIndex[index_of(phase)][index_of(event)];
}

// ---- helpers -------------------------------------------------------------------

bool is_install_phase(Phase p) {
  switch (p) {
    case Phase::kDownloading:
    case Phase::kVerifying:
    case Phase::kStaged:
    case Phase::kActivating:
    case Phase::kTrial:
      return true;
    case Phase::kIdle:
    case Phase::kCommitted:
    case Phase::kRolledBack:
      return false;
  }
  return false;
}

std::string name_of(const std::optional<Version>& v) {
  return v ? v->to_string() : std::string("the shipped version");
}

// Where an install that did not reach a trial lands.
Phase stable_phase(const AgentRecord& r) {
  return r.good ? Phase::kCommitted : Phase::kIdle;
}

AgentAction action(Act kind, const std::optional<Version>& version = std::nullopt) {
  AgentAction a;
  a.kind = kind;
  a.version = version;
  return a;
}

AgentAction report(Report what, const std::optional<Version>& version, std::string detail) {
  AgentAction a;
  a.kind = Act::kReport;
  a.version = version;
  a.report = what;
  a.detail = std::move(detail);
  return a;
}

AgentStep step(AgentRecord record, std::vector<AgentAction> actions, std::string reason) {
  AgentStep s;
  s.record = std::move(record);
  s.actions = std::move(actions);
  s.reason = std::move(reason);
  return s;
}

// Leaves the install state: no candidate, no budget.
void clear_candidate(AgentRecord& r) {
  r.candidate.reset();
  r.starts_left = 0;
  r.trial_started_at = 0;
}

// Gives up the version in the other slot (and the unclean-boot count on good).
void forget_previous(AgentRecord& r) {
  r.previous.reset();
  r.previous_in_slot = false;
  r.unclean_boots = 0;
}

// Appends `v` to the bad list unless it is there; forgets the oldest entries
// beyond `max`.
void mark_bad(AgentRecord& r, const Version& v, std::size_t max) {
  if (!r.is_bad(v)) r.bad.push_back(v);
  if (r.bad.size() > max) {
    r.bad.erase(r.bad.begin(), r.bad.begin() + static_cast<std::ptrdiff_t>(r.bad.size() - max));
  }
}

// The one way back to last-known-good: mark the candidate bad, point the active
// slot back, and start what ran before. The record is durable before the revert;
// should the machine die between the two, the next boot re-asserts the slot
// (boot_when_stable).
AgentStep fall_back(const Input& in, const std::string& why) {
  AgentRecord r = in.record;
  const Version failed = *r.candidate;
  mark_bad(r, failed, in.config.max_bad_versions);
  clear_candidate(r);
  r.phase = Phase::kRolledBack;
  std::string reason = "fell back from " + failed.to_string() + " to " + name_of(r.good) + ": " +
                       why + "; " + failed.to_string() + " is marked bad";
  return step(r,
              {action(Act::kPersist), action(Act::kRevert, r.good),
               report(Report::kRolledBack, failed, why), action(Act::kStartService, r.good)},
              std::move(reason));
}

// The way back from a committed version: the other slot still holds what ran
// before it. The record is durable first, as in fall_back; then the service
// stops (it may be running the version given up) before the slot moves back.
AgentStep fall_back_from_committed(const Input& in, const std::string& why) {
  AgentRecord r = in.record;
  const Version failed = *r.good;
  mark_bad(r, failed, in.config.max_bad_versions);
  r.good = r.previous;
  forget_previous(r);
  r.phase = Phase::kRolledBack;
  std::string reason = "fell back from committed " + failed.to_string() + " to " +
                       name_of(r.good) + " (the other slot): " + why + "; " +
                       failed.to_string() + " is marked bad";
  return step(r,
              {action(Act::kPersist), action(Act::kStopService), action(Act::kRevert, r.good),
               report(Report::kRolledBack, failed, why), action(Act::kStartService, r.good)},
              std::move(reason));
}

// Spends one start of the trial budget and starts the candidate, or falls back
// when none is left. The decremented budget is durable before the start.
AgentStep start_on_budget(const Input& in, AgentRecord r, std::vector<AgentAction> reports,
                          const std::string& why) {
  if (r.starts_left == 0) {
    return fall_back(in, why + ", no start of the budget left");
  }
  --r.starts_left;
  r.phase = Phase::kTrial;
  const Version candidate = *r.candidate;
  std::vector<AgentAction> actions{action(Act::kPersist)};
  for (AgentAction& a : reports) actions.push_back(std::move(a));
  actions.push_back(action(Act::kStartService, candidate));
  const std::uint32_t used =
      in.config.start_budget - std::min(in.config.start_budget, r.starts_left);
  std::string reason = why + ": starting " + candidate.to_string() + " (start " +
                       std::to_string(used) + " of " + std::to_string(in.config.start_budget) +
                       ", " + std::to_string(r.starts_left) + " left)";
  return step(std::move(r), std::move(actions), std::move(reason));
}

AgentStep reject(const Input& in, const Version& offered) {
  return step(in.record, {report(Report::kRejected, offered, "failed on this device before")},
              "offered " + offered.to_string() +
                  ", which failed on this device before: not installing it again");
}

AgentStep start_install(const Input& in, const Version& offered, std::string why) {
  AgentRecord r = in.record;
  clear_candidate(r);
  forget_previous(r);  // the other slot is about to be written
  r.candidate = offered;
  r.phase = Phase::kDownloading;
  return step(r, {action(Act::kPersist), action(Act::kDownload, offered)},
              std::move(why) + ": downloading " + offered.to_string());
}

// ---- handlers ------------------------------------------------------------------

Result<AgentStep> offer_when_stable(const Input& in) {
  const Version& offered = *in.event.version;
  if (in.record.is_bad(offered)) return reject(in, offered);
  if (in.record.running() == offered) {
    return step(in.record, {}, "offered " + offered.to_string() + ", already running it");
  }
  return start_install(
      in, offered, "offered " + offered.to_string() + " while running " + name_of(in.record.good));
}

Result<AgentStep> offer_while_installing(const Input& in) {
  const Version& offered = *in.event.version;
  const Version& candidate = *in.record.candidate;
  if (in.record.is_bad(offered)) return reject(in, offered);
  if (offered == candidate) {
    return step(in.record, {}, "offered " + offered.to_string() + ", already installing it");
  }
  if (in.record.good == offered) {
    // The server wants what already runs (a fleet rollback): drop the install.
    AgentRecord r = in.record;
    clear_candidate(r);
    r.phase = stable_phase(r);
    return step(r, {action(Act::kPersist)},
                "offered " + offered.to_string() + ", which runs already: abandoned " +
                    candidate.to_string());
  }
  return start_install(in, offered,
                       "offered " + offered.to_string() + ": abandoned " + candidate.to_string());
}

Result<AgentStep> offer_during_trial(const Input& in) {
  const Version& offered = *in.event.version;
  const Version& candidate = *in.record.candidate;
  if (in.record.is_bad(offered)) return reject(in, offered);
  if (offered == candidate) {
    return step(in.record, {}, "offered " + offered.to_string() + ", already on trial");
  }
  // Leaving a trial half-way would lose what it proves; the server offers again.
  return make_error(ErrorCode::kConflict,
                    "offered " + offered.to_string() + " while " + candidate.to_string() + " is " +
                        std::string(to_string(in.record.phase)) + ": finish the trial first");
}

// The running version is not on trial: it restarts forever, no budget applies.
Result<AgentStep> restart_running_version(const Input& in) {
  const std::optional<Version>& running = in.record.good;
  return step(
      in.record,
      {report(Report::kCrash, running, in.event.detail), action(Act::kStartService, running)},
      "service on " + name_of(running) + " exited (" + in.event.detail +
          "): restarting it, no start budget applies outside a trial");
}

// At boot outside a trial the record, not the active slot, is the truth: the
// machine may have died between persisting a fallback (or a commit without
// fallback) and moving the pointer. Point the slot at `good` again (idempotent)
// before anything starts, or a bad candidate would crash-loop with no budget.
Result<AgentStep> boot_when_stable(const Input& in) {
  return step(in.record,
              {action(Act::kRevert, in.record.good), action(Act::kStartService, in.record.good)},
              "agent started: starting " + name_of(in.record.good));
}

// Downloading..Staged: keep the old version protecting the machine and fetch the
// candidate again (idempotent; the partial state of the last run is not trusted).
Result<AgentStep> boot_resume_install(const Input& in) {
  AgentRecord r = in.record;
  r.phase = Phase::kDownloading;
  const Version candidate = *r.candidate;
  return step(std::move(r),
              {action(Act::kRevert, in.record.good), action(Act::kStartService, in.record.good),
               action(Act::kDownload, candidate)},
              "agent started during the install of " + candidate.to_string() + ": starting " +
                  name_of(in.record.good) + ", downloading again");
}

Result<AgentStep> boot_during_trial(const Input& in) {
  if (!in.event.clean) {
    // The machine itself died with the candidate active. Fall back now, before the
    // candidate loads again: the OS may stop booting after two failed boots.
    return fall_back(in, "machine restarted during trial");
  }
  if (in.record.phase == Phase::kActivating) {
    // No start of the candidate has happened yet (that is persisted first).
    return step(in.record, {action(Act::kActivate, in.record.candidate)},
                "agent restarted cleanly while activating " + in.record.candidate->to_string() +
                    ": activating again");
  }
  return start_on_budget(in, in.record, {}, "agent restarted cleanly during trial");
}

Result<AgentStep> downloaded(const Input& in) {
  AgentRecord r = in.record;
  r.phase = Phase::kVerifying;
  const Version candidate = *r.candidate;
  return step(std::move(r), {action(Act::kVerify, candidate)},
              "downloaded " + candidate.to_string() + ": verifying");
}

// kDownloadFailed and kVerifyFailed: back to what runs. A permanent failure (the
// content violates the contract) marks the version bad and reports install_failed;
// anything else (network, TUF, hash: what a hostile network can cause) reports
// download_failed and leaves the version to be tried again, so an attacker on the
// path cannot make a device ban a good release.
Result<AgentStep> install_failed(const Input& in) {
  AgentRecord r = in.record;
  const Version failed = *r.candidate;
  const bool permanent = in.event.kind == Event::kVerifyFailed && in.event.permanent;
  if (permanent) mark_bad(r, failed, in.config.max_bad_versions);
  clear_candidate(r);
  r.phase = stable_phase(r);
  std::string reason = std::string(to_string(in.event.kind)) + " for " + failed.to_string() + " (" +
                       in.event.detail + "): staying on " + name_of(r.good);
  if (permanent) reason += "; " + failed.to_string() + " is marked bad";
  return step(std::move(r),
              {action(Act::kPersist),
               report(permanent ? Report::kInstallFailed : Report::kDownloadFailed, failed,
                      in.event.detail)},
              std::move(reason));
}

Result<AgentStep> verified(const Input& in) {
  AgentRecord r = in.record;
  r.phase = Phase::kStaged;
  const Version candidate = *r.candidate;
  return step(std::move(r), {action(Act::kWriteSlot, candidate)},
              "verified " + candidate.to_string() + ": writing the inactive slot");
}

Result<AgentStep> slot_written(const Input& in) {
  AgentRecord r = in.record;
  const Version candidate = *r.candidate;
  if (!in.config.fallback) {
    // The 2024 model: nothing to fall back to, so the new version is simply it.
    r.good = candidate;
    clear_candidate(r);
    r.phase = Phase::kCommitted;
    return step(
        std::move(r),
        {action(Act::kPersist), action(Act::kActivate, candidate),
         report(Report::kCommitted, candidate, "no fallback configured"),
         action(Act::kStartService, candidate)},
        "slot written: committing " + candidate.to_string() + " at once (fallback off, no trial)");
  }
  // The budget is durable before the active pointer moves.
  r.phase = Phase::kActivating;
  r.starts_left = in.config.start_budget;
  r.trial_started_at = in.now;
  return step(std::move(r), {action(Act::kPersist), action(Act::kActivate, candidate)},
              "slot written: activating " + candidate.to_string() + " on a budget of " +
                  std::to_string(in.config.start_budget) + " starts");
}

Result<AgentStep> activated(const Input& in) {
  const Version candidate = *in.record.candidate;
  return start_on_budget(in, in.record, {report(Report::kInstalled, candidate, "trial started")},
                         "activated " + candidate.to_string());
}

Result<AgentStep> exit_while_activating(const Input& in) {
  return step(in.record, {},
              "service exited (" + in.event.detail + ") while activating " +
                  in.record.candidate->to_string() +
                  ": it starts on the candidate when activation completes");
}

// kServiceExited and kHealthFailed: each costs one start of the budget.
Result<AgentStep> trial_crashed(const Input& in) {
  const Version candidate = *in.record.candidate;
  const std::string what = in.event.kind == Event::kHealthFailed
                               ? "health check failed (" + in.event.detail + ")"
                               : "service exited (" + in.event.detail + ")";
  return start_on_budget(in, in.record, {report(Report::kCrash, candidate, in.event.detail)},
                         what + " on trial");
}

Result<AgentStep> trial_passed(const Input& in) {
  AgentRecord r = in.record;
  const Version candidate = *r.candidate;
  r.previous = r.good;  // the other slot keeps what ran before: the way back
  r.previous_in_slot = true;
  r.unclean_boots = 0;
  r.good = candidate;
  clear_candidate(r);
  r.phase = Phase::kCommitted;
  return step(std::move(r),
              {action(Act::kPersist), report(Report::kCommitted, candidate, "trial passed")},
              "trial of " + candidate.to_string() + " passed: committed");
}

// Committed: a clean boot proves nothing wrong; an unclean one counts against
// the committed version until the service has stayed up for a trial window
// (kStayedUp). The k-th in a row gives the version up for the other slot, before
// it runs again: the OS may stop booting on its own after a few failed boots.
Result<AgentStep> boot_when_committed(const Input& in) {
  AgentRecord r = in.record;
  const std::uint32_t k = in.config.max_unclean_boots;
  const std::string running = name_of(r.good);
  std::vector<AgentAction> actions{action(Act::kRevert, r.good), action(Act::kStartService, r.good)};
  const bool can_fall_back = in.config.fallback && k > 0 && r.previous_in_slot;
  if (in.event.clean || !can_fall_back) {
    std::string reason = "agent started: starting " + running;
    if (!in.event.clean) {
      reason = "agent started after an unclean boot (" +
               std::string(r.previous_in_slot ? "no fallback from a committed version configured"
                                              : "nothing to fall back to in the other slot") +
               "): starting " + running;
    }
    if (r.unclean_boots != 0) {  // a clean boot forgives
      r.unclean_boots = 0;
      actions.insert(actions.begin(), action(Act::kPersist));
    }
    return step(std::move(r), std::move(actions), std::move(reason));
  }
  const std::uint32_t n = r.unclean_boots + 1;
  const std::string count = std::to_string(n) + " unclean boot" + (n == 1 ? "" : "s") +
                            " in a row on " + running;
  if (n >= k) return fall_back_from_committed(in, count);
  r.unclean_boots = n;
  actions.insert(actions.begin(), action(Act::kPersist));  // durable before it may crash again
  return step(std::move(r), std::move(actions),
              "agent started after " + count + " (falls back at " + std::to_string(k) +
                  " unless it stays up for the trial window): starting " + running);
}

Result<AgentStep> stayed_up(const Input& in) {
  if (in.record.unclean_boots == 0) return step(in.record, {}, "up since the last boot");
  AgentRecord r = in.record;
  r.unclean_boots = 0;
  return step(std::move(r), {action(Act::kPersist)},
              name_of(in.record.good) +
                  " stayed up for the trial window: its unclean boots are forgiven");
}

// The server marks a version bad (its rollout is sent back). If it runs or is
// on trial here, the device leaves it now, without waiting for a download: the
// other slot, or the fallback of a trial; it is then marked bad, as every
// version the device fell back from. An install of it is abandoned. Anything
// else is left alone: a version that never ran here did not fail here, and the
// server decides what it offers (an operator may roll it out again).
Result<AgentStep> revoked(const Input& in) {
  const Version& bad = *in.event.version;
  const AgentRecord& rec = in.record;
  const std::string why = "the server marks " + bad.to_string() + " bad";
  if (rec.candidate == bad) {
    if (rec.phase == Phase::kActivating || rec.phase == Phase::kTrial) return fall_back(in, why);
    AgentRecord r = rec;  // installing it: abandon the install
    clear_candidate(r);
    r.phase = stable_phase(r);
    return step(std::move(r), {action(Act::kPersist)},
                why + ": abandoned its install, staying on " + name_of(rec.good));
  }
  if (rec.phase == Phase::kCommitted && rec.good == bad && in.config.fallback &&
      rec.previous_in_slot) {
    return fall_back_from_committed(in, why);
  }
  if (rec.good == bad) {
    return step(rec, {}, why + ": nothing in the other slot to go back to, the server's offer decides");
  }
  return step(rec, {}, why + ": not running it, nothing to do");
}

Status check_config(const AgentConfig& c) {
  if (c.fallback && c.start_budget == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "agent config: start_budget must be at least 1 with fallback on");
  }
  if (c.trial_window < 0) {
    return make_error(ErrorCode::kInvalidArgument, "agent config: trial_window is negative");
  }
  if (c.max_bad_versions == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "agent config: max_bad_versions must be at least 1");
  }
  return Ok{};
}

Status check_record(const AgentRecord& r) {
  if (is_install_phase(r.phase) != r.candidate.has_value()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "agent record: phase '" + std::string(to_string(r.phase)) +
                          (r.candidate ? "' has a candidate (" + r.candidate->to_string() + ")"
                                       : "' has no candidate"));
  }
  if ((r.previous_in_slot || r.unclean_boots != 0) && r.phase != Phase::kCommitted) {
    return make_error(ErrorCode::kInvalidArgument,
                      "agent record: phase '" + std::string(to_string(r.phase)) +
                          "' has a previous slot or unclean boots (only committed has)");
  }
  return Ok{};
}

}  // namespace

bool AgentRecord::is_bad(const Version& v) const {
  return std::find(bad.begin(), bad.end(), v) != bad.end();
}

std::optional<Version> AgentRecord::running() const {
  if ((phase == AgentPhase::kActivating || phase == AgentPhase::kTrial) && candidate) {
    return candidate;
  }
  return good;
}

Result<AgentStep> agent_step(const AgentConfig& config, const AgentRecord& record,
                             const AgentEvent& event, TimeMs now) {
  const Handler handler = lookup(record.phase, event.kind);
  if (handler == nullptr) {
    return make_error(ErrorCode::kInvalidTransition,
                      "agent: no transition for event '" + std::string(to_string(event.kind)) +
                          "' in phase '" + std::string(to_string(record.phase)) + "'");
  }
  if (Status s = check_config(config); !s) return s.error();
  if (Status s = check_record(record); !s) return s.error();
  if ((event.kind == Event::kOffer || event.kind == Event::kRevoked) && !event.version) {
    return make_error(ErrorCode::kInvalidArgument,
                      "agent: " + std::string(to_string(event.kind)) + " without a version");
  }

  Result<AgentStep> result = handler(Input{config, record, event, now});
  if (!result) return result;
  AgentStep& s = *result;
  if (s.record.phase == Phase::kTrial) {
    // check_config bounds trial_window below only: a window of "forever" from a
    // config file must mean never, not a wrapped time in the past.
    s.recheck_at = saturating_add(s.record.trial_started_at, config.trial_window);
  } else if (s.record.phase == Phase::kCommitted && s.record.unclean_boots > 0 &&
             event.kind == Event::kBoot) {
    s.recheck_at = saturating_add(now, config.trial_window);
  }
  TRANCHE_ASSERT(check_record(s.record).ok(), "agent step produced an inconsistent record");
  TRANCHE_ASSERT(s.record.bad.size() <= std::max(record.bad.size(), config.max_bad_versions),
                 "agent bad list grew past its bound");
  return result;
}

bool agent_accepts(AgentPhase phase, AgentEvent::Kind kind) {
  return lookup(phase, kind) != nullptr;
}

std::string_view to_string(AgentPhase phase) {
  switch (phase) {
    case AgentPhase::kIdle:
      return "idle";
    case AgentPhase::kDownloading:
      return "downloading";
    case AgentPhase::kVerifying:
      return "verifying";
    case AgentPhase::kStaged:
      return "staged";
    case AgentPhase::kActivating:
      return "activating";
    case AgentPhase::kTrial:
      return "trial";
    case AgentPhase::kCommitted:
      return "committed";
    case AgentPhase::kRolledBack:
      return "rolled_back";
  }
  return "unknown";
}

std::string_view to_string(AgentEvent::Kind kind) {
  switch (kind) {
    case Event::kOffer:
      return "offer";
    case Event::kDownloaded:
      return "downloaded";
    case Event::kDownloadFailed:
      return "download_failed";
    case Event::kVerified:
      return "verified";
    case Event::kVerifyFailed:
      return "verify_failed";
    case Event::kSlotWritten:
      return "slot_written";
    case Event::kActivated:
      return "activated";
    case Event::kServiceExited:
      return "service_exited";
    case Event::kTrialPassed:
      return "trial_passed";
    case Event::kHealthFailed:
      return "health_failed";
    case Event::kBoot:
      return "boot";
    case Event::kRevoked:
      return "revoked";
    case Event::kStayedUp:
      return "stayed_up";
  }
  return "unknown";
}

std::string_view to_string(AgentAction::Kind kind) {
  switch (kind) {
    case Act::kPersist:
      return "persist";
    case Act::kDownload:
      return "download";
    case Act::kVerify:
      return "verify";
    case Act::kWriteSlot:
      return "write_slot";
    case Act::kActivate:
      return "activate";
    case Act::kRevert:
      return "revert";
    case Act::kStartService:
      return "start_service";
    case Act::kStopService:
      return "stop_service";
    case Act::kReport:
      return "report";
  }
  return "unknown";
}

std::string_view to_string(AgentAction::Report report) {
  switch (report) {
    case Report::kNone:
      return "none";
    case Report::kInstallFailed:
      return "install_failed";
    case Report::kDownloadFailed:
      return "download_failed";
    case Report::kInstalled:
      return "installed";
    case Report::kCommitted:
      return "committed";
    case Report::kCrash:
      return "crash";
    case Report::kRolledBack:
      return "rolled_back";
    case Report::kRejected:
      return "rejected";
  }
  return "unknown";
}

std::optional<DeviceEventKind> device_event_of(AgentAction::Report report) {
  switch (report) {
    case Report::kInstallFailed: return DeviceEventKind::kInstallFailed;
    case Report::kDownloadFailed: return DeviceEventKind::kDownloadFailed;
    case Report::kInstalled: return DeviceEventKind::kInstalled;
    case Report::kCrash: return DeviceEventKind::kCrashed;
    case Report::kRolledBack: return DeviceEventKind::kRolledBack;
    case Report::kRejected: return DeviceEventKind::kOfferRefused;
    case Report::kCommitted:
    case Report::kNone: return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace tranche::core
