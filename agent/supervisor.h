// The protected service: started on a slot, watched, health-checked on trial,
// stopped (SIGTERM, then SIGKILL after service.stop_timeout). It decides
// nothing: the agent's reducer says when to start what; the supervisor only
// says what happened (an exit, a failed health check). The main thread owns it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "agent/ports.h"
#include "core/types.h"

namespace tranche::agent {

class Supervisor {
 public:
  // `on_start` is told of each start (the step log counts it as a step).
  Supervisor(const AgentSettings& settings, Process& process, Clock& clock, Logger log,
             std::function<void(const std::string& slot)> on_start);

  // Stops what runs, then starts service.command on `slot_dir` ({slot}) for
  // `version` ({version}; nullopt: the shipped version). A version that
  // restarts in a loop starts at most once a second.
  void start(const std::optional<core::Version>& version, const std::string& slot_dir);
  void stop();
  // The service's exit, once, when it has ended (then it is not running).
  std::optional<ExitStatus> reap();

  bool running() const { return pid_ > 0; }
  // What runs (or ran last), and the exit that ended it, if any.
  const std::optional<core::Version>& version() const { return version_; }
  const std::optional<ExitStatus>& last_exit() const { return last_exit_; }
  void forget_exit() { last_exit_.reset(); }

  // Health (service.health_command), run while a version is on trial.
  core::TimeMs next_health_at() const { return next_health_at_; }
  bool health_due(core::TimeMs now) const {
    return running() && !settings_.health_command.empty() && now >= next_health_at_;
  }
  // Runs the health command now; the error names why it failed.
  core::Status check_health(const std::string& slot_dir);

  // `arg` with {slot}, {data} and {version} replaced.
  std::string substitute(const std::string& arg, const std::string& slot,
                         const std::string& version) const;

 private:
  const AgentSettings& settings_;
  Process& process_;
  Clock& clock_;
  Logger log_;
  std::function<void(const std::string&)> on_start_;
  pid_t pid_ = -1;
  std::optional<core::Version> version_;
  core::TimeMs started_at_ = 0;
  std::optional<ExitStatus> last_exit_;
  core::TimeMs next_health_at_ = 0;
};

// "shipped" for the shipped version.
std::string version_text(const std::optional<core::Version>& v);

}  // namespace tranche::agent
