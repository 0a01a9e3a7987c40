// Where the hand-made fixtures are (tests run from the source tree; see
// tests/tuf/fixtures/make_fixtures.sh for how they were made).
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace tranche::tuf::testing {

inline std::string fixture_path(const std::string& name) {
  const char* d = std::getenv("TRANCHE_SOURCE_DIR");
  return std::string(d ? d : ".") + "/tests/tuf/fixtures/" + name;
}

inline std::string read_fixture(const std::string& name) {
  std::ifstream in(fixture_path(name), std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace tranche::tuf::testing
