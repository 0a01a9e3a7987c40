// The rollout engine (server/engine.h) in process: a real SQLite store in a
// temporary directory, a Fleet, and a fake clock the test moves. What a user
// relies on: a bad release is stopped and the store has the stop with its
// audit entry before anyone sees it; a good one completes and becomes the
// baseline; a server that does not lead counts but never decides; silence found
// by a tick is written.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "config/plan_yaml.h"
#include "core/cohort.h"
#include "server/codec.h"
#include "server/engine.h"
#include "server/fleet.h"
#include "store/store.h"
#include "tests/server/fake_clock.h"
#include "tests/server/fleet_fixture.h"

namespace tranche::server {
namespace {

using core::TimeMs;

constexpr TimeMs kT0 = 1'800'000'000'000;


core::Version v(const char* text) { return core::Version::parse(text).value(); }

const char* kPlan = R"(name: lab
on_failure: halt
gate: {min_acknowledged: 3, heartbeat_interval: 10s, silent_after_missed: 3, tick: 1s}
stages:
  - {name: all, percent: 100%, bake: 1m, max_failures: 2}
)";

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tranche-engine-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = store::open_store("sqlite:" + (dir_ / "tranche.db").string());
    ASSERT_TRUE(store.ok()) << store.error().to_string();
    store_ = std::move(*store);
    for (int i = 0; i < 10; ++i) {
      Device d;
      d.key = "dev-" + std::to_string(i);
      d.tenant = "t";
      d.versions.emplace("content", v("1.0"));
      ASSERT_TRUE(fleet_.add_device(std::move(d)).ok());
    }
    fleet_.update([&](Snapshot& s) {
      testing::add_channel(s, "content", {"1.0", "2.0"});
      s.device_count = 10;
    });
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  RolloutEngine make_engine(bool shared = false) {
    return RolloutEngine(RolloutEngine::Ports{fleet_, *store_, store_mu_, clock_, metrics_,
                                              [this](DeviceWrite w) { writes_.push_back(w.device); }},
                         RolloutEngine::Settings{shared, "s-test", core::kSecond});
  }

  // A rollout of content 2.0 as an operator creates it (stored, then
  // published), started through the engine.
  void start_rollout(RolloutEngine& engine) {
    auto plan = config::parse_plan(kPlan, "plan.yaml");
    ASSERT_TRUE(plan.ok()) << plan.error().to_string();
    auto info = std::make_shared<RolloutInfo>();
    info->plan = *plan;
    info->channel = "content";
    info->version = v("2.0");
    info->previous = v("1.0");
    info->evidence = std::make_shared<RolloutEvidence>();
    info->row.id = "r-1";
    info->row.channel = "content";
    info->row.version = "2.0";
    info->row.previous = "1.0";
    info->row.plan_yaml = kPlan;
    info->row.salt = core::rollout_salt("r-1");
    info->row.status_json = boost::json::serialize(status_to_json(info->status));
    info->row.gate_json = "{}";
    info->row.created_at = clock_.t;
    info->row.updated_at = clock_.t;
    ASSERT_TRUE(store_->insert_rollout(info->row, store::AuditRow{0, clock_.t, "alice", "rollout.create", "rollout r-1", "test"}).ok());
    std::shared_ptr<const RolloutInfo> published = info;
    fleet_.update([&](Snapshot& s) { s.rollouts["r-1"] = published; });
    auto started = engine.transition("r-1", core::RolloutEvent::kStart, "alice", "started by alice", clock_.t);
    ASSERT_TRUE(started.ok()) << started.error().to_string();
  }

  // Every device checks in; those told to install 2.0 are exposed.
  void devices_check_in(bool run_new, bool healthy) {
    auto snap = fleet_.snapshot();
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(fleet_
                      .with_device("dev-" + std::to_string(i),
                                   [&](Device& d) {
                                     std::map<std::string, core::Version> versions{
                                         {"content", run_new ? v("2.0") : v("1.0")}};
                                     (void)fleet_.check_in(d, *snap, versions, "{}", healthy, clock_.t, 0);
                                     Fleet::note_offers(d, *snap, Fleet::answer(d, *snap, clock_.t), clock_.t);
                                   })
                      .ok());
    }
  }

  void crash(int device) {
    auto snap = fleet_.snapshot();
    DeviceEvent e;
    e.seq = 1;
    e.kind = core::DeviceEventKind::kCrashed;
    e.channel = "content";
    e.version = v("2.0");
    ASSERT_TRUE(fleet_
                    .with_device("dev-" + std::to_string(device),
                                 [&](Device& d) { (void)fleet_.record_events(d, *snap, {e}, clock_.t); })
                    .ok());
  }

  core::RolloutState state() const { return fleet_.snapshot()->rollouts.at("r-1")->status.state; }

  std::vector<std::string> stored_events() {
    std::vector<std::string> out;
    auto transitions = store_->load_transitions("r-1");
    EXPECT_TRUE(transitions.ok());
    if (transitions) {
      for (const auto& t : *transitions) out.push_back(t.event);
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::mutex store_mu_;
  testing::FakeClock clock_{kT0};
  Metrics metrics_;
  Fleet fleet_;
  std::vector<std::string> writes_;
};

TEST_F(EngineTest, ABadReleaseIsHaltedAndTheStoreHasTheHaltAndItsAuditEntry) {
  RolloutEngine engine = make_engine();
  start_rollout(engine);
  ASSERT_EQ(state(), core::RolloutState::kRunning);
  devices_check_in(false, true);  // offered 2.0
  for (int i = 0; i < 3; ++i) crash(i);  // more than max_failures: 2
  for (int t = 0; t < 3 && state() == core::RolloutState::kRunning; ++t) {
    clock_.t += core::kSecond;
    engine.tick(true);
  }
  EXPECT_EQ(state(), core::RolloutState::kHalted);
  EXPECT_EQ(stored_events(), (std::vector<std::string>{"start", "halt"}));
  auto audit = store_->load_audit(0, 100);
  ASSERT_TRUE(audit.ok());
  ASSERT_FALSE(audit->empty());
  EXPECT_EQ(audit->back().actor, "engine");
  EXPECT_EQ(audit->back().action, "rollout.halt");
  EXPECT_EQ(metrics_.transitions.load(), 2u);
}

TEST_F(EngineTest, AGoodReleaseCompletesAfterItsBakeAndBecomesTheBaseline) {
  RolloutEngine engine = make_engine();
  start_rollout(engine);
  devices_check_in(false, true);
  // Every second, every device reports 2.0 healthily.
  for (int t = 0; t < 120 && state() == core::RolloutState::kRunning; ++t) {
    clock_.t += core::kSecond;
    devices_check_in(true, true);
    engine.tick(true);
    if (clock_.t - kT0 < core::kMinute) {
      ASSERT_EQ(state(), core::RolloutState::kRunning) << "completed before its 1-minute bake, at " << t;
    }
  }
  EXPECT_EQ(state(), core::RolloutState::kCompleted);
  EXPECT_EQ(fleet_.snapshot()->channels.at("content").baseline, v("2.0"));
  EXPECT_EQ(stored_events(), (std::vector<std::string>{"start", "promote"}));
}

TEST_F(EngineTest, AServerThatDoesNotLeadCountsEvidenceButNeverDecides) {
  RolloutEngine engine = make_engine();
  start_rollout(engine);
  devices_check_in(false, true);
  for (int i = 0; i < 5; ++i) crash(i);
  for (int t = 0; t < 5; ++t) {
    clock_.t += core::kSecond;
    engine.tick(false);
  }
  EXPECT_EQ(state(), core::RolloutState::kRunning);
  EXPECT_EQ(stored_events(), (std::vector<std::string>{"start"}));
  // ...while its tally has the failures and the exposure.
  const auto tally = fleet_.snapshot()->rollouts.at("r-1")->tally();
  EXPECT_EQ(tally.exposed.failures, 5u);
  EXPECT_GT(tally.exposed.exposure_s, 0.0);
  clock_.t += core::kSecond;
  engine.tick(true);
  EXPECT_EQ(state(), core::RolloutState::kHalted);
}

TEST_F(EngineTest, SilenceFoundByATickIsCountedAndTheDevicesAreWritten) {
  RolloutEngine engine = make_engine();
  start_rollout(engine);
  devices_check_in(true, true);  // all run 2.0 and acknowledge it
  clock_.t += core::kSecond;
  engine.tick(true);
  writes_.clear();
  // Nobody is heard from again: 3 missed heartbeats of 10 s later, all are silent.
  for (int t = 0; t < 31; ++t) {
    clock_.t += core::kSecond;
    engine.tick(true);
  }
  EXPECT_EQ(writes_.size(), 10u);
  EXPECT_EQ(fleet_.snapshot()->rollouts.at("r-1")->tally().exposed_failures_of(core::FailureCause::kSilent), 10u);
  EXPECT_EQ(state(), core::RolloutState::kHalted);
}

}  // namespace
}  // namespace tranche::server
