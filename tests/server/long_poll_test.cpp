// Held check-ins (server/long_poll.h) in process: what a device that long-polls
// relies on — it hears of a release the moment it is its turn, not at its next
// check-in; it is answered at the latest when its wait is over; a stopping
// server answers it; and the offer it was made is written (it is exposed).
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "config/plan_yaml.h"
#include "server/long_poll.h"
#include "tests/server/fake_clock.h"
#include "tests/server/fleet_fixture.h"

namespace tranche::server {
namespace {

using core::TimeMs;
using namespace std::chrono_literals;

constexpr TimeMs kT0 = 1'800'000'000'000;


core::Version v(const char* text) { return core::Version::parse(text).value(); }

class LongPollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Device d;
    d.key = "dev-1";
    d.tenant = "t";
    d.versions.emplace("content", v("1.0"));
    d.last_seen = kT0;
    ASSERT_TRUE(fleet_.add_device(std::move(d)).ok());
    fleet_.update([](Snapshot& s) {
      testing::add_channel(s, "content", {"1.0", "2.0"});
      s.device_count = 1;
    });
  }

  LongPoll::Ports ports() {
    return LongPoll::Ports{fleet_, clock_, metrics_, [this](DeviceWrite w) { writes_.push_back(w.device); },
                           [this](Responder&, const std::vector<ChannelAnswer>& answers, const Snapshot&, TimeMs) {
                             replies_.push_back(answers);
                           }};
  }

  void hold(LongPoll& poll, std::chrono::seconds wait) {
    auto snap = fleet_.snapshot();
    std::vector<ChannelAnswer> answers;
    (void)fleet_.with_device("dev-1", [&](Device& d) { answers = Fleet::answer(d, *snap, kT0); });
    poll.hold("dev-1", snap->generation, answers, wait, [](HttpResponse) {});
  }

  void start_rollout() {
    auto plan = config::parse_plan("name: all\nstages:\n  - {name: all, percent: 100%, bake: 1h}\n", "plan");
    ASSERT_TRUE(plan.ok());
    auto r = testing::running_rollout(*plan, "content", kT0);
    fleet_.update([&](Snapshot& s) {
      s.rollouts["r"] = r;
      s.live_rollout["content"] = "r";
    });
  }

  bool held() {
    bool h = false;
    (void)fleet_.with_device("dev-1", [&](Device& d) { h = d.held; });
    return h;
  }

  Fleet fleet_;
  testing::FakeClock clock_{kT0};
  Metrics metrics_;
  std::vector<std::string> writes_;
  std::vector<std::vector<ChannelAnswer>> replies_;
};

TEST_F(LongPollTest, AHeldCheckInIsAnsweredWhenItsAnswerChangesAndTheOfferIsWritten) {
  LongPoll poll(ports());
  hold(poll, 30s);
  EXPECT_TRUE(held()) << "a held device counts as connected";
  EXPECT_EQ(metrics_.checkins_held.load(), 1u);
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(poll.look(*fleet_.snapshot(), now), 0u) << "nothing changed";
  fleet_.update([](Snapshot& s) { s.tenants["other"] = TenantInfo{}; });
  EXPECT_EQ(poll.look(*fleet_.snapshot(), now), 0u) << "a change that leaves its answer at rest";
  start_rollout();
  ASSERT_EQ(poll.look(*fleet_.snapshot(), now), 1u);
  ASSERT_EQ(replies_.size(), 1u);
  ASSERT_EQ(replies_[0].size(), 1u);
  EXPECT_EQ(replies_[0][0].assignment.desired, v("2.0"));
  EXPECT_EQ(writes_, (std::vector<std::string>{"dev-1"})) << "offered, so exposed: its mark is written";
  EXPECT_FALSE(held());
  EXPECT_EQ(metrics_.checkins_held.load(), 0u);
  EXPECT_EQ(poll.held(), 0u);
}

TEST_F(LongPollTest, APublishThatChangesNoAnswerDoesNotMakeItLookAgain) {
  // The engine publishes each tick's look at the gate; that changes no answer,
  // so a thousand held check-ins are not recomputed each tick.
  LongPoll poll(ports());
  hold(poll, 30s);
  const auto now = std::chrono::steady_clock::now();
  fleet_.update([](Snapshot& s) { s.operators["h"] = OperatorInfo{"ci", store::Role::kViewer}; }, false);
  const std::uint64_t answers_at = fleet_.snapshot()->answers_generation;
  EXPECT_LT(answers_at, fleet_.snapshot()->generation);
  EXPECT_EQ(poll.look(*fleet_.snapshot(), now), 0u);
  start_rollout();  // may change answers
  EXPECT_GT(fleet_.snapshot()->answers_generation, answers_at);
  EXPECT_EQ(poll.look(*fleet_.snapshot(), now), 1u);
}

TEST_F(LongPollTest, APauseAnswersAHeldCheckInThoughItStaysAtRest) {
  // docs/api.md: a held check-in is answered as soon as its answer changes — a
  // pause turns "not yet in its stage" into "paused", and the agent shows why.
  auto plan = config::parse_plan(
      "name: two\nstages:\n  - {name: few, percent: 0.01%, bake: 1h}\n  - {name: all, percent: 100%, bake: 1h}\n",
      "plan");
  ASSERT_TRUE(plan.ok());
  auto r = testing::running_rollout(*plan, "content", kT0);
  fleet_.update([&](Snapshot& s) {
    s.rollouts["r"] = r;
    s.live_rollout["content"] = "r";
  });
  LongPoll poll(ports());
  hold(poll, 30s);
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(poll.look(*fleet_.snapshot(), now), 0u);
  auto paused = std::make_shared<RolloutInfo>(*r);
  paused->status.state = core::RolloutState::kPaused;
  fleet_.update([&](Snapshot& s) { s.rollouts["r"] = paused; });
  ASSERT_EQ(poll.look(*fleet_.snapshot(), now), 1u);
  ASSERT_EQ(replies_.size(), 1u);
  EXPECT_EQ(replies_[0][0].assignment.reason.code, core::AssignmentReason::Code::kPaused);
  EXPECT_TRUE(at_rest(replies_[0])) << "still nothing to install";
}

TEST_F(LongPollTest, AHeldCheckInWhoseAnswerStaysAtRestIsAnsweredWhenItsWaitIsOver) {
  LongPoll poll(ports());
  hold(poll, 5s);
  EXPECT_EQ(poll.look(*fleet_.snapshot(), std::chrono::steady_clock::now() + 4s), 0u);
  ASSERT_EQ(poll.look(*fleet_.snapshot(), std::chrono::steady_clock::now() + 6s), 1u);
  ASSERT_EQ(replies_.size(), 1u);
  EXPECT_EQ(replies_[0][0].assignment.desired, v("1.0")) << "keep what it runs";
  EXPECT_TRUE(writes_.empty()) << "no offer, nothing to write";
}

TEST_F(LongPollTest, ItsThreadAnswersOnAChangeAndStopAnswersEveryoneThenAndAfter) {
  LongPoll poll(ports());
  poll.start();
  hold(poll, 30s);
  start_rollout();
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (poll.held() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(poll.held(), 0u) << "the thread answered the change";
  hold(poll, 30s);
  poll.stop();
  EXPECT_EQ(poll.held(), 0u) << "stop answers whoever waits";
  hold(poll, 30s);
  EXPECT_EQ(poll.held(), 0u) << "a hold after stop is answered at once";
  EXPECT_EQ(replies_.size(), 3u);
}

}  // namespace
}  // namespace tranche::server
