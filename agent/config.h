// tranche-agent's configuration file (YAML), documented key by key in
// docs/agent.md. Defaults live on the struct; load_agent_config refuses unknown
// keys and names the file, line and key of anything wrong.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/agent_machine.h"
#include "core/result.h"
#include "core/types.h"

namespace tranche::agent {

struct AgentSettings {
  // Server and identity.
  std::string server_url;  // http://host:port (no trailing path)
  std::string tenant;
  std::string enrollment_key;
  std::string device_id;
  std::map<std::string, std::string> tags;
  std::int64_t utc_offset_minutes = 0;
  std::string data_dir;
  std::string channel = "content";

  // TUF: metadata at tuf_url/metadata/, targets at tuf_url/targets/.
  std::string tuf_url;   // default: server_url + "/tuf"
  std::string tuf_root;  // root.json trusted at the first start (copied into data_dir/tuf)

  // The protected service. "{slot}" is replaced by the active slot's directory,
  // "{data}" by data_dir, "{version}" by the version it runs.
  std::vector<std::string> service_command;
  std::string shipped_slot;  // {slot} before anything is installed; empty: no service then
  std::vector<std::string> health_command;  // optional; exit 0 = healthy
  core::DurationMs health_interval = 2 * core::kSecond;
  core::DurationMs health_timeout = 5 * core::kSecond;
  core::DurationMs stop_timeout = 5 * core::kSecond;

  // Content contract: the interface the service really supplies.
  std::string interface_file;
  bool contract_check = true;  // false: the agent-side check is off (tests of the 2024 model)

  core::AgentConfig trial;  // start_budget, trial_window, fallback

  // Check-in.
  core::DurationMs checkin_interval = 60 * core::kSecond;  // when the server names none
  double checkin_jitter = 0.1;                             // +-10%
  core::DurationMs long_poll = 25 * core::kSecond;         // wait_s; 0 = off
  core::DurationMs max_backoff = 5 * core::kMinute;
  core::DurationMs http_timeout = 30 * core::kSecond;

  // Downloads.
  std::size_t max_target_bytes = 64u << 20;
  core::DurationMs download_timeout = 10 * core::kMinute;
  // After a transient failure (network, TUF, hash) the same version is tried
  // again no sooner than this; it doubles with each failure in a row, up to
  // max_backoff.
  core::DurationMs retry_backoff = 30 * core::kSecond;

  // Debugging and the crash-consistency test: log every step (each file-system
  // change and each service start), and stop dead after step N (0 = never).
  bool step_log = false;
  std::uint64_t pause_after_step = 0;
  // Where the machine's boot id is read (a reboot since the last run makes a
  // trial found at start unclean). Tests point it at a file they control.
  std::string boot_id_file = "/proc/sys/kernel/random/boot_id";
};

// The wait between two check-ins: checkin.interval is checked against this
// range, and a server's ask_again_s is clamped into it (docs/agent.md).
inline constexpr core::DurationMs kMinCheckinWait = core::kSecond;
inline constexpr core::DurationMs kMaxCheckinWait = core::kDay;

// parse_agent_config refuses a duration key outside its range (docs/agent.md,
// "Ranges"), naming the file, line and key. The defaults above are inside.
core::Result<AgentSettings> parse_agent_config(const std::string& yaml_text, const std::string& file);
core::Result<AgentSettings> load_agent_config(const std::string& path);

}  // namespace tranche::agent
