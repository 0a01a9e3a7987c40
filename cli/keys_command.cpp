#include "cli/keys_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "tuf/canonical_json.h"
#include "tuf/crypto.h"

namespace tranche::cli {
namespace {

// Creates `path` with `mode`, refusing to overwrite: a key is never replaced
// by accident.
bool write_new_file(const std::string& path, std::string_view bytes, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    std::fprintf(stderr, "tranche keys gen: %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<std::size_t>(n);
  }
  const bool ok = done == bytes.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) std::fprintf(stderr, "tranche keys gen: %s: %s\n", path.c_str(), std::strerror(errno));
  return ok;
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
