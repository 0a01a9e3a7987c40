// The administrator's routes (issue 13) against a real tranche-server: token
// list and revocation, tenant list and policy, one release. Built twice
// (tests/server/CMakeLists.txt): on SQLite, and on PostgreSQL, where a second
// server on the same store must refuse a token the first one revoked at once.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/server/api_fixture.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;

class AdminApiTest : public ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    if (HasFatalFailure()) return;
    server_ = std::make_unique<ServerProcess>(args("a"));
  }
  void TearDown() override {
    other_.reset();
    ApiFixture::TearDown();
  }

  // A long tick: nothing here may depend on the store sync of the engine loop.
  // Each server (a, b) its own data directory, on the one database.
  std::vector<std::string> args(const std::string& name) const {
    return ApiFixture::args({}, "60000", data_dir_ / name);
  }

  HttpResult op(const std::string& method, const std::string& path,
                const json::value& body = nullptr, const std::string& token = kAdmin,
                ServerProcess* at = nullptr) {
    return http_.request(method, (at != nullptr ? at : server_.get())->url(path),
                         body.is_null() ? "" : json::serialize(body), token);
  }

  std::string create_token(const std::string& name, const std::string& role,
                           ServerProcess* at = nullptr) {
    auto r = op("POST", "/v1/tokens", json::object{{"name", name}, {"role", role}}, kAdmin, at);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.json().at("token").as_string()) : "";
  }

  std::unique_ptr<ServerProcess> other_;
};

TEST_F(AdminApiTest, TokensAreListedByNameAndRoleNeverWithASecret) {
  const std::string ops = create_token("ops", "operator");
  create_token("dash", "viewer");
  auto r = op("GET", "/v1/tokens", nullptr, ops);
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value answer = r.json();
  const auto& list = answer.at("tokens").as_array();
  std::vector<std::string> names;
  for (const auto& t : list) {
    names.emplace_back(t.at("name").as_string());
    EXPECT_EQ(t.as_object().size(), 3u) << json::serialize(t);  // name, role, created_at only
    EXPECT_GT(t.at("created_at").as_int64(), 1'700'000'000'000) << json::serialize(t);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"admin", "dash", "ops"}));
  EXPECT_EQ(list[2].at("role").as_string(), "operator");
  // Neither a token nor anything of the shape of its SHA-256.
  EXPECT_EQ(r.body.find(ops), std::string::npos);
  EXPECT_EQ(r.body.find(kAdmin), std::string::npos);
  EXPECT_EQ(r.body.find("hash"), std::string::npos);
  EXPECT_EQ(op("GET", "/v1/tokens", nullptr, "").status, 401);
}

TEST_F(AdminApiTest, ARevokedTokenIsRefusedAtOnceAndTheRevocationIsAudited) {
  const std::string ops = create_token("ops", "operator");
  ASSERT_EQ(op("GET", "/v1/fleet", nullptr, ops).status, 200);
  // Only an admin revokes.
  auto r = op("DELETE", "/v1/tokens/ops", nullptr, ops);
  EXPECT_EQ(r.status, 403) << r.body;
  r = op("DELETE", "/v1/tokens/ops");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("revoked").as_bool(), true);
  // The very next request: refused.
  r = op("GET", "/v1/fleet", nullptr, ops);
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.error_code(), "unauthorized");
  // Gone from the list; a second revocation finds nothing.
  EXPECT_EQ(op("GET", "/v1/tokens").body.find("\"ops\""), std::string::npos);
  r = op("DELETE", "/v1/tokens/ops");
  EXPECT_EQ(r.status, 404) << r.body;
  // Audited, with who did it.
  r = op("GET", "/v1/audit?limit=1000");
  bool audited = false;
  const json::value entries = r.json();
  for (const auto& e : entries.at("entries").as_array()) {
    audited = audited ||
              (e.at("action").as_string() == "token.revoke" &&
               e.at("target").as_string() == "token ops" && e.at("actor").as_string() == "admin");
  }
  EXPECT_TRUE(audited) << r.body;
  // Still refused after a restart: the store forgot it too.
  server_->stop(SIGTERM);
  server_->restart();
  EXPECT_EQ(op("GET", "/v1/fleet", nullptr, ops).status, 401);
}

TEST_F(AdminApiTest, TheLastAdminTokenCannotBeRevoked) {
  auto r = op("DELETE", "/v1/tokens/admin");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.error_code(), "conflict");
  EXPECT_NE(r.body.find("last admin"), std::string::npos) << r.body;
  EXPECT_EQ(op("GET", "/v1/fleet").status, 200);
  // With a second admin, the first may go (even by its own hand).
  const std::string root = create_token("root", "admin");
  r = op("DELETE", "/v1/tokens/admin");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(op("GET", "/v1/fleet").status, 401);
  EXPECT_EQ(op("GET", "/v1/fleet", nullptr, root).status, 200);
}

TEST_F(AdminApiTest, TenantsAndTheirPoliciesAreRead) {
  auto r = op("GET", "/v1/tenants");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.json().at("tenants").as_array().empty());
  r = op(
      "POST", "/v1/tenants",
      json::object{
          {"id", "acme"},
          {"enrollment_key", kEnrollKey},
          {"policy", json::object{{"critical", json::object{{"class", json::array{"server"}}}}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string viewer = create_token("dash", "viewer");
  r = op("GET", "/v1/tenants", nullptr, viewer);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json().at("tenants").as_array().size(), 1u);
  EXPECT_EQ(r.json().at("tenants").at(0).at("id").as_string(), "acme");
  EXPECT_EQ(r.body.find("enrollment"), std::string::npos) << "no key or hash: " << r.body;
  r = op("GET", "/v1/tenants/acme/policy", nullptr, viewer);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("policy").at("critical").at("class").at(0).as_string(), "server");
  r = op("GET", "/v1/tenants/nobody/policy", nullptr, viewer);
  EXPECT_EQ(r.status, 404) << r.body;
}

TEST_F(AdminApiTest, OneReleaseIsShownByChannelAndVersionWithItsRollouts) {
  auto r =
      op("POST", "/v1/releases",
         json::object{{"channel", "content"},
                      {"version", "1.0.0"},
                      {"targets", json::array{json::object{{"path", "content/a.bin"},
                                                           {"length", 100},
                                                           {"sha256", std::string(64, 'a')}}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  // Versions compare by value: 1.0 is 1.0.0.
  r = op("GET", "/v1/releases/content/1.0");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("version").as_string(), "1.0.0");
  EXPECT_EQ(r.json().at("targets").at(0).at("length").as_int64(), 100);
  EXPECT_TRUE(r.json().at("rollouts").as_array().empty());
  r = op(
      "POST", "/v1/rollouts",
      json::object{{"channel", "content"},
                   {"version", "1.0.0"},
                   {"id", "r-1"},
                   {"plan_yaml", "name: p\nstages:\n  - {name: all, percent: 100%, bake: 0s}\n"}});
  ASSERT_EQ(r.status, 201) << r.body;
  r = op("GET", "/v1/releases/content/1.0.0");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("rollouts").at(0).at("id").as_string(), "r-1");
  EXPECT_EQ(op("GET", "/v1/releases/content/2.0").status, 404);
  EXPECT_EQ(op("GET", "/v1/releases/other/1.0").status, 404);
  EXPECT_EQ(op("GET", "/v1/releases/content/not-a-version").status, 400);
}

// Two servers on one PostgreSQL, the engine's store sync a minute apart: a
// token revoked at one is refused by the other at its very next request, and
// one created at one is taken by the other at once.
TEST_F(AdminApiTest, OnASharedStoreARevocationHoldsAtEveryServerAtOnce) {
  if (!use_postgres())
    GTEST_SKIP() << "needs several servers on one PostgreSQL (the pg build of this test)";
  other_ = std::make_unique<ServerProcess>(args("b"));
  const std::string ops = create_token("ops", "operator");
  EXPECT_EQ(op("GET", "/v1/fleet", nullptr, ops, other_.get()).status, 200);
  ASSERT_EQ(op("DELETE", "/v1/tokens/ops").status, 200);
  auto r = op("GET", "/v1/fleet", nullptr, ops, other_.get());
  EXPECT_EQ(r.status, 401) << r.body;
}

}  // namespace
}  // namespace tranche::testing
