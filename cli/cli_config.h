// Where `tranche login` keeps the server and the operator token: $TRANCHE_CONFIG,
// else $XDG_CONFIG_HOME/tranche/cli.json, else ~/.config/tranche/cli.json. The file
// is JSON, {"server": "...", "token": "..."}, mode 0600 (it holds a credential),
// written whole (temp file, fsync, rename), so a crash leaves the old or the new.
#pragma once

#include <string>

#include "core/result.h"

namespace tranche::cli {

struct CliConfig {
  std::string server;
  std::string token;
};

std::string cli_config_path();
// kNotFound when there is no file; kParse when it is not the JSON above.
core::Result<CliConfig> load_cli_config(const std::string& path);
core::Status save_cli_config(const std::string& path, const CliConfig& config);

}  // namespace tranche::cli
