// `tranche keys gen [--scheme ed25519|ecdsa|rsa] --out NAME`: a new signing key
// for a TUF role, as NAME.pem (PKCS#8 private key, mode 0600) and NAME.pub.json
// (the public key as TUF metadata lists it, for `tranche repo init` and
// `tranche root rotate`).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace tranche::cli {

struct KeysArgs {
  CLI::App* gen = nullptr;
  std::string scheme = "ed25519";
  std::string out;
};

void add_keys_command(CLI::App& app, KeysArgs& args);
bool keys_command_parsed(const KeysArgs& args);
// Exit code: 0 written, 1 key generation failed, 2 bad input (an existing file,
// an unwritable path).
int run_keys_command(const KeysArgs& args);

}  // namespace tranche::cli
