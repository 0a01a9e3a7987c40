// In-process fixtures for server::Fleet (tests and bench/tick_bench.cpp): a
// channel with releases and a baseline, as the server's snapshot holds them.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

#include "server/fleet.h"

namespace tranche::testing {

// Channel `channel` of `s` with one release per version (no targets), the
// first the baseline.
inline void add_channel(server::Snapshot& s, const std::string& channel,
                        std::initializer_list<const char*> versions) {
  auto& ch = s.channels[channel];
  for (const char* text : versions) {
    store::ReleaseRow row;
    row.channel = channel;
    row.version = text;
    row.targets_json = "[]";
    const auto version = core::Version::parse(text).value();
    ch.releases.push_back(server::ReleaseInfo{version, row, nullptr});
    if (!ch.baseline) ch.baseline = version;
  }
}

// A running rollout "r" of 2.0 (from 1.0) on `channel` under `plan`, created
// and in its first stage since `t0`, with evidence of its own.
inline std::shared_ptr<server::RolloutInfo> running_rollout(const core::Plan& plan, const std::string& channel,
                                                            core::TimeMs t0) {
  auto info = std::make_shared<server::RolloutInfo>();
  info->row.id = "r";
  info->row.created_at = t0;
  info->plan = plan;
  info->channel = channel;
  info->version = core::Version::parse("2.0").value();
  info->previous = core::Version::parse("1.0").value();
  info->status.state = core::RolloutState::kRunning;
  info->status.stage_started_at = t0;
  info->evidence = std::make_shared<server::RolloutEvidence>();
  return info;
}

}  // namespace tranche::testing
