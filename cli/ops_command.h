// The operator's commands against a running tranche-server (docs/cli.md):
//   tranche login --server URL --token T
//   tranche release publish --channel C --version V --target FILE [--bundle FILE]
//                           [--target-path P] [--skip-contract-check]
//   tranche rollout start -f plan.yaml --channel C --version V [--id ID]
//   tranche rollout status [ID] [--watch]
//   tranche rollout pause|resume|promote|abort|rollback ID [--reason TEXT]
//   tranche fleet
//   tranche device ID [--tenant T] [--version V]
// Each takes --json (the API's JSON, as it came). Exit codes: 0 done, 1 the server
// refused or could not be reached (its error code and message are printed), 2 a
// usage error (bad arguments, not logged in, an unreadable file).
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>

namespace tranche::cli {

struct OpsArgs {
  CLI::App* login = nullptr;
  CLI::App* publish = nullptr;  // `release publish`
  CLI::App* start = nullptr;    // `rollout start`
  CLI::App* status = nullptr;   // `rollout status`
  std::map<std::string, CLI::App*> actions;  // `rollout pause` ... `rollout rollback`
  CLI::App* fleet = nullptr;
  CLI::App* device = nullptr;

  std::string server;
  std::string token;
  std::string channel;
  std::string version;
  std::string target;
  std::string target_path;
  std::string bundle;
  bool skip_contract_check = false;
  std::string plan_file;
  std::string id;
  std::string tenant;  // tranche device ID --tenant T
  bool watch = false;
  std::string reason;
  bool json = false;
};

// Adds login, rollout, fleet and device, and `publish` under the existing
// `release` command (call after add_release_command).
void add_ops_commands(CLI::App& app, OpsArgs& args);
bool ops_command_parsed(const OpsArgs& args);
int run_ops_command(const OpsArgs& args);

// One request as the commands above send it, for the admin commands
// (admin_command.h): the server and token of `tranche login` (TRANCHE_SERVER and
// TRANCHE_TOKEN override), a refusal printed with its status, code and message,
// a transport failure with its cause. 0 with the answer's text (a JSON object)
// in *answer; else the exit code (1 refused or unreachable, 2 not logged in).
int ops_request(const std::string& what, const std::string& method, const std::string& path,
                const std::string& body, std::string* answer);

}  // namespace tranche::cli
