// tranche-tuf-client — a TUF 1.0.x client with the command-line protocol that
// TUF client conformance suites drive (issue 4 §2, docs/tuf.md):
//
//   tranche-tuf-client --metadata-dir DIR init ROOT_FILE
//   tranche-tuf-client --metadata-dir DIR --metadata-url URL refresh
//   tranche-tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH
//       [--target-name PATH ...] --target-base-url URL --target-dir DIR download
//
// Exit 0 on success, 1 on any failure (2 for a malformed command line). Every
// decision is tuf::Updater's and tuf::TrustedSet's; the shell is tranche-agent's
// (agent/tuf_io.h over agent/posix.h): HTTP with libcurl (length caps enforced
// while receiving), files written durably, and the clock, read once and never
// allowed to go back behind the latest time this client has seen
// (DIR/latest-known-time).
#include <curl/curl.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/posix.h"
#include "agent/tuf_io.h"
#include "core/result.h"
#include "tuf/client.h"
#include "tuf/metadata.h"
#include "tuf/updater.h"

namespace {

using tranche::core::Error;
namespace agent = tranche::agent;
namespace tuf = tranche::tuf;

constexpr const char* kProgram = "tranche-tuf-client";
// A whole transfer; connecting has HttpRequest's 10 s.
constexpr std::int64_t kTransferTimeoutMs = 600'000;

void say(const std::string& line) {
  std::fprintf(stderr, "%s: %s\n", kProgram, line.c_str());
}

struct Options {
  std::string metadata_dir;
  std::string metadata_url;
  std::vector<std::string> target_names;
  std::string target_base_url;
  std::string target_dir;
  std::string root_file;
};

int fail(const std::string& what, const Error& e) {
  say(what + ": " + e.to_string());
  return 1;
}

int run_init(const Options& o, agent::FileSystem& fs) {
  auto bytes = fs.read(o.root_file, tuf::ClientLimits{}.max_root_bytes);
  if (!bytes) return fail("init", bytes.error());
  // Only a root that verifies with its own keys is worth trusting (5.2); its
  // expiry is judged at the first refresh, after any newer root.
  auto set = tuf::TrustedSet::create(*bytes, 0);
  if (!set) return fail("init: " + o.root_file, set.error());
  auto st = fs.make_dirs(o.metadata_dir);
  if (!st) return fail("init", st.error());
  st = agent::write_durably(fs, o.metadata_dir + "/root.json", *bytes);
  if (!st) return fail("init", st.error());
  say("trusting root version " + std::to_string(set->root().body.common.version) + " in " +
      o.metadata_dir + "/root.json");
  return 0;
}

void print_notes(const tuf::Updater& u, std::size_t& printed) {
  for (; printed < u.notes().size(); ++printed) say(u.notes()[printed]);
}

int run_update(const Options& o, bool download, agent::FileSystem& fs) {
  if (o.metadata_url.empty()) {
    say("--metadata-url is required");
    return 1;
  }
  // 5.1: the fixed update start time, recorded before any metadata is judged.
  const tranche::core::TimeMs clock = agent::SystemClock().now();
  auto now = agent::tuf_update_start_time(fs, o.metadata_dir, clock);
  if (!now) return fail("refresh", now.error());
  if (*now > clock) {
    say("the clock is behind the latest known time " + tuf::format_utc_time(*now) + "; using that");
  }
  agent::CurlHttpClient http(std::string(kProgram) + "/" + TRANCHE_VERSION);
  agent::HttpFetcher fetcher(http, o.metadata_url, o.target_base_url, say);
  fetcher.timeout_ms = kTransferTimeoutMs;
  agent::DirectoryMetadataStore store(fs, o.metadata_dir);
  auto updater = tuf::Updater::create(fetcher, store, *now);
  if (!updater) return fail("refresh", updater.error());
  std::size_t printed = 0;
  auto st = updater->refresh();
  print_notes(*updater, printed);
  if (!st) return fail("refresh failed", st.error());
  const auto& set = updater->trusted();
  say("refreshed: root v" + std::to_string(set.root().body.common.version) + ", timestamp v" +
      std::to_string(set.timestamp()->body.common.version) + ", snapshot v" +
      std::to_string(set.snapshot()->body.common.version) + ", targets v" +
      std::to_string(set.targets()->body.common.version));
  if (!download) return 0;

  if (o.target_base_url.empty() || o.target_dir.empty()) {
    say("download needs --target-base-url and --target-dir");
    return 1;
  }
  st = fs.make_dirs(o.target_dir);
  if (!st) return fail("download", st.error());
  for (const std::string& name : o.target_names) {
    auto path = tuf::TargetPath::parse(name);
    if (!path) return fail("target '" + name + "'", path.error());
    auto info = updater->get_target_info(*path);
    print_notes(*updater, printed);
    if (!info) return fail("target '" + name + "'", info.error());
    const std::string local = tuf::target_local_name(*path);
    // A copy already here with the signed length and hashes is kept.
    auto existing = fs.read(o.target_dir + "/" + local, static_cast<std::size_t>(info->length));
    if (existing && tuf::verify_target(*info, *existing).ok()) {
      say("target '" + name + "': " + o.target_dir + "/" + local + " is up to date");
      continue;
    }
    auto bytes = updater->download_target(*path, *info);
    if (!bytes) return fail("target '" + name + "'", bytes.error());
    st = agent::write_durably(fs, o.target_dir + "/" + local, *bytes);
    if (!st) return fail("target '" + name + "'", st.error());
    say("target '" + name + "': verified " + std::to_string(bytes->size()) + " bytes -> " +
        o.target_dir + "/" + local);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  CLI::App app{
      "tranche-tuf-client: a TUF 1.0.x client (The Update Framework, client workflow of\n"
      "section 5). Trusted metadata lives in --metadata-dir under root.json,\n"
      "timestamp.json, snapshot.json, targets.json and ROLE.json; a refresh replaces a\n"
      "file only with metadata that passed every check. Exit 0 on success, 1 on any\n"
      "failure, with the reason on stderr (the spec section of the failed check).",
      kProgram};
  app.set_version_flag("--version", std::string(kProgram) + " " + TRANCHE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  Options o;
  app.add_option("--metadata-dir", o.metadata_dir, "Directory of the trusted metadata")->required();
  app.add_option("--metadata-url", o.metadata_url,
                 "Base URL of the repository's metadata (N.root.json, timestamp.json, ...)");
  app.add_option("--target-name", o.target_names,
                 "Target path to download (repeatable; fetched in order, stop at the first "
                 "failure)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--target-base-url", o.target_base_url, "Base URL of the target files");
  app.add_option("--target-dir", o.target_dir,
                 "Where downloaded targets go (file name: the target path percent-encoded)");
  CLI::App* init = app.add_subcommand(
      "init",
      "Trust ROOT_FILE: copy it to METADATA_DIR/root.json (no network). It must be "
      "signed by a threshold of its own root keys.");
  init->add_option("root_file", o.root_file, "The root metadata to trust")->required();
  CLI::App* refresh =
      app.add_subcommand("refresh",
                         "Update root (the whole chain), timestamp, snapshot and targets from "
                         "--metadata-url");
  CLI::App* download =
      app.add_subcommand("download",
                         "Refresh, then fetch and verify each --target-name from --target-base-url "
                         "into --target-dir (a verified copy already there is kept)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  agent::PosixFileSystem fs;
  if (init->parsed()) return run_init(o, fs);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 1;
  if (refresh->parsed()) rc = run_update(o, false, fs);
  if (download->parsed()) rc = run_update(o, true, fs);
  curl_global_cleanup();
  return rc;
}
