// Which devices a server holds when several share one store
// (server/membership.h), in process: a real SQLite store standing in for the
// shared one (the store contract holds on both backends), a Fleet, a fake clock.
// What a fleet relies on: a wrong secret takes nothing; a device another server
// took stops counting here; a dead server's devices are taken so their silence
// is still judged; memory keeps only what this server needs.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "server/membership.h"
#include "store/store.h"
#include "tests/server/fake_clock.h"

namespace tranche::server {
namespace {

using core::TimeMs;

constexpr TimeMs kT0 = 1'800'000'000'000;


class MembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tranche-membership-test-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = store::open_store("sqlite:" + (dir_ / "tranche.db").string());
    ASSERT_TRUE(store.ok()) << store.error().to_string();
    store_ = std::move(*store);
    for (const char* id : {"d-1", "d-2", "d-3"}) {
      ASSERT_TRUE(store_->insert_device(store::DeviceRow{id, "t", std::string("hash-of-") + id, "{}", 0, kT0}).ok());
    }
    ASSERT_TRUE(store_->beat_server("s-1", kT0).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Membership make() {
    return Membership(Membership::Ports{fleet_, *store_, store_mu_, clock_,
                                        [this](const std::string& id) { return unwritten_.count(id) > 0; }},
                      Membership::Settings{"s-1", core::kSecond, 600 * core::kSecond, 60 * core::kSecond});
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::mutex store_mu_;
  testing::FakeClock clock_{kT0};
  Fleet fleet_;
  std::set<std::string> unwritten_;
};

TEST_F(MembershipTest, AFirstRequestClaimsTheDeviceOnlyWithItsOwnToken) {
  Membership m = make();
  auto wrong = m.ensure_owned("d-1", "hash-of-someone-else");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, core::ErrorCode::kNotFound);
  EXPECT_FALSE(fleet_.owns("d-1"));
  auto claims = store_->load_claims(0, 10);
  ASSERT_TRUE(claims.ok());
  EXPECT_TRUE(claims->empty()) << "a wrong secret moves nothing";

  ASSERT_TRUE(m.ensure_owned("d-1", "hash-of-d-1").ok());
  EXPECT_TRUE(fleet_.owns("d-1"));
  claims = store_->load_claims(0, 10);
  ASSERT_TRUE(claims.ok());
  ASSERT_EQ(claims->size(), 1u);
  EXPECT_EQ((*claims)[0].owner, "s-1");
  EXPECT_EQ(fleet_.device_count(), 1u) << "only what it serves is held";
}

TEST_F(MembershipTest, ADeviceAnotherServerTookStopsCountingHereAndLeavesMemory) {
  Membership m = make();
  ASSERT_TRUE(m.ensure_owned("d-1", "hash-of-d-1").ok());
  clock_.t += core::kSecond;
  ASSERT_TRUE(store_->claim_device("d-1", "s-2", clock_.t, {}).ok());
  m.take_claims();
  EXPECT_FALSE(fleet_.owns("d-1")) << "s-2 counts it now";
  clock_.t += 10 * core::kSecond;
  m.evict_if_due();
  EXPECT_EQ(fleet_.device_count(), 0u);
  // Its next request here takes it back.
  ASSERT_TRUE(m.ensure_owned("d-1", "hash-of-d-1").ok());
  EXPECT_TRUE(fleet_.owns("d-1"));
}

TEST_F(MembershipTest, TheDevicesOfAStoppedServerAreTakenSoTheirSilenceIsJudged) {
  Membership m = make();
  ASSERT_TRUE(store_->beat_server("s-dead", kT0).ok());
  ASSERT_TRUE(store_->claim_device("d-2", "s-dead", kT0, {}).ok());
  ASSERT_TRUE(store_->claim_device("d-3", "s-dead", kT0, {}).ok());
  clock_.t += core::kSecond;
  m.adopt_orphans();
  EXPECT_FALSE(fleet_.owns("d-2")) << "s-dead beat a second ago: alive";
  clock_.t += core::kMinute;
  ASSERT_TRUE(store_->beat_server("s-1", clock_.t).ok());
  m.adopt_orphans();
  EXPECT_TRUE(fleet_.owns("d-2"));
  EXPECT_TRUE(fleet_.owns("d-3"));
}

TEST_F(MembershipTest, AnIdleDeviceLeavesMemoryOnlyOnceItsStateIsWritten) {
  Membership m = make();
  ASSERT_TRUE(m.ensure_owned("d-1", "hash-of-d-1").ok());
  (void)fleet_.with_device("d-1", [&](Device& d) { d.last_seen = clock_.t; });
  unwritten_.insert("d-1");
  clock_.t += 2 * core::kMinute;  // idle past forget_idle (1 min), no live rollout
  m.evict_if_due();
  EXPECT_TRUE(fleet_.owns("d-1")) << "its state write waits";
  unwritten_.clear();
  clock_.t += 10 * core::kSecond;
  m.evict_if_due();
  EXPECT_EQ(fleet_.device_count(), 0u);
}

}  // namespace
}  // namespace tranche::server
