// Property: the server and the simulator count the same evidence.
//
// 10,000 random device traces (devices that come online, check in, are offered
// the release, run it in their trial or healthily, report failures of it or of
// the old version, fail to download, say goodbye, or drop off without one) are
// replayed through both paths into core's evidence model:
//  - the server's: server::Fleet — check_in, answer + note_offers, record_events
//    and the engine's scan (online by heartbeat, silence by core::is_silent);
//  - the simulator's: sim::RunEvidence — presence (a device that dropped off
//    without a goodbye is presumed online until its silence fires, at last
//    heartbeat + heartbeat_interval x silent_after_missed + 1 ms, as the
//    simulator schedules it) and the facts the simulator records.
// After every tick both tallies, every device's standing and the gate's
// decision must be identical.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>

#include "config/plan_yaml.h"
#include "core/evidence.h"
#include "core/rollout_machine.h"
#include "server/fleet.h"
#include "tests/server/fleet_fixture.h"
#include "sim/run_evidence.h"

namespace tranche {
namespace {

using core::Fact;
using core::TimeMs;

constexpr TimeMs kT0 = 1'800'000'000'000;
constexpr core::DurationMs kTick = 1000;
constexpr core::DurationMs kHeartbeat = 1000;
constexpr std::uint32_t kMissed = 3;

const char* kPlan = R"(name: one
gate: {alpha: 0.01, alternative_ratio: 4, min_acknowledged: 1, heartbeat_interval: 1s,
       silent_after_missed: 3, tick: 1s}
stages:
  - {name: all, percent: 100%, bake: 5s}
)";

core::Version v(const char* text) {
  return core::Version::parse(text).value();
}

// A device as the trace sees it.
struct TraceDevice {
  enum class Where { kNeverSeen, kOnline, kDropped, kGone } where = Where::kNeverSeen;
  enum class Runs { kOld, kTrial, kHealthy } runs = Runs::kOld;
  bool offered = false;  // the server's answer told it to install 2.0
  bool done = false;     // failed or banned: the trace stops moving it on 2.0
  TimeMs last_heard = 0;
  TimeMs silence_at = 0;  // the simulator's silence event (0: none pending)
  std::int64_t seq = 0;
};

class Paths {
 public:
  explicit Paths(std::size_t n) : devices_(n), sim_(static_cast<std::uint32_t>(n)) {
    auto plan = config::parse_plan(kPlan, "plan");
    EXPECT_TRUE(plan.ok());
    auto info = testing::running_rollout(*plan, "c", kT0);
    rollout_ = info;
    for (std::size_t d = 0; d < n; ++d) {
      server::Device dev;
      dev.key = id(d);
      dev.tenant = "t";
      dev.versions.emplace("c", v("1.0"));
      EXPECT_TRUE(fleet_.add_device(std::move(dev)).ok());
    }
    fleet_.update([&](server::Snapshot& s) {
      testing::add_channel(s, "c", {"1.0", "2.0"});
      s.rollouts["r"] = rollout_;
      s.live_rollout["c"] = "r";
    });
  }

  static std::string id(std::size_t d) { return "dev-" + std::to_string(d); }

  // --- what happens to device d at `now` (within the tick before `tick_at`) ---

  void come_online(std::size_t d, TimeMs now) {
    auto& t = devices_[d];
    const sim::Presence was = presence(t);
    t.where = TraceDevice::Where::kOnline;
    t.silence_at = 0;
    sim_.presence_changed(static_cast<std::uint32_t>(d), was, sim::Presence::kOnline);
    check_in(d, now);
  }
  void check_in(std::size_t d, TimeMs now) {
    auto& t = devices_[d];
    t.last_heard = now;
    const bool healthy = t.runs != TraceDevice::Runs::kTrial;
    std::map<std::string, core::Version> versions{
        {"c", t.runs == TraceDevice::Runs::kOld ? v("1.0") : v("2.0")}};
    auto snap = fleet_.snapshot();
    ASSERT_TRUE(fleet_
                    .with_device(id(d),
                                 [&](server::Device& dev) {
                                   (void)fleet_.check_in(dev, *snap, versions, "{}", healthy, now, 0);
                                 })
                    .ok());
    // The simulator records what a check-in tells: running 2.0 in its trial is
    // exposure, past it an acknowledgement.
    if (t.runs == TraceDevice::Runs::kTrial) sim_record(d, Fact::kOffered);
    if (t.runs == TraceDevice::Runs::kHealthy) sim_record(d, Fact::kRunsHealthy);
  }
  void offer(std::size_t d, TimeMs now) {
    auto& t = devices_[d];
    auto snap = fleet_.snapshot();
    bool told = false;
    ASSERT_TRUE(fleet_
                    .with_device(id(d),
                                 [&](server::Device& dev) {
                                   const auto answers = server::Fleet::answer(dev, *snap, now);
                                   for (const auto& a : answers)
                                     told = told || (a.assignment.desired &&
                                                     *a.assignment.desired == v("2.0"));
                                   server::Fleet::note_offers(dev, *snap, answers, now);
                                 })
                    .ok());
    t.last_heard = now;
    // The simulator delivers an offer only to a device the server would tell.
    if (told) {
      t.offered = true;
      sim_record(d, Fact::kOffered);
    }
  }
  void event(std::size_t d, core::DeviceEventKind kind, bool about_release, TimeMs now) {
    auto& t = devices_[d];
    server::DeviceEvent e;
    e.seq = ++t.seq;
    e.kind = kind;
    if (kind != core::DeviceEventKind::kGoodbye) {
      e.channel = "c";
      e.version = about_release ? v("2.0") : v("1.0");
    }
    auto snap = fleet_.snapshot();
    ASSERT_TRUE(fleet_
                    .with_device(id(d),
                                 [&](server::Device& dev) {
                                   (void)fleet_.record_events(dev, *snap, {e}, now);
                                 })
                    .ok());
    t.last_heard = now;
    if (kind == core::DeviceEventKind::kGoodbye) {
      sim_.presence_changed(static_cast<std::uint32_t>(d), presence(t), sim::Presence::kOffline);
      t.where = TraceDevice::Where::kGone;
      return;
    }
    sim_record(d, core::fact_of(kind));
    if (core::is_failure(kind) && about_release) {
      t.done = true;
      t.runs = TraceDevice::Runs::kOld;  // it fell back or never ran it
    }
  }
  void drop(std::size_t d) {
    auto& t = devices_[d];
    t.where = TraceDevice::Where::kDropped;  // presumed online until silent
    t.silence_at = t.last_heard + kHeartbeat * kMissed + 1;
  }

  // --- the tick ---
  void tick(TimeMs now) {
    // Online devices check in (the server hears from them each heartbeat).
    for (std::size_t d = 0; d < devices_.size(); ++d) {
      if (devices_[d].where == TraceDevice::Where::kOnline) check_in(d, now);
    }
    // The simulator's silence events up to now.
    for (std::size_t d = 0; d < devices_.size(); ++d) {
      auto& t = devices_[d];
      if (t.where == TraceDevice::Where::kDropped && t.silence_at != 0 && t.silence_at <= now) {
        sim_record(d, Fact::kSilent);
        sim_.presence_changed(static_cast<std::uint32_t>(d), sim::Presence::kOnline,
                              sim::Presence::kOffline);
        t.silence_at = 0;
        t.where = TraceDevice::Where::kGone;
      }
    }
    std::vector<std::string> changed;
    (void)fleet_.scan(fleet_.snapshot(), now, kTick, changed);
    sim_.accrue(kTick);
  }

  core::EvidenceTally server_tally() const { return rollout_->evidence->tally(); }
  const core::EvidenceTally& sim_tally() const { return sim_.tally(); }
  core::Standing server_standing(std::size_t d) {
    core::Standing s = core::Standing::kControl;
    (void)fleet_.with_device(id(d), [&](server::Device& dev) {
      if (const auto* m = dev.find_mark("r")) s = m->standing;
    });
    return s;
  }
  core::Standing sim_standing(std::size_t d) const {
    return sim_.standing(static_cast<std::uint32_t>(d));
  }
  const core::Plan& plan() const { return rollout_->plan; }
  std::vector<TraceDevice>& devices() { return devices_; }

 private:
  static sim::Presence presence(const TraceDevice& t) {
    return t.where == TraceDevice::Where::kOnline || t.where == TraceDevice::Where::kDropped
               ? sim::Presence::kOnline
               : sim::Presence::kOffline;
  }
  void sim_record(std::size_t d, Fact fact) {
    sim_.record(static_cast<std::uint32_t>(d), fact, presence(devices_[d]));
  }

  std::vector<TraceDevice> devices_;
  server::Fleet fleet_;
  std::shared_ptr<server::RolloutInfo> rollout_;
  sim::RunEvidence sim_;
};

std::string describe(const core::EvidenceTally& t) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "exposed %llu/%g s, control %llu/%g s, devices %llu, ack %llu",
                static_cast<unsigned long long>(t.exposed.failures), t.exposed.exposure_s,
                static_cast<unsigned long long>(t.control.failures), t.control.exposure_s,
                static_cast<unsigned long long>(t.exposed_devices),
                static_cast<unsigned long long>(t.acknowledged));
  return buf;
}

TEST(EvidencePaths, TenThousandRandomTracesGiveTheSameCountsAndVerdictsOnBothPaths) {
  constexpr std::uint64_t kSeed = 20261202;
  std::mt19937_64 rng(kSeed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  std::uint64_t halts = 0, promotes = 0, failures = 0, silences = 0;
  for (int trace = 0; trace < 10'000; ++trace) {
    const std::size_t n = 1 + rng() % 12;
    const int ticks = 3 + static_cast<int>(rng() % 25);
    Paths p(n);
    // At the start some devices are online (heard at the rollout's start).
    for (std::size_t d = 0; d < n; ++d) {
      if (chance(0.7)) p.come_online(d, kT0);
    }
    core::RolloutStatus status;
    status.state = core::RolloutState::kRunning;
    status.stage_started_at = kT0;
    core::GateState gate_server, gate_sim;
    for (int k = 1; k <= ticks; ++k) {
      const TimeMs tick_at = kT0 + k * kTick;
      const TimeMs mid = tick_at - kTick / 2;
      for (std::size_t d = 0; d < n; ++d) {
        auto& t = p.devices()[d];
        using W = TraceDevice::Where;
        if (t.where == W::kNeverSeen || t.where == W::kGone || t.where == W::kDropped) {
          if (chance(0.15)) p.come_online(d, mid);
          continue;
        }
        // Online.
        if (chance(0.04)) {
          p.event(d, core::DeviceEventKind::kGoodbye, false, mid);
          continue;
        }
        if (chance(0.05)) {
          p.drop(d);
          continue;
        }
        if (!t.done && !t.offered && chance(0.3)) p.offer(d, mid);
        if (!t.done && t.offered && t.runs == TraceDevice::Runs::kOld && chance(0.3)) {
          t.runs = TraceDevice::Runs::kTrial;
          p.event(d, core::DeviceEventKind::kInstalled, true, mid);
        } else if (!t.done && t.runs == TraceDevice::Runs::kTrial && chance(0.3)) {
          t.runs = TraceDevice::Runs::kHealthy;
        }
        if (chance(0.06)) {
          static constexpr core::DeviceEventKind kKinds[] = {
              core::DeviceEventKind::kInstallFailed, core::DeviceEventKind::kCrashed,
              core::DeviceEventKind::kRolledBack, core::DeviceEventKind::kDownloadFailed};
          const auto kind = kKinds[rng() % 4];
          // A failure names the release only on a device that has it.
          const bool about_release = t.offered && !t.done && chance(0.7);
          p.event(d, kind, about_release, mid);
        }
      }
      p.tick(tick_at);

      const core::EvidenceTally a = p.server_tally();
      const core::EvidenceTally& b = p.sim_tally();
      ASSERT_EQ(a, b) << "seed " << kSeed << " trace " << trace << " tick " << k << ": server "
                      << describe(a) << " vs simulator " << describe(b);
      for (std::size_t d = 0; d < n; ++d) {
        ASSERT_EQ(p.server_standing(d), p.sim_standing(d))
            << "seed " << kSeed << " trace " << trace << " tick " << k << " device " << d;
      }
      if (status.state != core::RolloutState::kRunning) continue;
      const core::GateObservation oa = core::observe(a, tick_at - kT0, p.plan().stages[0].bake);
      const core::GateObservation ob = core::observe(b, tick_at - kT0, p.plan().stages[0].bake);
      const auto da =
          core::decide_tick(status, p.plan(), gate_server, oa, tick_at, core::Coverage{1, 1});
      const auto db =
          core::decide_tick(status, p.plan(), gate_sim, ob, tick_at, core::Coverage{1, 1});
      ASSERT_EQ(da.event, db.event) << "trace " << trace << " tick " << k;
      ASSERT_EQ(da.reason, db.reason) << "trace " << trace << " tick " << k;
      gate_server = da.gate.state;
      gate_sim = db.gate.state;
      if (da.event == core::RolloutEvent::kHalt) {
        ++halts;
        status.state = core::RolloutState::kHalted;
      } else if (da.event == core::RolloutEvent::kPromote) {
        ++promotes;
        status.state = core::RolloutState::kCompleted;
      }
    }
    const auto final_tally = p.server_tally();
    failures += final_tally.exposed.failures + final_tally.control.failures;
    silences += final_tally.exposed_failures_of(core::FailureCause::kSilent);
  }
  // The traces reach every branch: halts, promotions, failures, silence.
  EXPECT_GT(halts, 100u);
  EXPECT_GT(promotes, 100u);
  EXPECT_GT(failures, 1000u);
  EXPECT_GT(silences, 100u);
  std::printf(
      "[evidence paths] 10000 traces: %llu halts, %llu promotions, %llu failures (%llu silent)\n",
      static_cast<unsigned long long>(halts), static_cast<unsigned long long>(promotes),
      static_cast<unsigned long long>(failures), static_cast<unsigned long long>(silences));
}

}  // namespace
}  // namespace tranche
