// The simulator's side of core/evidence.h: one run's gate evidence over a
// simulated fleet. The server counts through the same model (server/fleet.cpp);
// tests/sim/evidence_paths_test.cpp replays random device traces through both
// and checks that every count and verdict agrees.
//
// What the simulator knows that the server can only infer, it turns into what
// the server would see: a device that dropped off without a goodbye (or whose
// machine crashed) is presumed online until it counts as silent, as the server
// presumes a device online until it has missed its heartbeats.
#pragma once

#include <cstdint>
#include <vector>

#include "core/evidence.h"

namespace tranche::sim {

// How the server sees a device, by what it last heard.
enum class Presence : std::uint8_t {
  kOffline,  // said goodbye (or never came online): not online
  kOnline,   // talking, or dropped off and not yet silent: online
};

class RunEvidence {
 public:
  RunEvidence() = default;
  explicit RunEvidence(std::uint32_t devices) : standing_(devices, core::Standing::kControl) {}

  // One fact about device `d`, whose presence is `presence` now.
  void record(std::uint32_t d, core::Fact fact, Presence presence) {
    core::Standing& s = standing_[d];
    const core::Group before = core::accrual_group(s);
    if (!core::record(s, fact, tally_)) return;
    if (presence == Presence::kOnline) move(before, core::accrual_group(s));
  }
  // Device `d`'s presence changed.
  void presence_changed(std::uint32_t d, Presence before, Presence after) {
    if (before == after) return;
    const core::Group g = core::accrual_group(standing_[d]);
    if (after == Presence::kOnline) {
      move(core::Group::kNone, g);
    } else {
      move(g, core::Group::kNone);
    }
  }
  // The tick's accrual (core::accrue).
  void accrue(core::DurationMs elapsed) {
    core::accrue(tally_, online_[kExposed], online_[kControl], elapsed);
  }

  const core::EvidenceTally& tally() const { return tally_; }
  core::Standing standing(std::uint32_t d) const { return standing_[d]; }

 private:
  static constexpr std::size_t kExposed = 0;
  static constexpr std::size_t kControl = 1;
  void move(core::Group from, core::Group to) {
    if (from == to) return;
    if (from != core::Group::kNone) --online_[from == core::Group::kExposed ? kExposed : kControl];
    if (to != core::Group::kNone) ++online_[to == core::Group::kExposed ? kExposed : kControl];
  }

  std::vector<core::Standing> standing_;
  std::uint64_t online_[2] = {0, 0};  // online devices per accrual group
  core::EvidenceTally tally_;
};

}  // namespace tranche::sim
