// What a check-in costs the store: the server's Fleet asks for a state write
// only when the check-in changed something (versions, health, a goodbye undone,
// a rollout mark) or when the stored last contact is --last-seen-every-s behind
// (core::last_seen_write_due). An idle fleet thus costs the store one row per
// device per interval, not one per check-in.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "config/plan_yaml.h"
#include "core/types.h"
#include "server/fleet.h"
#include "tests/server/fleet_fixture.h"

namespace tranche {
namespace {

using core::kMinute;
using core::kSecond;
using core::TimeMs;

constexpr TimeMs kT0 = 1'800'000'000'000;
constexpr core::DurationMs kEvery = 10 * kMinute;

core::Version v(const char* text) { return core::Version::parse(text).value(); }

class FleetWrites : public ::testing::Test {
 protected:
  void SetUp() override {
    server::Device dev;
    dev.key = "d1";
    dev.tenant = "t";
    ASSERT_TRUE(fleet_.add_device(std::move(dev)).ok());
    fleet_.update([&](server::Snapshot& s) { testing::add_channel(s, "c", {"1.0", "2.0"}); });
  }
  // One check-in at `now`; whether it asks for the device's state to be
  // written. A write "happens" (as the batch writer would record it) when asked.
  bool check_in(TimeMs now, const char* version = "1.0", const char* health = R"({"phase":"idle"})") {
    bool state = false;
    auto snap = fleet_.snapshot();
    auto st = fleet_.with_device("d1", [&](server::Device& d) {
      auto w = fleet_.check_in(d, *snap, {{"c", v(version)}}, health, true, now, kEvery);
      auto answers = server::Fleet::answer(d, *snap, now);
      if (server::Fleet::note_offers(d, *snap, answers, now)) w.state = true;
      state = w.state;
      if (state) d.stored_last_seen = d.last_seen;  // as flush_pending does
    });
    EXPECT_TRUE(st.ok());
    return state;
  }
  // Starts a rollout of 2.0 on channel c to every device.
  void start_rollout() {
    auto plan = config::parse_plan(
        "name: all\ngate: {min_acknowledged: 1}\nstages:\n  - {name: all, percent: 100%, bake: 1h}\n",
        "plan");
    ASSERT_TRUE(plan.ok());
    auto info = testing::running_rollout(*plan, "c", kT0);
    fleet_.update([&](server::Snapshot& s) {
      s.rollouts["r"] = info;
      s.live_rollout["c"] = "r";
    });
  }

  server::Fleet fleet_;
};

TEST_F(FleetWrites, AnIdleDeviceCheckingInEveryMinuteIsWrittenOnceInTen) {
  EXPECT_TRUE(check_in(kT0)) << "first contact: written";
  int writes = 0;
  for (int k = 1; k <= 100; ++k) writes += check_in(kT0 + k * kMinute) ? 1 : 0;
  EXPECT_EQ(writes, 10);
}

TEST_F(FleetWrites, ACheckInThatChangesSomethingIsWrittenAtOnce) {
  ASSERT_TRUE(check_in(kT0));
  EXPECT_FALSE(check_in(kT0 + kSecond));
  EXPECT_TRUE(check_in(kT0 + 2 * kSecond, "2.0")) << "a new version";
  EXPECT_FALSE(check_in(kT0 + 3 * kSecond, "2.0"));
  EXPECT_TRUE(check_in(kT0 + 4 * kSecond, "2.0", R"({"phase":"trial"})")) << "new health";
  EXPECT_FALSE(check_in(kT0 + 5 * kSecond, "2.0", R"({"phase":"trial"})"));
  ASSERT_TRUE(fleet_.with_device("d1", [](server::Device& d) { d.said_goodbye = true; }).ok());
  EXPECT_TRUE(check_in(kT0 + 6 * kSecond, "2.0", R"({"phase":"trial"})")) << "back after a goodbye";
}

TEST_F(FleetWrites, ARolloutOfferAndAnAcknowledgementAreWrittenAtOnce) {
  ASSERT_TRUE(check_in(kT0));
  ASSERT_FALSE(check_in(kT0 + kSecond));
  start_rollout();
  EXPECT_TRUE(check_in(kT0 + 2 * kSecond)) << "offered 2.0: exposed, a mark to write";
  EXPECT_FALSE(check_in(kT0 + 3 * kSecond)) << "offered again: nothing new";
  EXPECT_TRUE(check_in(kT0 + 4 * kSecond, "2.0")) << "runs 2.0 healthily: acknowledged";
  EXPECT_FALSE(check_in(kT0 + 5 * kSecond, "2.0"));
}

}  // namespace
}  // namespace tranche
