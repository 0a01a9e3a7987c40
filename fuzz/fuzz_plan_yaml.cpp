// config::parse_plan: plan YAML text from outside -> core::Plan.
// Properties: never crashes or throws; an accepted plan validates; a refusal names
// the file (the contract in config/plan_yaml.h: "errors name `file`").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/plan_yaml.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tranche::fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string file = "fuzz.yaml";
  auto plan = tranche::config::parse_plan(text, file);
  tranche::fuzz::explain(plan.ok() ? "accepted: plan " + plan->name
                                    : "refused: " + plan.error().to_string());
  if (plan.ok()) {
    check(plan->validate().ok(), "parse_plan accepted a plan that does not validate", text);
  } else {
    check(plan.error().message.starts_with(file), "parse_plan error does not name the file", text);
  }
  return 0;
}
