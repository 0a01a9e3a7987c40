#include "core/plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace tranche::core {
namespace {

Ppm pct(const char* text) {
  return *Ppm::parse(text);
}

Stage stage(const char* name, const char* percent, DurationMs bake) {
  Stage s;
  s.name = name;
  s.percent = pct(percent);
  s.bake = bake;
  return s;
}

// Policy B of the 2024 scenario.
Plan rings() {
  Plan plan;
  plan.name = "rings";
  plan.stages = {stage("canary", "0.1%", 30 * kMinute), stage("early", "1%", 30 * kMinute),
                 stage("broad", "10%", kHour), stage("half", "50%", kHour),
                 stage("all", "100%", 0)};
  return plan;
}

// --- selector ------------------------------------------------------------------------

TEST(SelectorTest, EmptySelectorMatchesEveryDevice) {
  EXPECT_TRUE(Selector{}.matches({}));
  EXPECT_TRUE(Selector{}.matches({{"region", "emea"}}));
}

TEST(SelectorTest, EveryListedTagMustHaveOneOfItsValues) {
  Selector s;
  s.any_of["region"] = {"emea", "apac"};
  s.any_of["class"] = {"laptop"};
  EXPECT_TRUE(s.matches({{"region", "emea"}, {"class", "laptop"}, {"os", "win11"}}));
  EXPECT_TRUE(s.matches({{"region", "apac"}, {"class", "laptop"}}));
  EXPECT_FALSE(s.matches({{"region", "americas"}, {"class", "laptop"}}));
  EXPECT_FALSE(s.matches({{"region", "emea"}, {"class", "server"}}));
  EXPECT_FALSE(s.matches({{"region", "emea"}}));  // a missing tag does not match
  EXPECT_FALSE(s.matches({}));
}

TEST(SelectorTest, ValuesCompareExactly) {
  Selector s;
  s.any_of["region"] = {"emea"};
  EXPECT_FALSE(s.matches({{"region", "EMEA"}}));
  EXPECT_FALSE(s.matches({{"region", "emea "}}));
}

// --- validate ------------------------------------------------------------------------

TEST(PlanValidateTest, ThePolicyBPlanAndTheDefaultsAreValid) {
  const Status s = rings().validate();
  EXPECT_TRUE(s.ok()) << s.error().message;
  Plan one;
  one.stages = {stage("all", "100%", 0)};
  EXPECT_TRUE(one.validate().ok());
}

struct BadPlan {
  const char* what;
  std::function<void(Plan&)> mutate;
  const char* field;    // the message must start with it
  const char* mention;  // and contain this
};

TEST(PlanValidateTest, NamesTheFieldThatIsWrong) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<BadPlan> cases = {
      {"no stages", [](Plan& p) { p.stages.clear(); }, "stages:", "at least one stage"},
      {"unnamed stage", [](Plan& p) { p.stages[2].name = ""; }, "stages[2].name:", "needs a name"},
      {"duplicate name", [](Plan& p) { p.stages[3].name = "early"; },
       "stages[3].name:", "stages[1]"},
      {"0% first stage", [](Plan& p) { p.stages[0].percent = pct("0%"); },
       "stages[0].percent:", "above 0%"},
      {"equal shares", [](Plan& p) { p.stages[1].percent = pct("0.1%"); }, "stages[1].percent:",
       "stage 'early' at 0.1% must be above the previous stage 'canary' at 0.1%"},
      {"decreasing shares", [](Plan& p) { p.stages[2].percent = pct("0.5%"); },
       "stages[2].percent:", "stage 'broad'"},
      {"last below 100%", [](Plan& p) { p.stages.pop_back(); },
       "stages[3].percent:", "must be 100%, got 50%"},
      {"negative bake", [](Plan& p) { p.stages[1].bake = -kSecond; },
       "stages[1].bake:", "negative"},
      {"selector without values", [](Plan& p) { p.stages[2].selector.any_of["region"] = {}; },
       "stages[2].selector.region:", "no values"},
      {"alpha 0", [](Plan& p) { p.gate.alpha = 0; }, "gate.alpha:", "(0, 0.5)"},
      {"alpha 0.5", [](Plan& p) { p.gate.alpha = 0.5; }, "gate.alpha:", "got 0.5"},
      {"alpha NaN", [nan](Plan& p) { p.gate.alpha = nan; }, "gate.alpha:", "(0, 0.5)"},
      {"alternative 1", [](Plan& p) { p.gate.alternative_ratio = 1; },
       "gate.alternative_ratio:", "above 1"},
      {"alternative inf", [inf](Plan& p) { p.gate.alternative_ratio = inf; },
       "gate.alternative_ratio:", "above 1"},
      {"tolerance below 1", [](Plan& p) { p.gate.tolerance = 0.9; },
       "gate.tolerance:", "at least 1, got 0.9"},
      {"confidence 0.5", [](Plan& p) { p.gate.confidence = 0.5; }, "gate.confidence:", "(0.5, 1)"},
      {"confidence 1", [](Plan& p) { p.gate.confidence = 1; }, "gate.confidence:", "(0.5, 1)"},
      {"min expected negative", [](Plan& p) { p.gate.ratio_check_min_expected = -1; },
       "gate.ratio_check_min_expected:", "at least 0"},
      {"heartbeat 0", [](Plan& p) { p.gate.heartbeat_interval = 0; },
       "gate.heartbeat_interval:", "above 0"},
      {"silent after 0", [](Plan& p) { p.gate.silent_after_missed = 0; },
       "gate.silent_after_missed:", "at least 1"},
      {"tick 0", [](Plan& p) { p.gate.tick = 0; }, "gate.tick:", "above 0"},
      {"tick negative", [](Plan& p) { p.gate.tick = -kMinute; }, "gate.tick:", "-1m"},
      {"ramp step not growing",
       [](Plan& p) {
         p.stages[0].min_devices = 100;
         p.stages[2].min_devices = 100;
       },
       "stages[2].min_devices:",
       "stage 'broad' asks for 100 devices, no more than stage 'canary' before it (100): the "
       "steps of a ramp grow"},
      {"promote confidence 1", [](Plan& p) { p.gate.promote_confidence = 1; },
       "gate.promote_confidence:", "(0.5, 1)"},
      {"promote confidence NaN", [nan](Plan& p) { p.gate.promote_confidence = nan; },
       "gate.promote_confidence:", "(0.5, 1)"},
      {"min stage time negative", [](Plan& p) { p.gate.min_stage_time = -kSecond; },
       "gate.min_stage_time:", "at least 0"},
      {"device-hour floor negative", [](Plan& p) { p.gate.min_promote_device_hours = -1; },
       "gate.min_promote_device_hours:", "at least 0"},
      {"min_per_stratum without strata", [](Plan& p) { p.stages[0].min_per_stratum = 3; },
       "stages[0].min_per_stratum:", "the plan names no strata"},
      {"min_per_stratum too large",
       [](Plan& p) {
         p.strata = {"class"};
         p.stages[0].min_per_stratum = Plan::kMaxPerStratum + 1;
       },
       "stages[0].min_per_stratum:", "is above"},
      {"strata key twice", [](Plan& p) { p.strata = {"class", "region", "class"}; }, "strata:",
       "names 'class' twice"},
      {"strata key empty", [](Plan& p) { p.strata = {""}; }, "strata:", "empty"},
      {"five strata keys", [](Plan& p) { p.strata = {"a", "b", "c", "d", "e"}; }, "strata:",
       "at most 4"},
  };
  for (const auto& c : cases) {
    Plan p = rings();
    c.mutate(p);
    const Status s = p.validate();
    ASSERT_FALSE(s.ok()) << c.what;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument) << c.what;
    EXPECT_EQ(s.error().message.rfind(c.field, 0), 0u) << c.what << ": " << s.error().message;
    EXPECT_NE(s.error().message.find(c.mention), std::string::npos)
        << c.what << ": " << s.error().message;
  }
}

// The first ring that ramps (docs/plan.md): 10, then 100, then 1,000 devices.
TEST(PlanRampTest, StepsAreStagesWithGrowingMinDevicesAndSmallerAcknowledgementNeeds) {
  Plan p = rings();
  Stage r10 = stage("ramp-10", "0.001%", 10 * kMinute);
  r10.min_devices = 10;
  Stage r100 = stage("ramp-100", "0.01%", 5 * kMinute);
  r100.min_devices = 100;
  p.stages[0].min_devices = 1000;  // the canary is the third step
  p.stages.insert(p.stages.begin(), {r10, r100});
  ASSERT_TRUE(p.validate().ok()) << p.validate().error().message;
  // A quarter of the step, rounded up, at most min_acknowledged (50).
  EXPECT_EQ(p.gate_for(0).min_acknowledged, 3u);
  EXPECT_EQ(p.gate_for(1).min_acknowledged, 25u);
  EXPECT_EQ(p.gate_for(2).min_acknowledged, 50u);
  EXPECT_EQ(p.gate_for(3).min_acknowledged, 50u);  // no min_devices: the plan's
  p.stages[0].min_devices = 1;
  EXPECT_EQ(p.gate_for(0).min_acknowledged, 1u);  // all of a step of 1
  p.stages[0].min_devices = 5;
  EXPECT_EQ(p.gate_for(0).min_acknowledged, 3u);  // at least 3
  // examples/plans/lab.yaml: min_acknowledged 2, a canary of min_devices 3 — unchanged.
  p.gate.min_acknowledged = 2;
  p.stages[0].min_devices = 3;
  EXPECT_EQ(p.gate_for(0).min_acknowledged, 2u);
  p.gate.min_acknowledged = 50;
  // The stage's limits come with it.
  p.stages[1].limits = FailureLimits{0.25, 2, 5};
  EXPECT_EQ(p.gate_for(1).limits.max_failures, std::optional<std::uint64_t>(5));
  EXPECT_EQ(p.gate_for(2).limits.max_failures, std::nullopt);
  // A stage that sets no min_devices between two that do is not a step.
  p.stages[1].min_devices = 0;
  EXPECT_TRUE(p.validate().ok()) << p.validate().error().message;
  p.stages[2].min_devices = 1;
  EXPECT_FALSE(p.validate().ok());
}

TEST(PlanValidateTest, BoundariesThatAreAllowed) {
  Plan p = rings();
  p.gate.alpha = 0.49;
  p.gate.alternative_ratio = 1.0001;
  p.gate.tolerance = 1;
  p.gate.confidence = 0.999;
  p.gate.ratio_check_min_expected = 0;
  p.gate.silent_after_missed = 1;
  p.gate.tick = 1;
  p.gate.heartbeat_interval = 1;
  p.stages[0].bake = 0;
  p.stages[0].percent = Ppm::from_ppm(1);
  const Status s = p.validate();
  EXPECT_TRUE(s.ok()) << s.error().message;
}

}  // namespace
}  // namespace tranche::core
