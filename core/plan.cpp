#include "core/plan.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

namespace tranche::core {

bool Selector::matches(const Tags& tags) const {
  for (const auto& [key, values] : any_of) {
    const auto tag = tags.find(key);
    if (tag == tags.end()) return false;
    if (std::find(values.begin(), values.end(), tag->second) == values.end()) return false;
  }
  return true;
}

namespace {

// Every message starts with the field's path in the plan file's terms
// ("stages[2].percent: ...", "gate.alpha: ..."), then says what is wrong. The path
// comes first so that config/plan_yaml.cpp can point at the line that set it.
Error invalid(const std::string& path, const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, path + ": " + what);
}

std::string number(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::string("?");
}

std::string stage_path(std::size_t i) {
  return "stages[" + std::to_string(i) + "]";
}

std::string stage_label(const Stage& stage) {
  return "stage '" + stage.name + "'";
}

Status validate_stages(const std::vector<Stage>& stages) {
  if (stages.empty()) return invalid("stages", "a plan needs at least one stage");
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const Stage& s = stages[i];
    const std::string path = stage_path(i);
    if (s.name.empty()) return invalid(path + ".name", "every stage needs a name");
    for (std::size_t j = 0; j < i; ++j) {
      if (stages[j].name == s.name) {
        return invalid(path + ".name", "'" + s.name + "' is already the name of " + stage_path(j) +
                                           "; stage names must be unique");
      }
    }
    if (i == 0 && s.percent.value() == 0) {
      return invalid(path + ".percent", stage_label(s) + " admits 0%; it must be above 0%");
    }
    if (i > 0 && s.percent <= stages[i - 1].percent) {
      return invalid(path + ".percent",
                     stage_label(s) + " at " + s.percent.to_string() +
                         " must be above the previous " + stage_label(stages[i - 1]) + " at " +
                         stages[i - 1].percent.to_string() + " (shares strictly increase)");
    }
    // A ramp (docs/plan.md): steps of 10, then 100, then 1,000 devices. The
    // counts of the stages that set one grow; a step smaller than the one before
    // it would take nobody new and is most likely a typo (1000 for 100).
    for (std::size_t j = i; j-- > 0;) {
      if (s.min_devices == 0 || stages[j].min_devices == 0) continue;
      if (s.min_devices <= stages[j].min_devices) {
        return invalid(path + ".min_devices",
                       stage_label(s) + " asks for " + std::to_string(s.min_devices) +
                           " devices, no more than " + stage_label(stages[j]) + " before it (" +
                           std::to_string(stages[j].min_devices) + "): the steps of a ramp grow");
      }
      break;
    }
    if (s.bake < 0) {
      return invalid(path + ".bake", stage_label(s) + " has a negative bake time (" +
                                         format_duration(s.bake) + ")");
    }
    for (const auto& [key, values] : s.selector.any_of) {
      if (key.empty())
        return invalid(path + ".selector", stage_label(s) + " has an empty tag name");
      if (values.empty()) {
        return invalid(path + ".selector." + key, stage_label(s) + " lists no values for tag '" +
                                                      key + "' (it would match no device)");
      }
    }
  }
  const std::size_t last = stages.size() - 1;
  if (stages[last].percent.value() != Ppm::kWhole) {
    return invalid(stage_path(last) + ".percent",
                   "the last " + stage_label(stages[last]) + " must be 100%, got " +
                       stages[last].percent.to_string() + " (a rollout ends with everybody)");
  }
  return Ok{};
}

// Checks written as "inside the range" so that NaN, which compares false with
// everything, is refused too.
Status validate_gate(const GateSettings& g) {
  if (!(std::isfinite(g.alpha) && g.alpha > 0 && g.alpha < 0.5)) {
    return invalid("gate.alpha", "must be in (0, 0.5), got " + number(g.alpha));
  }
  if (!(std::isfinite(g.alternative_ratio) && g.alternative_ratio > 1)) {
    return invalid(
        "gate.alternative_ratio",
        "must be above 1 (a failure rate worse than control), got " + number(g.alternative_ratio));
  }
  if (!(std::isfinite(g.tolerance) && g.tolerance >= 1)) {
    return invalid("gate.tolerance", "must be at least 1, got " + number(g.tolerance));
  }
  if (!(std::isfinite(g.confidence) && g.confidence > 0.5 && g.confidence < 1)) {
    return invalid("gate.confidence", "must be in (0.5, 1), got " + number(g.confidence));
  }
  if (!(std::isfinite(g.ratio_check_min_expected) && g.ratio_check_min_expected >= 0)) {
    return invalid("gate.ratio_check_min_expected",
                   "must be at least 0, got " + number(g.ratio_check_min_expected));
  }
  if (g.heartbeat_interval <= 0) {
    return invalid("gate.heartbeat_interval",
                   "must be above 0, got " + format_duration(g.heartbeat_interval));
  }
  if (g.silent_after_missed < 1) {
    return invalid("gate.silent_after_missed", "must be at least 1, got 0");
  }
  if (g.tick <= 0) return invalid("gate.tick", "must be above 0, got " + format_duration(g.tick));
  if (!(std::isfinite(g.promote_confidence) && g.promote_confidence > 0.5 &&
        g.promote_confidence < 1)) {
    return invalid("gate.promote_confidence",
                   "must be in (0.5, 1), got " + number(g.promote_confidence));
  }
  if (g.min_stage_time < 0) {
    return invalid("gate.min_stage_time",
                   "must be at least 0, got " + format_duration(g.min_stage_time));
  }
  if (!(std::isfinite(g.min_promote_device_hours) && g.min_promote_device_hours >= 0)) {
    return invalid("gate.min_promote_device_hours",
                   "must be at least 0, got " + number(g.min_promote_device_hours));
  }
  return Ok{};
}

Status validate_limits(const FailureLimits& l, const std::string& path) {
  if (!(std::isfinite(l.max_failure_rate) && l.max_failure_rate >= 0 && l.max_failure_rate <= 1)) {
    return invalid(path + ".max_failure_rate",
                   "must be a share in [0, 1] (0.5 = half the exposed devices), got " +
                       number(l.max_failure_rate));
  }
  if (l.min_exposed < 1) {
    return invalid(path + ".min_exposed",
                   "must be at least 1 (the share of zero devices is no evidence), got 0");
  }
  return Ok{};
}

}  // namespace

Status Plan::validate() const {
  if (Status s = validate_stages(stages); !s) return s;
  if (Status s = validate_gate(gate); !s) return s;
  if (Status s = validate_limits(gate.limits, "gate"); !s) return s;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].limits) {
      if (Status s = validate_limits(*stages[i].limits, stage_path(i)); !s) return s;
    }
  }
  if (completion_share.value() == 0) {
    return invalid("completion_share", "must be above 0% (a rollout that nobody runs never completes)");
  }
  if (strata.size() > kMaxStrataKeys) {
    return invalid("strata", "names " + std::to_string(strata.size()) + " tag keys; at most " +
                                 std::to_string(kMaxStrataKeys));
  }
  for (std::size_t i = 0; i < strata.size(); ++i) {
    if (strata[i].empty()) return invalid("strata", "a tag key is empty");
    if (std::find(strata.begin(), strata.begin() + static_cast<std::ptrdiff_t>(i), strata[i]) !=
        strata.begin() + static_cast<std::ptrdiff_t>(i)) {
      return invalid("strata", "names '" + strata[i] + "' twice");
    }
  }
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const std::uint32_t k = stages[i].min_per_stratum;
    if (k > 0 && strata.empty()) {
      return invalid(stage_path(i) + ".min_per_stratum",
                     stage_label(stages[i]) + " sets min_per_stratum but the plan names no strata (e.g. "
                                              "strata: [class, region])");
    }
    if (k > kMaxPerStratum) {
      return invalid(stage_path(i) + ".min_per_stratum",
                     std::to_string(k) + " is above " + std::to_string(kMaxPerStratum));
    }
  }
  return Ok{};
}

const FailureLimits& Plan::limits_for(std::size_t index) const {
  if (index < stages.size() && stages[index].limits) return *stages[index].limits;
  return gate.limits;
}

GateSettings Plan::gate_for(std::size_t index) const {
  GateSettings g = gate;
  g.limits = limits_for(index);
  if (index < stages.size() && stages[index].min_devices > 0) {
    // A quarter (at night half a step may be offline, and a step must not
    // stall), but at least 3 (all of a smaller step): never below what a lab's
    // plan asks of its canary of 3.
    const std::uint32_t n = stages[index].min_devices;
    const std::uint32_t quarter = n / 4 + (n % 4 != 0 ? 1 : 0);
    const std::uint32_t need = std::max(quarter, std::min<std::uint32_t>(n, 3));
    g.min_acknowledged = std::min(g.min_acknowledged, need);
  }
  return g;
}

}  // namespace tranche::core
