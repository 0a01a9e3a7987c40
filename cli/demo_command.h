// `tranche demo`: the 2024 story on one machine, with real processes.
//
//   tranche demo [--agents N] [--servers N] [--swupdate N] [--work-dir DIR] [--once]
//
// Starts tranche-server on 127.0.0.1 (a free port, embedded SQLite in a fresh work
// directory), makes a TUF repository and its keys with this same `tranche`
// binary, starts N real tranche-agent processes (each with its own data directory
// and a tranche-demo-sensor to protect), rolls a good content release through the
// rings to 100%, then Channel File 291 (reads field 21) with both contract checks
// bypassed — the 2024 validator bug — and shows it contained: the first ring's
// sensors crash, their agents fall back by themselves, the gate halts and rolls
// the rollout back, every sensor keeps running. Every number in the summary is
// read from the API or from the agents' own state files.
//
// With --swupdate N, N real swupdate processes (Debian's SWUpdate, hawkBit DDI)
// join the fleet: both releases also carry a signed .swu image; the clients install
// 1.0 and their health steps close the action; 2.0's image refuses them (a failing
// preinstall script), which they report and the gate counts like a crash.
//
// Without --once the fleet keeps running after the summary (the dashboard stays
// up) until Ctrl-C. With --once the last line of stdout is the summary as JSON.
// Exit codes: 0 the story ran and the bad release was contained; 1 a step failed
// or the release was not contained (the work directory is kept, logs named);
// 2 usage (a binary not found, a work directory that is not the demo's).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace tranche::cli {

struct DemoArgs {
  CLI::App* demo = nullptr;
  int agents = 30;
  int servers = 1;  // more: a cluster on a private PostgreSQL, HAProxy in front
  int swupdate = 0;  // SWUpdate clients (hawkBit DDI) beside the agents
  std::string work_dir;  // default: build/demo under the current directory
  bool once = false;
};

void add_demo_command(CLI::App& app, DemoArgs& args);
int run_demo_command(const DemoArgs& args);

}  // namespace tranche::cli
