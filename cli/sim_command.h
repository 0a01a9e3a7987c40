// `tranche sim`: replay a scenario under several rollout policies.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace tranche::cli {

struct SimArgs {
  std::string scenario = "crowdstrike-2024";
  std::uint64_t devices = 0;  // 0: the scenario's
  std::uint64_t seed = 1;
  std::string policies;       // "A,B,C,urgent"; empty: the scenario's defaults
  std::string json_file, csv_file, plot_file;
  std::vector<std::string> sets;
  std::uint64_t false_halt_trials = 0;
  unsigned threads = 2;
  bool quiet = false;
  bool check_calibration = false;
};

void add_sim_command(CLI::App& app, SimArgs& args);
// Exit code: 0 success, 1 failure while running, 2 bad input (scenario, plan, flags).
int run_sim_command(const SimArgs& args);

}  // namespace tranche::cli
