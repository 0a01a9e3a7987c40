// A clock the test moves (server::Clock): the engine, membership and long-poll
// tests run on it, in process.
#pragma once

#include "core/types.h"
#include "server/server.h"

namespace tranche::testing {

class FakeClock final : public server::Clock {
 public:
  explicit FakeClock(core::TimeMs start) : t(start) {}
  core::TimeMs now() const override { return t; }
  core::TimeMs t;
};

}  // namespace tranche::testing
