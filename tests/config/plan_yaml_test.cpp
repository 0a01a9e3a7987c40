#include "config/plan_yaml.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>

namespace tranche::config {
namespace {

using core::ErrorCode;
using core::kHour;
using core::kMinute;
using core::kSecond;

const char* const kFile = "plans/test.yaml";

// The example of docs/plan.md.
const std::string kValid = R"(name: rings-with-gates
on_failure: rollback        # or halt
gate:
  alpha: 0.001
  alternative_ratio: 1.6
  tolerance: 2.0
  confidence: 0.95
  min_acknowledged: 50
  heartbeat_interval: 60s
  silent_after_missed: 3
  tick: 1m
stages:
  - {name: canary, percent: 0.1%, bake: 30m, min_devices: 50}
  - {name: early, percent: 1%, bake: 30m}
  - {name: broad, percent: 10%, bake: 1h, selector: {region: [emea, apac]}}
  - {name: half, percent: 50%, bake: 1h}
  - {name: all, percent: 100%, bake: 0s, admits_critical: true}
)";

// 1-based line of the first line of `text` that contains `needle`.
int line_of(const std::string& text, std::string_view needle) {
  const std::size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  int line = 1;
  for (std::size_t i = 0; i < at && i < text.size(); ++i) line += text[i] == '\n' ? 1 : 0;
  return line;
}

std::string replace(std::string text, std::string_view from, std::string_view to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Parses `text`, expects an error at `line` that mentions each of `mentions`.
void expect_error(const std::string& text, int line, std::initializer_list<const char*> mentions,
                  ErrorCode code = ErrorCode::kParse) {
  auto r = parse_plan(text, kFile);
  ASSERT_FALSE(r.ok()) << text;
  const std::string& m = r.error().message;
  const std::string where = std::string(kFile) + ":" + std::to_string(line) + ": ";
  EXPECT_EQ(m.rfind(where, 0), 0u) << "expected '" << where << "' at the start of: " << m;
  for (const char* mention : mentions) {
    EXPECT_NE(m.find(mention), std::string::npos) << "missing '" << mention << "' in: " << m;
  }
  EXPECT_EQ(r.error().code, code) << m;
}

TEST(PlanYamlTest, ParsesTheDocumentedExample) {
  auto r = parse_plan(kValid, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const core::Plan& p = *r;
  EXPECT_EQ(p.name, "rings-with-gates");
  EXPECT_EQ(p.on_failure, core::OnFailure::kRollback);
  EXPECT_DOUBLE_EQ(p.gate.alpha, 0.001);
  EXPECT_DOUBLE_EQ(p.gate.alternative_ratio, 1.6);
  EXPECT_DOUBLE_EQ(p.gate.tolerance, 2.0);
  EXPECT_DOUBLE_EQ(p.gate.confidence, 0.95);
  EXPECT_EQ(p.gate.min_acknowledged, 50u);
  EXPECT_EQ(p.gate.heartbeat_interval, 60 * kSecond);
  EXPECT_EQ(p.gate.silent_after_missed, 3u);
  EXPECT_EQ(p.gate.tick, kMinute);
  ASSERT_EQ(p.stages.size(), 5u);
  EXPECT_EQ(p.stages[0].name, "canary");
  EXPECT_EQ(p.stages[0].percent.value(), 1'000u);
  EXPECT_EQ(p.stages[0].bake, 30 * kMinute);
  EXPECT_EQ(p.stages[0].min_devices, 50u);
  EXPECT_FALSE(p.stages[0].admits_critical);
  EXPECT_TRUE(p.stages[0].selector.any_of.empty());
  EXPECT_EQ(p.stages[2].bake, kHour);
  const auto& regions = p.stages[2].selector.any_of.at("region");
  EXPECT_EQ(regions, (std::vector<std::string>{"emea", "apac"}));
  EXPECT_EQ(p.stages[4].percent.value(), core::Ppm::kWhole);
  EXPECT_EQ(p.stages[4].bake, 0);
  EXPECT_TRUE(p.stages[4].admits_critical);
}

TEST(PlanYamlTest, OmittedFieldsTakeTheDefaultsOfThePlanStructs) {
  auto r = parse_plan("name: minimal\nstages:\n  - name: all\n    percent: 100%\n", kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const core::Plan defaults;
  const core::Stage stage_defaults;
  EXPECT_EQ(r->on_failure, defaults.on_failure);
  EXPECT_EQ(r->gate.alpha, defaults.gate.alpha);
  EXPECT_EQ(r->gate.tick, defaults.gate.tick);
  EXPECT_EQ(r->gate.min_acknowledged, defaults.gate.min_acknowledged);
  EXPECT_EQ(r->stages[0].bake, stage_defaults.bake);
  EXPECT_EQ(r->stages[0].min_devices, stage_defaults.min_devices);
}

// Sequential promotion's settings are keys of gate: (docs/plan.md), each checked.
TEST(PlanYamlTest, SequentialPromotionSettingsAreReadAndChecked) {
  auto r = parse_plan("name: p\ngate:\n  early_promotion: false\n  promote_confidence: 0.99\n"
                      "  min_stage_time: 5m\n  min_promote_device_hours: 12.5\n"
                      "stages:\n  - {name: all, percent: 100%}\n",
                      kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->gate.early_promotion);
  EXPECT_EQ(r->gate.promote_confidence, 0.99);
  EXPECT_EQ(r->gate.min_stage_time, 5 * core::kMinute);
  EXPECT_EQ(r->gate.min_promote_device_hours, 12.5);
  expect_error("name: p\ngate:\n  promote_confidence: 1.5\nstages:\n  - {name: all, percent: 100%}\n", 3,
               {"gate.promote_confidence: must be in (0.5, 1), got 1.5"}, ErrorCode::kInvalidArgument);
  expect_error("name: p\ngate:\n  early_promotion: maybe\nstages:\n  - {name: all, percent: 100%}\n", 3,
               {"early_promotion"});
}

TEST(PlanYamlTest, BlockStyleAndScalarSelectorsAndHalt) {
  const std::string text = R"(name: block
on_failure: halt
stages:
  - name: servers
    percent: 5%
    bake: 1h30m
    selector:
      class: server
      region: [emea]
  - name: all
    percent: 100%
)";
  auto r = parse_plan(text, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->on_failure, core::OnFailure::kHalt);
  EXPECT_EQ(r->stages[0].bake, kHour + 30 * kMinute);
  EXPECT_EQ(r->stages[0].selector.any_of.at("class"), std::vector<std::string>{"server"});
  EXPECT_TRUE(r->stages[0].selector.matches({{"class", "server"}, {"region", "emea"}}));
}

// --- errors: each names the file, the line and the field ----------------------------

TEST(PlanYamlTest, MalformedYaml) {
  const std::string text = replace(kValid, "  - {name: early, percent: 1%, bake: 30m}",
                                   "  - {name: early, percent: 1%, bake: 30m");
  auto r = parse_plan(text, kFile);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kParse);
  EXPECT_EQ(r.error().message.rfind(std::string(kFile) + ":", 0), 0u) << r.error().message;

  expect_error("name: x\nstages:\n  - {name: a, percent: 100%}\n  bad indent: [\n", 4, {});
  expect_error("", 1, {"empty document"});
}

TEST(PlanYamlTest, UnknownKeys) {
  expect_error(replace(kValid, "on_failure:", "on_falure:"), 2, {"on_falure: unknown key"});
  expect_error(replace(kValid, "  tick: 1m", "  tick: 1m\n  tik: 1m"),
               line_of(kValid, "  tick: 1m") + 1, {"gate.tik: unknown key", "tick"});
  const std::string text = replace(kValid, "{name: half, percent: 50%, bake: 1h}",
                                   "{name: half, percent: 50%, bake: 1h, precent: 5%}");
  expect_error(text, line_of(text, "name: half"), {"stages[3].precent: unknown key"});
}

TEST(PlanYamlTest, RepeatedKeys) {
  const std::string text = replace(kValid, "  alpha: 0.001", "  alpha: 0.001\n  alpha: 0.01");
  expect_error(text, line_of(kValid, "alpha") + 1, {"gate.alpha: key given twice"});
}

TEST(PlanYamlTest, MissingRequiredFields) {
  expect_error("on_failure: halt\nstages: []\n", 1, {"name: missing"});
  expect_error("name: x\n", 1, {"stages: missing"});
  const std::string text =
      replace(kValid, "{name: early, percent: 1%, bake: 30m}", "{name: early, bake: 30m}");
  expect_error(text, line_of(text, "name: early"), {"stages[1].percent: missing"});
}

TEST(PlanYamlTest, StrataAndMinPerStratum) {
  const std::string with = replace(kValid, "stages:\n", "strata: [class, os]\nstages:\n");
  const std::string text = replace(with, "min_devices: 50}", "min_devices: 50, min_per_stratum: 3}");
  auto plan = config::parse_plan(text, "plan.yaml");
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->strata, (std::vector<std::string>{"class", "os"}));
  EXPECT_EQ(plan->stages[0].min_per_stratum, 3u);
  EXPECT_EQ(plan->stages[1].min_per_stratum, 0u);
  // Without strata, the stage's min_per_stratum is refused at its line.
  const std::string bare = replace(kValid, "min_devices: 50}", "min_devices: 50, min_per_stratum: 3}");
  expect_error(bare, line_of(bare, "min_per_stratum"), {"stages[0].min_per_stratum", "names no strata"},
               ErrorCode::kInvalidArgument);
  const std::string scalar = replace(kValid, "stages:\n", "strata: class\nstages:\n");
  expect_error(scalar, line_of(scalar, "strata:"), {"strata", "expected a list of tag keys"});
}

TEST(PlanYamlTest, WrongTypes) {
  {
    const std::string text = replace(kValid, "min_devices: 50", "min_devices: fifty");
    expect_error(text, line_of(text, "fifty"), {"stages[0].min_devices", "expected an integer"});
  }
  {
    const std::string text = replace(kValid, "min_devices: 50", "min_devices: -5");
    expect_error(text, line_of(text, "-5"), {"stages[0].min_devices", "got -5"},
                 ErrorCode::kOutOfRange);
  }
  {
    const std::string text = replace(kValid, "  alpha: 0.001", "  alpha: [0.001]");
    expect_error(text, line_of(text, "alpha"), {"gate.alpha: expected a number"});
  }
  {
    const std::string text = replace(kValid, "admits_critical: true", "admits_critical: maybe");
    expect_error(text, line_of(text, "maybe"), {"stages[4].admits_critical", "true or false"});
  }
  {
    const std::string text = replace(kValid, "on_failure: rollback", "on_failure: retry");
    expect_error(text, 2, {"on_failure: expected 'halt' or 'rollback', got 'retry'"});
  }
  expect_error("name: x\nstages: 5\n", 2, {"stages: expected a list"});
  expect_error("name: x\ngate: [1]\nstages: []\n", 2, {"gate: expected a mapping"});
  expect_error("- a\n- b\n", 1, {"plan: expected a mapping"});
  {
    const std::string text =
        replace(kValid, "selector: {region: [emea, apac]}", "selector: {region: {emea: 1}}");
    expect_error(text, line_of(text, "selector"), {"stages[2].selector.region"});
  }
}

TEST(PlanYamlTest, BadValues) {
  {
    const std::string text = replace(kValid, "percent: 1%", "percent: 1");
    expect_error(text, line_of(text, "name: early"), {"stages[1].percent", "missing '%'", "'1'"});
  }
  {
    const std::string text = replace(kValid, "percent: 50%", "percent: 150%");
    expect_error(text, line_of(text, "150%"), {"stages[3].percent", "above 100%"},
                 ErrorCode::kOutOfRange);
  }
  {
    const std::string text = replace(kValid, "tick: 1m", "tick: 1 minute");
    expect_error(text, line_of(text, "tick:"), {"gate.tick", "duration"});
  }
  {
    const std::string text = replace(kValid, "bake: 1h}", "bake: 1y}");
    expect_error(text, line_of(text, "1y"), {"stages[3].bake", "unknown unit 'y'"});
  }
}

// Errors Plan::validate finds still point at the line of the field.
TEST(PlanYamlTest, ValidationErrorsPointAtTheLine) {
  {
    const std::string text = replace(kValid, "percent: 10%", "percent: 0.5%");
    expect_error(text, line_of(text, "name: broad"),
                 {"stages[2].percent", "stage 'broad' at 0.5%", "stage 'early' at 1%"},
                 ErrorCode::kInvalidArgument);
  }
  {
    const std::string text = replace(kValid, "percent: 100%", "percent: 90%");
    expect_error(text, line_of(text, "name: all"), {"stages[4].percent", "must be 100%"},
                 ErrorCode::kInvalidArgument);
  }
  {
    const std::string text = replace(kValid, "alpha: 0.001", "alpha: 0.7");
    expect_error(text, line_of(text, "alpha"), {"gate.alpha", "(0, 0.5)"},
                 ErrorCode::kInvalidArgument);
  }
  {
    const std::string text = replace(kValid, "name: half", "name: early");
    expect_error(text, line_of(text, "percent: 50%"), {"stages[3].name", "stages[1]"},
                 ErrorCode::kInvalidArgument);
  }
  {
    const std::string text = replace(kValid, "[emea, apac]", "[]");
    expect_error(text, line_of(text, "selector"), {"stages[2].selector.region", "no values"},
                 ErrorCode::kInvalidArgument);
  }
  expect_error("name: x\nstages: []\n", 2, {"stages: a plan needs at least one stage"},
               ErrorCode::kInvalidArgument);
}

// --- files -----------------------------------------------------------------------------

std::string source_dir() {
  const char* dir = std::getenv("TRANCHE_SOURCE_DIR");  // set by CTest
  return dir != nullptr ? dir : ".";
}

TEST(PlanYamlTest, RingsExampleIsPolicyB) {
  auto r = load_plan_file(source_dir() + "/examples/plans/rings.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  // A ramp of 10, 100 and 1,000 devices, then 1%, 20%, 50%, 100% (issue 16).
  const std::uint32_t shares[] = {10, 100, 1'000, 10'000, 200'000, 500'000, core::Ppm::kWhole};
  const std::uint32_t min_devices[] = {10, 100, 1'000, 0, 0, 0, 0};
  const core::DurationMs bakes[] = {10 * kMinute, 5 * kMinute, 5 * kMinute, 15 * kMinute,
                                    3 * kHour,    kHour,       0};
  ASSERT_EQ(r->stages.size(), 7u);
  for (std::size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(r->stages[i].percent.value(), shares[i]) << i;
    EXPECT_EQ(r->stages[i].min_devices, min_devices[i]) << i;
    EXPECT_EQ(r->stages[i].bake, bakes[i]) << i;
  }
  EXPECT_EQ(r->gate.min_acknowledged, 50u);
  EXPECT_EQ(r->gate.tick, kMinute);
  EXPECT_EQ(r->gate.heartbeat_interval, kMinute);
  EXPECT_EQ(r->gate.silent_after_missed, 3u);
  EXPECT_EQ(r->on_failure, core::OnFailure::kRollback);
}

TEST(PlanYamlTest, UrgentExampleIsOneRingThenEverybody) {
  auto r = load_plan_file(source_dir() + "/examples/plans/urgent.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->stages.size(), 2u);
  EXPECT_EQ(r->stages[0].percent.value(), 1'000u);
  EXPECT_EQ(r->stages[0].bake, 10 * kMinute);
  EXPECT_EQ(r->stages[1].percent.value(), core::Ppm::kWhole);
}

TEST(PlanYamlTest, MissingFileIsNotFound) {
  auto r = load_plan_file(source_dir() + "/examples/plans/no-such-plan.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("no-such-plan.yaml"), std::string::npos);
}

}  // namespace
}  // namespace tranche::config
