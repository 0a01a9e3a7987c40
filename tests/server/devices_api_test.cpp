// Per-device truth from the server (issue 13): GET /v1/devices with its
// filters and paging, a device's events, a rollout's devices at a standing with
// their reasons, and an agent's refused offer as an event. A real server
// process and store (SQLite, and PostgreSQL under the `postgres` label).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "store/store.h"
#include "tests/server/api_fixture.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kEveryone =
    "name: all\nstages:\n  - {name: everyone, percent: 100%, bake: 1h}\n";

class DevicesApiTest : public ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    if (HasFatalFailure()) return;
    start();
    create_tenant();
  }

  std::string enroll(const std::string& id, const std::string& klass = "laptop") {
    return ApiFixture::enroll(id, json::object{{"class", klass}});
  }

  json::object checkin(const std::string& token, const std::string& version) {
    auto r = http_.request("POST", server_->url("/v1/checkin"),
                           json::serialize(json::object{{"versions", json::object{{"content", version}}}}), token);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? r.json().at("channels").at("content").as_object() : json::object{};
  }

  HttpResult post_events(const std::string& token, json::array events) {
    return http_.request("POST", server_->url("/v1/events"),
                         json::serialize(json::object{{"events", std::move(events)}}), token);
  }

  std::string start_rollout(const std::string& version) {
    auto r = op("POST", "/v1/rollouts",
                json::object{{"channel", "content"}, {"version", version}, {"plan_yaml", kEveryone}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.json().at("id").as_string()) : std::string();
  }

  // Every device of GET `path` (a list route), following `next`; the pages it took.
  std::vector<std::string> all_pages(const std::string& path, const char* key, int* pages = nullptr) {
    std::vector<std::string> ids;
    std::string next;
    for (int page = 0; page < 100; ++page) {
      const std::string sep = path.find('?') == std::string::npos ? "?" : "&";
      auto r = op("GET", path + (next.empty() ? "" : sep + "after=" + next));
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) break;
      if (pages != nullptr) ++*pages;
      const json::value body = r.json();
      for (const auto& d : body.at("devices").as_array()) ids.emplace_back(d.at(key).as_string());
      const auto& n = body.at("next");
      if (n.is_null()) break;
      next = std::string(n.as_string());
    }
    return ids;
  }
};

TEST_F(DevicesApiTest, TheListFiltersAndPagesWithoutDuplicatesOrMisses) {
  std::vector<std::string> all;
  std::set<std::string> on_09;
  for (int i = 0; i < 25; ++i) {
    const std::string id = "dev-" + std::to_string(100 + i);
    all.push_back(id);
    const std::string token = enroll(id, i % 5 == 0 ? "server" : "laptop");
    if (i < 23) {
      const std::string v = i % 2 == 0 ? "0.9" : "0.8";
      checkin(token, v);
      if (v == "0.9") on_09.insert(id);
    }
  }
  // The store is written in batches: wait until it has every check-in.
  ASSERT_TRUE(eventually([&] {
    auto r = op("GET", "/v1/devices?version=content:0.9&limit=1000");
    return r.status == 200 && r.json().at("devices").as_array().size() == on_09.size();
  }, 10s));

  int pages = 0;
  auto listed = all_pages("/v1/devices?limit=7", "id", &pages);
  EXPECT_EQ(listed, all) << "every device once, in id order";
  EXPECT_GE(pages, 4);

  auto v09 = all_pages("/v1/devices?limit=3&version=content:0.9", "id");
  EXPECT_EQ(std::set<std::string>(v09.begin(), v09.end()), on_09);
  EXPECT_EQ(v09.size(), on_09.size()) << "no duplicates across pages";

  auto servers = all_pages("/v1/devices?tag=class:server", "id");
  EXPECT_EQ(servers, (std::vector<std::string>{"dev-100", "dev-105", "dev-110", "dev-115", "dev-120"}));

  auto silent = all_pages("/v1/devices?state=silent", "id");
  EXPECT_EQ(silent, (std::vector<std::string>{"dev-123", "dev-124"})) << "never heard since enrollment";
  auto online = all_pages("/v1/devices?state=online&limit=1000", "id");
  EXPECT_EQ(online.size(), 23u);

  auto one = op("GET", "/v1/devices?limit=1");
  ASSERT_EQ(one.status, 200) << one.body;
  const json::value row = one.json().at("devices").at(0);
  EXPECT_EQ(row.at("id").as_string(), "dev-100");
  EXPECT_EQ(row.at("versions").at("content").as_string(), "0.9");
  EXPECT_EQ(row.at("tags").at("class").as_string(), "server");
  EXPECT_EQ(row.at("state").as_string(), "online");
  EXPECT_EQ(one.json().at("next").as_string(), "acme/dev-100");  // the key: tenant/id

  // Bad requests name the problem.
  for (const char* bad : {"/v1/devices?limit=0", "/v1/devices?limit=1001", "/v1/devices?state=sideways",
                          "/v1/devices?version=0.9", "/v1/devices?tag=novalue", "/v1/devices?colour=red",
                          "/v1/devices?after=a%20b"}) {
    auto r = op("GET", bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(r.error_code(), "invalid_argument") << bad;
  }
}

TEST_F(DevicesApiTest, ARolloutsFailedRefusedAndPendingDevicesComeWithTheirReasons) {
  const std::string crasher = enroll("dev-1");
  const std::string refuser = enroll("dev-2");
  const std::string waiter = enroll("dev-3");
  const std::string broken = enroll("dev-4");
  release("1.0");
  const std::string id = start_rollout("1.0");
  for (const auto* t : {&crasher, &refuser, &waiter, &broken}) {
    ASSERT_EQ(checkin(*t, "0.9").at("action").as_string(), "install");
  }
  auto ev = [](std::int64_t seq, const char* kind) {
    return json::object{{"seq", seq}, {"kind", kind}, {"channel", "content"}, {"version", "1.0"}};
  };
  json::object crash = ev(1, "crashed");
  crash["signal"] = 11;
  ASSERT_EQ(post_events(crasher, json::array{crash}).status, 200);
  json::object violation = ev(1, "install_failed");
  violation["message"] = "contract violation: field 21 of 20";
  ASSERT_EQ(post_events(broken, json::array{violation}).status, 200);
  // What the agent sends for an offer it will not take (agent.cpp): not evidence.
  json::object refusal = ev(1, "offer_refused");
  refusal["reason"] = "trial_pending";
  refusal["message"] = "1.0 offered while 0.9.1 is on trial";
  auto posted = post_events(refuser, json::array{refusal});
  ASSERT_EQ(posted.status, 200) << posted.body;
  json::object shouting = ev(2, "offer_refused");
  shouting["reason"] = "Not A Word";
  EXPECT_EQ(post_events(refuser, json::array{shouting}).status, 400);

  ASSERT_TRUE(eventually([&] {
    auto r = op("GET", "/v1/rollouts/" + id + "/devices?state=failed");
    return r.status == 200 && r.json().at("devices").as_array().size() == 2;
  }, 10s));
  auto failed = op("GET", "/v1/rollouts/" + id + "/devices?state=failed");
  ASSERT_EQ(failed.status, 200);
  const json::array f = failed.json().at("devices").as_array();
  EXPECT_EQ(f.at(0).at("device").as_string(), "dev-1");
  EXPECT_EQ(f.at(0).at("cause").as_string(), "crashed");
  std::string reason(f.at(0).at("reason").as_string());
  EXPECT_NE(reason.find("signal 11"), std::string::npos) << reason;
  EXPECT_EQ(f.at(1).at("device").as_string(), "dev-4");
  EXPECT_EQ(f.at(1).at("cause").as_string(), "install_failed");
  reason = std::string(f.at(1).at("reason").as_string());
  EXPECT_NE(reason.find("contract violation: field 21 of 20"), std::string::npos) << reason;

  auto refused = op("GET", "/v1/rollouts/" + id + "/devices?state=refused");
  ASSERT_EQ(refused.status, 200) << refused.body;
  ASSERT_EQ(refused.json().at("devices").as_array().size(), 1u) << refused.body;
  const json::value rr = refused.json().at("devices").at(0);
  EXPECT_EQ(rr.at("device").as_string(), "dev-2");
  reason = std::string(rr.at("reason").as_string());
  EXPECT_NE(reason.find("trial_pending"), std::string::npos) << reason;

  auto pending = op("GET", "/v1/rollouts/" + id + "/devices?state=pending");
  ASSERT_EQ(pending.status, 200) << pending.body;
  ASSERT_EQ(pending.json().at("devices").as_array().size(), 1u) << pending.body;
  EXPECT_EQ(pending.json().at("devices").at(0).at("device").as_string(), "dev-3");

  // A refusal is no failure: the gate counts the crash and the install failure only.
  auto failures = [&] {
    auto r = op("GET", "/v1/rollouts/" + id);
    return r.status == 200 ? r.json().at("gate").at("exposed_failures").as_int64() : -1;
  };
  EXPECT_TRUE(eventually([&] { return failures() == 2; }, 10s));
  std::this_thread::sleep_for(500ms);  // several ticks (the evidence of several servers is summed per tick)
  EXPECT_EQ(failures(), 2);

  // The device view: its state, reason, newest events, and the "why" says what it last reported.
  auto d = op("GET", "/v1/devices/dev-2?version=1.0");
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.json().at("state").as_string(), "refused");
  EXPECT_EQ(d.json().at("events").at(0).at("kind").as_string(), "offer_refused");
  EXPECT_EQ(d.json().at("events").at(0).at("detail").at("reason").as_string(), "trial_pending");
  std::string why(d.json().at("why").as_string());
  EXPECT_NE(why.find("last reported: offer_refused 1.0"), std::string::npos) << why;
  auto c = op("GET", "/v1/devices/dev-1");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json().at("state").as_string(), "failed");
  EXPECT_EQ(c.json().at("events").at(0).at("detail").at("signal").as_int64(), 11);

  auto listed = op("GET", "/v1/devices?state=refused");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.json().at("devices").as_array().size(), 1u) << listed.body;
  EXPECT_EQ(listed.json().at("devices").at(0).at("id").as_string(), "dev-2");
  auto stage = all_pages("/v1/devices?stage=everyone", "id");
  EXPECT_EQ(stage.size(), 4u);

  EXPECT_EQ(op("GET", "/v1/rollouts/nope/devices").status, 404);
  EXPECT_EQ(op("GET", "/v1/rollouts/" + id + "/devices?state=online").status, 400);
}

TEST_F(DevicesApiTest, ADevicesEventsPageBackNewestFirst) {
  const std::string token = enroll("dev-1");
  for (int upload = 0; upload < 3; ++upload) {
    json::array events;
    for (int i = 1; i <= 40; ++i) {
      json::object e{{"seq", upload * 40 + i}, {"kind", "download_failed"}, {"channel", "content"},
                     {"version", "1.0"},       {"message", "HTTP 503"}};
      events.push_back(std::move(e));
    }
    ASSERT_EQ(post_events(token, std::move(events)).status, 200);
  }
  auto d = op("GET", "/v1/devices/dev-1");
  ASSERT_EQ(d.status, 200) << d.body;
  const json::array recent = d.json().at("events").as_array();
  ASSERT_EQ(recent.size(), 50u);
  EXPECT_EQ(recent.at(0).at("seq").as_int64(), 120);
  EXPECT_EQ(recent.at(49).at("seq").as_int64(), 71);
  EXPECT_EQ(recent.at(0).at("detail").at("message").as_string(), "HTTP 503");

  std::vector<std::int64_t> seen;
  std::string path = "/v1/devices/dev-1/events?limit=50";
  for (int page = 0; page < 10; ++page) {
    auto r = op("GET", path);
    ASSERT_EQ(r.status, 200) << r.body;
    const json::value body = r.json();
    for (const auto& e : body.at("events").as_array()) seen.push_back(e.at("seq").as_int64());
    if (body.at("next").is_null()) break;
    path = "/v1/devices/dev-1/events?limit=50&before_seq=" + std::to_string(r.json().at("next").as_int64());
  }
  ASSERT_EQ(seen.size(), 120u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 120 - static_cast<std::int64_t>(i));

  EXPECT_EQ(op("GET", "/v1/devices/nobody/events").status, 404);
  EXPECT_EQ(op("GET", "/v1/devices/dev-1/events?before_seq=0").status, 400);
  EXPECT_EQ(op("GET", "/v1/devices/dev-1/events?limit=5000").status, 400);
}

// Several servers on one PostgreSQL: a server that holds none of the devices
// lists them, their events and the rollout's failed ones from the store.
// A device id is unique within its tenant only: the same id in two tenants is
// two devices, listed, paged and shown apart.
TEST_F(DevicesApiTest, TheSameIdInTwoTenantsIsTwoDevicesListedAndShownApart) {
  ASSERT_EQ(op("POST", "/v1/tenants", json::object{{"id", "zeta"}, {"enrollment_key", "zeta-key-0123456789abcdef"}})
                .status,
            201);
  auto in_zeta = [&](const std::string& id) {
    auto r = http_.request("POST", server_->url("/v1/enroll"),
                           json::serialize(json::object{{"tenant", "zeta"},
                                                        {"enrollment_key", "zeta-key-0123456789abcdef"},
                                                        {"device_id", id}}));
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.json().at("device_token").as_string()) : std::string();
  };
  std::vector<std::string> acme_tokens, zeta_tokens;
  for (int i = 0; i < 5; ++i) {
    acme_tokens.push_back(enroll("twin-" + std::to_string(i)));
    zeta_tokens.push_back(in_zeta("twin-" + std::to_string(i)));
  }
  checkin(acme_tokens[0], "1.0");
  checkin(zeta_tokens[0], "2.0");
  // Pages of 2 across both tenants: each (tenant, id) once, acme's first.
  std::vector<std::string> seen;
  std::string next;
  for (int page = 0; page < 10; ++page) {
    auto r = op("GET", "/v1/devices?limit=2" + (next.empty() ? "" : "&after=" + next));
    ASSERT_EQ(r.status, 200) << r.body;
    const json::value body = r.json();
    for (const auto& d : body.at("devices").as_array()) {
      seen.push_back(std::string(d.at("tenant").as_string()) + "/" + std::string(d.at("id").as_string()));
    }
    if (body.at("next").is_null()) break;
    next = std::string(body.at("next").as_string());
  }
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen.front(), "acme/twin-0");
  EXPECT_EQ(seen.back(), "zeta/twin-4");
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 10u) << "no device twice";
  // One tenant's, paged too.
  int pages = 0;
  auto zeta = all_pages("/v1/devices?tenant=zeta&limit=2", "id", &pages);
  EXPECT_EQ(zeta, (std::vector<std::string>{"twin-0", "twin-1", "twin-2", "twin-3", "twin-4"}));
  EXPECT_EQ(pages, 3);
  // Shown apart; unnamed, the server asks which.
  auto ambiguous = op("GET", "/v1/devices/twin-0");
  EXPECT_EQ(ambiguous.status, 409) << ambiguous.body;
  EXPECT_NE(ambiguous.body.find("acme, zeta"), std::string::npos) << ambiguous.body;
  auto z = op("GET", "/v1/devices/twin-0?tenant=zeta&version=2.0");
  ASSERT_EQ(z.status, 200) << z.body;
  EXPECT_EQ(z.json().at("channels").at("content").at("current").as_string(), "2.0");
  EXPECT_NE(std::string(z.json().at("why").as_string()).find("runs 2.0"), std::string::npos) << z.body;
  auto a = op("GET", "/v1/devices/twin-0?tenant=acme");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.json().at("channels").at("content").at("current").as_string(), "1.0");
  EXPECT_EQ(op("GET", "/v1/devices/twin-0/events").status, 409);
  EXPECT_EQ(op("GET", "/v1/devices/twin-0/events?tenant=zeta").status, 200);
  EXPECT_EQ(op("GET", "/v1/devices?after=twin-0").status, 400) << "a cursor is a key, TENANT/ID";
}

// A token from before device keys names the id alone ("old-1.<secret>"); after
// migration 5 its device is "zeta/old-1", and acme has an "old-1" of its own.
// The server finds the tenant whose device holds the token's hash: from memory
// alone on SQLite, by claiming through the store on PostgreSQL (where the
// restarted server holds no device).
TEST_F(DevicesApiTest, ATokenThatNamesTheIdAloneIsFoundByItsHashInItsTenant) {
  ASSERT_EQ(op("POST", "/v1/tenants", json::object{{"id", "zeta"}, {"enrollment_key", "zeta-key-0123456789abcdef"}})
                .status,
            201);
  ASSERT_EQ(WEXITSTATUS(server_->stop(SIGTERM)), 0);
  const std::string legacy = "old-1.0123456789abcdef0123456789abcdef0123456789abcdef";
  {
    // As migration 5 leaves them: keyed, the old token's hash kept.
    auto store = store::open_store(pg_ ? pg_->url() : "sqlite:" + (data_dir_ / "tranche.db").string());
    ASSERT_TRUE(store.ok()) << store.error().to_string();
    const store::AuditRow audit{0, 1, "test", "device.bulk_enroll", "tenant", ""};
    ASSERT_TRUE((*store)->insert_devices({{"acme/old-1", "acme", token_hash_hex("old-1.another-secret"), "{}", 0, 1},
                                          {"zeta/old-1", "zeta", token_hash_hex(legacy), "{}", 0, 1}},
                                         audit)
                    .ok());
  }
  server_->restart();
  checkin(legacy, "3.0");
  auto zeta = op("GET", "/v1/devices/old-1?tenant=zeta");
  ASSERT_EQ(zeta.status, 200) << zeta.body;
  EXPECT_EQ(zeta.json().at("channels").at("content").at("current").as_string(), "3.0");
  auto acme = op("GET", "/v1/devices/old-1?tenant=acme");
  ASSERT_EQ(acme.status, 200) << acme.body;
  EXPECT_EQ(acme.json().at("last_seen").as_int64(), 0) << "acme's old-1 is another device";
  auto wrong = http_.request("POST", server_->url("/v1/checkin"), R"({"versions":{}})",
                             "old-1.0123456789abcdef0123456789abcdef0123456789abcdeX");
  EXPECT_EQ(wrong.status, 401) << wrong.body;
}

TEST_F(DevicesApiTest, AnotherServerOnTheSameStoreListsDevicesItDoesNotHold) {
  if (!pg_) GTEST_SKIP() << "several servers share only a PostgreSQL store";
  const std::string a = enroll("dev-a");
  const std::string b = enroll("dev-b");
  release("1.0");
  const std::string id = start_rollout("1.0");
  ASSERT_EQ(checkin(a, "0.9").at("action").as_string(), "install");
  ASSERT_EQ(checkin(b, "0.9").at("action").as_string(), "install");
  json::object crash{{"seq", 1}, {"kind", "crashed"}, {"channel", "content"}, {"version", "1.0"}, {"signal", 6}};
  ASSERT_EQ(post_events(a, json::array{crash}).status, 200);

  const auto dir = fresh_dir("tranche-devices-test-2");
  ServerProcess other({"--data-dir", dir.string(), "--admin-token", kAdmin, "--tick-ms", "100", "--batch-ms", "50",
                       "--store", pg_->url()});
  auto at_other = [&](const std::string& path) {
    return http_.request("GET", other.url(path), "", kAdmin);
  };
  ASSERT_TRUE(eventually([&] {
    auto r = at_other("/v1/devices?version=content:0.9");
    return r.status == 200 && r.json().at("devices").as_array().size() == 2;
  }, 10s));
  auto failed = at_other("/v1/rollouts/" + id + "/devices?state=failed");
  ASSERT_EQ(failed.status, 200) << failed.body;
  ASSERT_EQ(failed.json().at("devices").as_array().size(), 1u) << failed.body;
  const std::string reason(failed.json().at("devices").at(0).at("reason").as_string());
  EXPECT_NE(reason.find("signal 6"), std::string::npos) << reason;
  auto events = at_other("/v1/devices/dev-a/events");
  ASSERT_EQ(events.status, 200) << events.body;
  EXPECT_EQ(events.json().at("events").as_array().size(), 1u) << events.body;
  auto view = at_other("/v1/devices/dev-a");
  ASSERT_EQ(view.status, 200) << view.body;
  EXPECT_EQ(view.json().at("events").at(0).at("kind").as_string(), "crashed");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tranche::testing
