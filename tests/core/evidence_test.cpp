// core/evidence.h: what counts as exposure, acknowledgement and failure.
#include "core/evidence.h"

#include "core/agent_machine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

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
  EXPECT_FALSE(is_failure(DeviceEventKind::kOfferRefused))
      << "a refused offer says why a device does not move, nothing of the release";
  EXPECT_FALSE(bans_version(DeviceEventKind::kOfferRefused));
  EXPECT_EQ(failure_cause_of(fact_of(DeviceEventKind::kOfferRefused)), FailureCause::kNone);
  EXPECT_EQ(device_event_of(AgentAction::Report::kRejected), DeviceEventKind::kOfferRefused);
  EXPECT_TRUE(bans_version(DeviceEventKind::kInstallFailed));
  EXPECT_TRUE(bans_version(DeviceEventKind::kRolledBack));
  EXPECT_FALSE(bans_version(DeviceEventKind::kCrashed))
      << "a crash may be retried within the start budget";
  EXPECT_EQ(fact_of(DeviceEventKind::kInstalled), Fact::kDownloading)
      << "installed starts the trial: not healthy yet";
  for (auto progress : {DeviceEventKind::kDownloading, DeviceEventKind::kInstalling}) {
    EXPECT_FALSE(is_failure(progress)) << to_string(progress);
    EXPECT_FALSE(bans_version(progress)) << to_string(progress);
    EXPECT_EQ(fact_of(progress), Fact::kDownloading) << to_string(progress) << ": progress, not evidence";
  }
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
  for (Fact f : {Fact::kDownloading, Fact::kDownloadFailed, Fact::kGoodbye, Fact::kOfferRefused}) {
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

// Several servers, one store: each server records the facts it hears on its own
// view of the device and writes its standing; the store keeps merge_standing of
// every write, in any order. A server takes the device over from the store's
// standing (claim_device), so its view is never behind what was written — and
// then the stored rows count what one server hearing every fact would count.
TEST(Evidence, StoredStandingsMergedFromSeveralServersCountLikeOneServer) {
  std::mt19937_64 rng(23);
  constexpr Fact kFacts[] = {Fact::kOffered, Fact::kRunsHealthy, Fact::kCrashed, Fact::kSilent,
                             Fact::kGoodbye, Fact::kInstallFailed};
  for (int trial = 0; trial < 500; ++trial) {
    EvidenceTally truth;
    EvidenceTally from_rows;
    const int devices = 1 + static_cast<int>(rng() % 30);
    for (int d = 0; d < devices; ++d) {
      Standing one_server = Standing::kControl;
      Standing stored = Standing::kControl;
      std::vector<Standing> writes;  // every server's writes, flushed in any order
      Standing view = stored;        // the current owner's view
      const int steps = static_cast<int>(rng() % 8);
      for (int step = 0; step < steps; ++step) {
        if (rng() % 3 == 0) {
          // Handoff: what the owner wrote is stored; the next owner reads it.
          for (Standing w : writes) stored = merge_standing(stored, w);
          writes.clear();
          view = stored;
        }
        const Fact f = kFacts[rng() % std::size(kFacts)];
        record(one_server, f, truth);
        EvidenceTally scratch;
        if (record(view, f, scratch)) writes.push_back(view);
      }
      std::shuffle(writes.begin(), writes.end(), rng);
      for (Standing w : writes) stored = merge_standing(stored, w);
      ASSERT_EQ(stored, one_server) << "seed 23 trial " << trial << " device " << d;
      count_standing(from_rows, stored, FailureCause::kCrashed, 1);
    }
    ASSERT_EQ(from_rows.acknowledged, truth.acknowledged);
    ASSERT_EQ(from_rows.exposed_devices, truth.exposed_devices);
    ASSERT_EQ(from_rows.exposed.failures, truth.exposed.failures);
    ASSERT_EQ(from_rows.control.failures, truth.control.failures);
  }
}

TEST(Evidence, MergeNeverMovesBackAndKeepsTheFirstFailure) {
  EXPECT_EQ(merge_standing(Standing::kAcknowledged, Standing::kExposed), Standing::kAcknowledged);
  EXPECT_EQ(merge_standing(Standing::kExposedFailed, Standing::kAcknowledged), Standing::kExposedFailed);
  EXPECT_EQ(merge_standing(Standing::kControlFailed, Standing::kExposedFailed), Standing::kControlFailed);
  EXPECT_EQ(merge_standing(Standing::kExposed, Standing::kControlFailed), Standing::kExposedFailed);
  EXPECT_EQ(merge_standing(Standing::kControl, Standing::kControlFailed), Standing::kControlFailed);
  EXPECT_EQ(merge_standing(Standing::kControl, Standing::kAcknowledged), Standing::kAcknowledged);
}

}  // namespace
}  // namespace tranche::core
