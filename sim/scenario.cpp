#include "sim/scenario.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "config/plan_yaml.h"
#include "config/yaml_util.h"

namespace tranche::sim {

using core::Error;
using core::ErrorCode;
using core::Result;

namespace {

// `p` is a sequence index below `size`: digits only. from_chars, not std::stoul:
// stoul throws out_of_range on a long run of digits from the command line.
bool index_below(const std::string& p, std::size_t size, std::size_t& index) {
  const char* end = p.data() + p.size();
  const auto [ptr, ec] = std::from_chars(p.data(), end, index);
  return !p.empty() && ec == std::errc() && ptr == end && index < size;
}

// Applies one "a.b.c=value" override to the document. The path must name an
// existing scalar (or sequence element), so a typo is an error, not a no-op.
core::Status apply_override(YAML::Node root, const std::string& key, const std::string& value,
                            const std::string& file) {
  YAML::Node node = root;
  std::string walked;
  std::stringstream parts(key);
  std::string part;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  if (path.empty()) return Error{ErrorCode::kInvalidArgument, "--set: empty key"};
  for (std::size_t i = 0; i < path.size(); ++i) {
    const std::string& p = path[i];
    walked += (walked.empty() ? "" : ".") + p;
    YAML::Node next;
    std::size_t index = 0;
    if (node.IsMap() && node[p]) {
      next = node[p];
    } else if (node.IsSequence() && index_below(p, node.size(), index)) {
      next = node[index];
    } else {
      return Error{ErrorCode::kInvalidArgument,
                   "--set " + key + ": " + file + " has no key '" + walked + "'"};
    }
    node.reset(next);
  }
  if (node.IsMap()) {
    return Error{ErrorCode::kInvalidArgument,
                 "--set " + key + ": '" + key + "' is a mapping; set one of its keys"};
  }
  // The value is YAML from the command line; yaml-cpp throws on a malformed one.
  try {
    node = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::kInvalidArgument, "--set " + key + ": not a YAML value: " + e.msg};
  }
  return core::Ok{};
}

template <typename T>
core::Status take(Result<T> r, T& out) {
  if (!r.ok()) return r.error();
  out = std::move(r.value());
  return core::Ok{};
}

core::Status duration_at(const YAML::Node& n, const std::string& file, std::string_view path,
                         core::DurationMs& out) {
  auto s = config::as_string(n, file, path);
  if (!s.ok()) return s.error();
  auto d = core::parse_duration(s.value());
  if (!d.ok()) return config::error_at(file, n, std::string(path) + ": " + d.error().message);
  out = d.value();
  return core::Ok{};
}

core::Status probability_at(const YAML::Node& n, const std::string& file, std::string_view path,
                            double& out) {
  auto r = config::as_double(n, file, path);
  if (!r.ok()) return r.error();
  if (r.value() < 0 || r.value() > 1) {
    return config::error_at(file, n, std::string(path) + ": expected a probability in [0, 1]");
  }
  out = r.value();
  return core::Ok{};
}

core::Status read_scenario(const YAML::Node& doc, const std::string& file, Scenario& s) {
  TRANCHE_RETURN_IF_ERROR(config::check_keys(doc,
                         {"name", "description", "start", "horizon", "fleet", "delivery",
                          "bad_update", "reboot_cycle", "os_gives_up_after_failed_boots",
                          "self_heal_per_reboot", "manual_repair", "background", "heartbeat",
                          "agent", "policies", "default_policies", "calibration"},
                         file, ""));
  for (const char* required : {"name", "start", "fleet", "policies"}) {
    if (!doc[required]) return config::error_at(file, doc, std::string(required) + ": required");
  }
  TRANCHE_RETURN_IF_ERROR(take(config::as_string(doc["name"], file, "name"), s.name));
  if (doc["description"]) TRANCHE_RETURN_IF_ERROR(take(config::as_string(doc["description"], file, "description"), s.description));
  {
    std::string text;
    TRANCHE_RETURN_IF_ERROR(take(config::as_string(doc["start"], file, "start"), text));
    auto t = core::parse_utc_time(text);
    if (!t.ok()) return config::error_at(file, doc["start"], "start: " + t.error().message);
    s.start = t.value();
  }
  if (doc["horizon"]) TRANCHE_RETURN_IF_ERROR(duration_at(doc["horizon"], file, "horizon", s.horizon));
  if (s.horizon <= 0 || s.horizon > 45 * core::kDay) {
    return config::error_at(file, doc["horizon"], "horizon: must be between 1ms and 45d");
  }

  const YAML::Node fleet = doc["fleet"];
  TRANCHE_RETURN_IF_ERROR(config::check_keys(fleet, {"devices", "full_scale_devices", "classes", "regions", "business_hours"},
                         file, "fleet"));
  if (fleet["devices"]) {
    std::int64_t n = 0;
    TRANCHE_RETURN_IF_ERROR(take(config::as_int(fleet["devices"], file, "fleet.devices"), n));
    if (n < 1 || n > 100'000'000) {
      return config::error_at(file, fleet["devices"], "fleet.devices: must be 1 to 100,000,000");
    }
    s.devices = static_cast<std::uint64_t>(n);
  }
  if (fleet["full_scale_devices"]) {
    std::int64_t n = 0;
    TRANCHE_RETURN_IF_ERROR(take(config::as_int(fleet["full_scale_devices"], file, "fleet.full_scale_devices"), n));
    if (n < 1) return config::error_at(file, fleet["full_scale_devices"], "fleet.full_scale_devices: must be positive");
    s.full_scale_devices = static_cast<std::uint64_t>(n);
  }
  if (!fleet["classes"] || !fleet["classes"].IsMap() || fleet["classes"].size() == 0) {
    return config::error_at(file, fleet, "fleet.classes: expected a non-empty mapping");
  }
  double class_share = 0;
  for (const auto& kv : fleet["classes"]) {
    DeviceClass c;
    c.name = kv.first.Scalar();
    const std::string p = "fleet.classes." + c.name;
    TRANCHE_RETURN_IF_ERROR(config::check_keys(kv.second, {"share", "online_business", "online_other", "mean_session"}, file, p));
    for (const char* k : {"share", "online_business", "online_other", "mean_session"}) {
      if (!kv.second[k]) return config::error_at(file, kv.second, p + "." + k + ": required");
    }
    TRANCHE_RETURN_IF_ERROR(probability_at(kv.second["share"], file, p + ".share", c.share));
    TRANCHE_RETURN_IF_ERROR(probability_at(kv.second["online_business"], file, p + ".online_business", c.online_business));
    TRANCHE_RETURN_IF_ERROR(probability_at(kv.second["online_other"], file, p + ".online_other", c.online_other));
    TRANCHE_RETURN_IF_ERROR(duration_at(kv.second["mean_session"], file, p + ".mean_session", c.mean_session));
    if (c.mean_session <= 0) return config::error_at(file, kv.second["mean_session"], p + ".mean_session: must be positive");
    // p = 0 would mean "never online" and p = 1 "never offline": both break the
    // session model's off-time s(1-p)/p.
    if (c.online_business <= 0 || c.online_business >= 1 || c.online_other <= 0 ||
        c.online_other >= 1) {
      return config::error_at(file, kv.second, p + ": online probabilities must be in (0, 1)");
    }
    class_share += c.share;
    s.classes.push_back(c);
  }
  if (std::fabs(class_share - 1.0) > 1e-6) {
    return config::error_at(file, fleet["classes"], "fleet.classes: shares must add up to 1");
  }
  if (!fleet["regions"] || !fleet["regions"].IsMap() || fleet["regions"].size() == 0) {
    return config::error_at(file, fleet, "fleet.regions: expected a non-empty mapping");
  }
  double region_share = 0;
  for (const auto& kv : fleet["regions"]) {
    Region r;
    r.name = kv.first.Scalar();
    const std::string p = "fleet.regions." + r.name;
    TRANCHE_RETURN_IF_ERROR(config::check_keys(kv.second, {"share", "utc_offset"}, file, p));
    if (!kv.second["share"] || !kv.second["utc_offset"]) {
      return config::error_at(file, kv.second, p + ": needs share and utc_offset");
    }
    TRANCHE_RETURN_IF_ERROR(probability_at(kv.second["share"], file, p + ".share", r.share));
    std::string off;
    TRANCHE_RETURN_IF_ERROR(take(config::as_string(kv.second["utc_offset"], file, p + ".utc_offset"), off));
    const bool negative = !off.empty() && off[0] == '-';
    auto d = core::parse_duration(negative ? off.substr(1) : off);
    if (!d.ok() || d.value() > 14 * core::kHour) {
      return config::error_at(file, kv.second["utc_offset"], p + ".utc_offset: expected like -5h or 9h (at most 14h)");
    }
    r.utc_offset = negative ? -d.value() : d.value();
    region_share += r.share;
    s.regions.push_back(r);
  }
  if (std::fabs(region_share - 1.0) > 1e-6) {
    return config::error_at(file, fleet["regions"], "fleet.regions: shares must add up to 1");
  }
  if (fleet["business_hours"]) {
    const YAML::Node b = fleet["business_hours"];
    TRANCHE_RETURN_IF_ERROR(config::check_keys(b, {"start_hour", "end_hour"}, file, "fleet.business_hours"));
    std::int64_t a = s.business_start_hour, e = s.business_end_hour;
    if (b["start_hour"]) TRANCHE_RETURN_IF_ERROR(take(config::as_int(b["start_hour"], file, "fleet.business_hours.start_hour"), a));
    if (b["end_hour"]) TRANCHE_RETURN_IF_ERROR(take(config::as_int(b["end_hour"], file, "fleet.business_hours.end_hour"), e));
    if (a < 0 || e > 24 || a >= e) return config::error_at(file, b, "fleet.business_hours: need 0 <= start_hour < end_hour <= 24");
    s.business_start_hour = static_cast<int>(a);
    s.business_end_hour = static_cast<int>(e);
  }

  if (const YAML::Node d = doc["delivery"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(d, {"mode", "held_mean", "connect_mean", "poll_min", "poll_max"}, file, "delivery"));
    if (d["mode"]) {
      std::string mode;
      TRANCHE_RETURN_IF_ERROR(take(config::as_string(d["mode"], file, "delivery.mode"), mode));
      if (mode != "held" && mode != "poll") return config::error_at(file, d["mode"], "delivery.mode: expected held or poll, got '" + mode + "'");
      s.delivery_poll = mode == "poll";
    }
    if (d["held_mean"]) TRANCHE_RETURN_IF_ERROR(duration_at(d["held_mean"], file, "delivery.held_mean", s.held_mean));
    if (d["connect_mean"]) TRANCHE_RETURN_IF_ERROR(duration_at(d["connect_mean"], file, "delivery.connect_mean", s.connect_mean));
    if (d["poll_min"]) TRANCHE_RETURN_IF_ERROR(duration_at(d["poll_min"], file, "delivery.poll_min", s.poll_min));
    if (d["poll_max"]) TRANCHE_RETURN_IF_ERROR(duration_at(d["poll_max"], file, "delivery.poll_max", s.poll_max));
    if (s.poll_min > s.poll_max) return config::error_at(file, d, "delivery: poll_min must not exceed poll_max");
  }
  if (const YAML::Node b = doc["bad_update"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(
        b, {"crash_probability", "crash_mean", "crash_after", "crash_class", "crash_region"}, file, "bad_update"));
    if (b["crash_class"]) TRANCHE_RETURN_IF_ERROR(take(config::as_string(b["crash_class"], file, "bad_update.crash_class"), s.crash_class));
    if (b["crash_region"]) TRANCHE_RETURN_IF_ERROR(take(config::as_string(b["crash_region"], file, "bad_update.crash_region"), s.crash_region));
    auto names_one = [&](const auto& list, const std::string& name, const char* key, const char* of) -> core::Status {
      if (name == "all") return core::Ok{};
      std::string known;
      for (const auto& x : list) {
        if (x.name == name) return core::Ok{};
        known += (known.empty() ? "" : ", ") + x.name;
      }
      return config::error_at(file, b[key], std::string("bad_update.") + key + ": no " + of + " '" + name + "' (" +
                                                known + ", or all)");
    };
    TRANCHE_RETURN_IF_ERROR(names_one(s.classes, s.crash_class, "crash_class", "class"));
    TRANCHE_RETURN_IF_ERROR(names_one(s.regions, s.crash_region, "crash_region", "region"));
    if (b["crash_after"]) TRANCHE_RETURN_IF_ERROR(duration_at(b["crash_after"], file, "bad_update.crash_after", s.crash_after));
    if (b["crash_probability"]) TRANCHE_RETURN_IF_ERROR(probability_at(b["crash_probability"], file, "bad_update.crash_probability", s.crash_probability));
    if (b["crash_mean"]) TRANCHE_RETURN_IF_ERROR(duration_at(b["crash_mean"], file, "bad_update.crash_mean", s.crash_mean));
  }
  if (doc["reboot_cycle"]) TRANCHE_RETURN_IF_ERROR(duration_at(doc["reboot_cycle"], file, "reboot_cycle", s.reboot_cycle));
  if (doc["os_gives_up_after_failed_boots"]) {
    std::int64_t n = 0;
    TRANCHE_RETURN_IF_ERROR(take(config::as_int(doc["os_gives_up_after_failed_boots"], file, "os_gives_up_after_failed_boots"), n));
    if (n < 1 || n > 100) return config::error_at(file, doc["os_gives_up_after_failed_boots"], "os_gives_up_after_failed_boots: 1 to 100");
    s.os_gives_up_after = static_cast<std::uint32_t>(n);
  }
  if (doc["self_heal_per_reboot"]) TRANCHE_RETURN_IF_ERROR(probability_at(doc["self_heal_per_reboot"], file, "self_heal_per_reboot", s.self_heal_per_reboot));
  if (const YAML::Node m = doc["manual_repair"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(m, {"median", "sigma"}, file, "manual_repair"));
    if (m["median"]) TRANCHE_RETURN_IF_ERROR(duration_at(m["median"], file, "manual_repair.median", s.repair_median));
    if (m["sigma"]) TRANCHE_RETURN_IF_ERROR(take(config::as_double(m["sigma"], file, "manual_repair.sigma"), s.repair_sigma));
    if (s.repair_sigma < 0 || s.repair_median <= 0) return config::error_at(file, m, "manual_repair: median > 0 and sigma >= 0");
  }
  if (const YAML::Node b = doc["background"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(b, {"unclean_disconnect_per_10min"}, file, "background"));
    if (b["unclean_disconnect_per_10min"]) TRANCHE_RETURN_IF_ERROR(probability_at(b["unclean_disconnect_per_10min"], file, "background.unclean_disconnect_per_10min", s.unclean_per_10min));
  }
  if (const YAML::Node h = doc["heartbeat"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(h, {"interval", "silent_after_missed"}, file, "heartbeat"));
    if (h["interval"]) TRANCHE_RETURN_IF_ERROR(duration_at(h["interval"], file, "heartbeat.interval", s.heartbeat_interval));
    if (h["silent_after_missed"]) {
      std::int64_t n = 0;
      TRANCHE_RETURN_IF_ERROR(take(config::as_int(h["silent_after_missed"], file, "heartbeat.silent_after_missed"), n));
      if (n < 1 || n > 1000) return config::error_at(file, h["silent_after_missed"], "heartbeat.silent_after_missed: 1 to 1000");
      s.silent_after_missed = static_cast<std::uint32_t>(n);
    }
    if (s.heartbeat_interval <= 0) return config::error_at(file, h, "heartbeat.interval: must be positive");
  }
  if (const YAML::Node a = doc["agent"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(a, {"start_budget", "trial_window", "max_unclean_boots"}, file, "agent"));
    if (a["max_unclean_boots"]) {
      std::int64_t n = 0;
      TRANCHE_RETURN_IF_ERROR(take(config::as_int(a["max_unclean_boots"], file, "agent.max_unclean_boots"), n));
      if (n < 0 || n > 100) return config::error_at(file, a["max_unclean_boots"], "agent.max_unclean_boots: 0 to 100");
      s.agent.max_unclean_boots = static_cast<std::uint32_t>(n);
    }
    if (a["start_budget"]) {
      std::int64_t n = 0;
      TRANCHE_RETURN_IF_ERROR(take(config::as_int(a["start_budget"], file, "agent.start_budget"), n));
      if (n < 1 || n > 100) return config::error_at(file, a["start_budget"], "agent.start_budget: 1 to 100");
      s.agent.start_budget = static_cast<std::uint32_t>(n);
    }
    if (a["trial_window"]) TRANCHE_RETURN_IF_ERROR(duration_at(a["trial_window"], file, "agent.trial_window", s.agent.trial_window));
  }

  const std::filesystem::path base = std::filesystem::path(file).parent_path();
  const YAML::Node pols = doc["policies"];
  if (!pols.IsMap() || pols.size() == 0) return config::error_at(file, pols, "policies: expected a non-empty mapping");
  for (const auto& kv : pols) {
    Policy p;
    p.name = kv.first.Scalar();
    const std::string path = "policies." + p.name;
    TRANCHE_RETURN_IF_ERROR(config::check_keys(kv.second, {"kind", "revert_after", "plan", "agent"}, file, path));
    if (!kv.second["kind"]) return config::error_at(file, kv.second, path + ".kind: required (global or rings)");
    std::string kind;
    TRANCHE_RETURN_IF_ERROR(take(config::as_string(kv.second["kind"], file, path + ".kind"), kind));
    if (kind == "global") {
      p.kind = PolicyKind::kGlobal;
      if (kv.second["revert_after"]) TRANCHE_RETURN_IF_ERROR(duration_at(kv.second["revert_after"], file, path + ".revert_after", p.revert_after));
    } else if (kind == "rings") {
      p.kind = PolicyKind::kRings;
      if (!kv.second["plan"]) return config::error_at(file, kv.second, path + ".plan: required for kind rings");
      std::string plan;
      TRANCHE_RETURN_IF_ERROR(take(config::as_string(kv.second["plan"], file, path + ".plan"), plan));
      p.plan_file = (base / plan).lexically_normal().string();
      auto loaded = config::load_plan_file(p.plan_file);
      if (!loaded.ok()) return loaded.error().with_context(file + ": " + path + ".plan: ");
      p.plan = std::move(loaded.value());
    } else {
      return config::error_at(file, kv.second["kind"], path + ".kind: expected global or rings, got '" + kind + "'");
    }
    if (kv.second["agent"]) TRANCHE_RETURN_IF_ERROR(take(config::as_bool(kv.second["agent"], file, path + ".agent"), p.agent));
    s.policies.emplace(p.name, std::move(p));
  }
  if (const YAML::Node dp = doc["default_policies"]) {
    if (!dp.IsSequence()) return config::error_at(file, dp, "default_policies: expected a list");
    for (const auto& n : dp) {
      std::string name;
      TRANCHE_RETURN_IF_ERROR(take(config::as_string(n, file, "default_policies"), name));
      if (!s.policies.count(name)) return config::error_at(file, n, "default_policies: no policy named '" + name + "'");
      s.default_policies.push_back(name);
    }
  } else {
    for (const auto& kv : s.policies) s.default_policies.push_back(kv.first);
  }
  if (const YAML::Node c = doc["calibration"]) {
    TRANCHE_RETURN_IF_ERROR(config::check_keys(c, {"crashed_share_min", "crashed_share_max", "still_down_day6_max", "still_down_day10_8_max"}, file, "calibration"));
    if (c["crashed_share_min"]) TRANCHE_RETURN_IF_ERROR(probability_at(c["crashed_share_min"], file, "calibration.crashed_share_min", s.calib_crashed_min));
    if (c["crashed_share_max"]) TRANCHE_RETURN_IF_ERROR(probability_at(c["crashed_share_max"], file, "calibration.crashed_share_max", s.calib_crashed_max));
    if (c["still_down_day6_max"]) TRANCHE_RETURN_IF_ERROR(probability_at(c["still_down_day6_max"], file, "calibration.still_down_day6_max", s.calib_down_day6_max));
    if (c["still_down_day10_8_max"]) TRANCHE_RETURN_IF_ERROR(probability_at(c["still_down_day10_8_max"], file, "calibration.still_down_day10_8_max", s.calib_down_day10_8_max));
  }
  return core::Ok{};
}


}  // namespace

std::string resolve_scenario_path(const std::string& name_or_path, const std::string& dir) {
  if (name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".yaml")) {
    return name_or_path;
  }
  return (std::filesystem::path(dir) / (name_or_path + ".yaml")).string();
}

Result<Scenario> load_scenario(const std::string& path, const Overrides& overrides) {
  auto text = config::read_file_limited(path);
  if (!text.ok()) return text.error();
  auto doc = config::parse_yaml(text.value(), path);
  if (!doc.ok()) return doc.error();
  for (const auto& [key, value] : overrides) {
    auto st = apply_override(doc.value(), key, value, path);
    if (!st.ok()) return st.error();
  }
  Scenario s;
  s.file = path;
  auto st = read_scenario(doc.value(), path, s);
  if (!st.ok()) return st.error();
  return s;
}

}  // namespace tranche::sim
