#include "config/plan_yaml.h"

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "config/yaml_util.h"

namespace tranche::config {

using core::Error;
using core::ErrorCode;
using core::Result;
using core::Status;

namespace {

// Reads one plan file. Remembers the line of every field it read, so that an
// error found later by Plan::validate — which knows fields by path
// ("stages[2].percent"), not by line — can still point into the file.
class PlanReader {
 public:
  explicit PlanReader(const std::string& file) : file_(file) {}

  Result<core::Plan> read(const YAML::Node& root);

 private:
  // Every error of this file: "file:line: path: what", with the code of the
  // underlying failure (a percentage above 100% stays kOutOfRange).
  Error fail(const YAML::Node& node, const std::string& path, const std::string& what,
             ErrorCode code = ErrorCode::kParse) const {
    Error e = error_at(file_, node, path + ": " + what);
    e.code = code;
    return e;
  }
  Error fail(const YAML::Node& node, const std::string& path, const Error& cause) const {
    return fail(node, path, cause.message, cause.code);
  }

  // A mapping with only `allowed` keys, each at most once; notes the line of each
  // key's value under path.key.
  Status mapping(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                 const std::string& path);

  Result<std::string> text(const YAML::Node& node, const std::string& path) const {
    return as_string(node, file_, path);
  }
  Result<core::Ppm> percent(const YAML::Node& node, const std::string& path) const;
  Result<core::DurationMs> duration(const YAML::Node& node, const std::string& path) const;
  Result<std::uint32_t> count(const YAML::Node& node, const std::string& path) const;
  Result<double> real(const YAML::Node& node, const std::string& path) const {
    return as_double(node, file_, path);
  }

  Status read_gate(const YAML::Node& node, core::GateSettings& gate);
  // max_failure_rate, min_exposed, max_failures of a gate or a stage mapping,
  // over `limits`; `any` says whether the mapping set one.
  Status read_limits(const YAML::Node& node, const std::string& path, core::FailureLimits& limits,
                     bool& any);
  Status read_stage(const YAML::Node& node, const std::string& path, const core::Plan& plan,
                    core::Stage& stage);
  Status read_selector(const YAML::Node& node, const std::string& path, core::Selector& selector);

  // The validate error, placed at the line of the field it names (or of the
  // nearest enclosing field the file spells out).
  Error locate(const Error& e) const;

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  const std::string& file_;
  std::map<std::string, int> lines_;  // field path -> line
};

Status PlanReader::mapping(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                           const std::string& path) {
  if (Status s = check_keys(map, allowed, file_, path); !s) return s;
  // yaml-cpp keeps both copies of a repeated key and lookups see only the first:
  // the second would be silently ignored.
  std::set<std::string> seen;
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      return fail(kv.first, join(path, key), "key given twice");
    }
    lines_[join(path, key)] = line_of(kv.second);
  }
  return core::Ok{};
}

Result<core::Ppm> PlanReader::percent(const YAML::Node& node, const std::string& path) const {
  auto s = text(node, path);
  if (!s) return s.error();
  auto p = core::Ppm::parse(*s);
  if (!p) return fail(node, path, p.error());
  return *p;
}

Result<core::DurationMs> PlanReader::duration(const YAML::Node& node,
                                              const std::string& path) const {
  auto s = text(node, path);
  if (!s) return s.error();
  auto d = core::parse_duration(*s);
  if (!d) return fail(node, path, d.error());
  return *d;
}

Result<std::uint32_t> PlanReader::count(const YAML::Node& node, const std::string& path) const {
  auto n = as_int(node, file_, path);
  if (!n) return n.error();
  if (*n < 0 || *n > std::int64_t{std::numeric_limits<std::uint32_t>::max()}) {
    return fail(node, path, "must be between 0 and 4294967295, got " + std::to_string(*n),
                ErrorCode::kOutOfRange);
  }
  return static_cast<std::uint32_t>(*n);
}

Status PlanReader::read_gate(const YAML::Node& node, core::GateSettings& gate) {
  if (Status s = mapping(
          node,
          {"alpha", "alternative_ratio", "tolerance", "confidence", "ratio_check_min_expected",
           "min_acknowledged", "heartbeat_interval", "silent_after_missed", "tick",
           "max_failure_rate", "min_exposed", "max_failures", "early_promotion", "promote_confidence",
           "min_stage_time", "min_promote_device_hours"},
          "gate");
      !s) {
    return s;
  }
  bool any = false;
  if (Status s = read_limits(node, "gate", gate.limits, any); !s) return s;
  const std::pair<const char*, double*> reals[] = {
      {"alpha", &gate.alpha},
      {"alternative_ratio", &gate.alternative_ratio},
      {"tolerance", &gate.tolerance},
      {"confidence", &gate.confidence},
      {"ratio_check_min_expected", &gate.ratio_check_min_expected},
      {"promote_confidence", &gate.promote_confidence},
      {"min_promote_device_hours", &gate.min_promote_device_hours},
  };
  for (const auto& [key, field] : reals) {
    if (const YAML::Node n = node[key]) {
      auto v = real(n, join("gate", key));
      if (!v) return v.error();
      *field = *v;
    }
  }
  const std::pair<const char*, std::uint32_t*> counts[] = {
      {"min_acknowledged", &gate.min_acknowledged},
      {"silent_after_missed", &gate.silent_after_missed},
  };
  for (const auto& [key, field] : counts) {
    if (const YAML::Node n = node[key]) {
      auto v = count(n, join("gate", key));
      if (!v) return v.error();
      *field = *v;
    }
  }
  const std::pair<const char*, core::DurationMs*> durations[] = {
      {"heartbeat_interval", &gate.heartbeat_interval},
      {"tick", &gate.tick},
      {"min_stage_time", &gate.min_stage_time},
  };
  for (const auto& [key, field] : durations) {
    if (const YAML::Node n = node[key]) {
      auto v = duration(n, join("gate", key));
      if (!v) return v.error();
      *field = *v;
    }
  }
  if (const YAML::Node n = node["early_promotion"]) {
    auto v = as_bool(n, file_, join("gate", "early_promotion"));
    if (!v) return v.error();
    gate.early_promotion = *v;
  }
  return core::Ok{};
}

Status PlanReader::read_limits(const YAML::Node& node, const std::string& path,
                               core::FailureLimits& limits, bool& any) {
  if (const YAML::Node n = node["max_failure_rate"]) {
    auto v = real(n, join(path, "max_failure_rate"));
    if (!v) return v.error();
    limits.max_failure_rate = *v;
    any = true;
  }
  if (const YAML::Node n = node["min_exposed"]) {
    auto v = count(n, join(path, "min_exposed"));
    if (!v) return v.error();
    limits.min_exposed = *v;
    any = true;
  }
  if (const YAML::Node n = node["max_failures"]) {
    any = true;
    if (n.IsScalar() && n.Scalar() == "off") {
      limits.max_failures.reset();
    } else {
      auto v = count(n, join(path, "max_failures"));
      if (!v) return fail(n, join(path, "max_failures"), "expected a count of devices or 'off'");
      limits.max_failures = *v;
    }
  }
  return core::Ok{};
}

Status PlanReader::read_selector(const YAML::Node& node, const std::string& path,
                                 core::Selector& selector) {
  if (!node.IsMap()) {
    return fail(node, path, "expected a mapping of tag to values, e.g. {region: [emea, apac]}");
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return fail(kv.first, path, "expected a tag name as key");
    const std::string tag = kv.first.Scalar();
    const std::string tag_path = path + "." + tag;
    if (!seen.insert(tag).second) return fail(kv.first, tag_path, "tag given twice");
    lines_[tag_path] = line_of(kv.second);
    std::vector<std::string>& values = selector.any_of[tag];
    if (kv.second.IsScalar()) {  // {os: win11} is {os: [win11]}
      values.push_back(kv.second.Scalar());
      continue;
    }
    if (!kv.second.IsSequence()) {
      return fail(kv.second, tag_path, "expected a value or a list of values");
    }
    for (std::size_t i = 0; i < kv.second.size(); ++i) {
      auto v = text(kv.second[i], tag_path + "[" + std::to_string(i) + "]");
      if (!v) return v.error();
      values.push_back(*v);
    }
  }
  return core::Ok{};
}

Status PlanReader::read_stage(const YAML::Node& node, const std::string& path,
                              const core::Plan& plan, core::Stage& stage) {
  if (Status s = mapping(node,
                         {"name", "percent", "bake", "min_devices", "min_per_stratum", "admits_critical", "selector",
                          "max_failure_rate", "min_exposed", "max_failures"},
                         path);
      !s) {
    return s;
  }
  // A stage's limits start from the plan's and override what it names.
  core::FailureLimits limits = plan.gate.limits;
  bool any = false;
  if (Status s = read_limits(node, path, limits, any); !s) return s;
  if (any) stage.limits = limits;
  for (const char* required : {"name", "percent"}) {
    if (!node[required]) return fail(node, join(path, required), "missing (every stage needs it)");
  }
  auto name = text(node["name"], join(path, "name"));
  if (!name) return name.error();
  stage.name = *name;
  auto share = percent(node["percent"], join(path, "percent"));
  if (!share) return share.error();
  stage.percent = *share;
  if (const YAML::Node n = node["bake"]) {
    auto bake = duration(n, join(path, "bake"));
    if (!bake) return bake.error();
    stage.bake = *bake;
  }
  if (const YAML::Node n = node["min_devices"]) {
    auto min = count(n, join(path, "min_devices"));
    if (!min) return min.error();
    stage.min_devices = *min;
  }
  if (const YAML::Node n = node["min_per_stratum"]) {
    auto min = count(n, join(path, "min_per_stratum"));
    if (!min) return min.error();
    stage.min_per_stratum = *min;
  }
  if (const YAML::Node n = node["admits_critical"]) {
    auto critical = as_bool(n, file_, join(path, "admits_critical"));
    if (!critical) return critical.error();
    stage.admits_critical = *critical;
  }
  if (const YAML::Node n = node["selector"]) {
    if (Status s = read_selector(n, join(path, "selector"), stage.selector); !s) return s;
  }
  return core::Ok{};
}

Result<core::Plan> PlanReader::read(const YAML::Node& root) {
  lines_[""] = line_of(root);
  if (!root.IsMap()) {
    return fail(root, "plan", "expected a mapping with name, on_failure, gate and stages");
  }
  if (Status s = mapping(root, {"name", "on_failure", "gate", "stages", "completion_share", "strata"}, "");
      !s) {
    return s.error();
  }
  core::Plan plan;

  for (const char* required : {"name", "stages"}) {
    if (!root[required]) return fail(root, required, "missing (every plan needs it)");
  }
  auto name = text(root["name"], "name");
  if (!name) return name.error();
  plan.name = *name;

  if (const YAML::Node n = root["on_failure"]) {
    auto action = text(n, "on_failure");
    if (!action) return action.error();
    if (*action == "halt") {
      plan.on_failure = core::OnFailure::kHalt;
    } else if (*action == "rollback") {
      plan.on_failure = core::OnFailure::kRollback;
    } else {
      return fail(n, "on_failure", "expected 'halt' or 'rollback', got '" + *action + "'");
    }
  }

  if (const YAML::Node n = root["gate"]) {
    if (Status s = read_gate(n, plan.gate); !s) return s.error();
  }
  if (const YAML::Node n = root["completion_share"]) {
    auto share = percent(n, "completion_share");
    if (!share) return share.error();
    plan.completion_share = *share;
  }

  if (const YAML::Node n = root["strata"]) {
    lines_["strata"] = line_of(n);
    if (!n.IsSequence()) return fail(n, "strata", "expected a list of tag keys, e.g. [class, region, os]");
    for (std::size_t i = 0; i < n.size(); ++i) {
      auto key = text(n[i], "strata[" + std::to_string(i) + "]");
      if (!key) return key.error();
      plan.strata.push_back(*key);
    }
  }

  const YAML::Node stages = root["stages"];
  if (!stages.IsSequence()) {
    return fail(stages, "stages", "expected a list of stages, e.g. - {name: canary, percent: 1%}");
  }
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const std::string path = "stages[" + std::to_string(i) + "]";
    lines_[path] = line_of(stages[i]);
    core::Stage stage;
    if (Status s = read_stage(stages[i], path, plan, stage); !s) return s.error();
    plan.stages.push_back(std::move(stage));
  }

  if (Status s = plan.validate(); !s) return locate(s.error());
  return plan;
}

Error PlanReader::locate(const Error& e) const {
  // Plan::validate's messages start with "<field path>: ".
  std::string path = e.message.substr(0, e.message.find(": "));
  while (true) {
    const auto it = lines_.find(path);
    if (it != lines_.end()) {
      return Error{e.code, file_ + ":" + std::to_string(it->second) + ": " + e.message};
    }
    if (path.empty()) break;
    // The field was not in the file (a default): try the field that holds it.
    const std::size_t cut = path.find_last_of(".[");
    path = cut == std::string::npos ? std::string() : path.substr(0, cut);
  }
  return e.with_context(file_ + ": ");
}

}  // namespace

Result<core::Plan> parse_plan(std::string_view yaml_text, const std::string& file) {
  auto root = parse_yaml(yaml_text, file);
  if (!root) return root.error();
  // yaml-cpp reports type errors through exceptions in places (e.g. a key that is
  // itself a mapping has no Scalar()); this is the edge where they become Results.
  try {
    PlanReader reader(file);
    return reader.read(*root);
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::kParse, file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

Result<core::Plan> load_plan_file(const std::string& path) {
  auto text = read_file_limited(path);
  if (!text) return text.error();
  return parse_plan(*text, path);
}

}  // namespace tranche::config
