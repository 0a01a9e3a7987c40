// server/codec: what the server stores of a rollout reads back as it was.
#include "server/codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace tranche::server {
namespace {

// The gate's state survives a restart whole: both sequential tests (the halt
// test's mixture and sequential promotion's), what they consumed, and the halt.
TEST(GateCodec, TheGatesStateReadsBackWholeAcrossARestart) {
  GateRecord r;
  r.state.seen_exposed = {3600.5, 2};
  r.state.seen_control = {7200.25, 1};
  r.state.log_lr = {0.5, -1.25, 2.0, 3.5};
  r.state.log_lr_harm = 4.75;
  r.state.halted = true;
  r.evidence.exposed = {3700, 3};
  r.evidence.control = {7300, 1};
  r.evidence.exposed_devices = 12;
  r.evidence.acknowledged = 9;
  auto back = gate_from_json(boost::json::serialize(gate_to_json(r)));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->state.seen_exposed, r.state.seen_exposed);
  EXPECT_EQ(back->state.seen_control, r.state.seen_control);
  EXPECT_EQ(back->state.log_lr, r.state.log_lr);
  EXPECT_EQ(back->state.log_lr_harm, 4.75) << "sequential promotion's test starts again from zero";
  EXPECT_TRUE(back->state.halted);
  EXPECT_EQ(back->evidence.exposed, r.evidence.exposed);
  EXPECT_EQ(back->evidence.exposed_devices, 12u);
}

TEST(QueryParam, FindsDecodesAndSaysAbsent) {
  EXPECT_EQ(query_param("a=1&tag=class%3Alaptop&b", "tag"), "class:laptop");
  EXPECT_EQ(query_param("a=1", "a"), "1");
  EXPECT_EQ(query_param("a=%zz", "a"), "%zz");
  EXPECT_FALSE(query_param("a=1&b", "b").has_value()) << "a name without '=' carries no value";
  EXPECT_FALSE(query_param("", "a").has_value());
}

}  // namespace
}  // namespace tranche::server
