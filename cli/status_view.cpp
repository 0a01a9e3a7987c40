#include "cli/status_view.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>
#include <vector>

namespace tranche::cli {

namespace json = boost::json;

namespace {

// Defensive reads: the views show what is there and a dash for what is not.
std::string str(const json::object& o, std::string_view key, std::string fallback = "") {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : fallback;
}
bool has_number(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_number();
}
double num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_number()) return 0;
  return v->to_number<double>();
}
const json::object& obj(const json::object& o, std::string_view key) {
  static const json::object kEmpty;
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->as_object() : kEmpty;
}
const json::array& arr(const json::object& o, std::string_view key) {
  static const json::array kEmpty;
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->as_array() : kEmpty;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string duration(double s) {
  if (s < 1) return fixed(s * 1000, 0) + " ms";
  if (s < 120) return fixed(s, s < 10 ? 1 : 0) + " s";
  if (s < 7200) return fixed(s / 60, 0) + " min";
  return fixed(s / 3600, 1) + " h";
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string rate_text(double failures, double device_s) {
  if (device_s <= 0) return "-";
  return fixed(failures / (device_s / 3600.0), 2) + "/device-h";
}

std::string plural(double n, const char* one, const char* many) {
  return fixed(n, 0) + " " + (n == 1 ? one : many);
}

// A share of 0..1 in percent, without trailing zeros: 0.5 -> "50%", 0.125 -> "12.5%".
std::string percent(double share) {
  std::string s = fixed(share * 100, 2);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "%";
}

// The failure limits in force for the current stage (gate.limits), in words:
// "halt above 50% once 3 are exposed; max_failures off".
std::string limits_text(const json::object& limits) {
  std::string out;
  const double rate = num(limits, "max_failure_rate");
  const double min_exposed = num(limits, "min_exposed");
  if (rate >= 1) {
    out = "no share limit (max_failure_rate 100%)";
  } else {
    out = "halt above " + percent(rate) + " once " + fixed(min_exposed, 0) +
          (min_exposed == 1 ? " is" : " are") + " exposed";
  }
  if (has_number(limits, "max_failures")) {
    out += ", or above " + plural(num(limits, "max_failures"), "failed device", "failed devices");
  } else {
    out += "; max_failures off";
  }
  return out;
}

// "3 of 10 exposed devices": gate.exposed_failures, the one count of failed devices
// every line of the view shows, of gate.exposed_devices.
std::string failed_of_exposed(const json::object& gate) {
  std::string out = fixed(num(gate, "exposed_failures"), 0);
  if (has_number(gate, "exposed_devices")) {
    return out + " of " + plural(num(gate, "exposed_devices"), "exposed device", "exposed devices");
  }
  return out + " exposed";
}

// "failed: 3 of 3 exposed devices (install_failed 3) — limit: halt above 50% once 3
// are exposed; max_failures off", from the gate's counts of exposed devices.
std::string failures_text(const json::object& gate) {
  std::string out = "failed: " + failed_of_exposed(gate);
  std::string causes;
  for (const auto& [cause, n] : obj(gate, "exposed_failures_by_cause")) {
    if (!n.is_number() || n.to_number<double>() <= 0) continue;
    causes +=
        (causes.empty() ? "" : ", ") + std::string(cause) + " " + fixed(n.to_number<double>(), 0);
  }
  if (!causes.empty()) out += " (" + causes + ")";
  const auto* limits = gate.if_contains("limits");
  if (limits != nullptr && limits->is_object()) {
    const auto* crossed = gate.if_contains("limit_crossed");
    const bool was_crossed = crossed != nullptr && crossed->is_bool() && crossed->as_bool();
    out += std::string(" — limit") + (was_crossed ? " (crossed)" : "") + ": " +
           limits_text(limits->as_object());
  }
  return out;
}

// "completes when 95% of 40 online devices run it: 31 do" (gate.completion).
std::string completion_text(const json::object& completion) {
  const double running = num(completion, "running");
  return "completes when " + str(completion, "share", "-") + " of " +
         plural(num(completion, "target"), "online device", "online devices") +
         " run it: " + fixed(running, 0) + (running == 1 ? " does" : " do");
}

}  // namespace

std::optional<core::RolloutState> rollout_state(const json::object& rollout) {
  const auto* status = rollout.if_contains("status");
  if (status == nullptr || !status->is_object()) return std::nullopt;
  const auto* state = status->as_object().if_contains("state");
  if (state == nullptr || !state->is_string()) return std::nullopt;
  return core::parse_rollout_state(std::string_view(state->as_string()));
}

std::string progress_bar(double fraction, int width) {
  if (!(fraction >= 0)) fraction = 0;  // NaN too
  fraction = std::min(fraction, 1.0);
  const int filled = static_cast<int>(std::lround(fraction * width));
  return "[" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(width - filled), '.') + "]";
}

std::string render_rollout_line(const json::object& r) {
  const auto& status = obj(r, "status");
  const auto& stages = arr(r, "stages");
  const auto stage = static_cast<std::size_t>(num(status, "stage"));
  std::string stage_name =
      stage < stages.size() && stages[stage].is_object() ? str(stages[stage].as_object(), "name") : "";
  std::string prev = str(r, "previous");
  return pad(str(r, "id"), 14) + " " + pad(str(status, "state"), 13) + " " + str(r, "channel") + " " +
         (prev.empty() ? "" : prev + " -> ") + str(r, "version") + "  stage " + std::to_string(stage + 1) + "/" +
         std::to_string(stages.size()) + " " + stage_name + "\n";
}

std::string render_rollout(const json::object& r, const json::object* fleet, std::int64_t now_ms) {
  const auto& status = obj(r, "status");
  const auto& gate = obj(r, "gate");
  const auto& stages = arr(r, "stages");
  const std::string state = str(status, "state");
  const auto parsed = rollout_state(r);
  // Not final: pending, running, paused, halted or rolling back (core's definition).
  const bool ongoing = parsed && !core::is_final(*parsed);
  const std::string channel = str(r, "channel");
  const std::string version = str(r, "version");
  double on_version = 0;
  if (fleet != nullptr) {
    const auto& by_channel = obj(obj(*fleet, "by_version"), channel);
    on_version = num(by_channel, version);
  }
  std::string out;
  std::string prev = str(r, "previous");
  out += "rollout  " + str(r, "id") + "   " + channel + " " + (prev.empty() ? "(nothing)" : prev) + " -> " +
         version + "   plan " + str(r, "plan") + "   on failure: " + str(r, "on_failure") + "\n";
  const auto stage_index = static_cast<std::size_t>(num(status, "stage"));
  out += "state    " + state + ", stage " + std::to_string(std::min(stage_index + 1, stages.size())) + " of " +
         std::to_string(stages.size()) + "   generation " + fixed(num(r, "generation"), 0) + "\n";
  out += "why      " + str(status, "reason", "-") + "\n";
  const bool halted = (parsed && core::is_stopped(*parsed)) ||
                      (gate.if_contains("halted") != nullptr && gate.at("halted").is_bool() &&
                       gate.at("halted").as_bool());
  if (halted) {
    // The failed devices first: the count the gate lines below show (exposed_failures).
    out += "HALTED   " + failed_of_exposed(gate) + " failed — " +
           str(gate, "verdict_reason", str(status, "reason")) + "\n";
  }

  out += "stages\n";
  std::size_t name_width = 4;
  for (const auto& s : stages) {
    if (s.is_object()) name_width = std::max(name_width, str(s.as_object(), "name").size());
  }
  for (std::size_t i = 0; i < stages.size(); ++i) {
    if (!stages[i].is_object()) continue;
    const auto& s = stages[i].as_object();
    const std::string st = str(s, "state");
    const double target = num(s, "target_devices");
    double fraction = 0;
    if (st == "done" || parsed == core::RolloutState::kCompleted) {
      fraction = 1;
    } else if (st == "current") {
      fraction = target > 0 ? on_version / target : 0;
    }
    std::string detail;
    if (st == "current" && ongoing) {
      const double baked = std::max(0.0, static_cast<double>(now_ms) - num(status, "stage_started_at")) / 1000.0;
      // Devices outside the stage may run the version already (an earlier
      // rollout, a pin): never "18 of 15", but "15 of 15 (18 in the fleet)".
      detail = fixed(std::min(on_version, target), 0) + " of " + fixed(target, 0) + " devices run " + version +
               (on_version > target ? " (" + fixed(on_version, 0) + " in the fleet)" : std::string()) +
               " · baked " + duration(baked) + " of " + duration(num(s, "bake_s"));
    } else {
      detail = st + " · " + fixed(target, 0) + " devices (" + str(s, "effective_share") + ")";
    }
    if (s.if_contains("admits_critical") != nullptr && s.at("admits_critical").is_bool() &&
        s.at("admits_critical").as_bool()) {
      detail += " · admits critical";
    }
    out += std::string(st == "current" ? "> " : "  ") + std::to_string(i + 1) + " " + pad(str(s, "name"), name_width) +
           " " + progress_bar(fraction, 24) + " " + pad(fixed(std::min(fraction, 1.0) * 100, 0) + "%", 5) + detail + "\n";
  }

  out += "gate     exposed " + fixed(num(gate, "exposed_failures"), 0) + " failures in " +
         fixed(num(gate, "exposed_device_s") / 3600, 3) + " device-h (" +
         rate_text(num(gate, "exposed_failures"), num(gate, "exposed_device_s")) + ")\n";
  out += "         control " + fixed(num(gate, "control_failures"), 0) + " failures in " +
         fixed(num(gate, "control_device_s") / 3600, 3) + " device-h (" +
         rate_text(num(gate, "control_failures"), num(gate, "control_device_s")) + ")\n";
  if (has_number(gate, "log_lr") && has_number(gate, "halt_threshold")) {
    const double lr = num(gate, "log_lr");
    const double thr = num(gate, "halt_threshold");
    out += "         log LR " + fixed(lr, 2) + " of " + fixed(thr, 2) + " to halt " +
           progress_bar(thr > 0 ? lr / thr : 0, 20) + "\n";
  } else {
    out += "         log LR -, not evaluated yet\n";
  }
  out += "         ratio " +
         (has_number(gate, "ratio_estimate") ? fixed(num(gate, "ratio_estimate"), 2) : "-") +
         " (upper bound " +
         (has_number(gate, "ratio_upper") ? fixed(num(gate, "ratio_upper"), 2) : "unbounded") +
         ")\n";
  // The failed devices and the limit, the acknowledgements and (in the last stage)
  // completion: what a halt or a promotion turns on, in words.
  out += "         " + failures_text(gate) + "\n";
  out += "         acknowledged: " + fixed(num(gate, "acknowledged"), 0);
  if (has_number(gate, "min_acknowledged")) {
    out += " of " + fixed(num(gate, "min_acknowledged"), 0) + " needed";
  }
  out += "\n";
  const auto* completion = gate.if_contains("completion");
  // Running or paused in the last stage: the rollout completes once enough run it.
  const bool may_complete = parsed && core::is_live(*parsed) && !core::is_stopped(*parsed);
  if (may_complete && !stages.empty() && stage_index + 1 >= stages.size() &&
      completion != nullptr && completion->is_object()) {
    out += "         " + completion_text(completion->as_object()) + "\n";
  }
  const std::string verdict = str(gate, "verdict_reason");
  out += "verdict  " + (verdict.empty() ? std::string("no verdict yet") : verdict) + "\n";
  std::string actions;
  for (const auto& a : arr(r, "allowed_actions")) {
    if (a.is_string()) actions += (actions.empty() ? "" : ", ") + std::string(a.as_string());
  }
  out += "actions  " + (actions.empty() ? std::string("none (final state)") : actions) + "\n";
  return out;
}

std::string render_fleet(const json::object& f) {
  std::string out = fixed(num(f, "devices"), 0) + " devices, " + fixed(num(f, "online"), 0) +
                    " online (heard from in the last 3 minutes)\n";
  const auto& by_version = obj(f, "by_version");
  for (const auto& [channel, versions] : by_version) {
    if (!versions.is_object()) continue;
    double total = 0;
    for (const auto& [v, n] : versions.as_object()) total += n.is_number() ? n.to_number<double>() : 0;
    out += "channel " + std::string(channel) + "\n";
    std::vector<std::pair<std::string, double>> rows;
    for (const auto& [v, n] : versions.as_object()) rows.emplace_back(std::string(v), n.to_number<double>());
    for (const auto& [v, n] : rows) {
      out += "  " + pad(v, 12) + " " + progress_bar(total > 0 ? n / total : 0, 24) + " " + fixed(n, 0) + "\n";
    }
  }
  for (const auto& [rollout, stages] : obj(f, "by_stage")) {
    if (!stages.is_object()) continue;
    out += "rollout " + std::string(rollout) + ", devices by the first stage that admits them\n";
    for (const auto& [stage, n] : stages.as_object()) {
      out += "  " + pad(std::string(stage), 12) + " " + fixed(n.is_number() ? n.to_number<double>() : 0, 0) + "\n";
    }
  }
  std::string tenants;
  for (const auto& [t, n] : obj(f, "by_tenant")) {
    tenants += (tenants.empty() ? "" : ", ") + std::string(t) + " " +
               fixed(n.is_number() ? n.to_number<double>() : 0, 0);
  }
  if (!tenants.empty()) out += "tenants  " + tenants + "\n";
  return out;
}

std::string render_device(const json::object& d, std::int64_t now_ms) {
  std::string out;
  if (!str(d, "why").empty()) out += "why      " + str(d, "why") + "\n";
  std::string tags;
  for (const auto& [k, v] : obj(d, "tags")) {
    tags += (tags.empty() ? "" : ", ") + std::string(k) + "=" + (v.is_string() ? std::string(v.as_string()) : "");
  }
  out += "device   " + str(d, "id") + "   tenant " + str(d, "tenant") + "   tags " + (tags.empty() ? "none" : tags) +
         "\n";
  const auto* goodbye = d.if_contains("said_goodbye");
  const double last_seen = num(d, "last_seen");
  out += "seen     " +
         (last_seen <= 0 ? std::string("never checked in")
                         : "last check-in " + duration(std::max(0.0, static_cast<double>(now_ms) - last_seen) / 1000) +
                               " ago") +
         (goodbye != nullptr && goodbye->is_bool() && goodbye->as_bool() ? " (said goodbye)" : "") + "\n";
  for (const auto& [channel, versions] : obj(d, "failed")) {
    if (!versions.is_array() || versions.as_array().empty()) continue;
    std::string list;
    for (const auto& v : versions.as_array()) {
      if (v.is_string()) list += (list.empty() ? "" : ", ") + std::string(v.as_string());
    }
    out += "failed   " + std::string(channel) + ": " + list + " (never offered again)\n";
  }
  for (const auto& [channel, answer] : obj(d, "channels")) {
    if (!answer.is_object()) continue;
    const auto& c = answer.as_object();
    out += "channel  " + std::string(channel) + ": runs " + str(c, "current", "nothing") + ", should run " +
           str(c, "desired", "what it runs") + " (" + str(c, "action") + ")\n";
    out += "         " + str(c, "reason") + " [" + str(c, "code") + "]";
    if (!str(c, "rollout").empty()) out += " rollout " + str(c, "rollout") + ", stage " + str(c, "stage");
    out += "\n";
  }
  return out;
}

}  // namespace tranche::cli
