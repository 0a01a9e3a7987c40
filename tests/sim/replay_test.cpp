// The 2024 replay's headline claims, checked on a 100,000-device fleet: what the
// README and docs say the simulator shows must stay true when the core changes.
#include <gtest/gtest.h>

#include <limits>

#include "sim/fleet_sim.h"
#include "sim/report.h"
#include "sim/scenario.h"
#include "test_paths.h"

namespace tranche::sim {
namespace {

class Replay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = load_scenario(testing::reference_scenario(), {{"fleet.devices", "100000"}});
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    scenario_ = new Scenario(std::move(s.value()));
    SimOptions o;
    o.seed = 7;
    o.policies = {"A", "B", "C", "urgent"};
    auto r = run_simulation(*scenario_, o);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    result_ = new SimResult(std::move(r.value()));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete scenario_;
  }
  static const PolicyResult& policy(const std::string& name) {
    for (const auto& p : result_->policies) {
      if (p.policy == name) return p;
    }
    throw std::runtime_error("no policy " + name);
  }
  static double share(std::uint64_t count) { return static_cast<double>(count) / 100000.0; }

  static Scenario* scenario_;
  static SimResult* result_;
};
Scenario* Replay::scenario_ = nullptr;
SimResult* Replay::result_ = nullptr;

TEST_F(Replay, PolicyAMeetsTheCalibrationTargetsOf2024) {
  std::string why;
  EXPECT_TRUE(check_calibration(*scenario_, policy("A").bad, why)) << why;
  const auto& a = policy("A").bad;
  EXPECT_GE(share(a.devices_crashed), 0.55);
  EXPECT_LE(share(a.devices_crashed), 0.70);
  // Every crashed machine needed a person: no device-side fallback in 2024.
  EXPECT_EQ(a.manual_repairs, a.devices_crashed);
  ASSERT_TRUE(a.time_to_halt_s.has_value());
  EXPECT_DOUBLE_EQ(*a.time_to_halt_s, 78 * 60.0);
}

TEST_F(Replay, RingsWithGatesCrashAtMostOneInAThousand) {
  const auto& b = policy("B").bad;
  EXPECT_GT(b.devices_crashed, 0U) << "the first ring must really receive the bad release";
  EXPECT_LE(share(b.devices_crashed), 0.001);
  EXPECT_TRUE(b.halted);
}

TEST_F(Replay, RingsHaltWithinFifteenMinutes) {
  for (const char* name : {"B", "C", "urgent"}) {
    const auto& m = policy(name).bad;
    ASSERT_TRUE(m.time_to_halt_s.has_value()) << name;
    EXPECT_LE(*m.time_to_halt_s, 15 * 60.0) << name;
    EXPECT_LE(*m.time_to_detect_s, *m.time_to_halt_s) << name;
  }
}

TEST_F(Replay, TheSelfHealingAgentNeedsNoPerson) {
  const auto& c = policy("C").bad;
  EXPECT_GT(c.devices_crashed, 0U);
  EXPECT_EQ(c.manual_repairs, 0U);
  EXPECT_EQ(c.still_down_at_horizon, 0U);
  // Each crash costs one reboot cycle, not a day: under an hour down per crash.
  EXPECT_LT(c.device_hours_down, static_cast<double>(c.devices_crashed));
  ASSERT_TRUE(c.time_to_rollback99_s.has_value());
  EXPECT_LE(*c.time_to_rollback99_s, 3600.0);
  EXPECT_EQ(policy("urgent").bad.manual_repairs, 0U);
}

// Issue 16: a release that crashes the machine hours after its trial passed
// (then at every boot), or on only part of the fleet (a share of it, or one
// class in one region). Without tranche's agent
// every crashed machine waits for a person; with it, none does: the agent gives
// the committed release up at its first unclean boot (agent.max_unclean_boots:
// 1, below the OS's 2 failed boots) or when the halted rollout revokes it.
TEST(ReplayLateCrash, TheAgentNeedsNoPersonForALateOrPartialCrash) {
  const std::vector<std::vector<std::pair<std::string, std::string>>> variants = {
      {{"bad_update.crash_after", "3h"}},
      {{"bad_update.crash_probability", "0.3"}},
      {{"bad_update.crash_after", "3h"}, {"bad_update.crash_probability", "0.3"}},
      // One kind of machine only: servers in apac, 6% of the fleet.
      {{"bad_update.crash_class", "server"}, {"bad_update.crash_region", "apac"}},
  };
  for (auto sets : variants) {
    std::string name;
    for (const auto& [k, v] : sets) name += k + "=" + v + " ";
    SCOPED_TRACE(name);
    sets.emplace_back("fleet.devices", "50000");
    auto s = load_scenario(testing::reference_scenario(), sets);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    SimOptions o;
    o.seed = 7;
    o.policies = {"B", "C"};
    o.good_run = false;
    auto r = run_simulation(*s, o);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    const auto& b = r->policies[0].bad;
    const auto& c = r->policies[1].bad;
    ASSERT_EQ(r->policies[1].policy, "C");
    EXPECT_TRUE(b.halted);
    EXPECT_TRUE(c.halted);
    EXPECT_GT(b.devices_crashed, 0U) << "the release must really crash machines";
    EXPECT_EQ(b.manual_repairs, b.devices_crashed) << "without the agent, each crash needs a person";
    EXPECT_GT(c.devices_crashed, 0U);
    EXPECT_EQ(c.manual_repairs, 0U);
    EXPECT_EQ(c.still_down_at_horizon, 0U);
  }
}

TEST_F(Replay, GoodReleasesAreNotHaltedAndReachTheFleet) {
  for (const char* name : {"A", "B", "C", "urgent"}) {
    const auto& g = policy(name).good;
    EXPECT_FALSE(g.halted) << name << ": " << g.halt_reason;
    EXPECT_EQ(g.devices_crashed, 0U) << name;
    ASSERT_TRUE(g.t99_all_s.has_value()) << name;
    ASSERT_TRUE(g.t99_online_s.has_value()) << name;
  }
  EXPECT_EQ(policy("B").good.final_state, "completed");
  // Gates cost time, never save it: a global push is the speed limit.
  EXPECT_GE(*policy("B").good.t99_online_s, *policy("A").good.t99_online_s);
  EXPECT_GE(*policy("urgent").good.t99_online_s, *policy("A").good.t99_online_s);
  EXPECT_LE(*policy("urgent").good.t99_online_s, *policy("B").good.t99_online_s);
}

TEST_F(Replay, DownSeriesCoversTheHorizonAndEndsWhereTheMetricsSay) {
  for (const auto& p : result_->policies) {
    ASSERT_EQ(p.bad.down_series.size(), 14U * 24 * 60 + 1) << p.policy;
    EXPECT_LE(p.bad.still_down_at_horizon, p.bad.devices_crashed) << p.policy;
  }
}

TEST(ReplayDeterminism, SameSeedSameJsonByteForByte) {
  auto s = load_scenario(testing::reference_scenario(), {{"fleet.devices", "20000"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  SimOptions o;
  o.seed = 99;
  auto r1 = run_simulation(s.value(), o);
  auto r2 = run_simulation(s.value(), o);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(to_json(s.value(), r1.value()), to_json(s.value(), r2.value()));
  o.seed = 100;
  auto r3 = run_simulation(s.value(), o);
  ASSERT_TRUE(r3.ok());
  EXPECT_NE(to_json(s.value(), r1.value()), to_json(s.value(), r3.value()));
}

TEST(ReplayDeterminism, OneThreadOrTwoGiveTheSameJson) {
  auto s = load_scenario(testing::reference_scenario(), {{"fleet.devices", "20000"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  SimOptions o;
  o.seed = 3;
  o.threads = 1;
  auto one = run_simulation(s.value(), o);
  o.threads = 2;
  auto two = run_simulation(s.value(), o);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(to_json(s.value(), one.value()), to_json(s.value(), two.value()));
}

TEST(ReplayOutput, JsonHasTheDocumentedShape) {
  auto s = load_scenario(testing::reference_scenario(), {{"fleet.devices", "5000"}, {"horizon", "1d"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  SimOptions o;
  auto r = run_simulation(s.value(), o);
  ASSERT_TRUE(r.ok());
  const std::string json = to_json(s.value(), r.value());
  for (const char* key :
       {"\"scenario\":\"crowdstrike-2024\"", "\"devices\":5000", "\"seed\":1", "\"policies\":{\"A\":",
        "\"devices_crashed\"", "\"device_hours_down\"", "\"still_down_at_horizon\"", "\"manual_repairs\"",
        "\"exposed\"", "\"time_to_detect_s\"", "\"time_to_halt_s\"", "\"time_to_rollback99_s\"",
        "\"t99_good_all_s\"", "\"t99_good_online_s\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " missing in " << json;
  }
  // A has no gate: nothing to detect.
  EXPECT_NE(json.find("\"time_to_detect_s\":null"), std::string::npos);
  const std::string svg = to_svg(s.value(), r.value());
  EXPECT_EQ(svg.rfind("<svg", 0), 0U);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  const std::string csv = to_csv(r.value());
  EXPECT_EQ(csv.rfind("minute,A_down,B_down,C_down\n", 0), 0U);
}

// Durations in scenario and plan files are bounded below only; the simulator's
// uint32 clock must not truncate them into something that happens.
TEST(ReplayEdges, ARevertBeyondTheHorizonNeverHappens) {
  // 50 days is 2^32 ms + about 7 hours: truncated to a uint32 it would revert
  // the release on day 0.
  auto s = load_scenario(
      testing::reference_scenario(),
      {{"fleet.devices", "2000"}, {"horizon", "1d"}, {"policies.A.revert_after", "50d"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  SimOptions o;
  o.policies = {"A"};
  o.good_run = false;
  auto r = run_simulation(s.value(), o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_FALSE(r->policies[0].bad.time_to_halt_s.has_value());
  EXPECT_EQ(r->policies[0].bad.final_state, "pushed to all");
}

TEST(ReplayEdges, FalseHaltTrialsSurviveBakesWhoseSumOverflows) {
  auto s = load_scenario(testing::reference_scenario(), {{"fleet.devices", "1000"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  Scenario scenario = std::move(s.value());
  for (auto& stage : scenario.policies.at("B").plan.stages) {
    stage.bake = std::numeric_limits<core::DurationMs>::max();
  }
  auto r = run_false_halt_trials(scenario, "B", 1, 1, nullptr);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->trials, 1U);
  EXPECT_EQ(r->halts, 0U);
}

}  // namespace
}  // namespace tranche::sim
