// `tranche release check BUNDLE --interface FILE [--json]`: the content contract
// check (core/contract.h) on files, before anything is signed or shipped.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace tranche::cli {

struct ReleaseArgs {
  CLI::App* check = nullptr;  // the `release check` subcommand
  std::string bundle;
  std::string interface_file;
  bool json = false;
};

void add_release_command(CLI::App& app, ReleaseArgs& args);
// Exit code: 0 the bundle is clean, 1 any violation, 2 unreadable or malformed input.
int run_release_command(const ReleaseArgs& args);

}  // namespace tranche::cli
