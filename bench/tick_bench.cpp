// The engine tick's device pass (server::Fleet::scan), in process, on a fake
// clock: 1M and 4M devices held by one server, one live rollout of content 2.0
// whose first stage (1%) has been offered, every device heard within the last
// minute before the first tick. Two cases per size:
//   canary   the rollout in its first stage: exposure, silence, online counts;
//   covering the rollout in its baked last stage: the pass also runs an
//            assignment per online device to count completion (core::Coverage).
// Each repetition is one tick (now + 1 s); the p50/p99/max rows are over 20.
// Wall time of one thread; the server runs it on its engine thread each tick.
//
//   build/bin/tick_bench                       (docs/benchmarks.md, docs/scale.md)
//   build/bin/tick_bench --benchmark_filter=canary/1000000
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config/plan_yaml.h"
#include "core/cohort.h"
#include "server/fleet.h"
#include "tests/server/fleet_fixture.h"

namespace tranche::server {
namespace {

using core::TimeMs;

constexpr TimeMs kT0 = 1'800'000'000'000;

core::Version v(const char* text) { return core::Version::parse(text).value(); }

// A fleet of `n` devices and a live rollout, built once per size and case.
struct World {
  Fleet fleet;
  TimeMs now = kT0;
};

std::unique_ptr<World> make_world(std::int64_t n, bool last_stage) {
  auto w = std::make_unique<World>();
  auto plan = config::parse_plan(
      "name: bench\ngate: {heartbeat_interval: 60s, silent_after_missed: 3}\n"
      "stages:\n  - {name: canary, percent: 1%, bake: 1h}\n  - {name: all, percent: 100%, bake: 1h}\n",
      "plan");
  if (!plan.ok()) throw std::runtime_error(plan.error().to_string());
  auto info = std::make_shared<RolloutInfo>();
  info->row.id = "r";
  info->row.created_at = kT0 - core::kHour * 3;
  info->row.salt = 7;
  info->plan = *plan;
  info->channel = "content";
  info->version = v("2.0");
  info->previous = v("1.0");
  info->status.state = core::RolloutState::kRunning;
  info->status.stage = last_stage ? 1 : 0;
  info->status.stage_started_at = kT0 - core::kHour * 2;  // baked
  info->evidence = std::make_shared<RolloutEvidence>();
  const std::uint32_t canary_share = 10'000;  // 1% in ppm
  std::mt19937_64 rng(7);
  for (std::int64_t i = 0; i < n; ++i) {
    Device d;
    d.id = "d-" + std::to_string(i);
    d.tenant = "t";
    d.last_seen = kT0 - static_cast<TimeMs>(rng() % 60'000);
    d.health_json = R"({"phase":"idle"})";
    const bool exposed = core::cohort_bucket(d.id, info->row.salt) < canary_share;
    d.versions.emplace("content", v(exposed ? "2.0" : "1.0"));
    if (exposed) {
      RolloutMark& m = d.mark("r");
      m.standing = core::Standing::kAcknowledged;
      m.offered_at = kT0 - core::kHour;
      m.acknowledged_at = kT0 - core::kHour / 2;
    }
    if (!w->fleet.add_device(std::move(d)).ok()) throw std::runtime_error("add_device");
  }
  w->fleet.update([&](Snapshot& s) {
    testing::add_channel(s, "content", {"1.0", "2.0"});
    s.rollouts["r"] = info;
    s.live_rollout["content"] = "r";
    s.device_count = static_cast<std::uint64_t>(n);
  });
  return w;
}

void scan(benchmark::State& state, bool last_stage) {
  const std::int64_t n = state.range(0);
  // One world in memory at a time, kept across the repetitions of a case.
  static std::pair<std::int64_t, bool> built{-1, false};
  static std::unique_ptr<World> w;
  if (built != std::make_pair(n, last_stage)) {
    w.reset();
    w = make_world(n, last_stage);
    built = {n, last_stage};
  }
  std::vector<std::string> changed;
  for (auto _ : state) {
    // Heard within the minute before kT0, silent only after 3 minutes: 20
    // ticks of 1 s find no silence.
    w->now += core::kSecond;
    auto snap = w->fleet.snapshot();
    changed.clear();
    auto result = w->fleet.scan(*snap, w->now, core::kSecond, changed);
    benchmark::DoNotOptimize(result);
  }
  state.counters["devices"] = static_cast<double>(n);
}

double percentile(const std::vector<double>& v, double p) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(s.size() - 1) + 0.5);
  return s[std::min(i, s.size() - 1)];
}

void configure(benchmark::internal::Benchmark* b) {
  b->Arg(1'000'000)
      ->Arg(4'000'000)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(1)
      ->Repetitions(20)
      ->UseRealTime()
      ->ComputeStatistics("p50", [](const std::vector<double>& v) { return percentile(v, 0.5); })
      ->ComputeStatistics("p99", [](const std::vector<double>& v) { return percentile(v, 0.99); })
      ->ComputeStatistics("max", [](const std::vector<double>& v) {
        return *std::max_element(v.begin(), v.end());
      });
}

BENCHMARK_CAPTURE(scan, canary, false)->Apply(configure);
BENCHMARK_CAPTURE(scan, covering, true)->Apply(configure);

}  // namespace
}  // namespace tranche::server

BENCHMARK_MAIN();
