// tranche-agent — the endpoint half of tranche (docs/agent.md).
//
//   tranche-agent --config FILE
//
// Runs until SIGTERM (exit 0 after a goodbye to the server). The logic is
// core::agent_step's; agent.h is the shell; posix.h the operating system.
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/posix.h"
#include "config/usage.h"

namespace {

extern "C" void on_stop_signal(int /*sig*/) {
  tranche::agent::Agent::request_stop_from_signal();
}
extern "C" void on_child_signal(int /*sig*/) {
  tranche::agent::Agent::child_exited_from_signal();
}

}  // namespace

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  // OpenSSL without its error strings (libcurl's init would load them all: 0.6 MB of
  // resident pages, docs/benchmarks.md); a TLS error then reads
  // "error:0A00010B:lib(20)::reason(267)", which `openssl errstr 0A00010B` names.
  OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, nullptr);
  CLI::App app{"tranche-agent: installs what the tranche server offers, verified (TUF) and\n"
               "checked (content contract), on a start budget with fallback to last-known-good.",
               "tranche-agent"};
  app.set_version_flag("--version", std::string("tranche-agent ") + TRANCHE_VERSION);
  std::string config_path;
  app.add_option("--config", config_path, "agent configuration (YAML, docs/agent.md)")->required();
  if (auto done = tranche::config::parse_command_line(app, argc, argv)) return *done;  // usage: exit 2
  auto settings = tranche::agent::load_agent_config(config_path);
  if (!settings) {
    std::fprintf(stderr, "tranche-agent: %s\n", settings.error().to_string().c_str());
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  struct sigaction sc {};
  sc.sa_handler = on_child_signal;
  sc.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  ::sigemptyset(&sc.sa_mask);
  ::sigaction(SIGCHLD, &sc, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  tranche::agent::SystemClock clock;
  tranche::agent::PosixFileSystem raw_fs;
  tranche::agent::Agent* agent_ptr = nullptr;
  tranche::agent::ObservedFileSystem fs(raw_fs, [&](std::string_view op, const std::string& path) {
    if (agent_ptr != nullptr) agent_ptr->on_step(op, path);
  });
  tranche::agent::CurlHttpClient http("tranche-agent/" TRANCHE_VERSION);
  tranche::agent::CurlHttpClient checkin_http("tranche-agent/" TRANCHE_VERSION);
  tranche::agent::CurlHttpClient download_http("tranche-agent/" TRANCHE_VERSION);
  tranche::agent::PosixProcess process;
  int rc = 0;
  {
    tranche::agent::Agent agent(*settings, {clock, fs, http, checkin_http, download_http, process});
    agent_ptr = &agent;
    rc = agent.run();
    agent_ptr = nullptr;
  }
  curl_global_cleanup();
  return rc;
}
