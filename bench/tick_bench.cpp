// The engine's tick (server::Fleet::scan), in process, on a fake clock: 1M and
// 4M devices held by one server, one live rollout of content 2.0 whose first
// stage (1%) has run. The fleet lives between ticks as a fleet does: every
// device checks in once a minute (its heartbeat), so 1/60 of the fleet checks
// in before each tick (untimed: that is the check-in's cost, bench/checkin.sh);
// 1% of the devices dropped off 2 to 3 minutes ago, so each tick finds some of
// them silent (the gate's allowance is 3 heartbeats). Timed cases:
//   canary         a tick of the rollout in its first stage;
//   covering       a tick in its baked last stage (completion counted: an
//                  assignment per device that changed);
//   full_canary,   the full pass a tick makes when the live rollouts change (a
//   full_covering  start, an end, the last stage baked): every device visited.
// Each repetition is one tick (now + 1 s); the p50/p99/max rows are over 20.
// Wall time of one thread; the server runs it on its engine thread each tick.
//
//   build/bin/tick_bench                       (docs/benchmarks.md, docs/scale.md)
//   build/bin/tick_bench --benchmark_filter='/canary/1000000'
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

// A fleet of `n` devices and a live rollout, built once per size and stage.
struct World {
  Fleet fleet;
  TimeMs now = kT0;
  std::int64_t n = 0;
  std::int64_t next_checkin = 0;  // round robin over the devices that are up
  std::vector<bool> dropped;
};

bool is_dropped(std::int64_t i) { return i % 100 == 42; }

std::unique_ptr<World> make_world(std::int64_t n, bool last_stage) {
  auto w = std::make_unique<World>();
  w->n = n;
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
    d.key = "d-" + std::to_string(i);
    d.tenant = "t";
    // Up: heard within the last minute. Dropped: 2 to 3 minutes ago, so one
    // 60th of them crosses the 3-minute allowance each second.
    d.last_seen = is_dropped(i) ? kT0 - 120'000 - static_cast<TimeMs>(rng() % 60'000)
                                : kT0 - static_cast<TimeMs>(rng() % 60'000);
    d.health_json = R"({"phase":"idle"})";
    const bool exposed = core::cohort_bucket(d.id(), info->row.salt) < canary_share;
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
  // The first tick is a full pass; the cases below start after it.
  std::vector<std::string> changed;
  (void)w->fleet.scan(w->fleet.snapshot(), w->now, 0, changed);
  return w;
}

World& world(std::int64_t n, bool last_stage) {
  // One world in memory at a time, kept across the repetitions of a case.
  static std::pair<std::int64_t, bool> built{-1, false};
  static std::unique_ptr<World> w;
  if (built != std::make_pair(n, last_stage)) {
    w.reset();
    w = make_world(n, last_stage);
    built = {n, last_stage};
  }
  return *w;
}

// One second of the fleet's life: the devices that are up and due check in.
void live_one_second(World& w) {
  auto snap = w.fleet.snapshot();
  const std::int64_t due = w.n / 60;
  for (std::int64_t k = 0; k < due; ++k) {
    const std::int64_t i = w.next_checkin;
    w.next_checkin = (w.next_checkin + 1) % w.n;
    if (is_dropped(i)) continue;
    (void)w.fleet.with_device("d-" + std::to_string(i), [&](Device& d) {
      (void)w.fleet.check_in(d, *snap, d.versions, d.health_json, true, w.now, 600'000);
    });
  }
}

void tick(benchmark::State& state, bool last_stage) {
  World& w = world(state.range(0), last_stage);
  std::vector<std::string> changed;
  std::uint64_t silent = 0;
  for (auto _ : state) {
    state.PauseTiming();
    w.now += core::kSecond;
    live_one_second(w);
    auto snap = w.fleet.snapshot();
    changed.clear();
    state.ResumeTiming();
    auto result = w.fleet.scan(snap, w.now, core::kSecond, changed);
    benchmark::DoNotOptimize(result);
    silent += changed.size();
  }
  state.counters["devices"] = static_cast<double>(state.range(0));
  state.counters["silent_per_tick"] = static_cast<double>(silent) / static_cast<double>(state.iterations());
}

// The full pass: the live rollouts change before each tick (here the gate's
// allowance, between 3 and 4 heartbeats, which starts a new count).
void full_pass(benchmark::State& state, bool last_stage) {
  World& w = world(state.range(0), last_stage);
  std::vector<std::string> changed;
  for (auto _ : state) {
    state.PauseTiming();
    w.now += core::kSecond;
    w.fleet.update([&](Snapshot& s) {
      auto r = std::make_shared<RolloutInfo>(*s.rollouts["r"]);
      r->plan.gate.silent_after_missed = r->plan.gate.silent_after_missed == 3 ? 4 : 3;
      s.rollouts["r"] = r;
    });
    auto snap = w.fleet.snapshot();
    changed.clear();
    state.ResumeTiming();
    auto result = w.fleet.scan(snap, w.now, core::kSecond, changed);
    benchmark::DoNotOptimize(result);
  }
  state.counters["devices"] = static_cast<double>(state.range(0));
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

BENCHMARK_CAPTURE(tick, canary, false)->Apply(configure);
BENCHMARK_CAPTURE(full_pass, full_canary, false)->Apply(configure);
BENCHMARK_CAPTURE(tick, covering, true)->Apply(configure);
BENCHMARK_CAPTURE(full_pass, full_covering, true)->Apply(configure);

}  // namespace
}  // namespace tranche::server

BENCHMARK_MAIN();
