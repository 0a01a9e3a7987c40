// What the fuzz targets share: a property check that aborts, so libFuzzer keeps
// the input that broke it (a plain return would let the input pass as harmless).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace tranche::fuzz {

// TRANCHE_FUZZ_VERBOSE=1 prints why each input was accepted or refused: for
// reading what a corpus file reaches (`fuzz_scenario file.yaml`), not for fuzzing.
inline void explain(const std::string& outcome) {
  static const bool verbose = std::getenv("TRANCHE_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s\n", outcome.c_str());
}

// Aborts with `what` and the input's first bytes when `ok` is false.
inline void check(bool ok, const char* what, std::string_view input) {
  if (ok) return;
  const int shown = input.size() > 200 ? 200 : static_cast<int>(input.size());
  std::fprintf(stderr, "fuzz property failed: %s\ninput (%zu bytes): %.*s\n", what, input.size(),
               shown, input.data());
  std::abort();
}

}  // namespace tranche::fuzz
