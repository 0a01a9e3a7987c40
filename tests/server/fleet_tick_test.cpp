// Property: the engine's tick, which counts incrementally (server/fleet.h),
// gives what a pass over every device would give.
//
// 300 devices live through 700 one-second ticks of random change: check-ins
// (old or new version, in trial or healthy), offers, failures, goodbyes, held
// long polls that are released, devices another server claims and this one
// takes back (with an old last contact, so that their silence is due at once),
// and eviction. The live rollouts change under them: the first reaches its
// baked last stage (completion counted), a second starts on another channel,
// the first ends. After every tick, each live rollout's counts must equal the
// brute-force count at that moment — online by core::is_silent at the tick's
// time, the group by standing, the version run, the coverage by assignment —
// and every owned device that has gone silent during a rollout must stand
// failed in it.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "config/plan_yaml.h"
#include "core/evidence.h"
#include "core/gate.h"
#include "server/fleet.h"
#include "tests/server/fleet_fixture.h"

namespace tranche {
namespace {

using core::TimeMs;

constexpr TimeMs kT0 = 1'800'000'000'000;
constexpr std::size_t kDevices = 300;

const char* kPlan = R"(name: two
gate: {alpha: 0.01, min_acknowledged: 1, heartbeat_interval: 1s, silent_after_missed: 3, tick: 1s}
stages:
  - {name: first, percent: 50%, bake: 5s}
  - {name: all, percent: 100%, bake: 5s}
)";

const char* kSlowPlan = R"(name: slow
gate: {min_acknowledged: 1, heartbeat_interval: 2s, silent_after_missed: 4, tick: 1s}
stages:
  - {name: all, percent: 100%, bake: 1h}
)";

core::Version v(const char* text) { return core::Version::parse(text).value(); }
std::string id(std::size_t d) { return "dev-" + std::to_string(d); }

// What a pass over every device counts for `r` at `now`.
server::Fleet::ScanResult recount(server::Fleet& fleet, const server::Snapshot& snap,
                                  const server::RolloutInfo& r, bool coverage, TimeMs now,
                                  std::vector<std::string>& unnoted_silence) {
  server::Fleet::ScanResult out;
  fleet.for_each_device([&](const server::Device& d) {
    if (!d.owned) return;
    const auto* m = d.find_mark(r.row.id);
    const core::Standing standing = m ? m->standing : core::Standing::kControl;
    const bool online =
        d.held || (d.last_seen > 0 && !d.said_goodbye && !core::is_silent(r.plan.gate, d.last_seen, false, now));
    if (!online) {
      if (!d.said_goodbye && d.last_seen > 0 && d.last_seen >= r.row.created_at && !core::is_failed(standing)) {
        unnoted_silence.push_back(d.key);
      }
      return;
    }
    switch (core::accrual_group(standing)) {
      case core::Group::kExposed: ++out.exposed_online; break;
      case core::Group::kControl: ++out.control_online; break;
      case core::Group::kNone: break;
    }
    auto cur = d.versions.find(r.channel);
    const bool runs = cur != d.versions.end() && cur->second == r.version;
    if (runs) ++out.online_on_version;
    if (coverage && !core::is_failed(standing)) {
      bool desired = false;
      for (const auto& a : server::Fleet::answer(d, snap, now)) {
        if (a.channel == r.channel) desired = a.assignment.desired == r.version;
      }
      if (runs || desired) {
        ++out.coverage.target;
        if (runs && standing == core::Standing::kAcknowledged) ++out.coverage.running;
      }
    }
  });
  return out;
}

TEST(FleetTick, IncrementalCountsEqualAPassOverEveryDevice) {
  auto plan = config::parse_plan(kPlan, "plan");
  auto slow = config::parse_plan(kSlowPlan, "plan");
  ASSERT_TRUE(plan.ok() && slow.ok());
  server::Fleet fleet;
  for (std::size_t d = 0; d < kDevices; ++d) {
    server::Device dev;
    dev.key = id(d);
    dev.tenant = "t";
    dev.versions.emplace("c", v("1.0"));
    dev.versions.emplace("k", v("1.0"));
    ASSERT_TRUE(fleet.add_device(std::move(dev)).ok());
  }
  auto first = testing::running_rollout(*plan, "c", kT0);
  fleet.update([&](server::Snapshot& s) {
    testing::add_channel(s, "c", {"1.0", "2.0"});
    testing::add_channel(s, "k", {"1.0", "2.0"});
    s.rollouts["r"] = first;
    s.live_rollout["c"] = "r";
    s.device_count = kDevices;
  });

  std::mt19937_64 rng(20261203);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  std::vector<std::int64_t> seq(kDevices, 0);
  std::vector<bool> away(kDevices, false);  // dropped off without a goodbye
  TimeMs now = kT0;
  std::uint64_t silences = 0, coverage_ticks = 0, held_seen = 0;

  for (int tick = 1; tick <= 700; ++tick) {
    const TimeMs before = now;
    now += core::kSecond;
    // The rollouts move under the devices.
    if (tick == 200) {
      fleet.update([&](server::Snapshot& s) {
        auto next = std::make_shared<server::RolloutInfo>(*s.rollouts["r"]);
        next->status.stage = 1;
        next->status.stage_started_at = now - 10 * core::kSecond;  // baked
        s.rollouts["r"] = next;
      });
    }
    if (tick == 400) {
      auto second = testing::running_rollout(*slow, "k", now);
      second->row.id = "q";
      fleet.update([&](server::Snapshot& s) {
        s.rollouts["q"] = second;
        s.live_rollout["k"] = "q";
      });
    }
    if (tick == 550) fleet.update([&](server::Snapshot& s) { s.live_rollout.erase("c"); });

    auto snap = fleet.snapshot();
    for (std::size_t d = 0; d < kDevices; ++d) {
      const TimeMs at = before + 1 + static_cast<TimeMs>(rng() % core::kSecond);
      if (away[d]) {
        if (chance(0.02)) away[d] = false;  // back
        else continue;
      }
      if (chance(0.01)) {
        away[d] = true;  // drops off without a word
        continue;
      }
      if (chance(0.3)) continue;  // quiet this second
      if (!fleet.owns(id(d)) && !fleet.with_device(id(d), [](server::Device&) {}).ok()) {
        // Evicted: its request here takes it from the store again.
        server::Device dev;
        dev.key = id(d);
        dev.tenant = "t";
        dev.versions.emplace("c", v("1.0"));
        dev.versions.emplace("k", v("1.0"));
        fleet.install_claimed(dev);
      }
      ASSERT_TRUE(fleet
                      .with_device(id(d),
                                   [&](server::Device& dev) {
                                     if (dev.held) {
                                       if (chance(0.5)) {
                                         dev.held = false;  // answered
                                         dev.last_seen = at;
                                       }
                                       return;
                                     }
                                     if (!dev.owned) return;
                                     const double r = std::uniform_real_distribution<double>(0, 1)(rng);
                                     if (r < 0.6) {
                                       std::map<std::string, core::Version> versions{
                                           {"c", chance(0.4) ? v("2.0") : v("1.0")},
                                           {"k", chance(0.3) ? v("2.0") : v("1.0")}};
                                       (void)fleet.check_in(dev, *snap, versions, "{}", chance(0.7), at, 0);
                                       if (chance(0.1)) dev.held = true;  // a long poll
                                     } else if (r < 0.75) {
                                       auto answers = server::Fleet::answer(dev, *snap, at);
                                       server::Fleet::note_offers(dev, *snap, answers, at);
                                       dev.last_seen = at;
                                     } else if (r < 0.9) {
                                       server::DeviceEvent e;
                                       e.seq = ++seq[d];
                                       const int k = static_cast<int>(rng() % 4);
                                       e.kind = k == 0   ? core::DeviceEventKind::kGoodbye
                                                : k == 1 ? core::DeviceEventKind::kCrashed
                                                : k == 2 ? core::DeviceEventKind::kInstallFailed
                                                         : core::DeviceEventKind::kInstalled;
                                       if (e.kind != core::DeviceEventKind::kGoodbye) {
                                         e.channel = chance(0.5) ? "c" : "k";
                                         e.version = chance(0.6) ? v("2.0") : v("1.0");
                                       }
                                       (void)fleet.record_events(dev, *snap, {e}, at);
                                     }
                                   })
                      .ok());
      // Another server takes it; later this one takes it back from the store,
      // where its last contact may be old.
      if (chance(0.005)) {
        server::Device copy;
        (void)fleet.with_device(id(d), [&](server::Device& dev) { copy = dev; });
        if (fleet.disown(id(d), "other", at) && chance(0.5)) {
          copy.revision += 1;
          copy.held = false;
          copy.last_seen = at - static_cast<TimeMs>(rng() % (20 * core::kSecond));
          fleet.install_claimed(copy);
        }
      }
    }
    if (tick % 50 == 0) {
      (void)fleet.evict_unneeded(now, 5 * core::kSecond, [](const std::string&) { return false; });
    }

    std::vector<std::string> changed;
    snap = fleet.snapshot();
    auto scans = fleet.scan(snap, now, core::kSecond, changed);
    silences += changed.size();
    fleet.for_each_device([&](const server::Device& d) { held_seen += d.held ? 1 : 0; });
    ASSERT_EQ(scans.size(), snap->live_rollout.size()) << "tick " << tick;
    for (const auto& [channel, rid] : snap->live_rollout) {
      const server::RolloutInfo& r = *snap->rollouts.at(rid);
      const bool coverage = r.status.stage + 1 >= r.plan.stages.size() &&
                            now - r.status.stage_started_at >= r.plan.stages.back().bake;
      coverage_ticks += coverage ? 1 : 0;
      std::vector<std::string> unnoted;
      const auto want = recount(fleet, *snap, r, coverage, now, unnoted);
      const auto& got = scans.at(rid);
      ASSERT_EQ(got.exposed_online, want.exposed_online) << "tick " << tick << " rollout " << rid;
      ASSERT_EQ(got.control_online, want.control_online) << "tick " << tick << " rollout " << rid;
      ASSERT_EQ(got.online_on_version, want.online_on_version) << "tick " << tick << " rollout " << rid;
      ASSERT_EQ(got.coverage.target, want.coverage.target) << "tick " << tick << " rollout " << rid;
      ASSERT_EQ(got.coverage.running, want.coverage.running) << "tick " << tick << " rollout " << rid;
      ASSERT_TRUE(unnoted.empty()) << "tick " << tick << ": " << unnoted.front()
                                   << " went silent in " << rid << " and is not failed";
    }
  }
  // The run went where the property matters.
  EXPECT_GT(silences, 50u);
  EXPECT_GT(coverage_ticks, 300u);
  EXPECT_GT(held_seen, 1000u);
}

TEST(FleetTick, AnIdleDeviceIsForgottenOnlyOnceNothingIsLeftToJudgeAndItsStateIsWritten) {
  auto plan = config::parse_plan(kPlan, "plan");
  ASSERT_TRUE(plan.ok());
  server::Fleet fleet;
  for (const char* name : {"quiet", "chatty", "held", "quiet-unwritten"}) {
    server::Device dev;
    dev.key = name;
    dev.tenant = "t";
    dev.versions.emplace("c", v("1.0"));
    ASSERT_TRUE(fleet.add_device(std::move(dev)).ok());
  }
  fleet.update([&](server::Snapshot& s) {
    testing::add_channel(s, "c", {"1.0", "2.0"});
    s.rollouts["r"] = testing::running_rollout(*plan, "c", kT0);
    s.live_rollout["c"] = "r";
    s.device_count = 4;
  });
  TimeMs now = kT0;
  auto contact = [&](const std::string& name, bool hold) {
    auto snap = fleet.snapshot();
    ASSERT_TRUE(fleet
                    .with_device(name,
                                 [&](server::Device& d) {
                                   (void)fleet.check_in(d, *snap, {{"c", v("1.0")}}, "{}", true, now, 0);
                                   d.held = hold;
                                 })
                    .ok());
  };
  for (const char* name : {"quiet", "chatty", "quiet-unwritten"}) contact(name, false);
  contact("held", true);
  std::set<std::string> unwritten{"quiet-unwritten"};
  auto is_unwritten = [&](const std::string& id) { return unwritten.count(id) > 0; };
  const core::DurationMs idle_after = 60 * core::kSecond;
  std::vector<std::string> changed;
  for (int t = 0; t < 90; ++t) {
    now += core::kSecond;
    contact("chatty", false);
    changed.clear();
    (void)fleet.scan(fleet.snapshot(), now, core::kSecond, changed);
    if (t == 3) {
      // Silent after 3 missed heartbeats of 1 s: noted, not yet idle for a minute.
      EXPECT_EQ(changed.size(), 2u);
      EXPECT_EQ(fleet.evict_unneeded(now, idle_after, is_unwritten), 0u);
    }
  }
  // 90 s later: the quiet one goes; the one whose write waits stays until written.
  EXPECT_EQ(fleet.evict_unneeded(now, idle_after, is_unwritten), 1u);
  EXPECT_FALSE(fleet.with_device("quiet", [](server::Device&) {}).ok());
  EXPECT_TRUE(fleet.owns("quiet-unwritten"));
  EXPECT_TRUE(fleet.owns("chatty"));
  EXPECT_TRUE(fleet.owns("held")) << "a device whose check-in is held is connected";
  unwritten.clear();
  EXPECT_EQ(fleet.evict_unneeded(now, idle_after, is_unwritten), 1u);
  EXPECT_EQ(fleet.device_count(), 2u);
  // The counts did not lose or keep anything of the forgotten devices.
  changed.clear();
  auto scans = fleet.scan(fleet.snapshot(), now + core::kSecond, core::kSecond, changed);
  EXPECT_EQ(scans.at("r").control_online, 2u);
}

}  // namespace
}  // namespace tranche
