// Properties of a whole plan (issue 16), with sequential promotion and the ramp:
//  - a good release (failure rate as control's) is halted in at most 1 of 1,000
//    releases;
//  - a harmful one (failure-rate ratio 2, and larger) is halted before it reaches
//    50% of the fleet in at least 99% of releases;
// and, printed next to the plan of before (tests/sim/data/rings-before-issue-16.yaml,
// bake-only promotion): the failures a harmful release adds before its halt, and
// how long a good one takes to reach its last stage.
//
// The fleet is a Poisson model of the gate's evidence, one look a minute, the
// plan's stages and core's rollout machine and gate deciding: 1,000,000 devices,
// 60% of them online, every online device failing (silence, a crash: the
// background) at the reference scenario's 1e-4 per 10 minutes, and exposed ones
// at `ratio` times that. A stage admits core::stage_target of the fleet — its
// share, raised by min_per_stratum in each of the reference scenario's class x
// region strata — and its online devices take the release within the minute and
// acknowledge it. Each trial draws its failures from its own seed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "config/plan_yaml.h"
#include "core/assignment.h"
#include "core/cohort.h"
#include "core/rollout_machine.h"
#include "sim/scenario.h"
#include "tests/sim/test_paths.h"

namespace tranche::sim {
namespace {
using testing::source_dir;

// PLAN_SAFETY_DEVICES=n runs another fleet size (the assertions are for a million).
const double kDevices = [] {
  const char* n = std::getenv("PLAN_SAFETY_DEVICES");
  return n != nullptr ? std::atof(n) : 1'000'000.0;
}();
constexpr double kOnline = 0.6;
constexpr double kBackgroundPerS = 1e-4 / 600.0;  // per online device-second
constexpr core::DurationMs kMaxRun = 24 * core::kHour;

struct Outcome {
  bool halted = false;
  bool reached_half = false;        // entered a stage of 50% or more before any halt
  double minutes = 0;               // to the halt, or to the last stage's entry
  double added_failures = 0;        // expected failures beyond the background, to the halt
};

// The reference scenario's strata (class x region) under the plan's strata keys,
// at kDevices: what a rollout of this fleet would count at its start.
// Read once per set of keys.
core::StratumCounts strata_of(const core::Plan& plan) {
  static std::map<std::vector<std::string>, core::StratumCounts> cache;
  if (auto it = cache.find(plan.strata); it != cache.end()) return it->second;
  core::StratumCounts& counts = cache[plan.strata];
  if (plan.strata.empty()) return counts;
  auto scenario = load_scenario(source_dir() + "/scenarios/crowdstrike-2024.yaml", {});
  EXPECT_TRUE(scenario) << scenario.error().message;
  if (!scenario) return counts;
  for (const auto& c : scenario->classes) {
    for (const auto& r : scenario->regions) {
      counts[core::stratum_of({{"class", c.name}, {"region", r.name}}, plan.strata)] +=
          static_cast<std::uint64_t>(std::llround(c.share * r.share * kDevices));
    }
  }
  return counts;
}

Outcome run_release(const core::Plan& plan, double ratio, std::uint64_t seed) {
  const core::StratumCounts strata = strata_of(plan);
  std::mt19937_64 rng(seed);
  core::RolloutStatus status;
  status.state = core::RolloutState::kRunning;
  core::GateState gate;
  core::GateObservation o;
  double exposed_devices = 0;  // online devices exposed (the admitted, times the online share)
  const core::DurationMs tick = plan.gate.tick;
  const double tick_s = static_cast<double>(tick) / 1000.0;
  Outcome out;
  for (core::TimeMs now = tick; now <= kMaxRun; now += tick) {
    const core::Stage& stage = plan.stages[status.stage];
    const double share =
        static_cast<double>(core::stage_target(plan, status.stage, static_cast<std::uint64_t>(kDevices), strata)) /
        kDevices;
    exposed_devices = std::round(share * kDevices * kOnline);
    const double control_devices = kDevices * kOnline - exposed_devices;
    const double e1 = exposed_devices * tick_s;
    const double e0 = control_devices * tick_s;
    o.exposed.exposure_s += e1;
    o.control.exposure_s += e0;
    o.exposed.failures += std::poisson_distribution<std::uint64_t>(ratio * kBackgroundPerS * e1)(rng);
    o.control.failures += std::poisson_distribution<std::uint64_t>(kBackgroundPerS * e0)(rng);
    o.exposed_devices = static_cast<std::uint64_t>(exposed_devices);
    o.acknowledged = o.exposed_devices > o.exposed.failures ? o.exposed_devices - o.exposed.failures : 0;
    o.stage_elapsed = now - status.stage_started_at;
    o.stage_bake = stage.bake;
    const core::Coverage coverage{o.acknowledged, o.exposed_devices};
    const auto d = core::decide_tick(status, plan, gate, o, now, coverage);
    gate = d.gate.state;
    auto t = core::apply_event(status, d.event, plan, now, d.reason, coverage);
    EXPECT_TRUE(t.ok()) << t.error().message;
    if (!t.ok()) break;
    status = t->next;
    out.minutes = static_cast<double>(now) / static_cast<double>(core::kMinute);
    if (d.event == core::RolloutEvent::kHalt) {
      out.halted = true;
      if (std::getenv("PLAN_SAFETY_TRACE") != nullptr) {
        std::printf("halt at %.0f min, stage %u, ratio %g: %s\n", static_cast<double>(now) / 60000.0,
                    status.stage, ratio, d.reason.c_str());
      }
      out.added_failures = (ratio - 1.0) * kBackgroundPerS * o.exposed.exposure_s;
      return out;
    }
    if (status.state != core::RolloutState::kRunning) return out;
    if (d.event == core::RolloutEvent::kPromote && std::getenv("PLAN_SAFETY_TRACE") != nullptr &&
        ratio > 1 && plan.stages[status.stage].percent.value() >= core::Ppm::kWhole / 2 &&
        !out.reached_half) {
      std::printf("into %s at %.0f min, ratio %g: %s\n", plan.stages[status.stage].name.c_str(),
                  static_cast<double>(now) / 60000.0, ratio, d.reason.c_str());
    }
    if (plan.stages[status.stage].percent.value() >= core::Ppm::kWhole / 2) out.reached_half = true;
    if (std::size_t{status.stage} + 1 == plan.stages.size()) return out;  // the last stage
  }
  return out;
}

struct Summary {
  int trials = 0;
  int halted = 0;
  int halted_before_half = 0;
  double mean_minutes = 0;
  double mean_added = 0;  // over the halted releases
};

Summary run_trials(const core::Plan& plan, double ratio, int trials, std::uint64_t seed) {
  Summary s;
  s.trials = trials;
  double added = 0;
  double minutes = 0;
  for (int i = 0; i < trials; ++i) {
    const Outcome o = run_release(plan, ratio, seed * std::uint64_t{1'000'003} + static_cast<std::uint64_t>(i));
    minutes += o.minutes;
    if (o.halted) {
      ++s.halted;
      added += o.added_failures;
      if (!o.reached_half) ++s.halted_before_half;
    }
  }
  s.mean_minutes = minutes / static_cast<double>(trials);
  s.mean_added = s.halted ? added / static_cast<double>(s.halted) : 0;
  return s;
}

core::Plan load(const std::string& path) {
  auto plan = config::load_plan_file(source_dir() + "/" + path);
  EXPECT_TRUE(plan.ok()) << path << ": " << (plan.ok() ? "" : plan.error().message);
  return plan.ok() ? *plan : core::Plan{};
}

core::Plan before_plan() {
  core::Plan p = load("tests/sim/data/rings-before-issue-16.yaml");
  p.gate.early_promotion = false;  // the gate of before: promotion at the end of the bake
  return p;
}

void print(const char* what, const Summary& s) {
  std::printf("[plan safety] %-44s %4d trials: halted %4d, before 50%% %4d; mean %.1f min; "
              "added failures before the halt %.1f\n",
              what, s.trials, s.halted, s.halted_before_half, s.mean_minutes, s.mean_added);
}

TEST(PlanSafety, GoodReleaseIsFalselyHaltedAtMostOncePerThousand) {
  const core::Plan plan = load("examples/plans/rings.yaml");
  const Summary s = run_trials(plan, 1.0, 10000, 11);
  print("rings.yaml, good release (ratio 1)", s);
  // At 1 per 1,000, more than 20 of 10,000 happens with probability below 0.1%
  // (binomial): a count above it says the rate is higher.
  EXPECT_LE(s.halted, 20) << "false halts per 10,000 good releases";
  print("before, good release (ratio 1)", run_trials(before_plan(), 1.0, 200, 11));
}

TEST(PlanSafety, HarmfulReleaseIsHaltedBeforeHalfTheFleet) {
  const core::Plan plan = load("examples/plans/rings.yaml");
  const core::Plan before = before_plan();
  for (const double ratio : {2.0, 3.0, 10.0}) {
    const Summary s = run_trials(plan, ratio, 1000, 23 + static_cast<std::uint64_t>(ratio));
    const std::string label = "rings.yaml, harmful (ratio " + std::to_string(ratio).substr(0, 4) + ")";
    print(label.c_str(), s);
    EXPECT_GE(s.halted_before_half, 990) << "ratio " << ratio << ": of 1,000 harmful releases";
    const Summary b = run_trials(before, ratio, 1000, 23 + static_cast<std::uint64_t>(ratio));
    const std::string blabel = "before, harmful (ratio " + std::to_string(ratio).substr(0, 4) + ")";
    print(blabel.c_str(), b);
  }
}

}  // namespace
}  // namespace tranche::sim
