// Past one machine (issue 3 section 6): two tranche-server processes on one
// PostgreSQL serve the same fleet; exactly one runs the engine (advisory lock).
// kill -9 that one: the other takes over within 5 s and the rollout finishes,
// with every transition applied exactly once.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "tests/server/harness.h"
#include "tests/store/pg_test_db.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kAdmin = "failover-admin-token-0123";

bool leads(HttpClient& http, const ServerProcess& s) {
  auto m = http.request("GET", s.url("/metrics"));
  return m.status == 200 && m.body.find("\ntranche_engine_leader 1\n") != std::string::npos;
}

TEST(ServerFailover, SecondServerTakesOverTheEngineWithinFiveSecondsAndNothingIsLostOrDoubled) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  auto dir_a = fresh_dir("tranche-failover-a");
  auto dir_b = fresh_dir("tranche-failover-b");
  auto args = [&](const std::filesystem::path& dir) {
    return std::vector<std::string>{"--data-dir", dir.string(), "--store",  db.url(),
                                    "--admin-token", kAdmin,     "--tick-ms", "100"};
  };
  HttpClient http;
  auto a = std::make_unique<ServerProcess>(args(dir_a));
  ASSERT_TRUE(eventually([&] { return leads(http, *a); }, 5s)) << "the first server runs the engine";

  auto post = [&](const ServerProcess& s, const std::string& path, const json::value& body) {
    return http.request("POST", s.url(path), json::serialize(body), kAdmin);
  };
  ASSERT_EQ(post(*a, "/v1/tenants", json::object{{"id", "acme"}, {"enrollment_key", "acme-key-0123456789"}}).status,
            201);
  json::array devices;
  for (int i = 0; i < 20; ++i) devices.push_back(json::object{{"device_id", "d-" + std::to_string(i)}});
  auto bulk = post(*a, "/v1/devices/bulk", json::object{{"tenant", "acme"}, {"devices", devices}});
  ASSERT_EQ(bulk.status, 201) << bulk.body.substr(0, 200);
  std::vector<std::string> tokens;
  auto provisioned = bulk.json();
  for (const auto& d : provisioned.at("devices").as_array()) {
    tokens.emplace_back(d.at("device_token").as_string());
  }

  // The second server shares the database and follows.
  ServerProcess b(args(dir_b));
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(leads(http, b)) << "only one server runs the engine";
  EXPECT_TRUE(leads(http, *a));

  // An operator talks to the follower; devices to the leader.
  ASSERT_EQ(post(b, "/v1/releases",
                 json::object{{"channel", "content"},
                              {"version", "1.0"},
                              {"targets", json::array{json::object{
                                              {"path", "c-1.0"}, {"length", 1}, {"sha256", std::string(64, 'c')}}}}})
                .status,
            201);
  auto created = post(b, "/v1/rollouts",
                      json::object{{"channel", "content"},
                                   {"version", "1.0"},
                                   {"plan_yaml",
                                    "name: two\ngate: {min_acknowledged: 2, heartbeat_interval: 1s}\n"
                                    "stages:\n  - {name: a, percent: 50%, bake: 2s}\n"
                                    "  - {name: b, percent: 100%, bake: 0s}\n"}});
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id(created.json().at("id").as_string());

  auto check_in_all = [&](const ServerProcess& s) {
    for (const auto& t : tokens) {
      auto r = http.request("POST", s.url("/v1/checkin"), R"({"versions": {"content": "0.9"}})", t);
      if (r.status != 200) continue;
      auto c = r.json().at("channels").at("content");
      if (c.at("action").as_string() == "install") {
        http.request("POST", s.url("/v1/checkin"), R"({"versions": {"content": "1.0"}})", t);
      }
    }
  };
  // The leader has seen the rollout the follower created (shared store).
  ASSERT_TRUE(eventually(
      [&] {
        check_in_all(*a);
        auto r = http.request("GET", a->url("/v1/rollouts/" + id), "", kAdmin);
        return r.status == 200 && r.json().at("gate").at("acknowledged").as_int64() >= 2;
      },
      5s));

  // kill -9 the leader mid-rollout.
  a->stop(SIGKILL);
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return leads(http, b); }, 5s)) << "takeover within 5 s";
  auto takeover = std::chrono::steady_clock::now() - killed_at;
  std::printf("takeover after %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(takeover).count()));

  // The survivor finishes the rollout with the fleet checking in to it.
  ASSERT_TRUE(eventually(
      [&] {
        check_in_all(b);
        auto r = http.request("GET", b.url("/v1/rollouts/" + id), "", kAdmin);
        return r.json().at("status").at("state").as_string() == "completed";
      },
      20s))
      << http.request("GET", b.url("/v1/rollouts/" + id), "", kAdmin).body;

  auto r = http.request("GET", b.url("/v1/rollouts/" + id), "", kAdmin).json();
  const auto& transitions = r.at("transitions").as_array();
  std::vector<std::string> events;
  for (std::size_t i = 0; i < transitions.size(); ++i) {
    EXPECT_EQ(transitions[i].at("generation").as_int64(), static_cast<std::int64_t>(i + 1))
        << "generations are 1..N without a gap or a repeat";
    events.emplace_back(transitions[i].at("event").as_string());
  }
  EXPECT_EQ(events, (std::vector<std::string>{"start", "promote", "promote"}));
  // The same history is in the audit log, once each.
  auto audit = http.request("GET", b.url("/v1/audit?limit=1000"), "", kAdmin).body;
  std::size_t promotes = 0;
  for (std::size_t pos = 0; (pos = audit.find("\"rollout.promote\"", pos)) != std::string::npos; ++pos) ++promotes;
  EXPECT_EQ(promotes, 2u);
  a.reset();
  std::filesystem::remove_all(dir_a);
  std::filesystem::remove_all(dir_b);
}

}  // namespace
}  // namespace tranche::testing
