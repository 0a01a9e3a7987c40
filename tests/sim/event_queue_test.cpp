#include "sim/event_queue.h"

#include <gtest/gtest.h>

#include <random>
#include <tuple>
#include <vector>

namespace tranche::sim {
namespace {

// Events come out ordered by time, and equal times in the order they were
// scheduled — also when they are scheduled while the queue is being drained.
TEST(EventQueue, PopsInTimeThenScheduleOrder) {
  const std::uint64_t seed = 42;
  std::mt19937_64 rng(seed);
  EventQueue q(10 * 86'400'000U, 60'000);
  std::uint32_t pushed = 0;
  for (int i = 0; i < 5000; ++i) {
    q.push(static_cast<std::uint32_t>(rng() % 3'600'000), pushed++, 0, 0, 0);
  }
  Event e{};
  std::uint32_t last_time = 0, last_seq = 0;
  bool first = true;
  std::size_t popped = 0;
  while (q.pop(e)) {
    ++popped;
    if (!first) {
      ASSERT_TRUE(std::tie(e.time_ms, e.seq) > std::tie(last_time, last_seq)) << "seed " << seed;
    }
    first = false;
    last_time = e.time_ms;
    last_seq = e.seq;
    // Schedule follow-ups, some in the current minute, some at the same instant.
    if (popped < 20000) {
      const std::uint32_t delay = static_cast<std::uint32_t>(rng() % 3) == 0 ? 0 : static_cast<std::uint32_t>(rng() % 200'000);
      q.push(e.time_ms + delay, pushed++, 0, 0, 0);
    }
  }
  EXPECT_EQ(popped, pushed);
}

TEST(EventQueue, DropsEventsPastTheHorizon) {
  EventQueue q(120'000, 60'000);
  q.push(120'000, 1, 0, 0, 0);
  q.push(120'001, 2, 0, 0, 0);
  q.push(UINT32_MAX, 3, 0, 0, 0);
  Event e{};
  ASSERT_TRUE(q.pop(e));
  EXPECT_EQ(e.device, 1U);
  EXPECT_FALSE(q.pop(e));
}

TEST(EventQueueDeathTest, SchedulingInThePastIsABug) {
  EventQueue q(600'000, 60'000);
  q.push(300'000, 1, 0, 0, 0);
  Event e{};
  ASSERT_TRUE(q.pop(e));
  EXPECT_DEATH(q.push(200'000, 2, 0, 0, 0), "event scheduled in the past");
}

}  // namespace
}  // namespace tranche::sim
