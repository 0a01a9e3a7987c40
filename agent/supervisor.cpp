#include "agent/supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "core/time_math.h"

namespace tranche::agent {

std::string version_text(const std::optional<core::Version>& v) {
  return v ? v->to_string() : std::string("shipped");
}

Supervisor::Supervisor(const AgentSettings& settings, Process& process, Clock& clock, Logger log,
                       std::function<void(const std::string&)> on_start)
    : settings_(settings),
      process_(process),
      clock_(clock),
      log_(std::move(log)),
      on_start_(std::move(on_start)) {}

std::string Supervisor::substitute(const std::string& arg, const std::string& slot,
                                   const std::string& version) const {
  std::string out = arg;
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"{slot}", slot},
                                   {"{data}", settings_.data_dir},
                                   {"{version}", version}}) {
    for (auto pos = out.find(key); pos != std::string::npos; pos = out.find(key, pos + value.size())) {
      out.replace(pos, key.size(), value);
    }
  }
  return out;
}

void Supervisor::stop() {
  if (pid_ <= 0) return;
  process_.kill(pid_, SIGTERM);
  const core::TimeMs deadline = core::saturating_add(clock_.now(), settings_.stop_timeout);
  while (!process_.try_wait(pid_)) {
    if (clock_.now() >= deadline) {
      process_.kill(pid_, SIGKILL);
      while (!process_.try_wait(pid_)) ::usleep(10'000);
      break;
    }
    ::usleep(10'000);
  }
  log_("stopped the service (" + version_text(version_) + ")");
  pid_ = -1;
}

std::optional<ExitStatus> Supervisor::reap() {
  if (pid_ <= 0) return std::nullopt;
  auto exit = process_.try_wait(pid_);
  if (!exit) return std::nullopt;
  pid_ = -1;
  last_exit_ = *exit;
  return exit;
}

void Supervisor::start(const std::optional<core::Version>& version, const std::string& slot_dir) {
  stop();
  // A crash-looping stable version restarts at most once a second. Clamped: a
  // wall clock stepped back would otherwise make the wait hours long.
  const core::DurationMs since =
      std::clamp<core::DurationMs>(core::saturating_sub(clock_.now(), started_at_), 0, core::kSecond);
  if (started_at_ != 0 && since < core::kSecond) {
    ::usleep(static_cast<useconds_t>((core::kSecond - since) * 1000));
  }
  std::vector<std::string> argv;
  for (const auto& a : settings_.service_command) argv.push_back(substitute(a, slot_dir, version_text(version)));
  auto pid = process_.spawn(argv, settings_.data_dir + "/service.log");
  if (!pid) {
    log_("ERROR: cannot start the service: " + pid.error().to_string());
    return;
  }
  pid_ = *pid;
  version_ = version;
  started_at_ = clock_.now();
  next_health_at_ = core::saturating_add(started_at_, settings_.health_interval);
  log_("started the service on " + version_text(version) + " (pid " + std::to_string(*pid) + ")");
  on_start_(slot_dir);
}

core::Status Supervisor::check_health(const std::string& slot_dir) {
  next_health_at_ = core::saturating_add(clock_.now(), settings_.health_interval);
  std::vector<std::string> argv;
  for (const auto& a : settings_.health_command) argv.push_back(substitute(a, slot_dir, version_text(version_)));
  auto r = process_.run(argv, settings_.health_timeout);
  if (r && r->success()) return core::Ok{};
  return core::make_error(core::ErrorCode::kUnavailable,
                          "health command failed: " + (r ? r->describe() : r.error().message));
}

}  // namespace tranche::agent
