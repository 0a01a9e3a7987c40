// An offer the agent will not take becomes an event the server shows (issue 13):
// a real tranche-agent on trial of 1.0 (a long trial window) is offered 2.0 by a
// second rollout; it refuses (core::agent_step: finish the trial first) and says
// so once — an offer_refused event with reason trial_pending — which the device
// view, the device list and the rollout's refused devices then show.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "tests/agent/agent_lab.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kEveryone = "name: all\nstages:\n  - {name: everyone, percent: 100%, bake: 1h}\n";

class AgentRefusal : public AgentLabTest {
 protected:
  void SetUp() override { start_lab("tranche-agent-refusal"); }

  void release(const std::string& version) {
    AgentLabTest::release(version, std::filesystem::path(TRANCHE_SOURCE_DIR) / "examples/content/good.yaml");
  }
  void rollout(const std::string& version) { ASSERT_FALSE(AgentLabTest::rollout(version, kEveryone).empty()); }
  // The device's offer_refused events, as the server has them.
  std::vector<json::value> refusals() {
    std::vector<json::value> out;
    auto r = op("GET", "/v1/devices/dev-0/events?limit=1000");
    if (r.status != 200) return out;
    const json::value body = r.json();
    for (const auto& e : body.at("events").as_array()) {
      if (e.at("kind").as_string() == "offer_refused") out.push_back(e);
    }
    return out;
  }
};

TEST_F(AgentRefusal, AnOfferRefusedDuringATrialIsReportedOnceAndTheServerShowsWhy) {
  AgentOptions o = agent_options("dev-0");
  o.trial_window = "1h";  // stays on trial for the whole test
  AgentProcess* agent_ = &start_agent(o);

  release("1.0");
  rollout("1.0");
  ASSERT_TRUE(eventually(
      [&] {
        const auto r = agent_record(o.data_dir);
        return record_field(r, "phase") == "trial" && record_field(r, "candidate") == "1.0";
      },
      30s))
      << agent_->log();
  auto aborted = op("POST", "/v1/rollouts/rollout-1.0/abort", json::object{{"reason", "test: a second release"}});
  ASSERT_EQ(aborted.status, 200) << aborted.body;
  release("2.0");
  rollout("2.0");

  ASSERT_TRUE(eventually([&] { return !refusals().empty(); }, 20s)) << agent_->log();
  // Several check-ins later (one a second), still the one report.
  std::this_thread::sleep_for(3s);
  const auto reported = refusals();
  ASSERT_EQ(reported.size(), 1u) << "reported once, not at every check-in";
  EXPECT_EQ(reported[0].at("version").as_string(), "2.0");
  EXPECT_EQ(reported[0].at("detail").at("reason").as_string(), "trial_pending");
  EXPECT_EQ(record_field(agent_record(o.data_dir), "phase"), "trial") << "the trial goes on";

  auto d = op("GET", "/v1/devices/dev-0?version=2.0");
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.json().at("state").as_string(), "refused") << d.body;
  const std::string why(d.json().at("why").as_string());
  EXPECT_NE(why.find("offer_refused 2.0"), std::string::npos) << why;
  auto refused = op("GET", "/v1/rollouts/rollout-2.0/devices?state=refused");
  ASSERT_EQ(refused.status, 200) << refused.body;
  ASSERT_EQ(refused.json().at("devices").as_array().size(), 1u) << refused.body;
  auto rollout2 = op("GET", "/v1/rollouts/rollout-2.0");
  EXPECT_EQ(rollout2.json().at("gate").at("exposed_failures").as_int64(), 0) << "a refusal is no failure";
}

}  // namespace
}  // namespace tranche::testing
