#include "cli/repo_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include "core/result.h"
#include "core/types.h"
#include "tuf/canonical_json.h"
#include "tuf/crypto.h"
#include "tuf/metadata.h"
#include "tuf/repository.h"
#include "config/tuf_repo_dir.h"

namespace tranche::cli {
namespace {

namespace fs = std::filesystem;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

// A failure with its exit code: 2 for input that cannot be read or parsed, 1
// for an operation the repository's rules refuse.
struct Failure {
  int exit_code;
  core::Error error;
};

Failure bad_input(core::Error e) {
  return Failure{2, std::move(e)};
}
Failure refused(core::Error e) {
  return Failure{1, std::move(e)};
}

Result<std::string> read_file(const fs::path& p) { return config::read_whole_file(p); }
Status write_file(const fs::path& p, std::string_view bytes) { return config::write_file_atomic(p, bytes); }

core::TimeMs wall_clock() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<core::TimeMs> expiry(const std::string& text, core::DurationMs fallback) {
  core::DurationMs d = fallback;
  if (!text.empty()) {
    auto parsed = core::parse_duration(text);
    if (!parsed) return parsed.error().with_context("--expires: ");
    d = *parsed;
  }
  return core::saturating_add(wall_clock(), d);
}

using config::load_signing_keys;

// A public key: NAME.pub.json as `tranche keys gen` writes it, or a PEM private
// key (its public half).
Result<tuf::PublicKey> load_public_key(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) return bytes.error();
  if (bytes->find("-----BEGIN") != std::string::npos) {
    auto k = tuf::signing_key_from_pem(*bytes);
    if (!k) return k.error().with_context(path + ": ");
    return k->public_key;
  }
  auto doc = tuf::parse_json(*bytes);
  if (!doc) return doc.error().with_context(path + ": ");
  const auto* o = doc->if_object();
  const auto* keyval = o ? o->if_contains("keyval") : nullptr;
  const auto* pub =
      keyval && keyval->is_object() ? keyval->get_object().if_contains("public") : nullptr;
  const auto* type = o ? o->if_contains("keytype") : nullptr;
  const auto* scheme = o ? o->if_contains("scheme") : nullptr;
  if (!pub || !pub->is_string() || !type || !type->is_string() || !scheme || !scheme->is_string()) {
    return make_error(ErrorCode::kInvalidArgument,
                      path + ": expected {\"keytype\", \"scheme\", \"keyval\": {\"public\"}}");
  }
  tuf::PublicKey k;
  k.keytype = std::string(type->get_string());
  k.scheme = std::string(scheme->get_string());
  k.public_value = std::string(pub->get_string());
  k.json = *o;
  return k;
}

Result<tuf::RoleDefinition> load_role(const std::vector<std::string>& paths,
                                      std::uint32_t threshold) {
  tuf::RoleDefinition r;
  r.threshold = threshold;
  for (const std::string& p : paths) {
    auto k = load_public_key(p);
    if (!k) return k.error();
    r.keys.push_back(std::move(*k));
  }
  return r;
}

fs::path metadata_dir(const std::string& dir) { return config::repo_metadata_dir(dir); }
std::int64_t latest_version(const std::string& dir, const std::string& role) {
  return config::repo_latest_version(dir, role);
}
Result<std::string> read_latest(const std::string& dir, const std::string& role) {
  return config::repo_read_latest(dir, role);
}

std::optional<Failure> write_or_fail(const fs::path& p, std::string_view bytes) {
  auto st = write_file(p, bytes);
  if (!st) return bad_input(st.error());
  std::printf("wrote %s\n", p.c_str());
  return std::nullopt;
}

std::optional<Failure> run_init(const RepoArgs& a) {
  if (latest_version(a.dir, "root") != 0) {
    return refused(make_error(ErrorCode::kConflict, metadata_dir(a.dir).string() +
                                                        " already has a root; use tranche "
                                                        "root rotate"));
  }
  TRANCHE_ASSIGN_OR_RETURN_AS(auto root_signers, load_signing_keys(a.root_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto targets_signers, load_signing_keys(a.targets_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto snapshot_signers, load_signing_keys(a.snapshot_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto timestamp_signers, load_signing_keys(a.timestamp_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto root_expires, expiry(a.expires, tuf::kRootExpiry), bad_input);
  tuf::RootDefinition def;
  def.version = 1;
  def.expires = root_expires;
  auto role = [](const std::vector<tuf::SigningKey>& ks, std::uint32_t threshold) {
    tuf::RoleDefinition r;
    r.threshold = threshold;
    for (const auto& k : ks) r.keys.push_back(k.public_key);
    return r;
  };
  def.root = role(root_signers, a.threshold == 0 ? 1 : a.threshold);
  def.targets = role(targets_signers, 1);
  def.snapshot = role(snapshot_signers, 1);
  def.timestamp = role(timestamp_signers, 1);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto root, tuf::make_root(def, root_signers), refused);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto targets, tuf::empty_targets(root, wall_clock() + tuf::kTargetsExpiry, targets_signers),
           refused);
  tuf::PublishRequest req;
  req.root = root;
  req.targets = {{"targets", targets}};
  req.snapshot_keys = snapshot_signers;
  req.timestamp_keys = timestamp_signers;
  req.now = wall_clock();
  TRANCHE_ASSIGN_OR_RETURN_AS(auto published, tuf::publish(req), refused);
  const fs::path m = metadata_dir(a.dir);
  std::error_code ec;
  fs::create_directories(fs::path(a.dir) / "targets", ec);
  for (const auto& [name, bytes] :
       {std::pair<std::string, const std::string*>{tuf::root_file_name(1), &root},
        {tuf::targets_file_name(1), &targets},
        {tuf::snapshot_file_name(published.snapshot_version), &published.snapshot},
        {std::string(tuf::kTimestampFileName), &published.timestamp}}) {
    if (auto f = write_or_fail(m / name, *bytes)) return f;
  }
  return std::nullopt;
}

std::optional<Failure> run_sign(const RepoArgs& a) {
  TRANCHE_ASSIGN_OR_RETURN_AS(auto signers, load_signing_keys(a.targets_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto content, read_file(a.file), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto root, read_latest(a.dir, "root"), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto current, read_latest(a.dir, "targets"), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto expires, expiry(a.expires, tuf::kTargetsExpiry), bad_input);
  const std::string name = a.name.empty() ? fs::path(a.file).filename().string() : a.name;
  TRANCHE_ASSIGN_OR_RETURN_AS(auto path, tuf::TargetPath::parse(name), bad_input);
  tuf::TargetFile file;
  file.length = static_cast<std::int64_t>(content.size());
  const std::string sha256 = tuf::sha256_hex(content);
  file.hashes = {{"sha256", sha256}};
  TRANCHE_ASSIGN_OR_RETURN_AS(auto targets, tuf::add_target(root, current, path, file, expires, signers), refused);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto parsed, tuf::parse_targets(targets), refused);
  // The content first: metadata never names a file the server lacks.
  if (auto f = write_or_fail(fs::path(a.dir) / "targets" / tuf::target_file_name(path, sha256),
                             content)) {
    return f;
  }
  if (auto f = write_or_fail(
          metadata_dir(a.dir) / tuf::targets_file_name(parsed.body.common.version), targets)) {
    return f;
  }
  std::printf(
      "signed '%s' (%s, %zu bytes) into targets version %lld; clients see it after "
      "tranche repo publish\n",
      name.c_str(), sha256.c_str(), content.size(),
      static_cast<long long>(parsed.body.common.version));
  return std::nullopt;
}

std::optional<Failure> run_publish(const RepoArgs& a) {
  TRANCHE_ASSIGN_OR_RETURN_AS(auto snapshot_signers, load_signing_keys(a.snapshot_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto timestamp_signers, load_signing_keys(a.timestamp_keys), bad_input);
  std::optional<core::DurationMs> lifetime;
  if (!a.expires.empty()) {
    TRANCHE_ASSIGN_OR_RETURN_AS(auto d, core::parse_duration(a.expires), bad_input);
    lifetime = d;
  }
  if (latest_version(a.dir, "root") == 0 || latest_version(a.dir, "targets") == 0) {
    TRANCHE_ASSIGN_OR_RETURN_AS(auto missing, read_latest(a.dir, latest_version(a.dir, "root") == 0 ? "root" : "targets"),
             bad_input);
    (void)missing;
  }
  TRANCHE_ASSIGN_OR_RETURN_AS(auto version, config::repo_publish(a.dir, snapshot_signers, timestamp_signers, wall_clock(), lifetime),
           refused);
  std::printf("wrote %s and %s\n", (metadata_dir(a.dir) / tuf::snapshot_file_name(version)).c_str(),
              (metadata_dir(a.dir) / tuf::kTimestampFileName).c_str());
  return std::nullopt;
}

std::optional<Failure> run_rotate(const RepoArgs& a) {
  TRANCHE_ASSIGN_OR_RETURN_AS(auto signers, load_signing_keys(a.sign_keys), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto current, read_latest(a.dir, "root"), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto def, tuf::root_definition(current), bad_input);
  TRANCHE_ASSIGN_OR_RETURN_AS(auto expires, expiry(a.expires, tuf::kRootExpiry), bad_input);
  for (auto [paths, role] :
       {std::pair<const std::vector<std::string>*, tuf::RoleDefinition*>{&a.root_keys, &def.root},
        {&a.targets_keys, &def.targets},
        {&a.snapshot_keys, &def.snapshot},
        {&a.timestamp_keys, &def.timestamp}}) {
    if (paths->empty()) continue;
    TRANCHE_ASSIGN_OR_RETURN_AS(auto r, load_role(*paths, role->threshold), bad_input);
    *role = r;
    role->threshold =
        std::min<std::uint32_t>(role->threshold, static_cast<std::uint32_t>(role->keys.size()));
  }
  if (a.threshold != 0) def.root.threshold = a.threshold;
  TRANCHE_ASSIGN_OR_RETURN_AS(auto root, tuf::rotate_root(current, def, expires, signers), refused);
  const std::int64_t v = latest_version(a.dir, "root") + 1;
  if (auto f = write_or_fail(metadata_dir(a.dir) / tuf::root_file_name(v), root)) return f;
  if (!a.snapshot_keys.empty() || !a.timestamp_keys.empty()) {
    std::printf("snapshot or timestamp keys changed: run tranche repo publish with the new keys\n");
  }
  return std::nullopt;
}

void add_key_option(CLI::App* cmd, const char* flag, std::vector<std::string>& out,
                    const char* help) {
  cmd->add_option(flag, out, help)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

}  // namespace

void add_repo_commands(CLI::App& app, RepoArgs& a) {
  CLI::App* repo = app.add_subcommand(
      "repo", "A TUF repository on disk, servable by any plain HTTP server (docs/tuf.md)");
  repo->require_subcommand(1);
  a.init = repo->add_subcommand(
      "init",
      "Create DIR/metadata with 1.root.json (consistent snapshots), an empty\n"
      "1.targets.json, 1.snapshot.json and timestamp.json, and DIR/targets/. Each\n"
      "--*-key is a private key (NAME.pem from tranche keys gen); repeat an option\n"
      "for several keys. --threshold is the root role's (the others need 1).\n"
      "Keep the root and targets keys offline afterwards.");
  a.init->add_option("DIR", a.dir, "repository directory")->required();
  add_key_option(a.init, "--root-key", a.root_keys, "root key (PEM), repeatable");
  add_key_option(a.init, "--targets-key", a.targets_keys, "targets key (PEM), repeatable");
  add_key_option(a.init, "--snapshot-key", a.snapshot_keys, "snapshot key (PEM), repeatable");
  add_key_option(a.init, "--timestamp-key", a.timestamp_keys, "timestamp key (PEM), repeatable");
  for (const char* o : {"--root-key", "--targets-key", "--snapshot-key", "--timestamp-key"}) {
    a.init->get_option(o)->required();
  }
  a.init->add_option("--threshold", a.threshold, "signatures the root role needs (default 1)");
  a.init->add_option("--expires", a.expires, "root lifetime, e.g. 365d (the default)");

  a.publish = repo->add_subcommand(
      "publish",
      "Sign a new N.snapshot.json over the latest N.targets.json and a new\n"
      "timestamp.json over it, with the online snapshot and timestamp keys (what the\n"
      "server does after each release). The snapshot is written before the timestamp\n"
      "that names it.");
  a.publish->add_option("DIR", a.dir, "repository directory")->required();
  add_key_option(a.publish, "--snapshot-key", a.snapshot_keys, "snapshot key (PEM), repeatable");
  add_key_option(a.publish, "--timestamp-key", a.timestamp_keys, "timestamp key (PEM), repeatable");
  a.publish->get_option("--snapshot-key")->required();
  a.publish->get_option("--timestamp-key")->required();
  a.publish->add_option("--expires", a.expires, "timestamp lifetime (default 1d; snapshot 7d)");

  CLI::App* release = app.get_subcommand("release");
  a.sign = release->add_subcommand(
      "sign",
      "Add FILE as a target (named --name, default its file name) to a new\n"
      "N+1.targets.json signed with the offline targets key(s), and copy it to\n"
      "DIR/targets/SHA256.NAME. Clients see it after tranche repo publish.");
  a.sign->add_option("DIR", a.dir, "repository directory")->required();
  a.sign->add_option("FILE", a.file, "the release file")->required();
  a.sign->add_option("--name", a.name, "target path clients ask for (e.g. app/1.2.bin)");
  add_key_option(a.sign, "--targets-key", a.targets_keys, "targets key (PEM), repeatable");
  a.sign->get_option("--targets-key")->required();
  a.sign->add_option("--expires", a.expires, "targets lifetime (default 90d)");

  CLI::App* root = app.add_subcommand("root", "The TUF root of trust");
  root->require_subcommand(1);
  a.rotate = root->add_subcommand(
      "rotate",
      "Write N+1.root.json: the latest root with the roles given here replaced\n"
      "(--ROLE-key: NAME.pub.json or NAME.pem, repeatable; roles not given keep\n"
      "their keys). --sign-key (PEM, repeatable) must include enough old root keys\n"
      "for the old threshold AND enough new root keys for the new one: clients\n"
      "check both (TUF 5.3.4). Rotating snapshot or timestamp keys makes clients\n"
      "drop their trusted snapshot and timestamp (5.3.11): publish again after.");
  a.rotate->add_option("DIR", a.dir, "repository directory")->required();
  add_key_option(a.rotate, "--sign-key", a.sign_keys, "a key that signs the new root (PEM)");
  a.rotate->get_option("--sign-key")->required();
  add_key_option(a.rotate, "--root-key", a.root_keys, "new root key");
  add_key_option(a.rotate, "--targets-key", a.targets_keys, "new targets key");
  add_key_option(a.rotate, "--snapshot-key", a.snapshot_keys, "new snapshot key");
  add_key_option(a.rotate, "--timestamp-key", a.timestamp_keys, "new timestamp key");
  a.rotate->add_option("--threshold", a.threshold, "new root threshold (default: unchanged)");
  a.rotate->add_option("--expires", a.expires, "root lifetime (default 365d)");
}

bool repo_command_parsed(const RepoArgs& a) {
  for (const CLI::App* c : {a.init, a.publish, a.sign, a.rotate}) {
    if (c != nullptr && c->parsed()) return true;
  }
  return false;
}

int run_repo_command(const RepoArgs& a) {
  std::optional<Failure> f;
  std::string what;
  if (a.init->parsed()) {
    what = "repo init";
    f = run_init(a);
  } else if (a.publish->parsed()) {
    what = "repo publish";
    f = run_publish(a);
  } else if (a.sign->parsed()) {
    what = "release sign";
    f = run_sign(a);
  } else {
    what = "root rotate";
    f = run_rotate(a);
  }
  if (!f) return 0;
  std::fprintf(stderr, "tranche %s: %s\n", what.c_str(), f->error.to_string().c_str());
  return f->exit_code;
}

}  // namespace tranche::cli
