// In-process fixtures for server::Fleet (tests and bench/tick_bench.cpp): a
// channel with releases and a baseline, as the server's snapshot holds them.
#pragma once

#include <initializer_list>
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

}  // namespace tranche::testing
