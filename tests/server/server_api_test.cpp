// tranche-server end to end, as devices and operators see it: a real server
// process on 127.0.0.1, real HTTP, a real store (SQLite, and PostgreSQL under
// the `postgres` label).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <tuple>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <cstdlib>
#include <iterator>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "tests/server/api_fixture.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// A plan that moves in seconds: canary (a quarter of the fleet) baked for 1 s
// after 3 acknowledgements, then everyone. alpha 0.05 so a handful of crashes
// halts a 40-device fleet.
const char* kFastPlan = R"(name: fast
on_failure: rollback
gate:
  alpha: 0.05
  min_acknowledged: 3
  heartbeat_interval: 1s
  silent_after_missed: 5
stages:
  - {name: canary, percent: 25%, bake: 1s}
  - {name: all, percent: 100%, bake: 0s}
)";

// The same suite is built twice (tests/server/CMakeLists.txt): once on the
// default SQLite store and once with TRANCHE_SERVER_TEST_POSTGRES on a database
// of its own in the `postgres` fixture's server (ApiFixture).
class ServerApiTest : public ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    if (HasFatalFailure()) return;
    start();
  }

  // The check-in answer for `channel`.
  json::object checkin(const std::string& token, const std::string& channel, const std::string& version,
                       int wait_s = 0) {
    json::object body{{"versions", json::object{{channel, version}}}};
    if (wait_s > 0) body["wait_s"] = wait_s;
    auto r = http_.request("POST", server_->url("/v1/checkin"), json::serialize(body), token, wait_s + 30);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return {};
    return r.json().at("channels").at(channel).as_object();
  }

  json::object start_rollout(const std::string& version, const std::string& plan = kFastPlan) {
    auto r = op("POST", "/v1/rollouts",
                json::object{{"channel", "content"}, {"version", version}, {"plan_yaml", plan}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? r.json().as_object() : json::object{};
  }

  json::object rollout(const std::string& id) {
    auto r = op("GET", "/v1/rollouts/" + id);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? r.json().as_object() : json::object{};
  }
  static std::string state_of(const json::object& r) {
    return std::string(r.at("status").at("state").as_string());
  }

  std::size_t audit_count() {
    auto r = op("GET", "/v1/audit?limit=1000");
    return r.json().at("entries").as_array().size();
  }
};

TEST_F(ServerApiTest, EnrolledDeviceChecksInAndGetsReleaseOfItsStage) {
  create_tenant();
  std::string token = enroll("dev-1");
  auto a = checkin(token, "content", "0.9");
  EXPECT_EQ(a.at("action").as_string(), "keep");
  EXPECT_EQ(a.at("code").as_string(), "no_rollout");

  release("1.0");
  auto r = start_rollout("1.0", "name: all\nstages:\n  - {name: everyone, percent: 100%, bake: 0s}\n");
  EXPECT_EQ(state_of(r), "running");
  a = checkin(token, "content", "0.9");
  EXPECT_EQ(a.at("action").as_string(), "install");
  EXPECT_EQ(a.at("desired").as_string(), "1.0");
  EXPECT_EQ(a.at("stage").as_string(), "everyone");
  EXPECT_EQ(a.at("targets").as_array().at(0).at("path").as_string(), "content-1.0.yaml");

  // The device view answers "why" in the assignment's words.
  auto d = op("GET", "/v1/devices/dev-1?version=1.0");
  ASSERT_EQ(d.status, 200) << d.body;
  std::string why(d.json().at("why").as_string());
  EXPECT_NE(why.find("desired version"), std::string::npos) << why;
  EXPECT_NE(why.find("everyone"), std::string::npos) << why;

  // Wrong secret for a real device id: 401, and the message says what is wrong.
  auto bad = http_.request("POST", server_->url("/v1/checkin"), "{}", "dev-1.0000");
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(bad.error_code(), "unauthorized");
}

TEST_F(ServerApiTest, ADownloadFailureIsTransientAnInstallFailureBansTheVersionHere) {
  create_tenant();
  std::string token = enroll("dev-1");
  release("1.0");
  std::string id(start_rollout("1.0", "name: all\nstages:\n  - {name: everyone, percent: 100%, bake: 0s}\n")
                     .at("id")
                     .as_string());
  ASSERT_EQ(checkin(token, "content", "0.9").at("action").as_string(), "install");
  auto post = [&](std::int64_t seq, const char* kind) {
    json::object ev{{"events", json::array{json::object{{"seq", seq}, {"kind", kind}, {"channel", "content"},
                                                        {"version", "1.0"}, {"message", "HTTP 500"}}}}};
    return http_.request("POST", server_->url("/v1/events"), json::serialize(ev), token);
  };

  // A hostile or broken network: recorded, not held against the release, offered again.
  auto r = post(1, "download_failed");
  ASSERT_EQ(r.status, 200) << r.body;
  auto a = checkin(token, "content", "0.9");
  EXPECT_EQ(a.at("action").as_string(), "install");
  EXPECT_EQ(a.at("desired").as_string(), "1.0");
  auto d = op("GET", "/v1/devices/dev-1").json();
  EXPECT_EQ(json::serialize(d.at("failed")).find("1.0"), std::string::npos) << json::serialize(d);
  EXPECT_EQ(rollout(id).at("gate").at("exposed_failures").to_number<std::int64_t>(), 0);

  // The release itself is bad here: never offered to this device again, and counted.
  ASSERT_EQ(post(2, "install_failed").status, 200);
  a = checkin(token, "content", "0.9");
  EXPECT_EQ(a.at("action").as_string(), "keep");
  EXPECT_EQ(a.at("code").as_string(), "failed_here");
  EXPECT_TRUE(eventually([&] { return rollout(id).at("gate").at("exposed_failures").to_number<std::int64_t>() == 1; }, 5s))
      << json::serialize(rollout(id));
}

TEST_F(ServerApiTest, BadInputIsRefusedWithStableCodeAndChangesNothing) {
  create_tenant();
  std::string token = enroll("dev-1");
  release("1.0");
  auto before_audit = audit_count();
  auto before_fleet = op("GET", "/v1/fleet").body;

  struct Case {
    std::string name, method, path, body, token;
    long status;
    std::string code;
  };
  std::string big(2 << 20, 'x');
  std::vector<Case> cases = {
      {"malformed json", "POST", "/v1/checkin", "{\"versions\": ", token, 400, "parse"},
      {"not an object", "POST", "/v1/checkin", "[1,2]", token, 400, "invalid_argument"},
      {"wrong type", "POST", "/v1/checkin", R"({"versions": {"content": 5}})", token, 400, "invalid_argument"},
      {"bad version", "POST", "/v1/checkin", R"({"versions": {"content": "1.x"}})", token, 400, "parse"},
      {"unknown field", "POST", "/v1/checkin", R"({"versoins": {}})", token, 400, "invalid_argument"},
      {"oversized body", "POST", "/v1/checkin", big, token, 413, "too_large"},
      {"unknown device", "POST", "/v1/checkin", "{}", "ghost.0123456789", 401, "unauthorized"},
      {"no token", "POST", "/v1/checkin", "{}", "", 401, "unauthorized"},
      {"bad operator token", "GET", "/v1/fleet", "", "nope", 401, "unauthorized"},
      {"bad enrollment key", "POST", "/v1/enroll",
       R"({"tenant":"acme","enrollment_key":"wrong-key-0000000000","device_id":"dev-2"})", "", 401,
       "unauthorized"},
      {"duplicate device", "POST", "/v1/enroll",
       std::string(R"({"tenant":"acme","enrollment_key":")") + kEnrollKey + R"(","device_id":"dev-1"})", "",
       409, "conflict"},
      {"duplicate release", "POST", "/v1/releases",
       R"({"channel":"content","version":"1.0","targets":[{"path":"a","length":1,"sha256":")" +
           std::string(64, 'b') + R"("}]})",
       kAdmin, 409, "conflict"},
      {"bad plan", "POST", "/v1/rollouts", R"({"channel":"content","version":"1.0","plan_yaml":"name: x\n"})",
       kAdmin, 400, "parse"},
      {"unknown release", "POST", "/v1/rollouts",
       R"({"channel":"content","version":"9.9","plan_yaml":"name: x\nstages:\n  - {name: a, percent: 100%}\n"})",
       kAdmin, 404, "not_found"},
      {"unknown event kind", "POST", "/v1/events", R"({"events":[{"seq":1,"kind":"exploded"}]})", token, 400,
       "invalid_argument"},
      // A repeated key is refused, not resolved to its last value (that made an admin token).
      {"duplicate key", "POST", "/v1/tokens", R"({"name":"t","role":"viewer","role":"admin"})", kAdmin, 400,
       "parse"},
      {"duplicate key, nested", "POST", "/v1/checkin", R"({"versions": {"content": "1.0", "content": "2.0"}})",
       token, 400, "parse"},
      {"unknown route", "GET", "/v1/nothing", "", kAdmin, 404, "not_found"},
      {"wrong method", "DELETE", "/v1/checkin", "", token, 405, "method_not_allowed"},
  };
  for (const auto& c : cases) {
    auto r = http_.request(c.method, server_->url(c.path), c.body, c.token);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body.substr(0, 300);
    EXPECT_EQ(r.error_code(), c.code) << c.name << ": " << r.body.substr(0, 300);
    auto v = r.json();
    if (v.is_object() && v.as_object().contains("error")) {
      EXPECT_FALSE(v.at("error").at("message").as_string().empty()) << c.name;
    }
  }
  // 405 says what is allowed (RFC 9110 §15.5.6), from the route table.
  for (const auto& [method, path, allow] :
       std::vector<std::tuple<std::string, std::string, std::string>>{{"DELETE", "/v1/checkin", "POST"},
                                                                      {"PUT", "/v1/releases", "GET, POST"},
                                                                      {"POST", "/healthz", "GET"},
                                                                      {"DELETE", "/v1/tenants/acme/policy", "PUT, GET"}}) {
    auto r = http_.request(method, server_->url(path), "", kAdmin);
    EXPECT_EQ(r.status, 405) << method << " " << path << ": " << r.body;
    EXPECT_EQ(r.headers["allow"], allow) << method << " " << path;
  }
  // Replayed events: the second upload of seq 1 is refused and counts nothing.
  auto ev = R"({"events":[{"seq":1,"kind":"installed","channel":"content","version":"1.0"}]})";
  EXPECT_EQ(http_.request("POST", server_->url("/v1/events"), ev, token).status, 200);
  auto replay = http_.request("POST", server_->url("/v1/events"), ev, token);
  EXPECT_EQ(replay.status, 409);
  EXPECT_EQ(replay.error_code(), "replayed");

  EXPECT_EQ(audit_count(), before_audit);
  auto fleet = op("GET", "/v1/fleet").json();
  EXPECT_EQ(fleet.at("devices").as_int64(), 1) << before_fleet;
  EXPECT_TRUE(op("GET", "/v1/rollouts").json().at("rollouts").as_array().empty());
}

// docs/api.md: versions compare by value, so "7.0" and "7.0.0" are one release.
TEST_F(ServerApiTest, ASecondSpellingOfARegisteredVersionIsRefused) {
  release("7.0");
  auto again = op("POST", "/v1/releases",
                  json::object{{"channel", "content"},
                               {"version", "7.0.0"},
                               {"targets", json::array{json::object{{"path", "content-7.0.0.yaml"},
                                                                    {"length", 100},
                                                                    {"sha256", std::string(64, 'a')}}}}});
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(again.body.find("release content 7.0 already exists (7.0.0 is the same version)"), std::string::npos)
      << again.body;
  auto list = op("GET", "/v1/releases");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.body.find("7.0.0"), std::string::npos) << "registered twice: " << list.body;
}

TEST_F(ServerApiTest, RolesAreEnforcedAndNamedInRefusals) {
  create_tenant();
  release("1.0");
  auto viewer = op("POST", "/v1/tokens", json::object{{"name", "vic"}, {"role", "viewer"}});
  auto oper = op("POST", "/v1/tokens", json::object{{"name", "olga"}, {"role", "operator"}});
  ASSERT_EQ(viewer.status, 201);
  ASSERT_EQ(oper.status, 201);
  std::string vt(viewer.json().at("token").as_string());
  std::string ot(oper.json().at("token").as_string());
  std::string id(start_rollout("1.0").at("id").as_string());

  EXPECT_EQ(op("GET", "/v1/rollouts/" + id, nullptr, vt).status, 200);
  auto r = op("POST", "/v1/rollouts/" + id + "/pause", nullptr, vt);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.error_code(), "forbidden");
  EXPECT_NE(r.body.find("needs role operator"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("vic"), std::string::npos) << r.body;

  EXPECT_EQ(op("POST", "/v1/rollouts/" + id + "/pause", nullptr, ot).status, 200);
  EXPECT_EQ(state_of(rollout(id)), "paused");
  r = op("POST", "/v1/rollouts/" + id + "/abort", nullptr, ot);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("needs role admin"), std::string::npos) << r.body;
  EXPECT_EQ(op("POST", "/v1/rollouts/" + id + "/resume", nullptr, ot).status, 200);
  // Promotion into a stage that admits critical devices needs an admin.
  auto crit = op("POST", "/v1/rollouts/" + id + "/abort");
  EXPECT_EQ(crit.status, 200) << crit.body;
  release("1.1");
  std::string id2(start_rollout("1.1",
                                "name: crit\nstages:\n  - {name: a, percent: 10%}\n"
                                "  - {name: b, percent: 100%, admits_critical: true}\n")
                      .at("id")
                      .as_string());
  r = op("POST", "/v1/rollouts/" + id2 + "/promote", nullptr, ot);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("admits critical"), std::string::npos) << r.body;
  EXPECT_EQ(op("POST", "/v1/rollouts/" + id2 + "/promote").status, 200);

  // An operator action that the state machine refuses: 409 with the rule.
  r = op("POST", "/v1/rollouts/" + id + "/resume", nullptr, ot);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.error_code(), "invalid_transition");

  // Every operator action is in the audit log with its actor.
  auto audit = op("GET", "/v1/audit?limit=1000").body;
  EXPECT_NE(audit.find("\"actor\":\"olga\",\"action\":\"rollout.pause\""), std::string::npos) << audit;
}

// A fleet of 40 simulated devices over real HTTP: good release goes to all, bad
// release crashes its canary devices, the gate halts, everyone is sent back.
TEST_F(ServerApiTest, GateHaltsACrashingReleaseAndSendsExposedDevicesBack) {
  create_tenant();
  constexpr int kDevices = 40;
  std::vector<std::string> tokens;
  for (int i = 0; i < kDevices; ++i) tokens.push_back(enroll("dev-" + std::to_string(i)));
  std::vector<std::string> running(kDevices, "0.9");

  // Each round: every device checks in and installs what it is told to.
  auto round = [&](const std::string& bad_version, int* crashed, std::vector<std::int64_t>* seq) {
    for (int i = 0; i < kDevices; ++i) {
      auto a = checkin(tokens[static_cast<std::size_t>(i)], "content", running[static_cast<std::size_t>(i)]);
      if (a.empty() || a.at("action").as_string() == "keep") continue;
      std::string desired(a.at("desired").as_string());
      if (desired == bad_version) {
        // The new content crashes the sensor; the agent falls back and says so.
        auto& s = (*seq)[static_cast<std::size_t>(i)];
        json::object ev{{"events", json::array{json::object{{"seq", ++s}, {"kind", "rolled_back"},
                                                            {"channel", "content"}, {"version", desired},
                                                            {"signal", 11}}}}};
        auto r = http_.request("POST", server_->url("/v1/events"), json::serialize(ev),
                               tokens[static_cast<std::size_t>(i)]);
        EXPECT_EQ(r.status, 200) << r.body;
        ++*crashed;
        // Like the 2024 sensor, it never lived to check in with the new version:
        // the failure report is the only sign that it received it.
      } else {
        running[static_cast<std::size_t>(i)] = desired;
      }
    }
  };
  std::vector<std::int64_t> seq(kDevices, 0);
  int crashed = 0;

  release("1.0");
  std::string good(start_rollout("1.0").at("id").as_string());
  ASSERT_TRUE(eventually(
      [&] {
        round("", &crashed, &seq);
        return state_of(rollout(good)) == "completed";
      },
      30s))
      << json::serialize(rollout(good));
  round("", &crashed, &seq);
  for (const auto& v : running) EXPECT_EQ(v, "1.0");

  release("2.0");
  std::string bad(start_rollout("2.0").at("id").as_string());
  ASSERT_TRUE(eventually(
      [&] {
        round("2.0", &crashed, &seq);
        auto s = state_of(rollout(bad));
        return s == "rolling_back" || s == "rolled_back";
      },
      30s))
      << json::serialize(rollout(bad));
  auto r = rollout(bad);
  EXPECT_EQ(r.at("status").at("stage").as_int64(), 0) << "halted in the first ring";
  EXPECT_GT(crashed, 0);
  EXPECT_LT(crashed, kDevices / 2) << "the bad release did not reach most of the fleet";
  EXPECT_GE(r.at("gate").at("exposed_failures").as_int64(), 1);
  // Nobody is told to install 2.0 any more.
  for (int i = 0; i < kDevices; ++i) {
    auto a = checkin(tokens[static_cast<std::size_t>(i)], "content", running[static_cast<std::size_t>(i)]);
    EXPECT_NE(a.at("desired").as_string(), "2.0") << i;
  }
  auto transitions = r.at("transitions").as_array();
  bool halted_by_engine = false;
  for (const auto& t : transitions) {
    if (t.at("event").as_string() == "halt") halted_by_engine = true;
  }
  EXPECT_TRUE(halted_by_engine) << json::serialize(transitions);
}

TEST_F(ServerApiTest, LongPolledCheckInReturnsWhenItsAnswerChanges) {
  create_tenant();
  std::string token = enroll("dev-1");
  release("1.0");
  checkin(token, "content", "0.9");
  std::atomic<bool> answered{false};
  json::object held;
  auto t0 = std::chrono::steady_clock::now();
  std::thread device([&] {
    HttpClient c;
    auto r = c.request("POST", server_->url("/v1/checkin"),
                       R"({"versions": {"content": "0.9"}, "wait_s": 20})", token, 40);
    held = r.json().at("channels").at("content").as_object();
    answered = true;
  });
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(answered.load()) << "a device at rest is held";
  auto t1 = std::chrono::steady_clock::now();
  start_rollout("1.0", "name: all\nstages:\n  - {name: everyone, percent: 100%}\n");
  device.join();
  auto waited = std::chrono::steady_clock::now() - t1;
  EXPECT_EQ(held.at("action").as_string(), "install");
  EXPECT_LT(waited, 2s) << "the change reached the held check-in within seconds";
  EXPECT_GT(std::chrono::steady_clock::now() - t0, 450ms);
}

TEST_F(ServerApiTest, KillDashNineMidRolloutLosesNoStateBeyondOneBatch) {
  create_tenant();
  std::vector<std::string> tokens;
  for (int i = 0; i < 10; ++i) tokens.push_back(enroll("dev-" + std::to_string(i)));
  release("1.0");
  std::string id(start_rollout("1.0", "name: slow\nstages:\n  - {name: a, percent: 50%, bake: 1h}\n"
                                      "  - {name: b, percent: 100%}\n")
                     .at("id")
                     .as_string());
  ASSERT_EQ(op("POST", "/v1/rollouts/" + id + "/pause").status, 200);
  for (int i = 0; i < 10; ++i) checkin(tokens[static_cast<std::size_t>(i)], "content", "1.0");
  std::this_thread::sleep_for(400ms);  // past the 50 ms batch window
  auto before = rollout(id);
  auto audit_before = audit_count();

  server_->stop(SIGKILL);
  server_->restart();

  auto after = rollout(id);
  EXPECT_EQ(state_of(after), "paused");
  EXPECT_EQ(after.at("generation").as_int64(), before.at("generation").as_int64());
  EXPECT_EQ(after.at("transitions").as_array().size(), before.at("transitions").as_array().size());
  EXPECT_EQ(audit_count(), audit_before);
  for (int i = 0; i < 10; ++i) {
    // Tokens survive, and so does what each device said it runs.
    auto d = op("GET", "/v1/devices/dev-" + std::to_string(i));
    ASSERT_EQ(d.status, 200);
    EXPECT_EQ(d.json().at("channels").at("content").at("current").as_string(), "1.0") << i;
    auto a = checkin(tokens[static_cast<std::size_t>(i)], "content", "1.0");
    EXPECT_FALSE(a.empty());
  }
  EXPECT_EQ(op("POST", "/v1/rollouts/" + id + "/resume").status, 200);
}

TEST_F(ServerApiTest, SigtermFlushesEveryAcknowledgedWrite) {
  create_tenant();
  std::vector<std::string> tokens;
  for (int i = 0; i < 30; ++i) tokens.push_back(enroll("dev-" + std::to_string(i)));
  // Acknowledged check-ins, then SIGTERM at once (well inside the batch window).
  for (int i = 0; i < 30; ++i) checkin(tokens[static_cast<std::size_t>(i)], "content", "3." + std::to_string(i));
  int status = server_->stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  server_->restart();
  for (int i = 0; i < 30; ++i) {
    auto d = op("GET", "/v1/devices/dev-" + std::to_string(i));
    ASSERT_EQ(d.status, 200);
    EXPECT_EQ(d.json().at("channels").at("content").at("current").as_string(), "3." + std::to_string(i));
  }
}

// The dashboard's charts survive a reload: the server samples each rollout every
// 5 s (GET /v1/rollouts/{id}/history), and a page asks only for what is newer.
TEST_F(ServerApiTest, TheServerKeepsEachRolloutsHistoryForTheCharts) {
  create_tenant();
  std::string token = enroll("dev-1");
  release("1.0");
  auto r = start_rollout("1.0", "name: slow\nstages:\n  - {name: all, percent: 100%, bake: 1h}\n");
  const std::string id(r.at("id").as_string());
  checkin(token, "content", "1.0");
  json::array samples;
  ASSERT_TRUE(eventually([&] {
    auto h = op("GET", "/v1/rollouts/" + id + "/history");
    if (h.status != 200) return false;
    samples = h.json().at("samples").as_array();
    return samples.size() >= 2;
  }, 15s)) << "fewer than two samples in 15 s";
  const auto& s0 = samples[0].as_object();
  const auto& s1 = samples[1].as_object();
  EXPECT_EQ(s0.at("state").as_string(), "running");
  const std::int64_t apart = s1.at("at").as_int64() - s0.at("at").as_int64();
  EXPECT_TRUE(apart >= 5000 && apart < 6000) << "every 5 s (a tick's delay allowed): " << apart;
  EXPECT_EQ(s1.at("target_devices").as_int64(), 1);
  for (const char* key : {"log_lr", "halt_threshold", "exposed_failures", "control_failures", "exposed_device_s",
                          "control_device_s", "exposed_devices", "on_version", "stage"}) {
    EXPECT_TRUE(s1.contains(key)) << key;
  }
  // Only the newer ones after `since`.
  auto newer = op("GET", "/v1/rollouts/" + id + "/history?since=" + std::to_string(s0.at("at").as_int64()));
  ASSERT_EQ(newer.status, 200) << newer.body;
  EXPECT_EQ(newer.json().at("samples").as_array().front().at("at"), s1.at("at"));
  EXPECT_EQ(op("GET", "/v1/rollouts/" + id + "/history?since=soon").status, 400);
  EXPECT_EQ(op("GET", "/v1/rollouts/nope/history").status, 404);
  // Who am I: the dashboard shows only the buttons of the token's role.
  auto me = op("GET", "/v1/me");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json().at("role").as_string(), "admin");
  auto viewer = op("POST", "/v1/tokens", json::object{{"name", "v"}, {"role", "viewer"}});
  ASSERT_EQ(viewer.status, 201) << viewer.body;
  auto as_viewer = op("GET", "/v1/me", nullptr, std::string(viewer.json().at("token").as_string()));
  EXPECT_EQ(as_viewer.json().at("role").as_string(), "viewer");
  EXPECT_EQ(as_viewer.json().at("name").as_string(), "v");
}

// A 3-device lab on a plan made for a big fleet: stage targets never shrink
// (stages are cumulative), so "early" (1%) after a 3-device canary targets 3,
// not 0 (issue 13: "canary 3 devices (100%), early 0 devices (1%)").
TEST_F(ServerApiTest, StageTargetsAreCumulativeOnASmallLab) {
  create_tenant();
  for (const char* id : {"lab-1", "lab-2", "lab-3"}) enroll(id);
  release("1.0");
  auto r = start_rollout("1.0", "name: rings\nstages:\n  - {name: canary, percent: 0.1%, min_devices: 3, bake: 1h}\n"
                                "  - {name: early, percent: 1%, bake: 1h}\n  - {name: all, percent: 100%, bake: 0s}\n");
  ASSERT_FALSE(r.empty());
  // Targets are of the fleet the server has counted (on PostgreSQL, counted
  // from the store every 5 s): read until it counts all three.
  std::vector<std::int64_t> targets;
  EXPECT_TRUE(eventually([&] {
    targets.clear();
    const json::object now = rollout(std::string(r.at("id").as_string()));
    for (const auto& s : now.at("stages").as_array()) {
      targets.push_back(s.at("target_devices").as_int64());
    }
    return targets == std::vector<std::int64_t>{3, 3, 3};
  }, 12s)) << targets[0] << " " << targets[1] << " " << targets[2];
}

// min_per_stratum: a canary of 1% (2 of 200 devices) with min_per_stratum 10
// takes every device of a stratum of 10 (10 expected of 10) and about 10 of the
// stratum of 190; the strata are counted when the rollout starts and kept across
// a restart.
TEST_F(ServerApiTest, ARampStepSamplesEverySmallStratum) {
  create_tenant();
  std::map<std::string, std::string> kiosks;
  std::vector<std::string> laptops;
  for (int i = 0; i < 190; ++i) laptops.push_back(enroll("laptop-" + std::to_string(i), {{"class", "laptop"}}));
  for (int i = 0; i < 10; ++i) {
    const std::string id = "kiosk-" + std::to_string(i);
    kiosks[id] = enroll(id, {{"class", "kiosk"}});
  }
  release("1.0");
  const std::string plan =
      "name: strata\nstrata: [class]\nstages:\n"
      "  - {name: canary, percent: 1%, min_devices: 2, min_per_stratum: 10, bake: 1h}\n"
      "  - {name: all, percent: 100%, bake: 0s}\n";
  std::string id(start_rollout("1.0", plan).at("id").as_string());
  ASSERT_FALSE(id.empty());
  auto check = [&](const char* when) {
    for (const auto& [device, token] : kiosks) {
      auto a = checkin(token, "content", "0.9");
      EXPECT_EQ(a.at("action").as_string(), "install") << device << " " << when;
    }
    int laptops_in = 0;
    for (const auto& token : laptops) laptops_in += checkin(token, "content", "0.9").at("action").as_string() == "install";
    EXPECT_GT(laptops_in, 0) << when;
    EXPECT_LT(laptops_in, 30) << "the big stratum: 10 expected, not all 190 " << when;
    const json::object ro = rollout(id);
    EXPECT_EQ(json::serialize(ro.at("strata")), R"({"keys":["class"],"counts":{"kiosk":10,"laptop":190}})") << when;
    // 10 expected of each stratum.
    EXPECT_EQ(ro.at("stages").at(0).at("target_devices").as_int64(), 20) << when;
    EXPECT_EQ(ro.at("stages").at(0).at("min_per_stratum").as_int64(), 10) << when;
  };
  check("at the start");
  std::this_thread::sleep_for(400ms);  // past the batch window
  server_->stop(SIGKILL);
  server_->restart();
  check("after a restart");
}

TEST_F(ServerApiTest, MetricsAndHealthAnswer) {
  auto h = http_.request("GET", server_->url("/healthz"));
  EXPECT_EQ(h.status, 200);
  create_tenant();
  checkin(enroll("dev-1"), "content", "1.0");
  auto m = http_.request("GET", server_->url("/metrics"));
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("tranche_checkins_total 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("tranche_store_flush_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("tranche_devices 1"), std::string::npos);
}

}  // namespace
}  // namespace tranche::testing

namespace tranche::testing {
namespace {

TEST_F(ServerApiTest, BulkEnrollmentIsAllOrNothing) {
  create_tenant();
  json::array devices;
  for (int i = 0; i < 500; ++i) devices.push_back(json::object{{"device_id", "bulk-" + std::to_string(i)}});
  auto r = op("POST", "/v1/devices/bulk", json::object{{"tenant", "acme"}, {"devices", devices}});
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
  auto tokens = r.json().at("devices").as_array();
  ASSERT_EQ(tokens.size(), 500u);
  // Each token works for its own device.
  auto a = checkin(std::string(tokens[7].at("device_token").as_string()), "content", "1.0");
  EXPECT_EQ(a.at("current").as_string(), "1.0");
  // One duplicate refuses the whole request.
  json::array again{json::object{{"device_id", "new-1"}}, json::object{{"device_id", "bulk-3"}}};
  r = op("POST", "/v1/devices/bulk", json::object{{"tenant", "acme"}, {"devices", again}});
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("bulk-3"), std::string::npos) << r.body;
  EXPECT_EQ(op("GET", "/v1/devices/new-1").status, 404);
  EXPECT_EQ(op("GET", "/v1/fleet").json().at("devices").as_int64(), 500);
  // Operators cannot provision.
  auto oper = op("POST", "/v1/tokens", json::object{{"name", "olga"}, {"role", "operator"}});
  r = op("POST", "/v1/devices/bulk", json::object{{"tenant", "acme"}, {"devices", again}},
         std::string(oper.json().at("token").as_string()));
  EXPECT_EQ(r.status, 403);
}

}  // namespace
}  // namespace tranche::testing
