// The durations a server's answer sets, clamped before any arithmetic
// (docs/agent.md, "Durations from the server"): a broken proxy's or a hostile
// server's number must neither overflow into "at once", and make a fleet hammer
// the server, nor park the agent for ever. A check-in answer's ask_again_s is
// the only one the agent reads: it ignores Retry-After (its own backoff, 1 s up
// to checkin.max_backoff, applies to every failed request) and server_time.
#pragma once

#include <boost/json/value.hpp>
#include <optional>

#include "core/time_math.h"

namespace tranche::agent {

// ask_again_s as milliseconds in [kMinCheckinWait, kMaxCheckinWait] (1 s .. 1 day,
// agent/config.h). Any JSON number counts: zero or negative is the least, an
// integer past int64 the most, a fraction is truncated (0.5 is 1 s). Anything
// else (a string, null, absent) is nullopt: the agent's checkin.interval then.
std::optional<core::DurationMs> clamp_ask_again_s(const boost::json::value& v);

}  // namespace tranche::agent
