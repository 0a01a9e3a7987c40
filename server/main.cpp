// tranche-server: flags and an optional YAML config file (flags win), signals,
// and the server's lifetime.
#include <malloc.h>
#include <sys/resource.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/tuf_repo_dir.h"
#include "config/usage.h"
#include "config/yaml_util.h"
#include "server/server.h"

namespace {

using tranche::server::ServerOptions;

// Config file keys, each the long name of a flag.
tranche::core::Status apply_config_file(const std::string& path, ServerOptions& o,
                                        std::vector<std::string>& interfaces) {
  namespace config = tranche::config;
  auto text = config::read_file_limited(path, 64 * 1024);
  if (!text) return text.error();
  auto root = config::parse_yaml(*text, path);
  if (!root) return root.error();
  if (!root->IsMap()) return config::error_at(path, *root, "expected a mapping of settings");
  if (auto st = config::check_keys(*root,
                                   {"listen", "port", "threads", "data-dir", "store", "tls-cert", "tls-key",
                                    "allow-insecure-remote", "tick-ms", "batch-ms", "batch-max",
                                    "long-poll-max-s", "ask-again-s", "last-seen-every-s", "forget-idle-s", "interface",
                                    "max-connections", "max-connections-per-address", "body-budget-mb",
                                    "body-timeout-s",
                                    "tuf-repo", "dashboard-dir", "artifact-dir", "server-id"},
                                   path, "");
      !st) {
    return st;
  }
  auto str = [&](const char* key, std::string& out) -> tranche::core::Status {
    if (!(*root)[key]) return tranche::core::Ok{};
    auto v = config::as_string((*root)[key], path, key);
    if (!v) return v.error();
    out = *v;
    return tranche::core::Ok{};
  };
  auto num = [&](const char* key, auto& out, std::int64_t lo, std::int64_t hi) -> tranche::core::Status {
    if (!(*root)[key]) return tranche::core::Ok{};
    auto v = config::as_int((*root)[key], path, key);
    if (!v) return v.error();
    if (*v < lo || *v > hi) {
      return config::error_at(path, (*root)[key],
                              std::string(key) + ": must be in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
    return tranche::core::Ok{};
  };
  std::string cert, key;
  std::int64_t tick = o.tick.count(), batch = o.batch_interval.count(), lp = o.long_poll_max.count(),
               ask = o.ask_again.count(), seen_every = o.last_seen_every.count(),
               forget_idle = o.forget_idle.count(), body_timeout = o.body_timeout.count(),
               body_budget_mb = static_cast<std::int64_t>(o.max_buffered_body_bytes >> 20);
  for (auto st : {str("listen", o.listen_address), str("data-dir", o.data_dir), str("store", o.store_url),
                  str("server-id", o.server_id),
                  str("tls-cert", cert), str("tls-key", key), str("tuf-repo", o.tuf_repo_dir),
                  str("dashboard-dir", o.dashboard_dir), str("artifact-dir", o.artifact_dir), num("port", o.port, 0, 65535),
                  num("threads", o.threads, 0, 256), num("tick-ms", tick, 10, 3'600'000),
                  num("batch-ms", batch, 1, 60'000), num("batch-max", o.batch_max_records, 1, 1'000'000),
                  num("long-poll-max-s", lp, 0, 3600), num("ask-again-s", ask, 1, 86400),
                  num("last-seen-every-s", seen_every, 0, 86400),
                  num("forget-idle-s", forget_idle, 1, 30 * 86400),
                  num("max-connections", o.max_connections, 0, 10'000'000),
                  num("max-connections-per-address", o.max_connections_per_address, 0, 10'000'000),
                  num("body-budget-mb", body_budget_mb, 1, 1'000'000), num("body-timeout-s", body_timeout, 1, 3600)}) {
    if (!st) return st;
  }
  if ((*root)["allow-insecure-remote"]) {
    auto v = config::as_bool((*root)["allow-insecure-remote"], path, "allow-insecure-remote");
    if (!v) return v.error();
    o.allow_insecure_remote = *v;
  }
  if (auto node = (*root)["interface"]) {
    if (!node.IsSequence()) return config::error_at(path, node, "interface: expected a list of CHANNEL=FILE");
    for (const auto& item : node) {
      auto v = config::as_string(item, path, "interface[]");
      if (!v) return v.error();
      interfaces.push_back(*v);
    }
  }
  o.tick = std::chrono::milliseconds(tick);
  o.batch_interval = std::chrono::milliseconds(batch);
  o.long_poll_max = std::chrono::seconds(lp);
  o.ask_again = std::chrono::seconds(ask);
  o.last_seen_every = std::chrono::seconds(seen_every);
  o.forget_idle = std::chrono::seconds(forget_idle);
  o.body_timeout = std::chrono::seconds(body_timeout);
  o.max_buffered_body_bytes = static_cast<std::size_t>(body_budget_mb) << 20;
  if (!cert.empty() || !key.empty()) o.tls = tranche::server::TlsFiles{cert, key};
  return tranche::core::Ok{};
}

// The most bits a token of this length and these character classes can hold
// (an upper bound: "aaaa..." scores as any lowercase string would). A token
// below 128 bits by this count is certainly weaker than 128 bits.
double token_bits(const std::string& token) {
  bool lower = false, upper = false, digit = false, other = false;
  for (const char c : token) {
    if (c >= 'a' && c <= 'z') lower = true;
    else if (c >= 'A' && c <= 'Z') upper = true;
    else if (c >= '0' && c <= '9') digit = true;
    else other = true;
  }
  const int alphabet = (lower ? 26 : 0) + (upper ? 26 : 0) + (digit ? 10 : 0) + (other ? 32 : 0);
  return alphabet == 0 ? 0.0 : static_cast<double>(token.size()) * std::log2(static_cast<double>(alphabet));
}

// Connections cost a descriptor each: take the hard limit the system allows
// (the soft default of 1024 would refuse a fleet's long polls long before
// --max-connections does).
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tranche-server: the control plane of tranche. Devices enroll and check in; operators register\n"
      "releases and start rollouts; the engine walks each rollout through its plan's stages, halting\n"
      "(and rolling back) when the health gate sees exposed devices fail more than the control group.\n"
      "API: docs/api.md. Data: embedded SQLite under --data-dir unless --store names PostgreSQL.",
      "tranche-server"};
  app.set_version_flag("--version", TRANCHE_VERSION);
  ServerOptions o;
  std::string config_file, tls_cert, tls_key;
  std::vector<std::string> interfaces;
  std::int64_t tick_ms = o.tick.count(), batch_ms = o.batch_interval.count(),
               long_poll_s = o.long_poll_max.count(), ask_again_s = o.ask_again.count(),
               last_seen_every_s = o.last_seen_every.count(), forget_idle_s = o.forget_idle.count(),
               body_timeout_s = o.body_timeout.count(),
               body_budget_mb = static_cast<std::int64_t>(o.max_buffered_body_bytes >> 20);
  app.add_option("-c,--config", config_file, "YAML file of settings (keys are these flags' long names)");
  app.add_option("--listen", o.listen_address, "address to listen on")->capture_default_str();
  app.add_option("--port", o.port, "TCP port (0: any free port, printed at start)")->capture_default_str();
  app.add_option("--threads", o.threads, "HTTP worker threads (0: one per core)")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "directory for the SQLite store and the admin token")
      ->capture_default_str();
  app.add_option("--store", o.store_url,
                 "store URL: sqlite:PATH or postgres://user@host/db (default: sqlite:DATA_DIR/tranche.db)");
  app.add_option("--server-id", o.server_id,
                 "this server's name among several on one PostgreSQL (logs, device ownership); "
                 "default: a random one per start");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve HTTPS");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_flag("--allow-insecure-remote", o.allow_insecure_remote,
               "allow plain HTTP on an address other than loopback");
  app.add_option("--tick-ms", tick_ms, "rollout engine period")->capture_default_str();
  app.add_option("--batch-ms", batch_ms, "device state is written at least this often")->capture_default_str();
  app.add_option("--batch-max", o.batch_max_records, "... or when this many records wait")->capture_default_str();
  app.add_option("--long-poll-max-s", long_poll_s, "longest a check-in is held waiting for a change")
      ->capture_default_str();
  app.add_option("--ask-again-s", ask_again_s, "when a device at rest should check in again")
      ->capture_default_str();
  app.add_option("--last-seen-every-s", last_seen_every_s,
                 "a check-in that changes nothing writes the device's last contact to the store "
                 "only this often (0: every check-in); a server that takes devices from the store "
                 "judges their silence from the latest they may have been heard")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  app.add_option("--forget-idle-s", forget_idle_s,
                 "several servers on one store: a device this server owns and has not heard from "
                 "for this long, with nothing left to judge (offline in every live rollout, its "
                 "silence noted, its state written), is dropped from memory; its next request "
                 "takes it from the store again")
      ->capture_default_str()
      ->check(CLI::Range(1, 30 * 86400));
  app.add_option("--max-connections", o.max_connections,
                 "open connections at most (0: no cap); a connection over it is answered 503 with "
                 "Retry-After and closed. Keep it below the descriptor limit (ulimit -n)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  app.add_option("--max-connections-per-address", o.max_connections_per_address,
                 "open connections from one source address at most (0: no cap, the default: "
                 "devices behind one NAT or proxy share an address)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  app.add_option("--body-budget-mb", body_budget_mb,
                 "request bodies being received or handled at once, in MiB, reserved from each "
                 "request's Content-Length; a request over it is answered 503 before its body is read")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--body-timeout-s", body_timeout_s,
                 "a request's body must arrive whole within this long after its headers")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--interface", interfaces,
                 "CHANNEL=FILE: check content bundles of CHANNEL against this consumer interface "
                 "when a release is registered (repeatable)");
  app.add_option("--tuf-repo", o.tuf_repo_dir,
                 "serve this TUF repository directory (made by `tranche repo init`) at /tuf/");
  app.add_option("--tuf-snapshot-key", o.tuf_snapshot_keys,
                 "PEM key of the online snapshot role (repeatable): with --tuf-timestamp-key, the "
                 "engine signs a new snapshot when a release is signed into --tuf-repo, and renews "
                 "the timestamp at half its life");
  app.add_option("--tuf-timestamp-key", o.tuf_timestamp_keys, "PEM key of the online timestamp role (repeatable)");
  std::int64_t timestamp_lifetime_s = o.tuf_timestamp_lifetime.count();
  app.add_option("--tuf-timestamp-lifetime-s", timestamp_lifetime_s, "expiry of each timestamp the server signs")
      ->capture_default_str();
  app.add_option("--artifact-dir", o.artifact_dir,
                 "directory of the SWUpdate images (.swu) that releases of kind swu name; DDI "
                 "clients download them from the server (docs/ddi.md)");
  app.add_option("--dashboard-dir", o.dashboard_dir,
                 "serve the dashboard from this directory at / (default: the installed or source copy)");
  app.add_option("--admin-token", o.admin_token,
                 "bootstrap admin token of at least 128 bits, e.g. `openssl rand -hex 16` (also from "
                 "TRANCHE_ADMIN_TOKEN); without "
                 "one, a first start writes a generated token to DATA_DIR/admin-token")
      ->envname("TRANCHE_ADMIN_TOKEN");
  if (auto done = tranche::config::parse_command_line(app, argc, argv)) return *done;  // usage: exit 2

  if (!config_file.empty()) {
    // Defaults, then the file, then flags: re-parse so flags win.
    ServerOptions from_file;
    std::vector<std::string> file_interfaces;
    if (auto st = apply_config_file(config_file, from_file, file_interfaces); !st) {
      std::cerr << "tranche-server: " << st.error().to_string() << "\n";
      return 2;
    }
    auto given = [&](const char* flag) { return app.count(flag) > 0; };
    if (!given("--listen")) o.listen_address = from_file.listen_address;
    if (!given("--port")) o.port = from_file.port;
    if (!given("--threads")) o.threads = from_file.threads;
    if (!given("--data-dir")) o.data_dir = from_file.data_dir;
    if (!given("--store")) o.store_url = from_file.store_url;
    if (!given("--server-id")) o.server_id = from_file.server_id;
    if (!given("--allow-insecure-remote")) o.allow_insecure_remote = from_file.allow_insecure_remote;
    if (!given("--tick-ms")) tick_ms = from_file.tick.count();
    if (!given("--batch-ms")) batch_ms = from_file.batch_interval.count();
    if (!given("--batch-max")) o.batch_max_records = from_file.batch_max_records;
    if (!given("--long-poll-max-s")) long_poll_s = from_file.long_poll_max.count();
    if (!given("--ask-again-s")) ask_again_s = from_file.ask_again.count();
    if (!given("--last-seen-every-s")) last_seen_every_s = from_file.last_seen_every.count();
    if (!given("--forget-idle-s")) forget_idle_s = from_file.forget_idle.count();
    if (!given("--max-connections")) o.max_connections = from_file.max_connections;
    if (!given("--max-connections-per-address")) {
      o.max_connections_per_address = from_file.max_connections_per_address;
    }
    if (!given("--body-budget-mb")) {
      body_budget_mb = static_cast<std::int64_t>(from_file.max_buffered_body_bytes >> 20);
    }
    if (!given("--body-timeout-s")) body_timeout_s = from_file.body_timeout.count();
    if (!given("--interface")) interfaces = file_interfaces;
    if (!given("--tuf-repo")) o.tuf_repo_dir = from_file.tuf_repo_dir;
    if (!given("--dashboard-dir")) o.dashboard_dir = from_file.dashboard_dir;
    if (!given("--artifact-dir")) o.artifact_dir = from_file.artifact_dir;
    if (!given("--tls-cert") && from_file.tls) tls_cert = from_file.tls->cert_chain_pem;
    if (!given("--tls-key") && from_file.tls) tls_key = from_file.tls->private_key_pem;
  }
  if (tls_cert.empty() != tls_key.empty()) {
    std::cerr << "tranche-server: --tls-cert and --tls-key go together\n";
    return 2;
  }
  if (!tls_cert.empty()) o.tls = tranche::server::TlsFiles{tls_cert, tls_key};
  o.tuf_timestamp_lifetime = std::chrono::seconds(timestamp_lifetime_s);
  o.tick = std::chrono::milliseconds(tick_ms);
  o.batch_interval = std::chrono::milliseconds(batch_ms);
  o.long_poll_max = std::chrono::seconds(long_poll_s);
  o.ask_again = std::chrono::seconds(ask_again_s);
  o.last_seen_every = std::chrono::seconds(last_seen_every_s);
  o.forget_idle = std::chrono::seconds(forget_idle_s);
  o.body_timeout = std::chrono::seconds(body_timeout_s);
  o.max_buffered_body_bytes = static_cast<std::size_t>(body_budget_mb) << 20;
  for (const auto& item : interfaces) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      std::cerr << "tranche-server: --interface " << item << ": expected CHANNEL=FILE\n";
      return 2;
    }
    o.interfaces[item.substr(0, eq)] = item.substr(eq + 1);
  }

  // The bootstrap token opens the whole API: one that can be guessed is refused.
  constexpr double kMinAdminTokenBits = 128;
  if (!o.admin_token.empty() && token_bits(o.admin_token) < kMinAdminTokenBits) {
    std::cerr << "tranche-server: --admin-token (or TRANCHE_ADMIN_TOKEN): at most "
              << static_cast<int>(token_bits(o.admin_token)) << " bits for its " << o.admin_token.size()
              << " characters; at least " << kMinAdminTokenBits
              << " (it opens the whole API: `openssl rand -hex 16` makes one; or omit it and the server "
                 "writes a random one to DATA_DIR/admin-token)\n";
    return 2;
  }

  // A --tuf-repo that is not a repository would serve 404s to every agent,
  // which then fail each download with "not signed": refuse it here instead.
  if (!o.tuf_repo_dir.empty() && tranche::config::repo_latest_version(o.tuf_repo_dir, "root") < 1) {
    std::cerr << "tranche-server: --tuf-repo " << o.tuf_repo_dir
              << ": not a TUF repository (no metadata/N.root.json in it; `tranche repo init "
              << o.tuf_repo_dir << " --root-key ...` makes one, docs/tuf.md)\n";
    return 2;
  }

  if (o.dashboard_dir.empty()) {
    for (const char* dir : {TRANCHE_INSTALL_DASHBOARD, TRANCHE_SOURCE_DASHBOARD}) {
      if (std::filesystem::is_regular_file(std::filesystem::path(dir) / "index.html")) {
        o.dashboard_dir = dir;
        break;
      }
    }
  }

  raise_descriptor_limit();
  // Request bodies (up to --max-body, 1 MiB) are allocated and freed by the
  // thousand under load: a fixed mmap threshold keeps glibc from raising it
  // after the first free, so each large buffer goes back to the system when
  // freed instead of staying in the heap after the load is gone.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  // Signals are taken by a waiting thread, not a handler: shutdown needs locks.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Logs go to stderr; stdout carries only the "listening on" line scripts read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("tranche-server"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  auto server = tranche::server::Server::start(o, std::make_shared<tranche::server::SystemClock>());
  if (!server) {
    std::cerr << "tranche-server: " << server.error().to_string() << "\n";
    // A file or flag that is wrong (a missing --tls-cert, an unreadable
    // --interface) is a usage error like a bad flag; a store that cannot be
    // reached is not.
    return tranche::core::error_kind(server.error().code) == tranche::core::ErrorKind::kBadInput
               ? tranche::config::kUsageExit
               : 1;
  }
  // One machine-readable line for scripts and tests: where to reach the server.
  std::cout << "tranche-server listening on " << (o.tls ? "https" : "http") << "://" << o.listen_address
            << ":" << (*server)->port() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("{}: shutting down (flushing buffered writes)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->shutdown();
  return 0;
}
