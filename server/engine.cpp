#include "server/engine.h"

#include <algorithm>
#include <cmath>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "server/codec.h"

namespace tranche::server {
namespace json = boost::json;
using core::ErrorCode;
using core::make_error;

RolloutEngine::RolloutEngine(Ports ports, Settings settings)
    : ports_(std::move(ports)), settings_(std::move(settings)) {}

core::GateObservation RolloutEngine::observe(const RolloutInfo& r, TimeMs now) {
  const core::DurationMs bake =
      r.status.stage < r.plan.stages.size() ? r.plan.stages[r.status.stage].bake : 0;
  return core::observe(r.tally(),
                       std::max<core::DurationMs>(0, now - r.status.stage_started_at), bake);
}

namespace {

std::string gate_json_of(const RolloutInfo& r) {
  GateRecord rec;
  rec.state = r.gate;
  rec.evidence = r.tally();
  rec.strata = r.strata;
  return json::serialize(gate_to_json(rec));
}

}  // namespace

void RolloutEngine::save_gate_evidence(const RolloutInfo& r, TimeMs now) {
  std::lock_guard lock(ports_.store_mu);
  auto st = ports_.store.save_gate(r.row.id, r.row.generation, gate_json_of(r), now);
  if (!st) spdlog::warn("engine: gate evidence of {} not saved: {}", r.row.id, st.error().to_string());
}

core::Result<std::shared_ptr<const RolloutInfo>> RolloutEngine::transition(
    const std::string& rollout_id, core::RolloutEvent event, const std::string& actor,
    std::string reason, TimeMs now, const std::function<void(RolloutInfo&)>& amend) {
  std::lock_guard engine_lock(mu_);
  auto snap = ports_.fleet.snapshot();
  auto it = snap->rollouts.find(rollout_id);
  if (it == snap->rollouts.end()) {
    return make_error(ErrorCode::kNotFound, "rollout '" + rollout_id + "' does not exist");
  }
  const RolloutInfo& cur = *it->second;
  auto next = std::make_shared<RolloutInfo>(cur);
  if (amend) amend(*next);
  auto t = core::apply_event(cur.status, event, cur.plan, now, reason, next->coverage);
  if (!t) return t.error();

  next->status = t->next;
  next->row.status_json = json::serialize(status_to_json(next->status));
  next->row.gate_json = gate_json_of(*next);
  next->row.generation = cur.row.generation + 1;
  next->row.updated_at = now;
  store::TransitionRow tr{rollout_id, next->row.generation, std::string(core::to_string(cur.status.state)),
                          std::string(core::to_string(next->status.state)),
                          std::string(core::to_string(event)), reason, now};
  store::AuditRow audit_row{0, now, actor, "rollout." + std::string(core::to_string(event)),
                            "rollout " + rollout_id, reason};
  {
    // Persisted before anything acts on it: the snapshot (what check-ins see)
    // changes only after the store has the transition.
    std::lock_guard lock(ports_.store_mu);
    if (auto st = ports_.store.update_rollout(next->row, cur.row.generation, tr, audit_row); !st) {
      return st.error();
    }
  }
  ports_.metrics.transitions.fetch_add(1);
  spdlog::info("rollout {}: {} -> {} ({}) by {}: {}", rollout_id, tr.from_state, tr.to_state,
               tr.event, actor, reason);
  std::shared_ptr<const RolloutInfo> published = next;
  ports_.fleet.update([&](Snapshot& s) {
    s.rollouts[rollout_id] = published;
    if (published->live()) {
      s.live_rollout[published->channel] = rollout_id;
    } else if (auto lr = s.live_rollout.find(published->channel);
               lr != s.live_rollout.end() && lr->second == rollout_id) {
      s.live_rollout.erase(lr);
    }
    if (published->status.state == core::RolloutState::kCompleted) {
      auto& baseline = s.channels[published->channel].baseline;
      if (!baseline || *baseline < published->version) baseline = published->version;
    }
  });
  return published;
}

core::Result<core::EvidenceTally> RolloutEngine::summed_evidence(const std::string& rollout, TimeMs now,
                                                               Fleet::ScanResult& scan) {
  // Counts of servers that wrote within a few ticks: a dead server's devices
  // are counted by whichever servers took them.
  const TimeMs fresh_since =
      now - std::max<TimeMs>(3 * settings_.tick, 2 * core::kSecond);
  core::Result<store::EvidenceSums> sums = store::EvidenceSums{};
  {
    std::lock_guard lock(ports_.store_mu);
    sums = ports_.store.load_evidence(rollout, fresh_since);
  }
  if (!sums) return sums.error();
  core::EvidenceTally tally;
  for (const auto& c : sums->counts) {
    auto standing = core::parse_standing(c.standing);
    auto cause = core::parse_failure_cause(c.failure);
    if (!standing || !cause || c.devices < 0) {
      return core::make_error(ErrorCode::kInvalidArgument,
                              "rollout " + rollout + ": stored standing '" + c.standing + "'/'" +
                                  c.failure + "' unknown");
    }
    core::count_standing(tally, *standing, *cause, static_cast<std::uint64_t>(c.devices));
  }
  tally.exposed.exposure_s = static_cast<double>(sums->exposed_ms) / 1000.0;
  tally.control.exposure_s = static_cast<double>(sums->control_ms) / 1000.0;
  scan.coverage.target = static_cast<std::uint64_t>(std::max<std::int64_t>(0, sums->coverage_target));
  scan.coverage.running = static_cast<std::uint64_t>(std::max<std::int64_t>(0, sums->coverage_running));
  scan.online_on_version = static_cast<std::uint64_t>(std::max<std::int64_t>(0, sums->online_on_version));
  return tally;
}

void RolloutEngine::tick(bool leader) {
  const TimeMs now = ports_.clock.now();
  ports_.metrics.engine_ticks.fetch_add(1);
  auto snap = ports_.fleet.snapshot();
  // One pass over the devices this server owns: exposure since the last tick,
  // silence, and what completion and a rollback's end need (Fleet::scan,
  // core/evidence.h).
  std::vector<std::string> changed;
  auto scans = ports_.fleet.scan(snap, now, last_accrual_ > 0 ? now - last_accrual_ : 0, changed);
  last_accrual_ = now;
  for (auto& device : changed) ports_.write(DeviceWrite{std::move(device), {}, true, nullptr});
  if (settings_.shared) {
    // This server's share, for the leader to sum.
    for (const auto& [id, scan] : scans) {
      auto it = snap->rollouts.find(id);
      if (it == snap->rollouts.end()) continue;
      const core::EvidenceTally mine = it->second->evidence->tally();
      store::ExposureRow row{id,
                             settings_.server_id,
                             std::llround(mine.exposed.exposure_s * 1000.0),
                             std::llround(mine.control.exposure_s * 1000.0),
                             static_cast<std::int64_t>(scan.coverage.target),
                             static_cast<std::int64_t>(scan.coverage.running),
                             static_cast<std::int64_t>(scan.online_on_version),
                             now};
      std::lock_guard lock(ports_.store_mu);
      if (auto st = ports_.store.save_exposure(row); !st) {
        spdlog::warn("engine: exposure of {} not saved: {}", id, st.error().to_string());
      }
    }
  }
  if (!leader) return;
  for (const auto& [channel, id] : snap->live_rollout) {
    auto sc = scans.find(id);
    if (sc == scans.end()) continue;
    Fleet::ScanResult scan = sc->second;
    // Several servers: the evidence of all of them, from the store's rows.
    std::optional<core::EvidenceTally> summed;
    if (settings_.shared) {
      auto all = summed_evidence(id, now, scan);
      if (!all) {
        spdlog::error("engine: evidence of rollout {} not read; no decision this tick: {}", id,
                      all.error().to_string());
        continue;
      }
      summed = *all;
    }

    // Decide on the rollout as it is now (an operator may have acted since the
    // snapshot above was taken).
    std::lock_guard engine_lock(mu_);
    auto fresh = ports_.fleet.snapshot();
    auto fit = fresh->rollouts.find(id);
    if (fit == fresh->rollouts.end()) continue;
    auto cur_ptr = std::make_shared<RolloutInfo>(*fit->second);
    if (summed) {
      // The rows only grow, so the sum cannot fall below what the gate saw; if
      // it ever did (a row lost by hand?), the gate keeps what it saw.
      const core::GateState& g = fit->second->gate;
      if (summed->exposed.exposure_s < g.seen_exposed.exposure_s ||
          summed->control.exposure_s < g.seen_control.exposure_s) {
        spdlog::warn("engine: rollout {}: the stored exposure is below what the gate saw; keeping that", id);
        summed->exposed.exposure_s = std::max(summed->exposed.exposure_s, g.seen_exposed.exposure_s);
        summed->control.exposure_s = std::max(summed->control.exposure_s, g.seen_control.exposure_s);
      }
      cur_ptr->summed = summed;
    }
    const RolloutInfo& cur = *cur_ptr;

    if (cur.status.state == core::RolloutState::kRollingBack) {
      if (scan.online_on_version == 0) {
        (void)transition(id, core::RolloutEvent::kRollbackDone, "engine",
                         "no reachable device runs " + cur.version.to_string() + " any more", now);
      }
      continue;
    }
    if (cur.status.state != core::RolloutState::kRunning) continue;

    auto decision =
        core::decide_tick(cur.status, cur.plan, cur.gate, observe(cur, now), now, scan.coverage);
    // What the decision came from: the gate's state and verdict, the evidence
    // and the coverage.
    auto amend = [&](RolloutInfo& r) {
      r.gate = decision.gate.state;
      r.verdict = decision.gate.verdict;
      r.coverage = scan.coverage;
      r.online_on_version = scan.online_on_version;
      if (summed) r.summed = summed;
    };
    if (decision.event == core::RolloutEvent::kHold) {
      // No transition: the snapshot shows the look (the API reads it), the store
      // keeps the evidence.
      auto next = std::make_shared<RolloutInfo>(cur);
      amend(*next);
      next->status.reason = decision.reason;
      next->status.recheck_at = decision.recheck_at;
      // A look that holds changes no device's answer: held check-ins stay put.
      ports_.fleet.update([&](Snapshot& s) { s.rollouts[id] = next; }, false);
      save_gate_evidence(*next, now);
      continue;
    }
    // Promote or halt: published with the new state in one snapshot, so nobody
    // sees a halted gate on a rollout still running.
    auto done = transition(id, decision.event, "engine", decision.reason, now, amend);
    if (!done) {
      spdlog::error("engine: {} on rollout {} not applied: {}", core::to_string(decision.event), id,
                    done.error().to_string());
    }
  }
}

}  // namespace tranche::server
