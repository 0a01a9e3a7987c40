// End to end, the 2024 outage replayed against tranche: a real tranche-server
// (serving a TUF repository made with the `tranche` CLI), 10 real tranche-agent
// processes, each protecting a real tranche-demo-sensor.
//
// A good release reaches all ten. Then Channel File 291 (reads field 21) is
// registered with the server's contract check explicitly skipped — the 2024
// validator bug. The agents of this test run with `contract_check: false` too
// (the same bug on the device side: their own check would refuse the bundle, as
// agent_hostile_server_test shows), so the content really reaches the first ring: those
// sensors die of SIGSEGV, their agents fall back to 1.0 by themselves, the gate
// halts the rollout in its first ring, and every agent ends with a running sensor.
#include <gtest/gtest.h>

#include <memory>

#include "tests/agent/agent_lab.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const char* kFastPlan = R"(name: fast
on_failure: rollback
gate:
  # Ten devices carry little evidence: three crashes in a 30% canary are 0.3^3 =
  # 0.027 likely by chance alone. The gate bets on a large effect (a crash,
  # not a regression) and accepts 1 false halt in 10 — for this fleet only.
  alpha: 0.1
  alternative_ratio: 10
  min_acknowledged: 1
  heartbeat_interval: 1s
  silent_after_missed: 5
stages:
  - {name: canary, percent: 30%, min_devices: 3, bake: 20s}
  - {name: all, percent: 100%, bake: 0s}
)";

class FleetEndToEnd : public AgentLabTest {
 protected:
  void SetUp() override { start_lab("tranche-agent-e2e"); }

  std::string rollout(const std::string& version) { return AgentLabTest::rollout(version, kFastPlan); }
  void start_agents(int n) {
    for (int i = 0; i < n; ++i) {
      AgentOptions o = agent_options("dev-" + std::to_string(i));
      o.contract_check = false;  // the 2024 model on the device side too (see above)
      start_agent(o);
    }
  }
};

TEST_F(FleetEndToEnd, BadContentCrashesFirstRingOnlyAgentsFallBackGateHaltsEverySensorRuns) {
  constexpr int kAgents = 10;
  const std::filesystem::path examples = std::filesystem::path(TRANCHE_SOURCE_DIR) / "examples/content";
  start_agents(kAgents);

  // 1. A good release reaches everyone, and every sensor runs it.
  release("1.0", examples / "good.yaml", false);
  const std::string good = rollout("1.0");
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& d : data_) {
          const auto r = agent_record(d);
          if (record_field(r, "phase") != "committed" || record_field(r, "good") != "1.0" || !sensor_alive(d)) return false;
        }
        return true;
      },
      40s))
      << "not every agent committed 1.0; rollout " << rollout_state(good) << "\n"
      << agents_[0]->log();
  // It completes once the server has heard the commits (acknowledged: running it
  // past the trial) — and only then is 1.0 the baseline a second rollout needs.
  ASSERT_TRUE(eventually([&] { return rollout_state(good) == "completed"; }, 20s))
      << json::serialize(op("GET", "/v1/rollouts/" + good).json());

  // 2. Channel File 291, past the server's contract check (the 2024 validator bug).
  release("2.0", examples / "channel-291.yaml", true);
  const std::string bad = rollout("2.0");
  // The gate: halted in the first ring. A sensor that dies at once fails
  // between two check-ins; the server counts its device-time from the offer
  // (server/fleet.h accrue_exposure), so the failures carry evidence.
  const bool halted = eventually(
      [&] {
        const auto st = rollout_state(bad);
        return st == "rolling_back" || st == "rolled_back" || st == "halted";
      },
      20s);
  auto ro = op("GET", "/v1/rollouts/" + bad).json();
  EXPECT_TRUE(halted) << "the gate did not halt: " << json::serialize(ro);
  EXPECT_EQ(ro.at("status").at("stage").as_int64(), 0) << "halted in the first ring";

  // 3. Every agent that got 2.0 fell back by itself; nobody runs 2.0; every sensor runs.
  int fell_back = 0;
  ASSERT_TRUE(eventually(
      [&] {
        fell_back = 0;
        for (const auto& d : data_) {
          const auto r = agent_record(d);
          const auto phase = record_field(r, "phase");
          if (phase != "committed" && phase != "rolled_back") return false;
          if (record_field(r, "good") != "1.0" || active_version(d) != "1.0" || !sensor_alive(d)) return false;
          if (phase == "rolled_back") ++fell_back;
        }
        return true;
      },
      30s))
      << "an agent is not back on a running 1.0";
  EXPECT_GE(fell_back, 1) << "the first ring's sensors should have crashed";
  if (halted) {
    EXPECT_LT(fell_back, kAgents) << "the bad release went past the first ring";
  }
  for (std::size_t i = 0; i < data_.size(); ++i) {
    const auto r = agent_record(data_[i]);
    if (record_field(r, "phase") != "rolled_back") continue;
    EXPECT_TRUE(record_bad_has(r, "2.0")) << i;
    const std::string log = agents_[i]->log();
    EXPECT_NE(log.find("signal 11 (SIGSEGV)"), std::string::npos) << "agent " << i << " saw no SIGSEGV\n" << log;
    EXPECT_NE(log.find("report rolled_back 2.0"), std::string::npos) << log;
    // The server knows: 2.0 failed on this device.
    auto dev = op("GET", "/v1/devices/dev-" + std::to_string(i)).json();
    EXPECT_NE(json::serialize(dev.at("failed")).find("2.0"), std::string::npos) << json::serialize(dev);
  }
  EXPECT_GE(ro.at("gate").at("exposed_failures").as_int64(), 1) << json::serialize(ro);

  // 4. A clean stop says goodbye.
  EXPECT_EQ(agents_[0]->stop(SIGTERM), 0);
  ASSERT_TRUE(eventually([&] { return op("GET", "/v1/devices/dev-0").json().at("said_goodbye").as_bool(); }, 5s));
}

}  // namespace
}  // namespace tranche::testing
