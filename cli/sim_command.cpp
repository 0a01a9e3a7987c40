#include "cli/sim_command.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <unistd.h>

#include "sim/fleet_sim.h"
#include "sim/report.h"
#include "sim/scenario.h"

namespace tranche::cli {

namespace {

// Whether `path` names something; false when it cannot be looked at. The throwing
// overload of exists() turns a name longer than PATH_MAX, from the command line,
// into std::terminate.
bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec) && !ec;
}

// A scenario given by name is looked up in, in order: $TRANCHE_SCENARIO_DIR,
// ./scenarios, the source tree it was built from, and the install prefix.
std::string find_scenario(const std::string& name) {
  if (exists(name)) return name;
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("TRANCHE_SCENARIO_DIR")) dirs.emplace_back(env);
  dirs.emplace_back("scenarios");
  dirs.emplace_back(TRANCHE_SOURCE_SCENARIOS);
  dirs.emplace_back(TRANCHE_INSTALL_SCENARIOS);
  for (const auto& dir : dirs) {
    const std::string path = sim::resolve_scenario_path(name, dir);
    if (exists(path)) return path;
  }
  return sim::resolve_scenario_path(name, "scenarios");  // the error will name it
}

bool write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) {
    std::fprintf(stderr, "tranche sim: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// Progress on stderr, at most every two seconds, only once a run has taken one.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), start_(std::chrono::steady_clock::now()) {}
  void operator()(const std::string& what) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    if (elapsed < 1.0 || std::chrono::duration<double>(now - last_).count() < 2.0) return;
    last_ = now;
    std::fprintf(stderr, "tranche sim: %s (%.0f s)\n", what.c_str(), elapsed);
  }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  bool quiet_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

void add_sim_command(CLI::App& app, SimArgs& args) {
  CLI::App* sim = app.add_subcommand(
      "sim",
      "Replay a scenario on a simulated fleet under several rollout policies and compare them.\n"
      "The devices run tranche's agent state machine, the control plane its rollout machine\n"
      "and health gate: the same code the server and the agent run.\n\n"
      "Example: tranche sim --scenario crowdstrike-2024 --devices 100000 --plot down.svg\n"
      "         tranche sim --set background.unclean_disconnect_per_10min=1e-3 --set delivery.mode=poll");
  sim->add_option("--scenario", args.scenario,
                  "scenario name (scenarios/NAME.yaml) or path to a scenario file")
      ->capture_default_str();
  sim->add_option("--devices", args.devices, "fleet size (default: the scenario's)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}));
  sim->add_option("--seed", args.seed, "random seed: the same seed gives the same JSON, byte for byte")
      ->capture_default_str();
  sim->add_option("--policies", args.policies,
                  "comma-separated policies from the scenario (A: global push as in 2024, B: rings "
                  "with gates, C: B plus the self-healing agent, urgent: 0.1% then 100%)");
  sim->add_option("--json", args.json_file, "write the metrics as JSON to FILE");
  sim->add_option("--csv", args.csv_file, "write devices down per minute, per policy, as CSV to FILE");
  sim->add_option("--plot", args.plot_file, "write an SVG plot of devices down over time to FILE");
  sim->add_option("--set", args.sets,
                  "override a scenario parameter by its dotted path, e.g. "
                  "--set bad_update.crash_probability=0.5 (repeatable)");
  sim->add_option("--false-halt-trials", args.false_halt_trials,
                  "instead of the replay: run K good releases per gated policy and report false "
                  "halts per 1,000 (use a smaller --devices)");
  sim->add_option("--threads", args.threads,
                  "2: simulate the bad and the good release in parallel (same results); 1: one thread")
      ->check(CLI::Range(1U, 2U))
      ->capture_default_str();
  sim->add_flag("--check-calibration", args.check_calibration,
                "exit 1 unless policy A meets the scenario's calibration targets");
  sim->add_flag("-q,--quiet", args.quiet, "no progress on stderr");
}

int run_sim_command(const SimArgs& args) {
  const std::string path = find_scenario(args.scenario);
  sim::Overrides overrides;
  for (const auto& s : args.sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "tranche sim: --set expects key=value, got '%s'\n", s.c_str());
      return 2;
    }
    overrides.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  if (args.devices > 0) overrides.emplace_back("fleet.devices", std::to_string(args.devices));
  auto scenario = sim::load_scenario(path, overrides);
  if (!scenario.ok()) {
    std::fprintf(stderr, "tranche sim: %s\n", scenario.error().to_string().c_str());
    return 2;
  }
  const std::vector<std::string> policies = split(args.policies, ',');
  for (const auto& p : policies) {
    if (!scenario->policies.count(p)) {
      std::string known;
      for (const auto& kv : scenario->policies) known += (known.empty() ? "" : ", ") + kv.first;
      std::fprintf(stderr, "tranche sim: no policy '%s' in %s (known: %s)\n", p.c_str(), path.c_str(),
                   known.c_str());
      return 2;
    }
  }
  Progress progress(args.quiet);

  if (args.false_halt_trials > 0) {
    const auto names = policies.empty() ? scenario->default_policies : policies;
    std::printf("false halts of good releases, %llu trials each, %llu devices\n",
                static_cast<unsigned long long>(args.false_halt_trials),
                static_cast<unsigned long long>(scenario->devices));
    for (const auto& name : names) {
      if (scenario->policies.at(name).kind != sim::PolicyKind::kRings) continue;
      auto r = sim::run_false_halt_trials(scenario.value(), name, args.false_halt_trials, args.seed,
                                          [&](std::uint64_t k) {
                                            progress(name + ": trial " + std::to_string(k) + " of " +
                                                     std::to_string(args.false_halt_trials));
                                          });
      if (!r.ok()) {
        std::fprintf(stderr, "tranche sim: %s\n", r.error().to_string().c_str());
        return 1;
      }
      std::printf("%s: %llu halts in %llu good releases = %.2f per 1,000 (%llu by an absolute failure limit)\n",
                  name.c_str(), static_cast<unsigned long long>(r->halts),
                  static_cast<unsigned long long>(r->trials), r->per_1000(),
                  static_cast<unsigned long long>(r->limit_halts));
    }
    return 0;
  }

  sim::SimOptions options;
  options.seed = args.seed;
  options.policies = policies;
  options.threads = args.threads;
  const double horizon_days = static_cast<double>(scenario->horizon) / static_cast<double>(core::kDay);
  options.progress = [&](core::DurationMs now, core::DurationMs) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "day %.1f of %.0f", static_cast<double>(now) / static_cast<double>(core::kDay),
                  horizon_days);
    progress(buf);
  };
  auto result = sim::run_simulation(scenario.value(), options);
  if (!result.ok()) {
    std::fprintf(stderr, "tranche sim: %s\n", result.error().to_string().c_str());
    return result.error().code == core::ErrorCode::kNotFound ? 2 : 1;
  }
  std::fputs(sim::to_table(scenario.value(), result.value()).c_str(), stdout);
  std::printf("simulated %llu events in %.1f s\n", static_cast<unsigned long long>(result->events),
              progress.elapsed());
  if (!args.json_file.empty() && !write_file(args.json_file, sim::to_json(scenario.value(), result.value()))) return 1;
  if (!args.csv_file.empty() && !write_file(args.csv_file, sim::to_csv(result.value()))) return 1;
  if (!args.plot_file.empty() && !write_file(args.plot_file, sim::to_svg(scenario.value(), result.value()))) return 1;

  for (const auto& p : result->policies) {
    if (p.policy != "A") continue;
    std::string why;
    const bool ok = sim::check_calibration(scenario.value(), p.bad, why);
    std::printf("calibration of A against 2024: %s — %s\n", ok ? "met" : "NOT met", why.c_str());
    if (args.check_calibration && !ok) return 1;
  }
  return 0;
}

}  // namespace tranche::cli
