// tranche — the operator's command line. Subcommands arrive layer by layer; today:
// `tranche sim`, the fleet simulator, `tranche release check`, the content
// contract check, and the TUF repository: `keys gen`, `repo init|publish`,
// `release sign`, `root rotate`; and against a server: `login`, `release publish`,
// `rollout`, `fleet`, `device` (ops_command.h), `token`, `tenant`, `release
// list|show`, `audit`, `device list|show|events` and `plan check`
// (admin_command.h); and `demo`, the whole story with real processes
// (demo_command.h). Usage errors: config/usage.h (named, suggested, exit 2).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/admin_command.h"
#include "cli/demo_command.h"
#include "cli/keys_command.h"
#include "cli/ops_command.h"
#include "cli/release_command.h"
#include "cli/repo_command.h"
#include "cli/sim_command.h"
#include "config/usage.h"

// Exceptions from outside data are caught where they arise (CLI11's here, yaml-cpp's
// in config/, filesystem errors in sim_command.cpp). What could still escape is
// allocation failure or a bug: std::terminate, with the exception's message, is
// the crash a broken invariant gets.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  CLI::App app{
      "tranche: ship updates to fleets in gated rings; stop a bad one in its first ring,\n"
      "roll it back everywhere, and let every endpoint heal itself.",
      "tranche"};
  app.set_version_flag("--version", std::string("tranche ") + TRANCHE_VERSION);
  app.require_subcommand(1);
  tranche::cli::SimArgs sim_args;
  tranche::cli::add_sim_command(app, sim_args);
  tranche::cli::ReleaseArgs release_args;
  tranche::cli::add_release_command(app, release_args);
  tranche::cli::KeysArgs keys_args;
  tranche::cli::add_keys_command(app, keys_args);
  tranche::cli::RepoArgs repo_args;  // after release: adds `release sign`
  tranche::cli::add_repo_commands(app, repo_args);
  tranche::cli::OpsArgs ops_args;  // after release: adds `release publish`
  tranche::cli::add_ops_commands(app, ops_args);
  tranche::cli::AdminArgs admin_args;  // after ops: adds `release list|show`, `device list|show|events`
  tranche::cli::add_admin_commands(app, admin_args);
  tranche::cli::DemoArgs demo_args;
  tranche::cli::add_demo_command(app, demo_args);
  if (auto done = tranche::config::parse_command_line(app, argc, argv)) return *done;  // usage: exit 2
  if (app.got_subcommand("sim")) return tranche::cli::run_sim_command(sim_args);
  if (demo_args.demo->parsed()) return tranche::cli::run_demo_command(demo_args);
  if (tranche::cli::keys_command_parsed(keys_args))
    return tranche::cli::run_keys_command(keys_args);
  if (tranche::cli::repo_command_parsed(repo_args))
    return tranche::cli::run_repo_command(repo_args);
  // Before ops: `device show` is parsed under ops' `device` too.
  if (int rc = tranche::cli::run_admin_command(admin_args); rc >= 0) return rc;
  if (tranche::cli::ops_command_parsed(ops_args)) return tranche::cli::run_ops_command(ops_args);
  if (release_args.check != nullptr && release_args.check->parsed()) {
    return tranche::cli::run_release_command(release_args);
  }
  return 2;
}
