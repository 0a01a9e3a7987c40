// The repository side of TUF in the `tranche` CLI (docs/tuf.md):
//
//   tranche repo init DIR --root-key K.pem... --targets-key K.pem...
//        --snapshot-key K.pem... --timestamp-key K.pem... [--threshold N]
//   tranche release sign DIR FILE [--name PATH] --targets-key K.pem...
//   tranche repo publish DIR --snapshot-key K.pem... --timestamp-key K.pem...
//   tranche root rotate DIR --sign-key K.pem... [--root-key K] [--targets-key K]
//        [--snapshot-key K] [--timestamp-key K] [--threshold N]
//
// DIR is laid out for any plain HTTP server (tuf/repository.h): metadata/ with
// 1.root.json, 2.root.json, ..., N.targets.json, N.snapshot.json and
// timestamp.json; targets/ with SHA256.NAME files. The metadata is built and
// signed by tuf/repository.h (the server calls the same publish() with its
// online keys); this file reads and writes the files.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace tranche::cli {

struct RepoArgs {
  CLI::App* init = nullptr;
  CLI::App* publish = nullptr;
  CLI::App* sign = nullptr;    // release sign
  CLI::App* rotate = nullptr;  // root rotate
  std::string dir;
  std::string file;
  std::string name;
  std::vector<std::string> root_keys, targets_keys, snapshot_keys, timestamp_keys, sign_keys;
  std::uint32_t threshold = 0;  // 0: 1 for init, unchanged for rotate
  std::string expires;          // a duration ("90d"); empty: the role's default
};

// Adds `repo init|publish`, `root rotate`, and `sign` under the existing
// `release` subcommand (add_release_command must have run first).
void add_repo_commands(CLI::App& app, RepoArgs& args);
bool repo_command_parsed(const RepoArgs& args);
// Exit code: 0 done, 1 refused (keys that do not meet a threshold, a
// repository already initialised), 2 unreadable or malformed input.
int run_repo_command(const RepoArgs& args);

}  // namespace tranche::cli
