// Output of a simulation: the terminal table, JSON, CSV and an SVG plot.
#pragma once

#include <string>

#include "sim/fleet_sim.h"
#include "sim/scenario.h"

namespace tranche::sim {

// {"scenario": ..., "devices": N, "seed": S, "policies": {"A": {...}, ...}}; one line,
// the same bytes for the same seed.
std::string to_json(const Scenario& scenario, const SimResult& result);

// Side by side, one column per policy, with the full-scale equivalents.
std::string to_table(const Scenario& scenario, const SimResult& result);

// minute,<policy>_down,... for the bad run.
std::string to_csv(const SimResult& result);

// Devices down over time, one line per policy, log-scale y.
std::string to_svg(const Scenario& scenario, const SimResult& result);

// Whether policy A meets the scenario's calibration targets; `why` says which
// target failed and by how much.
bool check_calibration(const Scenario& scenario, const RunMetrics& a, std::string& why);

}  // namespace tranche::sim
