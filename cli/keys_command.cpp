#include "cli/keys_command.h"

#include <boost/json.hpp>
#include <cstdio>
#include <string_view>

#include "config/file_io.h"
#include "tuf/canonical_json.h"
#include "tuf/crypto.h"

namespace tranche::cli {
namespace {

// A key is never replaced, not even by a concurrent `keys gen` (the file
// appears by an exclusive rename or link: config::write_file_atomic).
bool write_new_file(const std::string& path, std::string_view bytes, mode_t mode) {
  config::WriteOptions options;
  options.mode = mode;
  options.no_overwrite = true;
  options.create_parent_dirs = false;
  auto st = config::write_file_atomic(path, bytes, options);
  if (!st) std::fprintf(stderr, "tranche keys gen: %s\n", st.error().message.c_str());
  return st.ok();
}

}  // namespace

void add_keys_command(CLI::App& app, KeysArgs& args) {
  CLI::App* keys = app.add_subcommand("keys", "Signing keys for the TUF roles (docs/tuf.md)");
  keys->require_subcommand(1);
  args.gen = keys->add_subcommand(
      "gen",
      "Generate a key pair: NAME.pem, the private key (PKCS#8 PEM, mode 0600; keep\n"
      "root and targets keys offline), and NAME.pub.json, the public key as TUF\n"
      "metadata lists it. Prints the key id. Never overwrites an existing file.");
  args.gen
      ->add_option("--scheme", args.scheme,
                   "ed25519 (default), ecdsa (P-256) or rsa (3072-bit PSS)")
      ->check(CLI::IsMember({"ed25519", "ecdsa", "rsa"}));
  args.gen->add_option("--out", args.out, "NAME: writes NAME.pem and NAME.pub.json")->required();
}

bool keys_command_parsed(const KeysArgs& args) {
  return args.gen != nullptr && args.gen->parsed();
}

int run_keys_command(const KeysArgs& args) {
  const tuf::KeyScheme scheme = args.scheme == "ecdsa" ? tuf::KeyScheme::kEcdsaP256
                                : args.scheme == "rsa" ? tuf::KeyScheme::kRsaPssSha256
                                                       : tuf::KeyScheme::kEd25519;
  auto key = tuf::generate_signing_key(scheme);
  if (!key) {
    std::fprintf(stderr, "tranche keys gen: %s\n", key.error().to_string().c_str());
    return 1;
  }
  auto pub = tuf::canonical_json(boost::json::value(key->public_key.json));
  if (!pub) {
    std::fprintf(stderr, "tranche keys gen: %s\n", pub.error().to_string().c_str());
    return 1;
  }
  if (!write_new_file(args.out + ".pem", key->private_pem, 0600)) return 2;
  if (!write_new_file(args.out + ".pub.json", *pub + "\n", 0644)) return 2;
  std::printf("%s %s.pem %s.pub.json\n", tuf::key_id(key->public_key).c_str(), args.out.c_str(),
              args.out.c_str());
  return 0;
}

}  // namespace tranche::cli
