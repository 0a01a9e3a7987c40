// sim::load_scenario: a scenario file plus `--set key=value` overrides.
//
// load_scenario reads a path (and the plan files its policies name, relative to
// it), so each input is written to <tmp>/scenarios/fuzz.yaml in a scratch tree
// that also holds copies of examples/plans/: the repository's scenarios, used as
// seeds, then load their plans as they do in the repository, and the fuzzer gets
// past the policies into the rest of the file.
//
// Lines of the input that start with "#set key=value" are also passed as
// overrides (to YAML they are comments, so a seed stays a valid scenario file).
//
// Properties: never crashes or throws; without overrides, a refusal names the file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "sim/scenario.h"

namespace {

namespace fs = std::filesystem;

std::string g_scenario_path;  // <tmp>/scenarios/fuzz.yaml

void remove_scratch() {
  std::error_code ec;
  fs::remove_all(fs::path(g_scenario_path).parent_path().parent_path(), ec);
}

tranche::sim::Overrides overrides_of(std::string_view text) {
  tranche::sim::Overrides out;
  constexpr std::string_view kPrefix = "#set ";
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (line.starts_with(kPrefix)) {
      const std::string_view kv = line.substr(kPrefix.size());
      const std::size_t eq = kv.find('=');
      // As `tranche sim --set` does: no '=' or an empty key is refused before.
      if (eq != std::string_view::npos && eq != 0) {
        out.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
      }
    }
    start = end + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // A plan path like /dev/stdin must not hang the run.
  if (std::freopen("/dev/null", "r", stdin) == nullptr) std::abort();
  std::string tmpl = (fs::temp_directory_path() / "tranche-fuzz-scenario.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("fuzz_scenario: mkdtemp");
    std::abort();
  }
  const fs::path root(tmpl);
  fs::create_directories(root / "scenarios");
  fs::create_directories(root / "examples");
  fs::copy(fs::path(TRANCHE_SOURCE_DIR) / "examples" / "plans", root / "examples" / "plans",
           fs::copy_options::recursive);
  g_scenario_path = (root / "scenarios" / "fuzz.yaml").string();
  std::atexit(remove_scratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tranche::fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  {
    std::ofstream out(g_scenario_path, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    check(static_cast<bool>(out.flush()), "cannot write the scratch scenario file", text);
  }
  const tranche::sim::Overrides overrides = overrides_of(text);
  auto scenario = tranche::sim::load_scenario(g_scenario_path, overrides);
  tranche::fuzz::explain(scenario.ok() ? "accepted: scenario " + scenario->name
                                       : "refused: " + scenario.error().to_string());
  if (!scenario.ok() && overrides.empty()) {
    check(scenario.error().message.starts_with(g_scenario_path),
          "load_scenario error does not name the file", text);
  }
  return 0;
}
