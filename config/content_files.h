// Content bundle files and consumer interface files (YAML) -> core::ContentBundle
// and core::ConsumerInterface, the two inputs of core::check_contract. The formats
// are documented in docs/content.md. Every error names the file, the line and the
// field ("content.yaml:9: templates[0].criteria[1].field: expected an integer").
//
// These readers check the *shape* of a file (keys, types, numbers); what content
// may reference is the contract check's business (core/contract.h): a bundle that
// reads field 21 of a template its consumer supplies 20 fields for parses fine here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/contract.h"
#include "core/result.h"

namespace tranche::config {

inline constexpr std::string_view kContentFormat = "tranche-content/1";
inline constexpr std::string_view kInterfaceFormat = "tranche-interface/1";

// Size limits of the files (read_file_limited refuses larger ones with kTooLarge).
inline constexpr std::size_t kMaxContentBundleBytes = 8u << 20;  // 8 MiB
inline constexpr std::size_t kMaxInterfaceBytes = 1u << 20;      // 1 MiB

// With `instance_lines`, also the 1-based line of each instance, in bundle order (for
// pointing a violation, which names an instance, back into the file).
core::Result<core::ContentBundle> parse_content_bundle(std::string_view yaml_text,
                                                       const std::string& file,
                                                       std::vector<int>* instance_lines = nullptr);
core::Result<core::ContentBundle> load_content_bundle_file(
    const std::string& path, std::vector<int>* instance_lines = nullptr);

core::Result<core::ConsumerInterface> parse_consumer_interface(std::string_view yaml_text,
                                                               const std::string& file);
core::Result<core::ConsumerInterface> load_consumer_interface_file(const std::string& path);

}  // namespace tranche::config
