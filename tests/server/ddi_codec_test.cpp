// The DDI wire codec (server/ddi.h): polling sleep, action ids, credentials,
// byte ranges, feedback and configData — what SWUpdate sends and needs back.
#include "server/ddi.h"

#include <set>

#include <gtest/gtest.h>

namespace tranche::server::ddi {
namespace {

TEST(DdiCodec, PollingSleepIsHhMmSsAndAtLeastOneSecond) {
  EXPECT_EQ(polling_sleep(0), "00:00:01");
  EXPECT_EQ(polling_sleep(1), "00:00:01");
  EXPECT_EQ(polling_sleep(1000), "00:00:01");
  EXPECT_EQ(polling_sleep(60'000), "00:01:00");
  EXPECT_EQ(polling_sleep((3600 + 61) * 1000LL), "01:01:01");
  EXPECT_EQ(polling_sleep(1000LL * 3600 * 1000), "99:59:59");
}

TEST(DdiCodec, ActionIdsAreStableDistinctAndFitAnInt) {
  EXPECT_EQ(action_id("os", "1.1", "r-1"), action_id("os", "1.1", "r-1"));
  std::set<std::string> ids;
  for (const char* ch : {"os", "app"}) {
    for (const char* v : {"1.1", "1.2", "1.10"}) {
      for (const char* r : {"", "r-1", "r-2"}) {
        const std::string id = action_id(ch, v, r);
        EXPECT_FALSE(id.empty());
        EXPECT_LT(std::stoll(id), 1LL << 31) << id;
        EXPECT_GT(std::stoll(id), 0) << id;
        ids.insert(id);
      }
    }
  }
  EXPECT_EQ(ids.size(), 18u);
}

TEST(DdiCodec, Credentials) {
  auto t = parse_authorization("TargetToken dev-1.abc");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, Credential::Kind::kTarget);
  EXPECT_EQ(t->token, "dev-1.abc");
  auto g = parse_authorization("gatewaytoken KEY");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->kind, Credential::Kind::kGateway);
  EXPECT_FALSE(parse_authorization(""));
  EXPECT_FALSE(parse_authorization("Bearer x"));
  EXPECT_FALSE(parse_authorization("TargetToken "));
  EXPECT_FALSE(parse_authorization("TargetToken " + std::string(600, 'a')));
}

TEST(DdiCodec, Hosts) {
  EXPECT_TRUE(valid_host("127.0.0.1:8080"));
  EXPECT_TRUE(valid_host("[::1]:80"));
  EXPECT_FALSE(valid_host(""));
  EXPECT_FALSE(valid_host("a b"));
  EXPECT_FALSE(valid_host("evil/\"x"));
}

TEST(DdiCodec, Ranges) {
  auto none = parse_range("", 100);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto from = parse_range("bytes=10-", 100);
  ASSERT_TRUE(from && *from);
  EXPECT_EQ((*from)->first, 10u);
  EXPECT_EQ((*from)->last, 99u);
  auto both = parse_range("bytes=10-19", 100);
  ASSERT_TRUE(both && *both);
  EXPECT_EQ((*both)->last, 19u);
  auto clipped = parse_range("bytes=90-1000", 100);
  ASSERT_TRUE(clipped && *clipped);
  EXPECT_EQ((*clipped)->last, 99u);
  auto suffix = parse_range("bytes=-5", 100);
  ASSERT_TRUE(suffix && *suffix);
  EXPECT_EQ((*suffix)->first, 95u);
  EXPECT_EQ(parse_range("bytes=100-", 100).error().code, core::ErrorCode::kOutOfRange);
  EXPECT_EQ(parse_range("bytes=5-1", 100).error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 100).error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(parse_range("items=0-1", 100).error().code, core::ErrorCode::kInvalidArgument);
}

TEST(DdiCodec, FeedbackAsSwupdateSendsIt) {
  auto closed = decode_feedback(
      R"({"id":42,"time":"20261203T130000","status":{"result":{"finished":"failure"},"execution":"closed",)"
      R"("details":["ERROR : postinstall failed","Installation failed !"]}})");
  ASSERT_TRUE(closed) << closed.error().message;
  EXPECT_EQ(closed->execution, Feedback::Execution::kClosed);
  EXPECT_EQ(closed->finished, Feedback::Finished::kFailure);
  EXPECT_EQ(closed->details, "ERROR : postinstall failed; Installation failed !");
  auto proceeding = decode_feedback(
      R"({"id":"42","status":{"result":{"finished":"none","progress":{"of":1,"cnt":0}},"execution":"proceeding",)"
      R"("details":["Installing Update Chunk Artifacts."]}})");
  ASSERT_TRUE(proceeding);
  EXPECT_EQ(proceeding->execution, Feedback::Execution::kProceeding);
  // Long log lines are kept up to the limit.
  auto longer = decode_feedback(R"({"status":{"execution":"closed","result":{"finished":"failure"},"details":[")" +
                                std::string(5000, 'x') + R"("]}})");
  ASSERT_TRUE(longer);
  EXPECT_EQ(longer->details.size(), kMaxReason);
}

TEST(DdiCodec, BadFeedbackIsRefusedWithItsField) {
  for (const char* body : {"", "[]", "{}", R"({"status":1})", R"({"status":{}})",
                           R"({"status":{"execution":"done"}})", R"({"status":{"execution":"closed"}})",
                           R"({"status":{"execution":"closed","result":{"finished":"maybe"}}})",
                           R"({"status":{"execution":"proceeding","details":[1]}})"}) {
    auto f = decode_feedback(body);
    ASSERT_FALSE(f) << body;
    EXPECT_NE(core::error_kind(f.error().code), core::ErrorKind::kInternal) << body;
  }
  EXPECT_EQ(decode_feedback(std::string(kMaxBody + 1, ' ')).error().code, core::ErrorCode::kTooLarge);
}

TEST(DdiCodec, ConfigData) {
  auto ok = decode_config_data(R"({"mode":"merge","data":{"hwRevision":"1.0"},"status":{"result":{"finished":"success"},"execution":"closed","details":[]}})");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->at("hwRevision").as_string(), "1.0");
  EXPECT_FALSE(decode_config_data(R"({"data":{"a":1}})"));
  EXPECT_FALSE(decode_config_data(R"({"data":{"a":"b"},"mode":"clobber"})"));
  EXPECT_FALSE(decode_config_data(R"({"dat":{}})"));
}

}  // namespace
}  // namespace tranche::server::ddi
