// Reading YAML files from outside: size-limited, every error names the file, the
// line and what is wrong ("plans/b.yaml:7: stages[1].percent: expected a
// percentage like '10%', got 'ten'"). yaml-cpp throws; this is the edge where its
// exceptions become Results.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

#include "config/file_io.h"
#include "core/result.h"

namespace tranche::config {

inline constexpr std::size_t kMaxConfigBytes = 1 << 20;  // 1 MiB

// A YAML file read whole (config/file_io.h), refused beyond kMaxConfigBytes.
inline core::Result<std::string> read_file_limited(const std::string& path) {
  return read_file_limited(path, kMaxConfigBytes);
}

// Parses one YAML document; syntax errors carry file and line.
core::Result<YAML::Node> parse_yaml(std::string_view text, const std::string& file);

// The 1-based line of a node; 0 when yaml-cpp has no mark for it.
int line_of(const YAML::Node& node);

// "file:LINE: what" for a node (line is 1-based; 0 when yaml-cpp has no mark).
core::Error error_at(const std::string& file, const YAML::Node& node, std::string_view what);

// Refuses keys of a mapping not in `allowed` (a typo must not be silently ignored).
core::Status check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                        const std::string& file, std::string_view path);

// Typed scalars; `path` names the field in the message ("gate.alpha").
core::Result<std::string> as_string(const YAML::Node& node, const std::string& file,
                                    std::string_view path);
core::Result<double> as_double(const YAML::Node& node, const std::string& file,
                               std::string_view path);
core::Result<std::int64_t> as_int(const YAML::Node& node, const std::string& file,
                                  std::string_view path);
core::Result<bool> as_bool(const YAML::Node& node, const std::string& file,
                           std::string_view path);

}  // namespace tranche::config
