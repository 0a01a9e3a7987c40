// Property: a release that fails on every device it reaches never leaves its
// first stage — for every fleet size from 1 to 10,000 and every plan in
// examples/plans — and once an absolute failure limit is crossed, the rollout
// halts within 2 ticks.
//
// The fleet is the simulator's evidence (sim::RunEvidence over core's model):
// the first stage admits the devices whose cohort bucket is under its effective
// share (as core::assign and the simulator admit them); every device is online;
// admitted devices are offered the release at a random tick of the first 20 and
// fail one tick after their offer, by a random failure (install failure, crash,
// fallback or silence). The rest of the fleet is the control group.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "config/plan_yaml.h"
#include "core/cohort.h"
#include "core/rollout_machine.h"
#include "sim/run_evidence.h"
#include "tests/sim/test_paths.h"

namespace tranche::sim {
namespace {
using testing::source_dir;

constexpr std::uint32_t kMaxFleet = 10'000;

struct PlanCase {
  std::string file;
  core::Plan plan;
};

std::vector<PlanCase> example_plans() {
  std::vector<PlanCase> out;
  for (const auto& entry : std::filesystem::directory_iterator(source_dir() + "/examples/plans")) {
    if (entry.path().extension() != ".yaml") continue;
    auto plan = config::load_plan_file(entry.path().string());
    EXPECT_TRUE(plan.ok()) << entry.path() << ": " << plan.error().message;
    if (plan.ok()) out.push_back(PlanCase{entry.path().filename().string(), *plan});
  }
  std::sort(out.begin(), out.end(),
            [](const PlanCase& a, const PlanCase& b) { return a.file < b.file; });
  return out;
}

// Whether an absolute limit of `limits` is crossed by `t` (written out from
// docs/plan.md, independently of core/gate.cpp).
bool limit_crossed(const core::FailureLimits& limits, const core::EvidenceTally& t) {
  const double failed = static_cast<double>(t.exposed.failures);
  const bool share = t.exposed_devices >= limits.min_exposed &&
                     failed > limits.max_failure_rate * static_cast<double>(t.exposed_devices);
  const bool count = limits.max_failures && t.exposed.failures > *limits.max_failures;
  return share || count;
}

TEST(BadRelease, NeverLeavesItsFirstStageAndHaltsWithinTwoTicksOfALimit) {
  const auto plans = example_plans();
  ASSERT_GE(plans.size(), 3u) << "rings, urgent and lab at least";
  constexpr core::Fact kFailures[] = {core::Fact::kInstallFailed, core::Fact::kCrashed,
                                      core::Fact::kFellBack, core::Fact::kSilent};
  for (const auto& [file, plan] : plans) {
    // Buckets of dev-0 .. dev-9999 under this rollout's salt: a fleet of n is
    // its first n devices.
    const std::uint64_t salt = core::rollout_salt("bad-release-" + file);
    std::vector<std::uint32_t> bucket(kMaxFleet);
    for (std::uint32_t d = 0; d < kMaxFleet; ++d)
      bucket[d] = core::cohort_bucket("dev-" + std::to_string(d), salt);
    const core::Stage& first = plan.stages.front();
    std::uint64_t halted_fleets = 0;
    for (std::uint32_t n = 1; n <= kMaxFleet; ++n) {
      std::mt19937_64 rng(n * 7919ULL + salt);
      const core::Ppm share = core::effective_share(first.percent, first.min_devices, n);
      RunEvidence evidence(n);
      struct Admitted {
        std::uint32_t device;
        std::int32_t offer_tick;
      };
      std::vector<Admitted> admitted;
      for (std::uint32_t d = 0; d < n; ++d) {
        evidence.presence_changed(d, Presence::kOffline, Presence::kOnline);
        if (bucket[d] < share.value())
          admitted.push_back({d, 1 + static_cast<std::int32_t>(rng() % 20)});
      }
      core::RolloutStatus status;
      status.state = core::RolloutState::kRunning;
      core::GateState gate;
      std::int32_t crossed_at = -1;
      const core::TimeMs t0 = 0;
      for (std::int32_t k = 1; k <= 60 && status.state == core::RolloutState::kRunning; ++k) {
        for (const auto& [d, offered_at] : admitted) {
          if (offered_at == k) evidence.record(d, core::Fact::kOffered, Presence::kOnline);
          if (offered_at + 1 == k) evidence.record(d, kFailures[rng() % 4], Presence::kOnline);
        }
        evidence.accrue(plan.gate.tick);
        const core::TimeMs now = t0 + k * plan.gate.tick;
        // Stage 0 has baked: only the evidence stands between it and promotion.
        const core::GateObservation o = core::observe(evidence.tally(), now, first.bake);
        if (crossed_at < 0 && limit_crossed(plan.limits_for(0), evidence.tally())) crossed_at = k;
        // Coverage as counted in a last stage: nobody runs the release healthily.
        const core::Coverage coverage{
            0, evidence.tally().exposed_devices - evidence.tally().exposed.failures};
        const auto decision = core::decide_tick(status, plan, gate, o, now, coverage);
        gate = decision.gate.state;
        ASSERT_NE(decision.event, core::RolloutEvent::kPromote)
            << file << ", " << n << " devices, tick " << k
            << ": promoted a release that fails everywhere: " << decision.reason;
        if (decision.event == core::RolloutEvent::kHalt) {
          status.state = core::RolloutState::kHalted;
          ++halted_fleets;
        }
        if (crossed_at >= 0) {
          ASSERT_LE(k - crossed_at, 1)
              << file << ", " << n << " devices: limit crossed at tick " << crossed_at
              << ", still running at tick " << k << ": " << decision.reason;
        }
      }
      EXPECT_EQ(status.stage, 0u);
    }
    // Every fleet large enough for the limit halts (not merely holds).
    std::printf("[bad release] %s: halted in %llu of %u fleet sizes\n", file.c_str(),
                static_cast<unsigned long long>(halted_fleets), kMaxFleet);
    EXPECT_GE(halted_fleets, kMaxFleet - plan.limits_for(0).min_exposed) << file;
  }
}

}  // namespace
}  // namespace tranche::sim
