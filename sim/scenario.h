// A simulator scenario: every parameter of a scenario document, read from a YAML
// file in scenarios/. `--set key=value` overrides any scalar by its dotted path
// before the file is interpreted, so a sensitivity run changes data, not code.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/agent_machine.h"
#include "core/plan.h"
#include "core/result.h"
#include "core/types.h"

namespace tranche::sim {

struct DeviceClass {
  std::string name;
  double share = 0;
  double online_business = 0;   // probability of being online in local business hours
  double online_other = 0;      // ... outside them
  core::DurationMs mean_session = 0;
};

struct Region {
  std::string name;
  double share = 0;
  core::DurationMs utc_offset = 0;
};

enum class PolicyKind : std::uint8_t { kGlobal, kRings };

struct Policy {
  std::string name;
  PolicyKind kind = PolicyKind::kGlobal;
  core::DurationMs revert_after = -1;  // kGlobal: revert the release after this (bad run)
  bool agent = false;                  // tranche's agent with fallback on the devices
  std::string plan_file;               // kRings
  core::Plan plan;                     // kRings, loaded from plan_file
};

struct Scenario {
  std::string name;
  std::string description;
  std::string file;  // where it was read from
  core::TimeMs start = 0;
  core::DurationMs horizon = 14 * core::kDay;

  std::uint64_t devices = 1'000'000;
  std::uint64_t full_scale_devices = 13'400'000;
  std::vector<DeviceClass> classes;
  std::vector<Region> regions;
  int business_start_hour = 8;
  int business_end_hour = 18;

  bool delivery_poll = false;
  core::DurationMs held_mean = 2 * core::kMinute;
  core::DurationMs connect_mean = 1 * core::kMinute;
  core::DurationMs poll_min = 15 * core::kMinute;
  core::DurationMs poll_max = 20 * core::kMinute;

  double crash_probability = 1.0;
  core::DurationMs crash_mean = 30 * core::kSecond;
  // The first crash of a start comes crash_after + Exp(crash_mean) after the
  // release starts (0: the 2024 crash on receipt); once it has crashed the
  // machine, it crashes at every boot (Exp(crash_mean)).
  core::DurationMs crash_after = 0;
  // Only devices of this class and of this region crash ("all": every one): a
  // release that breaks one kind of machine (docs/plan.md, "Every stratum in
  // every step").
  std::string crash_class = "all";
  std::string crash_region = "all";
  core::DurationMs reboot_cycle = 2 * core::kMinute;
  std::uint32_t os_gives_up_after = 2;
  double self_heal_per_reboot = 0;
  core::DurationMs repair_median = 24 * core::kHour;
  double repair_sigma = 1.08;
  double unclean_per_10min = 1e-4;
  core::DurationMs heartbeat_interval = 60 * core::kSecond;
  std::uint32_t silent_after_missed = 3;
  core::AgentConfig agent;

  std::map<std::string, Policy> policies;
  std::vector<std::string> default_policies;

  double calib_crashed_min = 0.55;
  double calib_crashed_max = 0.70;
  double calib_down_day6_max = 0.15;
  double calib_down_day10_8_max = 0.05;
};

// "key=value" overrides, applied in order.
using Overrides = std::vector<std::pair<std::string, std::string>>;

// Reads, overrides, interprets and validates a scenario file. Plan files named by
// policies are resolved relative to the scenario file. Errors name the file, the
// line and what is wrong.
core::Result<Scenario> load_scenario(const std::string& path, const Overrides& overrides);

// Finds a scenario by name in `dir` (scenarios/NAME.yaml) or takes a path.
std::string resolve_scenario_path(const std::string& name_or_path, const std::string& dir);

}  // namespace tranche::sim
