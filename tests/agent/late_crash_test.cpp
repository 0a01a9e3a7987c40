// A release that crashes after its trial passed (issue 16, item 4), with real
// processes: a tranche-server, six tranche-agents, each protecting a real
// tranche-demo-sensor that supplies ScheduledTaskRun only with every 25th event
// (5 s at 200 ms). examples/content/late-crash.yaml reads its field 9: the
// sensor runs through the 2 s trial, the agent commits, and 3 s later the sensor
// dies of SIGSEGV, then 5 s after every restart. No agent falls back by itself
// (a committed version restarts without a budget), so:
//
// - LateCrashIsRevokedAndEveryDeviceEndsOnARunningSensor: the crashes reach the
//   gate, which halts the first ring and sends the rollout back; the server's
//   answer revokes 2.0 and every agent that committed it leaves it at once for
//   1.0, still in its other slot (no download). 0 devices end without a running
//   sensor.
// - UncleanBootsInARowGiveUpACommittedVersionWithoutTheServer: a machine that
//   dies k = 2 boots in a row on a committed version (the agent SIGKILLed, the
//   boot id changed) goes back to the other slot by itself, with the server gone.
#include <gtest/gtest.h>

#include <thread>

#include "tests/agent/agent_lab.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const char* kEveryone = "name: all\ngate: {min_acknowledged: 1}\nstages:\n  - {name: everyone, percent: 100%, bake: 0s}\n";

// The canary bakes for an hour: only the gate ends it in this test. Six devices
// carry little statistical evidence; the absolute limit (more than one failed
// device in the canary) halts it.
const char* kLatePlan = R"(name: late
on_failure: rollback
gate:
  alpha: 0.1
  alternative_ratio: 10
  min_acknowledged: 1
  heartbeat_interval: 1s
  silent_after_missed: 5
stages:
  - {name: canary, percent: 50%, min_devices: 3, bake: 1h, max_failures: 1}
  - {name: all, percent: 100%, bake: 0s}
)";

std::filesystem::path examples() {
  return std::filesystem::path(TRANCHE_SOURCE_DIR) / "examples/content";
}

class LateCrash : public AgentLabTest {
 protected:
  void SetUp() override { start_lab("tranche-agent-late-crash"); }

  // n agents on a sensor with a rare event every 5 s, a 2 s trial.
  void start_agents(int n, const std::string& extra = "") {
    for (int i = 0; i < n; ++i) {
      AgentOptions o = agent_options("dev-" + std::to_string(i));
      o.contract_check = false;  // the content must reach the sensor
      o.trial_window = "2s";
      o.sensor_args = R"(, "--rare-every", "25")";
      o.extra = extra;
      start_agent(o);
    }
  }
  // Every agent committed on `version` with a running sensor.
  bool all_on(const std::string& version) {
    for (const auto& d : data_) {
      const auto r = agent_record(d);
      if (record_field(r, "phase") != "committed" || record_field(r, "good") != version ||
          !sensor_alive(d)) {
        return false;
      }
    }
    return true;
  }
};

TEST_F(LateCrash, LateCrashIsRevokedAndEveryDeviceEndsOnARunningSensor) {
  constexpr int kAgents = 6;
  start_agents(kAgents);
  release("1.0", examples() / "good.yaml");
  const std::string good = rollout("1.0", kEveryone);
  ASSERT_TRUE(eventually([&] { return all_on("1.0"); }, 40s)) << agents_[0]->log();
  ASSERT_TRUE(eventually([&] { return rollout_state(good) == "completed"; }, 20s));

  release("2.0", examples() / "late-crash.yaml", /*skip_check=*/true);
  const std::string late = rollout("2.0", kLatePlan);
  const bool halted = eventually(
      [&] {
        const auto st = rollout_state(late);
        return st == "rolling_back" || st == "rolled_back" || st == "halted";
      },
      60s);
  const json::value ro = op("GET", "/v1/rollouts/" + late).json();
  ASSERT_TRUE(halted) << "the gate did not halt: " << json::serialize(ro) << "\n" << agents_[0]->log();
  EXPECT_EQ(ro.at("status").at("stage").as_int64(), 0) << "halted in the first ring";

  // Every device ends on 1.0 with a running sensor, and stays so past the next
  // rare event (5 s): 0 devices without a running sensor.
  const auto settled = [&] {
    for (const auto& d : data_) {
      const auto r = agent_record(d);
      if (record_field(r, "good") != "1.0" || active_version(d) != "1.0" || !sensor_alive(d)) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually(settled, 30s)) << "a device is not back on a running 1.0";
  std::this_thread::sleep_for(6s);
  EXPECT_TRUE(settled()) << "a sensor died again after the fallback";

  int committed_then_left = 0;
  for (std::size_t i = 0; i < data_.size(); ++i) {
    const std::string log = agents_[i]->log();
    if (log.find("trial of 2.0 passed: committed") == std::string::npos) continue;
    ++committed_then_left;
    // Committed first, crashed after: the late crash, not a trial failure.
    EXPECT_NE(log.find("signal 11 (SIGSEGV)"), std::string::npos) << "agent " << i << "\n" << log;
    EXPECT_NE(log.find("fell back from committed 2.0 to 1.0 (the other slot): the server marks 2.0 bad"),
              std::string::npos)
        << "agent " << i << "\n" << log;
    // From the other slot: 2.0's install was the last download.
    EXPECT_EQ(log.find("downloading 1.0", log.find("trial of 2.0 passed")), std::string::npos)
        << "agent " << i << " downloaded 1.0 again\n" << log;
    const auto r = agent_record(data_[i]);
    EXPECT_EQ(record_field(r, "phase"), "rolled_back") << i;
    EXPECT_TRUE(record_bad_has(r, "2.0")) << i;
  }
  EXPECT_GE(committed_then_left, 1) << "no device committed 2.0 before it crashed";
  EXPECT_LT(committed_then_left, kAgents) << "2.0 went past the first ring";
  EXPECT_GE(ro.at("gate").at("exposed_failures").as_int64(), 1) << json::serialize(ro);
}

TEST_F(LateCrash, UncleanBootsInARowGiveUpACommittedVersionWithoutTheServer) {
  write_text(dir_ / "boot_id", "boot-1\n");
  start_agents(1, "debug: {boot_id_file: " + (dir_ / "boot_id").string() + "}\n");
  release("1.0", examples() / "good.yaml");
  const std::string first = rollout("1.0", kEveryone);
  ASSERT_TRUE(eventually([&] { return all_on("1.0"); }, 40s)) << agents_[0]->log();
  ASSERT_TRUE(eventually([&] { return rollout_state(first) == "completed"; }, 20s));
  release("2.0", examples() / "good.yaml");
  rollout("2.0", kEveryone);
  ASSERT_TRUE(eventually([&] { return all_on("2.0"); }, 40s)) << agents_[0]->log();
  server_.reset();  // no revoke can come: the agent is on its own

  // The machine dies twice, each time before 2.0 stayed up for the 2 s window.
  AgentProcess& agent = *agents_[0];
  const auto& data = data_[0];
  for (int boot = 2; boot <= 3; ++boot) {
    agent.stop(SIGKILL);
    write_text(dir_ / "boot_id", "boot-" + std::to_string(boot) + "\n");
    agent.start();
    if (boot == 2) {
      ASSERT_TRUE(eventually([&] { return agent.log().find("after 1 unclean boot in a row on 2.0") != std::string::npos; }, 10s))
          << agent.log();
      EXPECT_EQ(record_field(agent_record(data), "good"), "2.0");
    }
  }
  ASSERT_TRUE(eventually([&] { return active_version(data) == "1.0" && sensor_alive(data); }, 10s))
      << agent.log();
  const auto r = agent_record(data);
  EXPECT_EQ(record_field(r, "phase"), "rolled_back");
  EXPECT_TRUE(record_bad_has(r, "2.0"));
  EXPECT_NE(agent.log().find("2 unclean boots in a row on 2.0"), std::string::npos) << agent.log();
}

}  // namespace
}  // namespace tranche::testing
