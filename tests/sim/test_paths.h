// Where the source tree is, for tests that read the repository's scenarios.
#pragma once

#include <cstdlib>
#include <string>

namespace tranche::sim::testing {

inline std::string source_dir() {
  const char* d = std::getenv("TRANCHE_SOURCE_DIR");
  return d ? d : ".";
}

inline std::string reference_scenario() { return source_dir() + "/scenarios/crowdstrike-2024.yaml"; }

}  // namespace tranche::sim::testing
