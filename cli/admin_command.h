// The administrator's commands against a running tranche-server (docs/cli.md):
//   tranche token create NAME [--role viewer|operator|admin]
//   tranche token list
//   tranche token revoke NAME
//   tranche tenant create ID --enrollment-key K [--policy FILE]
//   tranche tenant list
//   tranche tenant policy ID [--set FILE]
//   tranche release list
//   tranche release show CHANNEL VERSION
//   tranche audit [--after SEQ] [--limit N]
//   tranche device list [--version CHANNEL:V] [--state S] [--stage NAME] [--tag K:V] [--tenant T]
//                       [--limit N] [--after TENANT/ID]
//   tranche device show ID [--tenant T] [--version V]
//   tranche device events ID [--tenant T] [--limit N] [--before SEQ]
// and one that needs no server:
//   tranche plan check FILE [--fleet N]
// Each server command takes --json (the API's JSON, as it came); exit codes as
// the ops commands (ops_command.h): 0 done, 1 refused or unreachable, 2 usage.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tranche::cli {

struct AdminArgs {
  std::string name;  // token name, tenant id, device id, channel
  std::string role = "viewer";
  std::string enrollment_key;
  std::string policy_file;
  std::string version;
  std::string file;
  std::string state;
  std::string stage;
  std::string tag;
  std::string after;
  std::string tenant;  // the device's tenant (device show/events/list --tenant)
  std::int64_t before = 0;
  std::int64_t limit = 0;
  std::uint64_t fleet = 0;
  bool json = false;
  // The commands, one row each: the subcommand and what runs it.
  std::vector<std::pair<CLI::App*, std::function<int(const AdminArgs&)>>> commands;
};

// Adds token, tenant, audit and plan, `list` and `show` under the existing
// `release`, and `list`, `show` and `events` under the existing `device` (call
// after add_release_command and add_ops_commands).
void add_admin_commands(CLI::App& app, AdminArgs& args);
// The exit code of the admin command that was parsed; -1 when none was.
int run_admin_command(const AdminArgs& args);

}  // namespace tranche::cli
