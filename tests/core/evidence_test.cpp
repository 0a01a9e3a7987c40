// core/evidence.h: what counts as exposure, acknowledgement and failure.
#include "core/evidence.h"

#include <gtest/gtest.h>

#include <random>

namespace tranche::core {
namespace {

TEST(EvidenceCodec, EveryEventKindRoundTripsAndNothingElseParses) {
  for (std::size_t i = 0; i < kDeviceEventKindCount; ++i) {
    const auto kind = static_cast<DeviceEventKind>(i);
    EXPECT_EQ(parse_device_event_kind(to_string(kind)), kind);
  }
  EXPECT_EQ(to_string(DeviceEventKind::kCrashed), "crashed")
      << "the wire's word, not the agent's 'crash'";
  EXPECT_EQ(parse_device_event_kind("crash"), std::nullopt);
  EXPECT_EQ(parse_device_event_kind(""), std::nullopt);
  for (std::size_t i = 0; i < kFailureCauseCount; ++i) {
    const auto cause = static_cast<FailureCause>(i);
    EXPECT_EQ(parse_failure_cause(to_string(cause)), cause);
  }
  for (auto s : {Standing::kControl, Standing::kExposed, Standing::kAcknowledged,
                 Standing::kExposedFailed, Standing::kControlFailed}) {
    EXPECT_EQ(parse_standing(to_string(s)), s);
  }
}

TEST(EvidenceCodec, FailuresAndBans) {
  EXPECT_TRUE(is_failure(DeviceEventKind::kInstallFailed));
  EXPECT_TRUE(is_failure(DeviceEventKind::kCrashed));
  EXPECT_TRUE(is_failure(DeviceEventKind::kRolledBack));
  EXPECT_FALSE(is_failure(DeviceEventKind::kDownloadFailed))
      << "a transfer that failed says nothing of the release";
  EXPECT_FALSE(is_failure(DeviceEventKind::kInstalled));
  EXPECT_FALSE(is_failure(DeviceEventKind::kGoodbye));
  EXPECT_TRUE(bans_version(DeviceEventKind::kInstallFailed));
  EXPECT_TRUE(bans_version(DeviceEventKind::kRolledBack));
  EXPECT_FALSE(bans_version(DeviceEventKind::kCrashed))
      << "a crash may be retried within the start budget";
  EXPECT_EQ(fact_of(DeviceEventKind::kInstalled), Fact::kDownloading)
      << "installed starts the trial: not healthy yet";
}

TEST(Evidence, AFailureIsNeverAnAcknowledgement) {
  EvidenceTally t;
  Standing s = Standing::kControl;
  EXPECT_TRUE(record(s, Fact::kOffered, t));
  EXPECT_EQ(t.exposed_devices, 1u);
  EXPECT_EQ(t.acknowledged, 0u);
  EXPECT_TRUE(record(s, Fact::kInstallFailed, t));
  EXPECT_EQ(s, Standing::kExposedFailed);
  EXPECT_EQ(t.exposed.failures, 1u);
  EXPECT_EQ(t.acknowledged, 0u);
  // A failed device stays failed: a later healthy report changes nothing.
  EXPECT_FALSE(record(s, Fact::kRunsHealthy, t));
  EXPECT_EQ(t.acknowledged, 0u);
  EXPECT_EQ(t.exposed.failures, 1u);
}

TEST(Evidence, AnAcknowledgedDeviceThatFailsIsNoLongerAcknowledged) {
  EvidenceTally t;
  Standing s = Standing::kControl;
  record(s, Fact::kOffered, t);
  record(s, Fact::kRunsHealthy, t);
  EXPECT_EQ(t.acknowledged, 1u);
  record(s, Fact::kSilent, t);
  EXPECT_EQ(t.acknowledged, 0u);
  EXPECT_EQ(t.exposed.failures, 1u);
  EXPECT_EQ(t.exposed_failures_of(FailureCause::kSilent), 1u);
  EXPECT_EQ(t.exposed_devices, 1u) << "exposed once, failed or not";
}

TEST(Evidence, ControlFailuresCountOnceAndLeaveTheEvidence) {
  EvidenceTally t;
  Standing s = Standing::kControl;
  EXPECT_TRUE(record(s, Fact::kCrashed, t));
  EXPECT_EQ(t.control.failures, 1u);
  EXPECT_FALSE(record(s, Fact::kOffered, t)) << "each device fails once per rollout, then is out";
  EXPECT_FALSE(record(s, Fact::kSilent, t));
  EXPECT_EQ(t.control.failures, 1u);
  EXPECT_EQ(t.exposed_devices, 0u);
  EXPECT_EQ(accrual_group(s), Group::kNone);
}

TEST(Evidence, NotEvidence) {
  EvidenceTally t;
  Standing s = Standing::kControl;
  for (Fact f : {Fact::kDownloading, Fact::kDownloadFailed, Fact::kGoodbye}) {
    EXPECT_FALSE(record(s, f, t));
  }
  EXPECT_EQ(t, EvidenceTally{});
}

TEST(Evidence, RunningItHealthilyWithoutAnOfferIsExposureToo) {
  EvidenceTally t;
  Standing s = Standing::kControl;
  EXPECT_TRUE(record(s, Fact::kRunsHealthy, t));
  EXPECT_EQ(s, Standing::kAcknowledged);
  EXPECT_EQ(t.exposed_devices, 1u);
  EXPECT_EQ(t.acknowledged, 1u);
}

TEST(Evidence, AccrualPerTickIncludesDevicesThatFailedInTheInterval) {
  EvidenceTally t;
  Standing a = Standing::kControl;
  Standing b = Standing::kControl;
  record(a, Fact::kOffered, t);
  record(b, Fact::kOffered, t);
  record(b, Fact::kCrashed, t);  // failed during the interval: at risk until then
  accrue(t, 1, 10, 60 * kSecond);
  EXPECT_DOUBLE_EQ(t.exposed.exposure_s, 2 * 60.0);
  EXPECT_DOUBLE_EQ(t.control.exposure_s, 10 * 60.0);
  accrue(t, 1, 10, 60 * kSecond);
  EXPECT_DOUBLE_EQ(t.exposed.exposure_s, 3 * 60.0) << "only in the interval it failed in";
  // No interval: the failures wait for the next one.
  Standing c = Standing::kControl;
  record(c, Fact::kSilent, t);
  accrue(t, 0, 0, 0);
  EXPECT_EQ(t.control_failed_since_accrual, 1u);
}

// Property: whatever order facts arrive in, the tally is the sum of the
// standings — each device counted once as exposed, at most once as failing, and
// acknowledged only while it has not failed.
TEST(Evidence, TheTallyIsTheSumOfTheStandings) {
  std::mt19937_64 rng(11);
  constexpr Fact kFacts[] = {Fact::kOffered,       Fact::kDownloading,    Fact::kRunsHealthy,
                             Fact::kInstallFailed, Fact::kDownloadFailed, Fact::kCrashed,
                             Fact::kFellBack,      Fact::kSilent,         Fact::kGoodbye};
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<Standing> devices(1 + rng() % 50, Standing::kControl);
    EvidenceTally t;
    for (int step = 0; step < 500; ++step) {
      record(devices[rng() % devices.size()], kFacts[rng() % std::size(kFacts)], t);
    }
    std::uint64_t exposed = 0, acknowledged = 0, exposed_failed = 0, control_failed = 0;
    for (Standing s : devices) {
      exposed += is_exposed(s);
      acknowledged += s == Standing::kAcknowledged;
      exposed_failed += s == Standing::kExposedFailed;
      control_failed += s == Standing::kControlFailed;
    }
    ASSERT_EQ(t.exposed_devices, exposed) << "seed 11 trial " << trial;
    ASSERT_EQ(t.acknowledged, acknowledged) << "seed 11 trial " << trial;
    ASSERT_EQ(t.exposed.failures, exposed_failed) << "seed 11 trial " << trial;
    ASSERT_EQ(t.control.failures, control_failed) << "seed 11 trial " << trial;
    std::uint64_t by_cause = 0;
    for (auto n : t.exposed_by_cause) by_cause += n;
    ASSERT_EQ(by_cause, exposed_failed);
  }
}

}  // namespace
}  // namespace tranche::core
