// Plan files (YAML) -> core::Plan. See examples/ and docs/plan.md for the format.
#pragma once

#include <string>
#include <string_view>

#include "core/plan.h"
#include "core/result.h"

namespace tranche::config {

// Parses and validates a plan; errors name `file`, the line and what is wrong.
core::Result<core::Plan> parse_plan(std::string_view yaml_text, const std::string& file);
core::Result<core::Plan> load_plan_file(const std::string& path);

}  // namespace tranche::config
