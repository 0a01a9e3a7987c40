// tranche-server as a cluster on PostgreSQL: three real servers on one database
// (one runs the engine), devices whose requests go to any of them, HAProxy in
// front, kill -9 of a server, a restart of PostgreSQL. What the gate counts must
// not depend on which server a device talked to. ctest -L cluster.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/cluster/cluster_harness.h"
#include "tests/store/pg_test_db.h"

namespace tranche::testing {
namespace {

using Clock = std::chrono::steady_clock;

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Polls `pred` every 20 ms until `deadline`; whether it held (the caller
// measures the time).
template <typename Pred>
bool holds_by(Clock::time_point deadline, Pred pred) {
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::string plan(const std::string& name, const std::string& gate, const std::string& stages) {
  return "name: " + name + "\non_failure: halt\ngate: {" + gate + "}\nstages:\n" + stages;
}

std::string events_body(const json::array& events) {
  return json::serialize(json::object{{"events", events}});
}

// The first problem of each device, for a short failure message.
class Problems {
 public:
  void note(const std::string& device, const std::string& what) {
    ++count_;
    first_.emplace(device, what);
  }
  bool empty() const { return count_ == 0; }
  std::string text() const {
    std::string out = std::to_string(count_) + " problems, " + std::to_string(first_.size()) +
                      " devices; the first of each:\n";
    for (const auto& [d, w] : first_) out += "  " + d + " " + w + "\n";
    return out;
  }

 private:
  std::size_t count_ = 0;
  std::map<std::string, std::string> first_;
};

json::object crash_event(std::int64_t seq) {
  return json::object{{"seq", seq},
                      {"kind", "crashed"},
                      {"channel", "content"},
                      {"version", "2.0"},
                      {"signal", 11}};
}

// (a) Any server answers any device: enrolled at one, checking in at another
// at once is answered 200, never 401.
TEST(Cluster, ADeviceEnrolledAtOneServerIsAnsweredByAnother) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  Router route(101);

  std::string wrong;
  int answered = 0, tried = 0;
  auto first_checkin = [&](const TestDevice& d, int enrolled_at) {
    int other = route.pick(c, enrolled_at);
    auto t0 = Clock::now();
    auto r = http.request("POST", c.url(other, "/v1/checkin"), checkin_body("1.0"), d.token);
    auto took = ms_since(t0);
    ++tried;
    if (r.status == 200 && took < 2000) {
      ++answered;
    } else {
      wrong += d.id + " enrolled at " + Cluster::name(enrolled_at) + ", first check-in at " +
               Cluster::name(other) + ": " + std::to_string(r.status) + " after " +
               std::to_string(took) + " ms " + r.body.substr(0, 120) + "\n";
    }
    // Its events at a third server.
    int third = route.pick(c, other);
    auto ev = http.request(
        "POST", c.url(third, "/v1/events"),
        events_body(json::array{json::object{
            {"seq", 1}, {"kind", "installed"}, {"channel", "content"}, {"version", "1.0"}}}),
        d.token);
    if (ev.status != 200) {
      wrong += d.id + " events at " + Cluster::name(third) + ": " + std::to_string(ev.status) +
               " " + ev.body.substr(0, 120) + "\n";
    }
  };

  // One by one (POST /v1/enroll at a random server) ...
  for (int i = 0; i < 10; ++i) {
    int at = route.pick(c);
    auto e = http.request("POST", c.url(at, "/v1/enroll"),
                          json::serialize(json::object{{"tenant", kTenant},
                                                       {"enrollment_key", kEnrollmentKey},
                                                       {"device_id", "e-" + std::to_string(i)}}));
    ASSERT_EQ(e.status, 201) << e.body;
    first_checkin(
        TestDevice{"e-" + std::to_string(i), std::string(e.json().at("device_token").as_string())},
        at);
  }
  // ... and in bulk at s1.
  for (const auto& d : bulk_enroll(c, http, 0, "b-", 10)) first_checkin(d, 0);
  EXPECT_EQ(answered, tried)
      << "first check-ins at another server than the enrolling one, not answered 200 "
         "within 2 s:\n"
      << wrong;
  EXPECT_EQ(wrong.find("events"), std::string::npos)
      << "event uploads at a third server not answered 200";
}

// (a2) A server holds only the devices it serves: none at start, a device from
// its first request, and forgets those another server took or that were never
// seen. Any server still shows the whole fleet and any device; a request with a
// wrong secret moves nothing.
TEST(Cluster, EachServerHoldsOnlyItsShareAndAnyServerShowsTheWholeFleet) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 0, "h-", 30);
  ASSERT_EQ(devices.size(), 30u);
  EXPECT_EQ(c.metric(http, 0, "tranche_devices_held"), 30.0) << "the enrolling server holds what it enrolled";

  // A wrong secret at s3 for a device s2 will serve: refused, and not claimed.
  auto forged = http.request("POST", c.url(2, "/v1/checkin"), checkin_body("1.0"),
                             devices[0].id + ".not-its-secret");
  EXPECT_EQ(forged.status, 401) << forged.body;
  // Ten devices served by s2.
  for (std::size_t i = 0; i < 10; ++i) {
    auto r = http.request("POST", c.url(1, "/v1/checkin"), checkin_body("1.0"), devices[i].token);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  auto owner = pg_scalar(db.url(), "SELECT owner FROM device_states WHERE device = $1", {devices[0].key()});
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(*owner, Cluster::name(1)) << "the forged request at s3 did not claim it";

  // Within one eviction pass (10 s) and a tick: s1 forgot the ten s2 took and
  // the twenty never seen; s2 holds its ten; s3 none.
  std::optional<double> held0, held1, held2;
  bool settled = holds_by(Clock::now() + 15s, [&] {
    held0 = c.metric(http, 0, "tranche_devices_held");
    held1 = c.metric(http, 1, "tranche_devices_held");
    held2 = c.metric(http, 2, "tranche_devices_held");
    return held0 == 0.0 && held1 == 10.0 && held2 == 0.0;
  });
  EXPECT_TRUE(settled) << "devices held: s1 " << held0.value_or(-1) << ", s2 " << held1.value_or(-1)
                       << ", s3 " << held2.value_or(-1) << " (expected 0, 10, 0)";
  for (int i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c.metric(http, i, "tranche_devices"), 30.0) << "enrolled, at " << Cluster::name(i);
  }

  // The whole fleet and any device, at a server that holds none of them.
  auto fleet = c.admin(http, 2, "GET", "/v1/fleet");
  ASSERT_EQ(fleet.status, 200) << fleet.body;
  const json::value fj = fleet.json();
  const auto& f = fj.as_object();
  EXPECT_EQ(f.at("devices").to_number<std::int64_t>(), 30) << fleet.body;
  EXPECT_EQ(f.at("by_version").at("content").at("1.0").to_number<std::int64_t>(), 10) << fleet.body;
  auto one = c.admin(http, 2, "GET", "/v1/devices/" + devices[3].id);
  ASSERT_EQ(one.status, 200) << one.body;
  const json::value oj = one.json();
  EXPECT_EQ(oj.at("id").as_string(), devices[3].id);
  EXPECT_GT(oj.at("last_seen").to_number<std::int64_t>(), 0) << one.body;
  auto never = c.admin(http, 2, "GET", "/v1/devices/" + devices[20].id);
  ASSERT_EQ(never.status, 200) << never.body;
  const json::value nj = never.json();
  EXPECT_EQ(nj.at("last_seen").to_number<std::int64_t>(), 0) << never.body;
  EXPECT_EQ(c.admin(http, 2, "GET", "/v1/devices/h-nobody").status, 404);
  EXPECT_EQ(c.metric(http, 2, "tranche_devices_held"), 0.0) << "looking is not holding";

  // A device s1 forgot is served there again on its next request.
  auto back = http.request("POST", c.url(0, "/v1/checkin"), checkin_body("1.0"), devices[25].token);
  EXPECT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(c.metric(http, 0, "tranche_devices_held"), 1.0);
}

// A server forgets the devices it serves once they have been idle for
// --forget-idle-s with their state written, and serves them again from the store.
TEST(Cluster, ADeviceIdleLongerThanForgetIdleLeavesMemoryAndComesBackFromTheStore) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  ClusterOptions o;
  o.servers = 2;
  o.extra_args = {"--forget-idle-s", "2", "--last-seen-every-s", "0"};
  Cluster c(db.url(), o);
  HttpClient http;
  ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 0, "i-", 6);
  ASSERT_EQ(devices.size(), 6u);
  for (const auto& d : devices) {
    auto r = http.request("POST", c.url(1, "/v1/checkin"), checkin_body("1.0"), d.token);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(c.metric(http, 1, "tranche_devices_held"), 6.0);
  // One device keeps talking; the other five go quiet. Within an eviction pass
  // (10 s) after 2 s of quiet, s2 holds only the one that talks.
  std::optional<double> held;
  bool forgot = holds_by(Clock::now() + 20s, [&] {
    auto r = http.request("POST", c.url(1, "/v1/checkin"), checkin_body("1.0"), devices[0].token);
    if (r.status != 200) return false;
    held = c.metric(http, 1, "tranche_devices_held");
    return held == 1.0;
  });
  EXPECT_TRUE(forgot) << "devices held at s2: " << held.value_or(-1) << " (expected 1)";
  // What it knew of them is in the store: their last contact.
  auto seen = pg_scalar(db.url(), "SELECT count(*) FROM device_states WHERE last_seen > 0 AND owner = $1",
                        {Cluster::name(1)});
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, "6");
  // A forgotten device is served again on its next request.
  auto back = http.request("POST", c.url(1, "/v1/checkin"), checkin_body("1.0"), devices[3].token);
  EXPECT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(c.metric(http, 1, "tranche_devices_held"), 2.0);
}

// (b) Failures posted to followers are in the leader's gate within 2 ticks; the
// 20th crosses max_failures 19 and halts the rollout.
TEST(Cluster, CrashesPostedToFollowersReachTheLeadersGateWithinTwoTicksAndHalt) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  auto leader = c.wait_leader(http, 5s);
  ASSERT_TRUE(leader) << "no single leader";
  const int L = *leader;
  std::vector<int> followers;
  for (int i = 0; i < c.size(); ++i) {
    if (i != L) followers.push_back(i);
  }
  ASSERT_TRUE(make_tenant_and_releases(c, http, followers[0]));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, followers[1], "d-", 24);
  // Only the count can halt: max_failure_rate 1 never does, and without control
  // exposure the sequential test does not move.
  const std::string id = start_rollout(
      c, http, followers[0], "r-crash",
      plan("crash-limit",
           "min_acknowledged: 1000, heartbeat_interval: 60s, tick: 250ms, max_failure_rate: 1, "
           "min_exposed: 1, max_failures: 19",
           "  - {name: all, percent: 100%, bake: 1h}\n"));
  ASSERT_TRUE(wait_synced(c, http, id));

  Router route(202);
  auto post_crash = [&](const TestDevice& d) {
    int s = route.pick(c, L);  // a random follower
    return http.request("POST", c.url(s, "/v1/events"), events_body(json::array{crash_event(1)}),
                        d.token);
  };
  const auto two_ticks =
      2 * c.tick() + 250ms;  // 250 ms for the test's own polling and a busy machine

  for (int i = 0; i < 19; ++i) {
    auto r = post_crash(devices[static_cast<std::size_t>(i)]);
    ASSERT_EQ(r.status, 200) << devices[static_cast<std::size_t>(i)].id << ": " << r.body;
    EXPECT_EQ(r.json().at("accepted").as_int64(), 1);
  }
  auto posted = Clock::now();
  json::value seen;
  bool counted = holds_by(posted + two_ticks, [&] {
    seen = rollout_at(c, http, L, id);
    return gate_int(seen, "exposed_failures") >= 19;
  });
  std::printf("19 crashes posted to followers: in the leader's gate after %lld ms\n",
              ms_since(posted));
  EXPECT_TRUE(counted) << "the leader (" << Cluster::name(L)
                       << ") does not count 19 crashes within 2 ticks: " << gate_summary(seen);
  // 19 is not above max_failures 19: it keeps running, counting each device once.
  std::this_thread::sleep_for(3 * c.tick());
  seen = rollout_at(c, http, L, id);
  EXPECT_EQ(gate_int(seen, "exposed_failures"), 19) << gate_summary(seen);
  EXPECT_EQ(failures_by_cause(seen, "crashed"), 19) << gate_summary(seen);
  EXPECT_EQ(rollout_state(seen), "running") << gate_summary(seen);

  auto r = post_crash(devices[19]);
  ASSERT_EQ(r.status, 200) << r.body;
  posted = Clock::now();
  bool halted = holds_by(posted + two_ticks, [&] {
    seen = rollout_at(c, http, L, id);
    return gate_int(seen, "exposed_failures") >= 20 && rollout_state(seen) == "halted";
  });
  std::printf("20th crash: rollout %s after %lld ms\n", rollout_state(seen).c_str(),
              ms_since(posted));
  EXPECT_TRUE(halted) << "the 20th crash (max_failures 19) does not halt within 2 ticks: "
                      << gate_summary(seen);
  // Halted by the limit, on exactly 20 crashed devices.
  EXPECT_TRUE(holds_by(Clock::now() + 2s, [&] {
    seen = rollout_at(c, http, L, id);
    return rollout_state(seen) == "halted";
  })) << gate_summary(seen);
  EXPECT_EQ(gate_int(seen, "exposed_failures"), 20) << gate_summary(seen);
  EXPECT_EQ(failures_by_cause(seen, "crashed"), 20) << gate_summary(seen);
  EXPECT_TRUE(seen.is_object() && seen.at("gate").at("limit_crossed").as_bool())
      << gate_summary(seen);
  // Every server says so.
  for (int f : followers) {
    json::value at_f;
    EXPECT_TRUE(holds_by(Clock::now() + 2s,
                         [&] {
                           at_f = rollout_at(c, http, f, id);
                           return rollout_state(at_f) == "halted";
                         }))
        << Cluster::name(f) << ": " << gate_summary(at_f);
  }
}

// (c) `acknowledged` is the exact number of devices that run the release,
// whichever servers they checked in to, before and after kill -9 of the leader.
TEST(Cluster, AcknowledgedIsExactWhicheverServerDevicesUseAndAcrossALeaderKill) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  auto first_leader = c.wait_leader(http, 5s);
  ASSERT_TRUE(first_leader) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 1, "d-", 30);
  const std::string id = start_rollout(
      c, http, 2, "r-ack",
      plan("ack",
           "min_acknowledged: 1000, heartbeat_interval: 2s, silent_after_missed: 3, tick: 250ms",
           "  - {name: all, percent: 100%, bake: 1h}\n"));
  ASSERT_TRUE(wait_synced(c, http, id));

  // 24 devices take the release (offered at one server, reporting it at
  // another); 6 are offered it and stay on 1.0: exposed, not acknowledged.
  constexpr int kRunners = 24;
  Router route(303);
  std::map<std::string, std::string> version_of;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const auto& d = devices[i];
    int s = route.pick(c);
    auto r = http.request("POST", c.url(s, "/v1/checkin"), checkin_body("1.0"), d.token);
    ASSERT_EQ(r.status, 200) << d.id << " at " << Cluster::name(s) << ": " << r.body;
    EXPECT_EQ(content_action(r), "install") << r.body;
    version_of[d.id] = i < kRunners ? "2.0" : "1.0";
    if (i < kRunners) {
      int s2 = route.pick(c, s);
      auto r2 = http.request("POST", c.url(s2, "/v1/checkin"), checkin_body("2.0"), d.token);
      ASSERT_EQ(r2.status, 200) << d.id << " at " << Cluster::name(s2) << ": " << r2.body;
    }
  }
  Heartbeats hb(c, devices, version_of, 1s, 3031);

  // Reaches exactly 24 acknowledged and 30 exposed within `within`, then holds
  // them, without a failure, for `hold`.
  auto exact_at = [&](int s, std::chrono::milliseconds within, std::chrono::milliseconds hold,
                      const char* when) {
    json::value seen;
    bool reached = holds_by(Clock::now() + within, [&] {
      seen = rollout_at(c, http, s, id);
      return gate_int(seen, "acknowledged") == kRunners && gate_int(seen, "exposed_devices") == 30;
    });
    EXPECT_TRUE(reached) << when << ": " << Cluster::name(s) << " never shows acknowledged "
                         << kRunners << " and exposed_devices 30: " << gate_summary(seen);
    auto from = Clock::now();
    while (reached && Clock::now() - from < hold) {
      std::this_thread::sleep_for(c.tick());
      seen = rollout_at(c, http, s, id);
      if (gate_int(seen, "acknowledged") != kRunners || gate_int(seen, "exposed_failures") != 0) {
        ADD_FAILURE() << when << ": " << Cluster::name(s) << " " << ms_since(from)
                      << " ms later: " << gate_summary(seen);
        break;
      }
    }
  };
  const int L0 = *first_leader;
  exact_at(L0, 5s, 2s, "before the kill, the leader");
  for (int i = 0; i < c.size(); ++i) {
    if (i != L0) exact_at(i, 3s, 1s, "before the kill, a follower");
  }

  c.kill9(L0);
  auto killed = Clock::now();
  auto next_leader = c.wait_leader(http, 5s);
  ASSERT_TRUE(next_leader) << "no new leader within 5 s of kill -9 of " << Cluster::name(L0);
  std::printf("leader %s killed; %s leads after %lld ms\n", Cluster::name(L0).c_str(),
              Cluster::name(*next_leader).c_str(), ms_since(killed));
  // Held for longer than a silent window (2 s x 3): a device the new leader
  // does not hear from would be counted silent in it.
  exact_at(*next_leader, 5s, 7s, "after the kill, the new leader");
  for (int i : c.alive_indexes()) {
    if (i != *next_leader) exact_at(i, 3s, 1s, "after the kill, a follower");
  }
  hb.stop();
  EXPECT_EQ(hb.failed(), 0u) << hb.failures();
}

// (d) Devices whose heartbeats go to a random server each time are online in
// the leader's eyes: no silent failure over five silent windows, no halt. The
// leader does see a device that really stops.
TEST(Cluster, HealthyDevicesMovingBetweenServersAreNeverCountedSilent) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  auto leader = c.wait_leader(http, 5s);
  ASSERT_TRUE(leader) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 0, "d-", 40);
  // heartbeat_interval 1 s, silent after 3 missed: a silent window is 3 s.
  const std::string id = start_rollout(
      c, http, 1, "r-move",
      plan("move",
           "min_acknowledged: 1000, heartbeat_interval: 1s, silent_after_missed: 3, tick: 250ms",
           "  - {name: canary, percent: 50%, bake: 1h}\n  - {name: all, percent: 100%, bake: "
           "1h}\n"));
  ASSERT_TRUE(wait_synced(c, http, id));

  Router route(404);
  std::map<std::string, std::string> version_of;
  std::vector<std::string> exposed;
  for (const auto& d : devices) {
    int s = route.pick(c);
    auto r = http.request("POST", c.url(s, "/v1/checkin"), checkin_body("1.0"), d.token);
    ASSERT_EQ(r.status, 200) << d.id << " at " << Cluster::name(s) << ": " << r.body;
    bool offered = content_action(r) == "install";
    version_of[d.id] = offered ? "2.0" : "1.0";
    if (offered) exposed.push_back(d.id);
  }
  ASSERT_GE(exposed.size(), 5u) << "the canary (50%) took too few of 40 devices";
  ASSERT_LE(exposed.size(), 35u) << "the canary (50%) left too few devices in control";
  Heartbeats hb(c, devices, version_of, 1s, 4041);

  const int L = *leader;
  auto started = Clock::now();
  json::value seen;
  std::string first_bad;
  while (Clock::now() - started < 15s) {  // five silent windows
    std::this_thread::sleep_for(500ms);
    seen = rollout_at(c, http, L, id);
    if (first_bad.empty() &&
        (!seen.is_object() || gate_int(seen, "exposed_silent") != 0 ||
         gate_int(seen, "exposed_failures") != 0 || gate_int(seen, "control_failures") != 0 ||
         rollout_state(seen) != "running")) {
      first_bad = "after " + std::to_string(ms_since(started)) + " ms: " + gate_summary(seen);
    }
  }
  EXPECT_EQ(first_bad, "")
      << "healthy devices moving between servers were counted as failures at the leader "
      << Cluster::name(L);
  EXPECT_GT(hb.moves(), devices.size() * 5) << "the devices did not move between servers";
  EXPECT_EQ(hb.failed(), 0u) << hb.failures();
  // Both groups are online at the leader (exposure accrues), so 0 silent says something.
  ASSERT_TRUE(seen.is_object());
  EXPECT_GT(seen.at("gate").at("exposed_device_s").to_number<double>(), 0.0) << gate_summary(seen);
  EXPECT_GT(seen.at("gate").at("control_device_s").to_number<double>(), 0.0) << gate_summary(seen);

  // Two exposed devices really stop: silent after 3 s (+ their last heartbeat's
  // second, 2 ticks and slack), and only they.
  hb.silence(exposed[0]);
  hb.silence(exposed[1]);
  auto quiet_from = Clock::now();
  bool found = holds_by(quiet_from + 3s + 1s + 2 * c.tick() + 1s, [&] {
    seen = rollout_at(c, http, L, id);
    return gate_int(seen, "exposed_silent") >= 2;
  });
  std::printf("two devices stopped: %s after %lld ms\n", found ? "counted silent" : "not counted",
              ms_since(quiet_from));
  EXPECT_TRUE(found) << "the leader does not see two devices that stopped: " << gate_summary(seen);
  std::this_thread::sleep_for(2 * c.tick());
  seen = rollout_at(c, http, L, id);
  EXPECT_EQ(gate_int(seen, "exposed_silent"), 2) << gate_summary(seen);
  EXPECT_EQ(gate_int(seen, "control_failures"), 0) << gate_summary(seen);
  EXPECT_EQ(rollout_state(seen), "running") << gate_summary(seen);
  hb.stop();
}

// The other side of (d): devices that really go quiet are counted silent even
// when the server they last talked to is gone too (kill -9 of a follower, then
// its devices stop: a crashed machine cannot report, its server cannot judge).
TEST(Cluster, DevicesThatGoQuietWithTheirServerAreStillCountedSilent) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  auto leader = c.wait_leader(http, 5s);
  ASSERT_TRUE(leader) << "no single leader";
  const int L = *leader;
  const int doomed = (L + 1) % c.size();
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 0, "d-", 18);
  const std::string id = start_rollout(
      c, http, L, "r-quiet",
      plan("quiet",
           "min_acknowledged: 1000, heartbeat_interval: 1s, silent_after_missed: 3, tick: 250ms",
           "  - {name: all, percent: 100%, bake: 1h}\n"));
  ASSERT_TRUE(wait_synced(c, http, id));

  // 6 devices talk only to the doomed server; 12 to random servers.
  std::vector<TestDevice> quiet(devices.begin(), devices.begin() + 6);
  std::vector<TestDevice> loud(devices.begin() + 6, devices.end());
  std::map<std::string, std::string> version_of;
  for (const auto& d : devices) version_of[d.id] = "2.0";
  for (const auto& d : quiet) {
    auto r = http.request("POST", c.url(doomed, "/v1/checkin"), checkin_body("2.0"), d.token);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  Heartbeats loud_hb(c, loud, version_of, 1s, 5051);
  // The quiet ones heartbeat at the doomed server for a few seconds.
  for (int k = 0; k < 3; ++k) {
    std::this_thread::sleep_for(1s);
    for (const auto& d : quiet) {
      auto r = http.request("POST", c.url(doomed, "/v1/checkin"), checkin_body("2.0"), d.token);
      ASSERT_EQ(r.status, 200) << r.body;
    }
  }
  json::value seen = rollout_at(c, http, L, id);
  ASSERT_EQ(gate_int(seen, "exposed_failures"), 0) << gate_summary(seen);
  ASSERT_EQ(gate_int(seen, "acknowledged"), 18) << gate_summary(seen);

  c.kill9(doomed);
  auto quiet_from = Clock::now();
  // Silent after 3 s; allow the server's takeover of the dead one's devices.
  bool counted = holds_by(quiet_from + 10s, [&] {
    seen = rollout_at(c, http, L, id);
    return gate_int(seen, "exposed_silent") >= 6;
  });
  std::printf("6 devices quiet since their server died: %s after %lld ms\n",
              counted ? "counted silent" : "not counted", ms_since(quiet_from));
  EXPECT_TRUE(counted) << "the leader does not count devices silent whose server died with them: "
                       << gate_summary(seen);
  std::this_thread::sleep_for(2 * c.tick());
  seen = rollout_at(c, http, L, id);
  EXPECT_EQ(gate_int(seen, "exposed_silent"), 6) << "only the quiet ones: " << gate_summary(seen);
  EXPECT_EQ(gate_int(seen, "acknowledged"), 12) << gate_summary(seen);
  loud_hb.stop();
  EXPECT_EQ(loud_hb.failed(), 0u) << loud_hb.failures();
}

// (e) The same event upload sent to two servers (a retry that went elsewhere):
// stored once per (device, seq), committed before it is answered, and no
// failed batch write on any server.
TEST(Cluster, TheSameEventUploadAtTwoServersIsStoredOnce) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 0, "d-", 2);
  const std::string batch = events_body(json::array{
      json::object{{"seq", 1}, {"kind", "installed"}, {"channel", "content"}, {"version", "1.0"}},
      json::object{{"seq", 2},
                   {"kind", "download_failed"},
                   {"channel", "content"},
                   {"version", "2.0"},
                   {"message", "timeout"}},
      json::object{{"seq", 3}, {"kind", "goodbye"}}});
  auto ok_or_replayed = [](const HttpResult& r) {
    return (r.status == 200 && r.json().at("accepted").as_int64() == 3) ||
           (r.status == 409 && r.error_code() == "replayed");
  };
  std::string why;

  // One after the other: s2, then s3.
  const auto& a = devices[0];
  auto first = http.request("POST", c.url(1, "/v1/events"), batch, a.token);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.json().at("accepted").as_int64(), 3);
  // Answered only once committed: the rows are there when the answer is.
  EXPECT_EQ(stored_events(db.url(), a.id, &why), 3)
      << "rows of " << a.id << " right after {\"accepted\":3} " << why;
  auto again = http.request("POST", c.url(2, "/v1/events"), batch, a.token);
  EXPECT_TRUE(ok_or_replayed(again))
      << "the same upload at s3: " << again.status << " " << again.body;
  EXPECT_EQ(stored_events(db.url(), a.id, &why), 3) << why;
  std::printf("the same upload at s2, then at s3: %ld, then %ld %s\n", first.status, again.status,
              again.error_code().c_str());

  // At the same moment at s2 and s3.
  const auto& b = devices[1];
  auto at = [&](int s) {
    return std::async(std::launch::async, [&, s] {
      HttpClient own;
      return own.request("POST", c.url(s, "/v1/events"), batch, b.token);
    });
  };
  auto f1 = at(1);
  auto f2 = at(2);
  auto r1 = f1.get();
  auto r2 = f2.get();
  EXPECT_TRUE(ok_or_replayed(r1)) << "s2: " << r1.status << " " << r1.body;
  EXPECT_TRUE(ok_or_replayed(r2)) << "s3: " << r2.status << " " << r2.body;
  EXPECT_TRUE(r1.status == 200 || r2.status == 200) << "one of them is accepted";
  std::printf("the same upload at s2 and s3 at once: %ld and %ld\n", r1.status, r2.status);
  EXPECT_EQ(stored_events(db.url(), b.id, &why), 3) << why;
  // Then a third server knows seq 3 was accepted: the upload again is a replay,
  // the next one is accepted.
  auto third = http.request("POST", c.url(0, "/v1/events"), batch, b.token);
  EXPECT_EQ(third.status, 409) << "the same upload at s1 after both answered: " << third.body;
  auto b4 = http.request(
      "POST", c.url(0, "/v1/events"),
      events_body(json::array{json::object{
          {"seq", 4}, {"kind", "installed"}, {"channel", "content"}, {"version", "2.0"}}}),
      b.token);
  EXPECT_EQ(b4.status, 200) << b4.body;
  EXPECT_EQ(stored_events(db.url(), b.id, &why), 4) << why;

  // The device goes on at another server: seq 4.
  auto next = http.request(
      "POST", c.url(0, "/v1/events"),
      events_body(json::array{json::object{
          {"seq", 4}, {"kind", "installed"}, {"channel", "content"}, {"version", "2.0"}}}),
      a.token);
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(stored_events(db.url(), a.id, &why), 4) << why;
  auto dup =
      pg_scalar(db.url(),
                "SELECT count(*) FROM (SELECT device, seq FROM device_events GROUP BY device, seq "
                "HAVING count(*) > 1) AS d",
                {}, &why);
  EXPECT_EQ(dup.value_or("?"), "0") << why;

  // Several batch intervals later, no server has failed to write a batch.
  std::this_thread::sleep_for(1500ms);
  for (int i = 0; i < c.size(); ++i) {
    auto errors = c.metric(http, i, "tranche_store_flush_errors");
    ASSERT_TRUE(errors.has_value())
        << Cluster::name(i) << " has no tranche_store_flush_errors metric";
    EXPECT_EQ(*errors, 0.0) << Cluster::name(i) << ": batch writes failed";
  }
}

// (f) HAProxy with packaging/haproxy/tranche.cfg in front of three servers:
// each device sticks to one server; kill -9 one and its devices are answered
// by the others within seconds, the rest stay where they are.
TEST(Cluster, HaproxyKeepsEachDeviceOnOneServerAndMovesADeadServersDevices) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  ASSERT_FALSE(haproxy_binary().empty())
      << "haproxy is not installed (scripts/deps.sh installs it)";
  Cluster c(db.url());
  HttpClient http;
  ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  ScratchDir scratch("tranche-cluster-haproxy");
  const auto& dir = scratch.path();
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < c.size(); ++i) ports.push_back(c.at(i).port());
  HaproxyProcess proxy(ports, dir);
  ProxyClient pc;
  ASSERT_TRUE(eventually(
      [&] { return pc.request("GET", proxy.url("/healthz"), "", "").http.status == 200; }, 10s))
      << "HAProxy does not answer: " << proxy.log();

  // Enrollment carries no token: round robin over the servers.
  std::vector<TestDevice> devices;
  std::set<std::string> enrolled_by;
  for (int i = 0; i < 24; ++i) {
    auto r = pc.request("POST", proxy.url("/v1/enroll"),
                        json::serialize(json::object{{"tenant", kTenant},
                                                     {"enrollment_key", kEnrollmentKey},
                                                     {"device_id", "h-" + std::to_string(i)}}),
                        "");
    ASSERT_EQ(r.http.status, 201) << r.http.body;
    enrolled_by.insert(r.server);
    devices.push_back(TestDevice{"h-" + std::to_string(i),
                                 std::string(r.http.json().at("device_token").as_string())});
  }
  EXPECT_EQ(enrolled_by.size(), 3u) << "enrollments were not spread over the three servers";

  // Each round, per device: GET /healthz with its token (HAProxy's routing
  // alone: any server answers it 200) and a check-in (the cluster's part).
  struct Round {
    ProxiedResult probe, checkin;
  };
  auto round_of = [&](const TestDevice& d) {
    return Round{pc.request("GET", proxy.url("/healthz"), "", d.token),
                 pc.request("POST", proxy.url("/v1/checkin"), checkin_body("1.0"), d.token)};
  };
  auto said = [](const ProxiedResult& r) {
    return std::to_string(r.http.status) + " from " + (r.server.empty() ? "HAProxy" : r.server) +
           " " + r.http.body.substr(0, 100);
  };

  // Three rounds while all servers live: each device always routed to the same
  // server, and answered 200.
  std::map<std::string, std::string> home;
  Problems routing_before, devices_before;
  for (int round = 0; round < 3; ++round) {
    for (const auto& d : devices) {
      auto r = round_of(d);
      if (r.probe.http.status != 200 || r.probe.server.empty()) {
        routing_before.note(d.id, "GET /healthz: " + said(r.probe));
        continue;
      }
      auto [it, fresh] = home.emplace(d.id, r.probe.server);
      if (!fresh && it->second != r.probe.server) {
        routing_before.note(d.id, "moved from " + it->second + " to " + r.probe.server);
      }
      if (r.checkin.server != r.probe.server) {
        routing_before.note(d.id,
                            "check-in routed to " + r.checkin.server + ", not " + r.probe.server);
      }
      if (r.checkin.http.status != 200) devices_before.note(d.id, "check-in: " + said(r.checkin));
    }
  }
  std::map<std::string, int> per_server;
  for (const auto& [d, s] : home) ++per_server[s];
  std::string spread;
  for (const auto& [s, n] : per_server) spread += s + ":" + std::to_string(n) + " ";
  std::printf("devices per server: %s\n", spread.c_str());
  ASSERT_TRUE(routing_before.empty()) << "HAProxy's routing before any server died:\n"
                                      << routing_before.text();
  ASSERT_GE(per_server.size(), 2u) << "the hash put every device on one server: " << spread;
  EXPECT_TRUE(devices_before.empty()) << "check-ins through HAProxy before any server died:\n"
                                      << devices_before.text();

  // kill -9 the server with the most devices.
  std::string victim_name;
  int most = 0;
  for (const auto& [s, n] : per_server) {
    if (n > most) {
      most = n;
      victim_name = s;
    }
  }
  const int victim = std::stoi(victim_name.substr(1)) - 1;
  c.kill9(victim);
  auto killed = Clock::now();

  // Rounds for 8 s: each device answered 200 within 5 s of the kill and every
  // time after that; never by the dead server; the others' devices stay home.
  std::map<std::string, long long> routed_ms, answered_ms;
  std::map<std::string, int> statuses;
  Problems routing_after, devices_after;
  while (Clock::now() - killed < 8s) {
    for (const auto& d : devices) {
      auto r = round_of(d);
      auto t = ms_since(killed);
      ++statuses[std::to_string(r.checkin.http.status)];
      for (const auto* x : {&r.probe, &r.checkin}) {
        if (x->server == victim_name)
          routing_after.note(d.id, "answered by the dead " + victim_name);
        if (home[d.id] != victim_name && !x->server.empty() && x->server != home[d.id]) {
          routing_after.note(d.id, "moved from " + home[d.id] + " to " + x->server + " though " +
                                       home[d.id] + " lives");
        }
      }
      if (r.probe.http.status == 200) {
        routed_ms.emplace(d.id, t);
      } else if (t > 5000 || routed_ms.count(d.id) > 0) {
        routing_after.note(d.id, "GET /healthz at +" + std::to_string(t) + " ms: " + said(r.probe));
      }
      if (r.checkin.http.status == 200) {
        answered_ms.emplace(d.id, t);
      } else if (t > 5000 || answered_ms.count(d.id) > 0) {
        devices_after.note(d.id, "check-in at +" + std::to_string(t) + " ms: " + said(r.checkin));
      }
    }
    std::this_thread::sleep_for(200ms);
  }
  auto late = [&](const std::map<std::string, long long>& first_ok, long long& slowest) {
    std::string out;
    for (const auto& d : devices) {
      auto it = first_ok.find(d.id);
      if (it == first_ok.end() || it->second > 5000) out += d.id + " (home " + home[d.id] + ") ";
      if (it != first_ok.end()) slowest = std::max(slowest, it->second);
    }
    return out;
  };
  long long slowest_routed = 0, slowest_answered = 0;
  auto unrouted = late(routed_ms, slowest_routed);
  auto unanswered = late(answered_ms, slowest_answered);
  std::string counts;
  for (const auto& [s, n] : statuses) counts += s + ":" + std::to_string(n) + " ";
  std::printf(
      "after kill -9 of %s: check-in statuses %s; slowest device routed after %lld ms, answered "
      "200 after "
      "%lld ms\n",
      victim_name.c_str(), counts.c_str(), slowest_routed, slowest_answered);
  EXPECT_TRUE(unrouted.empty()) << "devices HAProxy did not route to a live server within 5 s: "
                                << unrouted;
  EXPECT_TRUE(routing_after.empty()) << "HAProxy's routing after the kill:\n"
                                     << routing_after.text();
  EXPECT_TRUE(unanswered.empty())
      << "devices whose check-in was not answered 200 within 5 s of the kill: " << unanswered;
  EXPECT_TRUE(devices_after.empty()) << "check-ins after the kill:\n" << devices_after.text();
  EXPECT_TRUE(proxy.running()) << proxy.log();
}

// A check-in held (long poll) at a follower is answered as soon as the leader
// halts and rolls back the rollout it runs, not when its wait is up.
TEST(Cluster, AHeldCheckInAtAFollowerIsAnsweredWhenTheLeaderRollsBack) {
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  Cluster c(db.url());
  HttpClient http;
  auto leader = c.wait_leader(http, 5s);
  ASSERT_TRUE(leader) << "no single leader";
  const int L = *leader;
  const int follower = (L + 1) % c.size();
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  auto devices = bulk_enroll(c, http, 0, "d-", 4);
  // 1.0 completes first: the baseline a rollback of 2.0 sends devices back to.
  const std::string base =
      start_rollout(c, http, L, "r-base",
                    "name: base\ncompletion_share: 1%\ngate: {min_acknowledged: 1, "
                    "heartbeat_interval: 60s, tick: 250ms}\nstages:\n  - {name: all, "
                    "percent: 100%, bake: 0s}\n",
                    "1.0");
  json::value base_seen;
  ASSERT_TRUE(holds_by(Clock::now() + 10s,
                       [&] {
                         for (const auto& d : devices)
                           http.request("POST", c.url(L, "/v1/checkin"), checkin_body("1.0"),
                                        d.token);
                         base_seen = rollout_at(c, http, L, base);
                         return rollout_state(base_seen) == "completed";
                       }))
      << "1.0 did not complete: " << gate_summary(base_seen);
  ASSERT_TRUE(wait_synced(c, http, base));
  // The first exposed failure halts (max_failures 0) and rolls back.
  const std::string id = start_rollout(c, http, L, "r-held",
                                       "name: held\non_failure: rollback\ngate: {min_acknowledged: "
                                       "1000, heartbeat_interval: 60s, tick: 250ms, "
                                       "max_failure_rate: 1, min_exposed: 1, max_failures: "
                                       "0}\nstages:\n  - {name: all, percent: 100%, bake: 1h}\n");
  ASSERT_TRUE(wait_synced(c, http, id));
  const auto& held = devices[0];
  auto r = http.request("POST", c.url(follower, "/v1/checkin"), checkin_body("2.0"), held.token);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(content_action(r), "keep") << r.body;

  // Held at the follower for up to 20 s.
  auto waiting = std::async(std::launch::async, [&] {
    HttpClient own;
    auto t0 = Clock::now();
    auto answer = own.request("POST", c.url(follower, "/v1/checkin"),
                              json::serialize(json::object{
                                  {"versions", json::object{{"content", "2.0"}}}, {"wait_s", 20}}),
                              held.token, 40);
    return std::make_pair(answer, ms_since(t0));
  });
  std::this_thread::sleep_for(1s);
  ASSERT_EQ(waiting.wait_for(0s), std::future_status::timeout) << "the check-in was not held";
  auto crash = http.request("POST", c.url(L, "/v1/events"),
                            events_body(json::array{crash_event(1)}), devices[1].token);
  ASSERT_EQ(crash.status, 200) << crash.body;
  auto crashed_at = Clock::now();
  if (waiting.wait_for(10s) != std::future_status::ready) {
    auto now_answer =
        http.request("POST", c.url(follower, "/v1/checkin"), checkin_body("2.0"), devices[2].token);
    ADD_FAILURE() << "the held check-in at " << Cluster::name(follower)
                  << " was not answered 10 s after the crash; "
                  << "the rollout there: " << gate_summary(rollout_at(c, http, follower, id))
                  << "; a check-in there now: " << now_answer.body;
  }
  auto [answer, held_ms] = waiting.get();
  auto after_crash = ms_since(crashed_at);
  std::printf(
      "held check-in at the follower answered %lld ms after the crash at the leader (held %lld "
      "ms): %s\n",
      after_crash, held_ms, content_action(answer).c_str());
  EXPECT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(content_action(answer), "rollback")
      << answer.body << "; the rollout at the leader: " << gate_summary(rollout_at(c, http, L, id));
  // Within 1 s on every server: the leader's tick halts it, the follower's next
  // tick syncs the snapshot and wakes its held check-ins (ticks of 250 ms here).
  EXPECT_LT(after_crash, 1000)
      << "answered at the end of its wait, not when the rollout was rolled back";
}

// The template is valid with its variables set, and refused without them.
TEST(Cluster, HaproxyConfigurationIsValidOnlyFilledIn) {
  ASSERT_FALSE(haproxy_binary().empty())
      << "haproxy is not installed (scripts/deps.sh installs it)";
  ScratchDir scratch("tranche-cluster-haproxy-check");
  const auto& dir = scratch.path();
  auto [ok, out] =
      haproxy_check(haproxy_template(), haproxy_env(free_port(), {18081, 18082, 18083}), dir);
  EXPECT_EQ(ok, 0) << out;
  EXPECT_NE(out.find("Configuration file is valid"), std::string::npos) << out;
  auto [refused, why] = haproxy_check(haproxy_template(), {}, dir);
  EXPECT_NE(refused, 0) << "accepted without its variables: " << why;
}

// (g) PostgreSQL restarts under the cluster: a leader again within 10 s, and
// device writes made after it work. A PostgreSQL of the test's own: the shared
// one of the `postgres` fixture serves other tests meanwhile.
TEST(Cluster, AfterAPostgresRestartALeaderIsBackWithinTenSecondsAndWritesWork) {
  PrivatePostgres pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  HttpClient http;
  {
    Cluster c(pg.url());
    ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
    ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
    ASSERT_TRUE(wait_synced(c, http));
    auto devices = bulk_enroll(c, http, 0, "d-", 5);
    Router route(707);
    // At the enrolling server: this case is about the restart, not (a).
    for (const auto& d : devices) {
      auto r = http.request("POST", c.url(0, "/v1/checkin"), checkin_body("1.0"), d.token);
      ASSERT_EQ(r.status, 200) << d.id << ": " << r.body;
    }

    // A rollout the engine must still be able to halt after the restart: more
    // than 1 exposed failure halts it.
    const std::string rollout = start_rollout(
        c, http, 0, "r-restart",
        plan("restart",
             "min_acknowledged: 1000, heartbeat_interval: 60s, tick: 250ms, max_failure_rate: 1, "
             "min_exposed: 1, max_failures: 1",
             "  - {name: all, percent: 100%, bake: 1h}\n"));
    ASSERT_TRUE(wait_synced(c, http, rollout));

    ASSERT_EQ(pg.restart(), 0) << "pg_ctl restart failed";
    auto restarted = Clock::now();
    std::optional<int> leader;
    bool back = holds_by(restarted + 10s, [&] { return (leader = c.leader(http)).has_value(); });
    std::printf("PostgreSQL restarted: %s after %lld ms\n", back ? "a leader again" : "no leader",
                ms_since(restarted));
    ASSERT_TRUE(back) << "no single leader within 10 s of the PostgreSQL restart";
    // Still the one a second later (not a flicker).
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(c.leader(http), leader) << "the leadership did not settle after the restart";

    // Writes after it, at every server: an enrollment, its check-in and events
    // at the same server, stored at once; then the same device at another.
    for (int at = 0; at < c.size(); ++at) {
      const std::string id = "after-" + std::to_string(at);
      auto e = http.request(
          "POST", c.url(at, "/v1/enroll"),
          json::serialize(json::object{
              {"tenant", kTenant}, {"enrollment_key", kEnrollmentKey}, {"device_id", id}}));
      ASSERT_EQ(e.status, 201) << "enrollment at " << Cluster::name(at)
                               << " after the restart: " << e.body;
      TestDevice fresh{id, std::string(e.json().at("device_token").as_string())};
      auto r = http.request("POST", c.url(at, "/v1/checkin"), checkin_body("1.0"), fresh.token);
      EXPECT_EQ(r.status, 200) << id << "'s check-in at " << Cluster::name(at) << ": " << r.body;
      auto ev = http.request(
          "POST", c.url(at, "/v1/events"),
          events_body(json::array{json::object{
              {"seq", 1}, {"kind", "installed"}, {"channel", "content"}, {"version", "1.0"}}}),
          fresh.token);
      EXPECT_EQ(ev.status, 200) << id << "'s events at " << Cluster::name(at) << ": " << ev.body;
      std::string why;
      long long rows = -1;
      eventually([&] { return (rows = stored_events(pg.url(), id, &why)) == 1; }, 2s);
      EXPECT_EQ(rows, 1) << id << "'s event in the store: " << why;
      int other = route.pick(c, at);
      auto r2 = http.request("POST", c.url(other, "/v1/checkin"), checkin_body("1.0"), fresh.token);
      EXPECT_EQ(r2.status, 200) << id << "'s check-in at " << Cluster::name(other) << ": "
                                << r2.body;
    }
    // A device enrolled before the restart writes its events after it.
    auto ev = http.request(
        "POST", c.url(0, "/v1/events"),
        events_body(json::array{json::object{
            {"seq", 1}, {"kind", "installed"}, {"channel", "content"}, {"version", "1.0"}}}),
        devices[0].token);
    EXPECT_EQ(ev.status, 200) << devices[0].id << "'s events: " << ev.body;
    std::string why;
    long long rows = -1;
    eventually([&] { return (rows = stored_events(pg.url(), devices[0].id, &why)) == 1; }, 2s);
    EXPECT_EQ(rows, 1) << devices[0].id << "'s event in the store: " << why;

    // The leader leads: two crashes posted after the restart halt the rollout.
    for (int k = 1; k <= 2; ++k) {
      int s = route.pick(c);
      auto crash =
          http.request("POST", c.url(s, "/v1/events"), events_body(json::array{crash_event(1)}),
                       devices[static_cast<std::size_t>(k)].token);
      EXPECT_EQ(crash.status, 200) << devices[static_cast<std::size_t>(k)].id << "'s crash at "
                                   << Cluster::name(s) << ": " << crash.body;
    }
    json::value seen;
    auto leads_now = c.leader(http);
    EXPECT_TRUE(leads_now.has_value());
    EXPECT_TRUE(holds_by(Clock::now() + 3s,
                         [&] {
                           seen = rollout_at(c, http, leads_now.value_or(0), rollout);
                           return rollout_state(seen) == "halted";
                         }))
        << "the engine did not halt the rollout after the restart: " << gate_summary(seen);
  }
}

// (h) The primary PostgreSQL crashes and its synchronous streaming replica is
// promoted: every server writes again, and a leader is back, within 15 s of the
// crash; not one event the servers acknowledged, before or after, is missing
// from the promoted replica. The servers' --store names both hosts
// (target_session_attrs=read-write), so a reconnect finds the new primary.
TEST(Cluster, AfterFailoverToAStreamingReplicaServiceIsBackWithinFifteenSecondsAndNothingIsLost) {
  PrivatePostgres primary;
  ASSERT_TRUE(primary.ok()) << primary.error();
  PrivatePostgres replica(&primary);
  ASSERT_TRUE(replica.ok()) << replica.error();
  const std::string both = "postgresql://postgres@127.0.0.1:" + url_port(primary.url()) +
                           ",127.0.0.1:" + url_port(replica.url()) +
                           "/tranche_test?target_session_attrs=read-write";
  HttpClient http;
  ClusterOptions two;
  two.servers = 2;
  Cluster c(both, two);
  ASSERT_TRUE(c.wait_leader(http, 5s)) << "no single leader";
  ASSERT_TRUE(make_tenant_and_releases(c, http, 0));
  ASSERT_TRUE(wait_synced(c, http));
  constexpr int kDevices = 12;
  auto devices = bulk_enroll(c, http, 0, "fo-", kDevices + c.size());

  // Each device posts events one at a time, seq 1, 2, ...; an answer other than
  // 200 is sent again with the same seq, as the agent does. acked[d] is the
  // highest seq answered 200, so 1..acked[d] must all be stored.
  std::vector<std::atomic<std::int64_t>> acked(devices.size());
  std::mutex mu;
  std::set<std::string> refusals;  // "503 unavailable" and the like, for the log
  auto post = [&](HttpClient& h, std::size_t d, int at) {
    const std::int64_t seq = acked[d].load() + 1;
    auto r = h.request("POST", c.url(at, "/v1/events"),
                       events_body(json::array{json::object{{"seq", seq},
                                                            {"kind", "installed"},
                                                            {"channel", "content"},
                                                            {"version", "1.0"}}}),
                       devices[d].token, 10);
    if (r.status == 200) {
      acked[d].store(seq);
      return true;
    }
    std::lock_guard<std::mutex> lock(mu);
    refusals.insert(std::to_string(r.status) + " " + r.error_code());
    return false;
  };
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  constexpr std::uint32_t kWriters = 4;
  for (std::uint32_t w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient h;
      Router route(900 + w);
      while (!stop.load()) {
        for (std::size_t d = w; d < kDevices; d += kWriters) {
          if (!post(h, d, route.pick(c))) std::this_thread::sleep_for(50ms);
        }
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  std::int64_t before = 0;
  for (std::size_t d = 0; d < kDevices; ++d) before += acked[d].load();
  EXPECT_GT(before, 0) << "no event acknowledged before the crash";

  const auto crashed = Clock::now();
  ASSERT_EQ(primary.crash(), 0) << "pg_ctl stop -m immediate failed";
  ASSERT_EQ(replica.promote(), 0) << "pg_ctl promote failed";
  const long long promoted_ms = ms_since(crashed);

  // Back: every server acknowledges a write of its own probe device, and one
  // server leads.
  std::vector<char> writes(static_cast<std::size_t>(c.size()), 0);
  std::optional<int> leader;
  bool back = holds_by(crashed + 15s, [&] {
    for (int i = 0; i < c.size(); ++i) {
      auto& ok = writes[static_cast<std::size_t>(i)];
      if (ok == 0) ok = post(http, static_cast<std::size_t>(kDevices + i), i) ? 1 : 0;
    }
    leader = c.leader(http);
    return leader.has_value() && std::all_of(writes.begin(), writes.end(), [](char b) { return b != 0; });
  });
  const long long back_ms = ms_since(crashed);
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : writers) t.join();
  std::int64_t total = 0;
  for (const auto& a : acked) total += a.load();
  std::printf(
      "failover: replica promoted %lld ms after the crash; %s %lld ms after it; %lld events "
      "acknowledged (%lld before the crash); refused meanwhile: %s\n",
      promoted_ms, back ? "writes at every server and a leader" : "NOT back", back_ms,
      static_cast<long long>(total), static_cast<long long>(before),
      [&] {
        std::string out;
        for (const auto& r : refusals) out += (out.empty() ? "" : ", ") + r;
        return out;
      }()
          .c_str());
  EXPECT_TRUE(back) << "within 15 s of the crash: leader " << (leader ? "yes" : "no")
                    << ", writes at s1 " << (writes[0] != 0) << ", s2 " << (writes[1] != 0);
  EXPECT_GT(total, before) << "nothing acknowledged after the failover";

  // Nothing acknowledged is missing on the promoted replica.
  std::int64_t lost = 0;
  std::string example;
  for (std::size_t d = 0; d < devices.size(); ++d) {
    const std::int64_t n = acked[d].load();
    if (n == 0) continue;
    std::string why;
    auto v = pg_scalar(replica.url(),
                       "SELECT count(DISTINCT seq) FROM device_events WHERE device = $1 AND seq <= " +
                           std::to_string(n),
                       {devices[d].key()}, &why);
    ASSERT_TRUE(v.has_value()) << why;
    const std::int64_t missing = n - std::stoll(*v);
    if (missing > 0 && example.empty()) {
      example = devices[d].id + ": " + std::to_string(missing) + " of seq 1.." + std::to_string(n);
    }
    lost += missing;
  }
  std::printf("acknowledged events missing on the promoted replica: %lld of %lld\n",
              static_cast<long long>(lost), static_cast<long long>(total));
  EXPECT_EQ(lost, 0) << "acknowledged, not on the promoted replica: " << example;
}

// --server-id NAME names a server of the cluster.
TEST(Cluster, ServersTakeAServerId) {
  EXPECT_TRUE(server_has_flag("--server-id")) << "tranche-server --help lists no --server-id";
  if (!server_has_flag("--server-id")) return;
  PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  ScratchDir scratch("tranche-cluster-id");
  const auto& dir = scratch.path();
  ServerProcess s({"--data-dir", dir.string(), "--store", db.url(), "--admin-token", kClusterAdmin,
                   "--server-id", "edge-1"});
  HttpClient http;
  EXPECT_EQ(http.request("GET", s.url("/healthz")).status, 200);
}

}  // namespace
}  // namespace tranche::testing
