#include "agent/config.h"

#include "config/yaml_util.h"

namespace tranche::agent {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
namespace cfg = tranche::config;

namespace {

Status get_string(const YAML::Node& map, const char* key, std::string& out, const std::string& file,
                  const std::string& prefix = "") {
  if (auto n = map[key]) {
    auto v = cfg::as_string(n, file, prefix + key);
    if (!v) return v.error();
    out = *v;
  }
  return core::Ok{};
}

Status get_duration(const YAML::Node& map, const char* key, core::DurationMs& out,
                    const std::string& file, const std::string& prefix = "") {
  if (auto n = map[key]) {
    auto v = cfg::as_string(n, file, prefix + key);
    if (!v) return v.error();
    auto d = core::parse_duration(*v);
    if (!d) return cfg::error_at(file, n, prefix + key + ": " + d.error().message);
    out = *d;
  }
  return core::Ok{};
}

// The range of every duration key (docs/agent.md, "Ranges"). Below the lower
// bounds the agent would hammer the server or spin (a health command in a loop,
// a transfer without a timeout: 0 is "never" to libcurl); the upper bounds keep
// every deadline and wait far from the ends of TimeMs and std::chrono.
struct DurationRange {
  const char* section;
  const char* key;
  core::DurationMs AgentSettings::*field;
  core::DurationMs lo;
  core::DurationMs hi;
  const char* why;
};
constexpr core::DurationMs kMs = 1;
constexpr DurationRange kDurationRanges[] = {
    {"service", "health_interval", &AgentSettings::health_interval, 100 * kMs, core::kHour,
     "the health command runs this often during a trial"},
    {"service", "health_timeout", &AgentSettings::health_timeout, 100 * kMs, core::kHour, ""},
    {"service", "stop_timeout", &AgentSettings::stop_timeout, 0, core::kHour, ""},
    {"checkin", "interval", &AgentSettings::checkin_interval, kMinCheckinWait, kMaxCheckinWait,
     "the range a server's ask_again_s is clamped to"},
    {"checkin", "long_poll", &AgentSettings::long_poll, 0, core::kHour, "0 = off"},
    // A failing server must not be hammered: retries wait at least a second.
    {"checkin", "max_backoff", &AgentSettings::max_backoff, core::kSecond, core::kDay,
     "retries back off up to it"},
    {"checkin", "http_timeout", &AgentSettings::http_timeout, core::kSecond, core::kHour, ""},
    {"download", "timeout", &AgentSettings::download_timeout, core::kSecond, core::kDay, ""},
    {"download", "retry_backoff", &AgentSettings::retry_backoff, core::kSecond, core::kDay,
     "the first wait before the same version is tried again"},
};

Status check_range(const std::string& file, const YAML::Node& node, const std::string& key,
                   core::DurationMs value, core::DurationMs lo, core::DurationMs hi,
                   const std::string& why) {
  if (value >= lo && value <= hi) return core::Ok{};
  return cfg::error_at(file, node,
                       key + ": " + core::format_duration(value) + " is out of range [" +
                           core::format_duration(lo) + ", " + core::format_duration(hi) + "]" +
                           (why.empty() ? "" : " (" + why + ")"));
}

// Every duration key present in the file against its range (an absent key keeps
// its default, which is in range). trial.window lives in the reducer's config.
Status check_duration_ranges(const YAML::Node& root, const AgentSettings& s,
                             const std::string& file) {
  for (const DurationRange& r : kDurationRanges) {
    const YAML::Node section = root[r.section];
    if (!section || !section[r.key]) continue;
    if (auto st = check_range(file, section[r.key], std::string(r.section) + "." + r.key,
                              s.*r.field, r.lo, r.hi, r.why);
        !st) {
      return st;
    }
  }
  if (const YAML::Node t = root["trial"]; t && t["window"]) {
    return check_range(file, t["window"], "trial.window", s.trial.trial_window, 0, 30 * core::kDay,
                       "");
  }
  return core::Ok{};
}

Status get_list(const YAML::Node& map, const char* key, std::vector<std::string>& out,
                const std::string& file, const std::string& prefix = "") {
  if (auto n = map[key]) {
    if (!n.IsSequence()) return cfg::error_at(file, n, prefix + key + ": expected a list");
    out.clear();
    for (const auto& item : n) {
      auto v = cfg::as_string(item, file, prefix + key + "[]");
      if (!v) return v.error();
      out.push_back(*v);
    }
  }
  return core::Ok{};
}

template <typename T>
Status get_int(const YAML::Node& map, const char* key, T& out, std::int64_t lo, std::int64_t hi,
               const std::string& file, const std::string& prefix = "") {
  if (auto n = map[key]) {
    auto v = cfg::as_int(n, file, prefix + key);
    if (!v) return v.error();
    if (*v < lo || *v > hi) {
      return cfg::error_at(file, n, prefix + key + ": out of range [" + std::to_string(lo) + ", " +
                                        std::to_string(hi) + "]");
    }
    out = static_cast<T>(*v);
  }
  return core::Ok{};
}

Status get_bool(const YAML::Node& map, const char* key, bool& out, const std::string& file,
                const std::string& prefix = "") {
  if (auto n = map[key]) {
    auto v = cfg::as_bool(n, file, prefix + key);
    if (!v) return v.error();
    out = *v;
  }
  return core::Ok{};
}

}  // namespace

Result<AgentSettings> parse_agent_config(const std::string& text, const std::string& file) {
  auto root = cfg::parse_yaml(text, file);
  if (!root) return root.error();
  const YAML::Node& r = *root;
  if (!r.IsMap()) return make_error(ErrorCode::kParse, file + ": expected a mapping");
  TRANCHE_RETURN_IF_ERROR(cfg::check_keys(r,
                      {"server_url", "tenant", "enrollment_key", "device_id", "tags",
                       "utc_offset_minutes", "data_dir", "channel", "tuf", "service", "interface",
                       "contract_check", "trial", "checkin", "download", "debug"},
                      file, ""));
  AgentSettings s;
  TRANCHE_RETURN_IF_ERROR(get_string(r, "server_url", s.server_url, file));
  TRANCHE_RETURN_IF_ERROR(get_string(r, "tenant", s.tenant, file));
  TRANCHE_RETURN_IF_ERROR(get_string(r, "enrollment_key", s.enrollment_key, file));
  TRANCHE_RETURN_IF_ERROR(get_string(r, "device_id", s.device_id, file));
  TRANCHE_RETURN_IF_ERROR(get_int(r, "utc_offset_minutes", s.utc_offset_minutes, -14 * 60, 14 * 60, file));
  TRANCHE_RETURN_IF_ERROR(get_string(r, "data_dir", s.data_dir, file));
  TRANCHE_RETURN_IF_ERROR(get_string(r, "channel", s.channel, file));
  TRANCHE_RETURN_IF_ERROR(get_string(r, "interface", s.interface_file, file));
  TRANCHE_RETURN_IF_ERROR(get_bool(r, "contract_check", s.contract_check, file));
  if (auto tags = r["tags"]) {
    if (!tags.IsMap()) return cfg::error_at(file, tags, "tags: expected a mapping");
    for (const auto& kv : tags) {
      auto k = cfg::as_string(kv.first, file, "tags");
      auto v = cfg::as_string(kv.second, file, "tags");
      if (!k) return k.error();
      if (!v) return v.error();
      s.tags[*k] = *v;
    }
  }
  if (auto t = r["tuf"]) {
    TRANCHE_RETURN_IF_ERROR(cfg::check_keys(t, {"url", "root"}, file, "tuf"));
    TRANCHE_RETURN_IF_ERROR(get_string(t, "url", s.tuf_url, file, "tuf."));
    TRANCHE_RETURN_IF_ERROR(get_string(t, "root", s.tuf_root, file, "tuf."));
  }
  if (auto sv = r["service"]) {
    TRANCHE_RETURN_IF_ERROR(cfg::check_keys(sv,
                        {"command", "shipped_slot", "health_command", "health_interval",
                         "health_timeout", "stop_timeout"},
                        file, "service"));
    TRANCHE_RETURN_IF_ERROR(get_list(sv, "command", s.service_command, file, "service."));
    TRANCHE_RETURN_IF_ERROR(get_string(sv, "shipped_slot", s.shipped_slot, file, "service."));
    TRANCHE_RETURN_IF_ERROR(get_list(sv, "health_command", s.health_command, file, "service."));
    TRANCHE_RETURN_IF_ERROR(get_duration(sv, "health_interval", s.health_interval, file, "service."));
    TRANCHE_RETURN_IF_ERROR(get_duration(sv, "health_timeout", s.health_timeout, file, "service."));
    TRANCHE_RETURN_IF_ERROR(get_duration(sv, "stop_timeout", s.stop_timeout, file, "service."));
  }
  if (auto t = r["trial"]) {
    TRANCHE_RETURN_IF_ERROR(
        cfg::check_keys(t, {"start_budget", "window", "fallback", "max_unclean_boots"}, file, "trial"));
    TRANCHE_RETURN_IF_ERROR(get_int(t, "start_budget", s.trial.start_budget, 1, 100, file, "trial."));
    TRANCHE_RETURN_IF_ERROR(
        get_int(t, "max_unclean_boots", s.trial.max_unclean_boots, 0, 100, file, "trial."));
    TRANCHE_RETURN_IF_ERROR(get_duration(t, "window", s.trial.trial_window, file, "trial."));
    TRANCHE_RETURN_IF_ERROR(get_bool(t, "fallback", s.trial.fallback, file, "trial."));
  }
  if (auto c = r["checkin"]) {
    TRANCHE_RETURN_IF_ERROR(cfg::check_keys(c, {"interval", "jitter", "long_poll", "max_backoff", "http_timeout"}, file,
                        "checkin"));
    TRANCHE_RETURN_IF_ERROR(get_duration(c, "interval", s.checkin_interval, file, "checkin."));
    TRANCHE_RETURN_IF_ERROR(get_duration(c, "long_poll", s.long_poll, file, "checkin."));
    TRANCHE_RETURN_IF_ERROR(get_duration(c, "max_backoff", s.max_backoff, file, "checkin."));
    TRANCHE_RETURN_IF_ERROR(get_duration(c, "http_timeout", s.http_timeout, file, "checkin."));
    if (auto j = c["jitter"]) {
      auto v = cfg::as_double(j, file, "checkin.jitter");
      if (!v) return v.error();
      if (*v < 0 || *v > 0.5) return cfg::error_at(file, j, "checkin.jitter: expected 0..0.5");
      s.checkin_jitter = *v;
    }
  }
  if (auto d = r["download"]) {
    TRANCHE_RETURN_IF_ERROR(cfg::check_keys(d, {"max_bytes", "timeout", "retry_backoff"}, file, "download"));
    TRANCHE_RETURN_IF_ERROR(get_int(d, "max_bytes", s.max_target_bytes, 1, std::int64_t{1} << 40, file, "download."));
    TRANCHE_RETURN_IF_ERROR(get_duration(d, "timeout", s.download_timeout, file, "download."));
    TRANCHE_RETURN_IF_ERROR(get_duration(d, "retry_backoff", s.retry_backoff, file, "download."));
  }
  if (auto d = r["debug"]) {
    TRANCHE_RETURN_IF_ERROR(cfg::check_keys(d, {"step_log", "pause_after_step", "boot_id_file"}, file, "debug"));
    TRANCHE_RETURN_IF_ERROR(get_bool(d, "step_log", s.step_log, file, "debug."));
    TRANCHE_RETURN_IF_ERROR(get_int(d, "pause_after_step", s.pause_after_step, 0, 1'000'000, file, "debug."));
    TRANCHE_RETURN_IF_ERROR(get_string(d, "boot_id_file", s.boot_id_file, file, "debug."));
  }
  if (auto st = check_duration_ranges(r, s, file); !st) return st.error();
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"server_url", &s.server_url},
                                   {"tenant", &s.tenant},
                                   {"enrollment_key", &s.enrollment_key},
                                   {"device_id", &s.device_id},
                                   {"data_dir", &s.data_dir}}) {
    if (value->empty()) return make_error(ErrorCode::kInvalidArgument, file + ": " + key + " is required");
  }
  if (s.service_command.empty()) {
    return make_error(ErrorCode::kInvalidArgument, file + ": service.command is required");
  }
  if (auto ch = core::Channel::parse(s.channel); !ch) {
    return ch.error().with_context(file + ": channel: ");
  }
  if (s.tuf_url.empty()) s.tuf_url = s.server_url + "/tuf";
  if (s.tuf_root.empty()) return make_error(ErrorCode::kInvalidArgument, file + ": tuf.root is required");
  if (s.contract_check && s.interface_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      file + ": interface is required (or contract_check: false)");
  }
  return s;
}

Result<AgentSettings> load_agent_config(const std::string& path) {
  auto text = cfg::read_file_limited(path);
  if (!text) return text.error();
  return parse_agent_config(*text, path);
}

}  // namespace tranche::agent
