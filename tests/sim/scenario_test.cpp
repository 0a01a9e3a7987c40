#include "sim/scenario.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_paths.h"

namespace tranche::sim {
namespace {

// A scenario file in a fresh temporary directory, with the reference plans
// copied beside it so relative plan paths resolve.
class ScenarioFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tranche-scenario-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& text) {
    const auto path = (dir_ / "s.yaml").string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

// The smallest valid scenario: one class, one region, one global policy.
const char* kMinimal = R"(name: tiny
start: "2024-07-19T04:09:00Z"
horizon: 1d
fleet:
  devices: 100
  classes:
    server: {share: 1.0, online_business: 0.9, online_other: 0.9, mean_session: 1d}
  regions:
    here: {share: 1.0, utc_offset: 0h}
policies:
  A: {kind: global, revert_after: 78m}
)";

TEST(Scenario, ReferenceScenarioCarriesEveryParameterOfTheDocument) {
  auto s = load_scenario(testing::reference_scenario(), {});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->name, "crowdstrike-2024");
  EXPECT_EQ(s->devices, 1'000'000U);
  EXPECT_EQ(s->full_scale_devices, 13'400'000U);
  EXPECT_EQ(s->horizon, 14 * core::kDay);
  EXPECT_EQ(s->classes.size(), 3U);
  EXPECT_EQ(s->regions.size(), 3U);
  EXPECT_EQ(s->held_mean, 2 * core::kMinute);
  EXPECT_EQ(s->connect_mean, core::kMinute);
  EXPECT_DOUBLE_EQ(s->crash_probability, 1.0);
  EXPECT_EQ(s->crash_mean, 30 * core::kSecond);
  EXPECT_EQ(s->crash_after, 0);
  EXPECT_EQ(s->crash_class, "all");
  EXPECT_EQ(s->crash_region, "all");
  EXPECT_EQ(s->agent.max_unclean_boots, 1U);  // below os_gives_up_after
  EXPECT_EQ(s->reboot_cycle, 2 * core::kMinute);
  EXPECT_EQ(s->os_gives_up_after, 2U);
  EXPECT_EQ(s->repair_median, 24 * core::kHour);
  EXPECT_DOUBLE_EQ(s->repair_sigma, 1.08);
  EXPECT_DOUBLE_EQ(s->unclean_per_10min, 1e-4);
  EXPECT_EQ(s->heartbeat_interval, 60 * core::kSecond);
  EXPECT_EQ(s->silent_after_missed, 3U);
  EXPECT_EQ(s->policies.at("A").revert_after, 78 * core::kMinute);
  EXPECT_EQ(s->policies.at("B").plan.stages.size(), 7U);  // a ramp of 3 steps, then 4 rings
  EXPECT_FALSE(s->policies.at("B").agent);
  EXPECT_TRUE(s->policies.at("C").agent);
  EXPECT_EQ(s->policies.at("urgent").plan.stages.size(), 2U);
  EXPECT_EQ(s->default_policies, (std::vector<std::string>{"A", "B", "C"}));
  // Friday 04:09 UTC.
  EXPECT_EQ(s->start, 1721362140000);
}

TEST(Scenario, SetOverridesAnyScalarByItsPath) {
  auto s = load_scenario(testing::reference_scenario(),
                         {{"background.unclean_disconnect_per_10min", "1e-3"},
                          {"delivery.mode", "poll"},
                          {"fleet.classes.laptop.mean_session", "4h"},
                          {"policies.A.revert_after", "30m"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_DOUBLE_EQ(s->unclean_per_10min, 1e-3);
  EXPECT_TRUE(s->delivery_poll);
  EXPECT_EQ(s->classes[2].mean_session, 4 * core::kHour);
  EXPECT_EQ(s->policies.at("A").revert_after, 30 * core::kMinute);
}

TEST(Scenario, SetOfAnUnknownKeyIsAnErrorNamingIt) {
  auto s = load_scenario(testing::reference_scenario(), {{"background.unclean_per_hour", "1"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("background.unclean_per_hour"), std::string::npos) << s.error().message;
}

TEST(Scenario, ACrashOfAClassThatIsNotInTheFleetIsAnErrorNamingTheClasses) {
  auto s = load_scenario(testing::reference_scenario(), {{"bad_update.crash_class", "toaster"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("bad_update.crash_class: no class 'toaster' (server, desktop, laptop, or all)"),
            std::string::npos)
      << s.error().message;
  auto r = load_scenario(testing::reference_scenario(), {{"bad_update.crash_region", "mars"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("bad_update.crash_region: no region 'mars'"), std::string::npos)
      << r.error().message;
}

TEST(Scenario, SetWithAValueOfTheWrongTypeNamesTheField) {
  auto s = load_scenario(testing::reference_scenario(), {{"bad_update.crash_probability", "high"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("bad_update.crash_probability"), std::string::npos) << s.error().message;
}

TEST_F(ScenarioFile, MinimalScenarioLoads) {
  auto s = load_scenario(write(kMinimal), {});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->devices, 100U);
}

TEST_F(ScenarioFile, SyntaxErrorNamesFileAndLine) {
  std::string text = kMinimal;
  text += "calibration: [unclosed\n";
  const auto path = write(text);
  auto s = load_scenario(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, core::ErrorCode::kParse);
  EXPECT_NE(s.error().message.find(path + ":1"), std::string::npos) << s.error().message;
}

TEST_F(ScenarioFile, UnknownKeyNamesLineAndKey) {
  std::string text = kMinimal;
  text += "reboot_cycles: 2m\n";  // a typo of reboot_cycle, on line 12
  const auto path = write(text);
  auto s = load_scenario(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find(path + ":12:"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("reboot_cycles"), std::string::npos) << s.error().message;
}

TEST_F(ScenarioFile, BadValueNamesLineFieldAndValue) {
  std::string text = kMinimal;
  const auto at = text.find("mean_session: 1d");
  text.replace(at, 16, "mean_session: soon");
  const auto path = write(text);
  auto s = load_scenario(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find(path + ":7:"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("fleet.classes.server.mean_session"), std::string::npos) << s.error().message;
}

TEST_F(ScenarioFile, SharesMustAddUpToOne) {
  std::string text = kMinimal;
  text.replace(text.find("share: 1.0"), 10, "share: 0.7");
  auto s = load_scenario(write(text), {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("shares must add up to 1"), std::string::npos) << s.error().message;
}

TEST_F(ScenarioFile, MissingPlanFileIsNamed) {
  std::string text = kMinimal;
  text += "  B: {kind: rings, plan: nowhere.yaml}\n";
  auto s = load_scenario(write(text), {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("nowhere.yaml"), std::string::npos) << s.error().message;
}


}  // namespace
}  // namespace tranche::sim
