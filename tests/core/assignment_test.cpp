#include "core/assignment.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/cohort.h"

namespace tranche::core {
namespace {

Version ver(std::string_view text) {
  Result<Version> v = Version::parse(text);
  if (!v.ok()) ADD_FAILURE() << "bad version in test: " << text;
  return std::move(v).value();
}

Ppm pct(std::string_view text) {
  Result<Ppm> p = Ppm::parse(text);
  if (!p.ok()) ADD_FAILURE() << "bad share in test: " << text;
  return *p;
}

std::string str(const std::optional<Version>& v) {
  return v ? v->to_string() : "(keep)";
}

// Milliseconds since the epoch of a UTC civil time (days-from-civil).
TimeMs utc(int y, unsigned m, unsigned d, int hour = 0, int minute = 0) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = std::int64_t{era} * 146097 + std::int64_t{doe} - 719468;
  return days * kDay + std::int64_t{hour} * kHour + std::int64_t{minute} * kMinute;
}

Stage stage(std::string name, std::string_view share, bool admits_critical = false,
            Selector selector = {}) {
  Stage s;
  s.name = std::move(name);
  s.percent = pct(share);
  s.admits_critical = admits_critical;
  s.selector = std::move(selector);
  return s;
}

// The reference rings: 0.1%, 1%, 10%, 50%, 100% (only the last takes critical
// devices).
Plan rings(OnFailure on_failure = OnFailure::kRollback) {
  Plan plan;
  plan.name = "rings";
  plan.stages = {stage("canary", "0.1%"), stage("early", "1%"), stage("broad", "10%"),
                 stage("half", "50%"), stage("all", "100%", true)};
  plan.on_failure = on_failure;
  return plan;
}

constexpr std::uint32_t kStageAll = 4;

RolloutView rollout_of(const Plan& plan, RolloutState state, std::uint32_t stage_index,
                       std::string_view version = "7.11.0",
                       std::optional<Version> previous = std::nullopt) {
  RolloutStatus status;
  status.state = state;
  status.stage = stage_index;
  return RolloutView{.id = "r-1",
                     .salt = rollout_salt("r-1"),
                     .version = ver(version),
                     .previous = previous ? previous : std::optional<Version>(ver("7.10.2")),
                     .plan = &plan,
                     .status = status,
                     .eligible_devices = 1'000'000};
}

// A device id whose bucket in `salt` lies in [lo, hi).
std::string device_in_buckets(std::uint64_t salt, std::uint32_t lo, std::uint32_t hi) {
  for (int i = 0; i < 10'000'000; ++i) {
    std::string id = "dev-" + std::to_string(i);
    const std::uint32_t b = cohort_bucket(id, salt);
    if (b >= lo && b < hi) return id;
  }
  ADD_FAILURE() << "no device id with a bucket in [" << lo << ", " << hi << ")";
  return "none";
}

DeviceView device(std::string id, std::optional<Version> current = std::nullopt) {
  DeviceView d;
  d.id = std::move(id);
  d.current = std::move(current);
  return d;
}

const std::string kSensor = "sensor";
const TimeMs kFriday = utc(2024, 7, 19, 4, 9);  // 04:09 UTC, Friday 19 July 2024

// --- tenant pins -------------------------------------------------------------------

struct ChannelCase {
  std::string channel;
  std::vector<std::string> releases;  // oldest first: N-2, N-1, N
};

// Printed by name: without it GoogleTest dumps the bytes, and CTest's test names
// (which carry the parameter) become unreadable.
void PrintTo(const ChannelCase& c, std::ostream* os) { *os << c.channel; }

class PinTest : public ::testing::TestWithParam<ChannelCase> {
 protected:
  ChannelReleases releases() const {
    ChannelReleases r;
    for (const std::string& v : GetParam().releases) r.versions.push_back(ver(v));
    return r;
  }
  const std::string& channel() const { return GetParam().channel; }
  const std::string& n() const { return GetParam().releases[2]; }
  const std::string& n1() const { return GetParam().releases[1]; }
  const std::string& n2() const { return GetParam().releases[0]; }

  TenantPolicy pinned(Pin::Kind kind, std::optional<std::string> exact = std::nullopt) const {
    TenantPolicy policy;
    Pin pin;
    pin.kind = kind;
    if (exact) pin.exact = ver(*exact);
    policy.pins[channel()] = pin;
    return policy;
  }

  // N everywhere: its rollout completed, and it is the baseline.
  Assignment assign_completed(const TenantPolicy& policy, const DeviceView& d) const {
    const Plan plan = rings();
    const RolloutView r = rollout_of(plan, RolloutState::kCompleted, kStageAll, n(), ver(n1()));
    return assign(d, policy, releases(), ver(n1()), &r, channel(), kFriday);
  }
};

TEST_P(PinTest, PinToLatestFollowsTheRollout) {
  const Assignment a = assign_completed(pinned(Pin::Kind::kLatest), device("d1", ver(n1())));
  EXPECT_EQ(str(a.desired), n());
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kInStage);
}

TEST_P(PinTest, PinToPreviousHoldsTheChannelAtNMinus1) {
  const Assignment a = assign_completed(pinned(Pin::Kind::kPrevious), device("d1", ver(n2())));
  EXPECT_EQ(str(a.desired), n1());
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kPinned);
  EXPECT_EQ(a.reason.text, "pinned to N-1 (" + n1() + ") by tenant policy");
}

TEST_P(PinTest, PinToPreviousKeepsADeviceThatRunsIt) {
  const Assignment a = assign_completed(pinned(Pin::Kind::kPrevious), device("d1", ver(n1())));
  EXPECT_EQ(str(a.desired), n1());
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kPinned);
}

TEST_P(PinTest, PinToPreviousBeatsARunningStageThatAdmitsTheDevice) {
  const Plan plan = rings();
  const RolloutView r = rollout_of(plan, RolloutState::kRunning, kStageAll, n(), ver(n1()));
  const Assignment a = assign(device("d1", ver(n1())), pinned(Pin::Kind::kPrevious), releases(),
                              ver(n1()), &r, channel(), kFriday);
  EXPECT_EQ(str(a.desired), n1());
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kPinned);
}

TEST_P(PinTest, ExactPinChoosesThatVersion) {
  const Assignment a = assign_completed(pinned(Pin::Kind::kExact, n2()), device("d1", ver(n())));
  EXPECT_EQ(str(a.desired), n2());
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kPinned);
  EXPECT_EQ(a.reason.text, "pinned to " + n2() + " by tenant policy");
}

TEST_P(PinTest, APinOnAnotherChannelDoesNotApply) {
  TenantPolicy policy;
  policy.pins["some-other-channel"] = Pin{Pin::Kind::kPrevious, std::nullopt};
  const Assignment a = assign_completed(policy, device("d1", ver(n1())));
  EXPECT_EQ(str(a.desired), n());
}

INSTANTIATE_TEST_SUITE_P(
    SensorAndContent, PinTest,
    ::testing::Values(ChannelCase{"sensor", {"7.10.2", "7.11.0", "7.11.1"}},
                      // Content ships several times a day; in 2024 N-1 pins did not
                      // cover it.
                      ChannelCase{"content",
                                  {"291.2024071801", "291.2024071802", "291.2024071904"}}),
    [](const ::testing::TestParamInfo<ChannelCase>& case_info) { return case_info.param.channel; });

TEST(Assign, PinToPreviousWithOnlyOneReleaseKeepsWhatTheDeviceRuns) {
  TenantPolicy policy;
  policy.pins["content"] = Pin{Pin::Kind::kPrevious, std::nullopt};
  ChannelReleases releases{{ver("291.1")}};
  const Assignment a =
      assign(device("d1", ver("291.1")), policy, releases, ver("291.1"), nullptr, "content", 0);
  EXPECT_FALSE(a.desired.has_value());
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kPinned);
}

// --- maintenance windows -------------------------------------------------------------

MaintenanceWindow window(std::uint16_t start_hour, std::uint16_t end_hour,
                         std::uint8_t days = 0x7f) {
  MaintenanceWindow w;
  w.days = days;
  w.start_minute = static_cast<std::uint16_t>(start_hour * 60);
  w.end_minute = static_cast<std::uint16_t>(end_hour * 60);
  return w;
}

constexpr std::int32_t kTokyo = 9 * 60;
constexpr std::int32_t kNewYork = -5 * 60;
constexpr std::uint8_t kFridayBit = 1u << 4;

TEST(Windows, SameInstantIsInsideAtPlus9AndOutsideAtMinus5) {
  const std::vector<MaintenanceWindow> nightly = {window(1, 5)};
  const TimeMs now = utc(2024, 7, 19, 18, 0);  // Tokyo: Sat 03:00; New York: Fri 13:00

  const WindowCheck tokyo = check_windows(nightly, kTokyo, now);
  EXPECT_TRUE(tokyo.open);
  EXPECT_FALSE(tokyo.next_open.has_value());

  const WindowCheck new_york = check_windows(nightly, kNewYork, now);
  EXPECT_FALSE(new_york.open);
  ASSERT_TRUE(new_york.next_open.has_value());
  EXPECT_EQ(*new_york.next_open, utc(2024, 7, 20, 6, 0));  // Sat 01:00 in New York
}

TEST(Windows, AWindowAcrossMidnightBelongsToTheDayItStarts) {
  const std::vector<MaintenanceWindow> friday_night = {window(22, 2, kFridayBit)};

  EXPECT_TRUE(check_windows(friday_night, 0, utc(2024, 7, 19, 23, 0)).open);   // Fri 23:00
  EXPECT_TRUE(check_windows(friday_night, 0, utc(2024, 7, 20, 1, 30)).open);   // Sat 01:30
  EXPECT_FALSE(check_windows(friday_night, 0, utc(2024, 7, 20, 23, 0)).open);  // Sat 23:00

  // Friday 01:00 is the tail of Thursday night, and Thursday is not allowed.
  const WindowCheck early_friday = check_windows(friday_night, 0, utc(2024, 7, 19, 1, 0));
  EXPECT_FALSE(early_friday.open);
  EXPECT_EQ(early_friday.next_open, utc(2024, 7, 19, 22, 0));

  // Just after it closes, the next one is a week later.
  const WindowCheck closed = check_windows(friday_night, 0, utc(2024, 7, 20, 2, 0));
  EXPECT_FALSE(closed.open);
  EXPECT_EQ(closed.next_open, utc(2024, 7, 26, 22, 0));
}

TEST(Windows, DaysCountFromMondayInLocalTime) {
  // Thursday 1 January 1970: bit 3.
  EXPECT_TRUE(check_windows({window(0, 24, 1u << 3)}, 0, 0).open);
  EXPECT_FALSE(check_windows({window(0, 24, 1u << 4)}, 0, 0).open);

  // Weekdays only. Sunday 21 July 2024 15:00 UTC is already Monday 00:00 in Tokyo.
  const std::vector<MaintenanceWindow> weekdays = {window(0, 24, 0x1f)};
  EXPECT_FALSE(check_windows(weekdays, 0, utc(2024, 7, 21, 15, 0)).open);
  EXPECT_TRUE(check_windows(weekdays, kTokyo, utc(2024, 7, 21, 15, 0)).open);
  const WindowCheck saturday = check_windows(weekdays, kTokyo, utc(2024, 7, 20, 3, 0));
  EXPECT_FALSE(saturday.open);
  EXPECT_EQ(saturday.next_open, utc(2024, 7, 21, 15, 0));
}

TEST(Windows, NoWindowsMeansAnyTime) {
  EXPECT_TRUE(check_windows({}, kNewYork, kFriday).open);
}

TEST(Windows, TheEndsOfTheClockRangeNeitherWrapNorOpenInThePast) {
  // Run under UBSan (the asan-ubsan preset): no signed overflow at the ends.
  MaintenanceWindow w;
  w.days = 0x7f;
  w.start_minute = 60;
  w.end_minute = 120;
  for (const TimeMs now : {kMaxTime, kMaxTime - 1, kMaxTime - kDay, kMinTime, kMinTime + kDay}) {
    for (const std::int32_t off : {-12 * 60, 0, 14 * 60}) {
      const WindowCheck c = check_windows({w}, off, now);
      if (c.open || !c.next_open) continue;
      EXPECT_GE(*c.next_open, now) << now << " " << off;  // never an opening in the past
    }
  }
}

TEST(Windows, NextOpenIsTheFirstOpenInstantWithinEightDays) {
  const unsigned seed = 20240719;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> minute(0, 24 * 60 - 1);
  std::uniform_int_distribution<int> mask(1, 0x7f);
  std::uniform_int_distribution<int> count(1, 3);
  std::uniform_int_distribution<int> offset(-12 * 60, 14 * 60);
  std::uniform_int_distribution<TimeMs> when(0, utc(2100, 1, 1));

  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<MaintenanceWindow> windows;
    for (int i = count(rng); i > 0; --i) {
      MaintenanceWindow w;
      w.days = static_cast<std::uint8_t>(mask(rng));
      w.start_minute = static_cast<std::uint16_t>(minute(rng));
      w.end_minute = static_cast<std::uint16_t>(minute(rng));
      if (w.start_minute == w.end_minute) continue;
      windows.push_back(w);
    }
    if (windows.empty()) continue;
    const std::int32_t off = offset(rng);
    const TimeMs now = when(rng);
    const WindowCheck check = check_windows(windows, off, now);
    if (check.open) continue;
    ASSERT_TRUE(check.next_open.has_value()) << "seed " << seed << " trial " << trial;
    const TimeMs next = *check.next_open;
    EXPECT_GT(next, now) << "seed " << seed << " trial " << trial;
    EXPECT_LE(next, now + 8 * kDay) << "seed " << seed << " trial " << trial;
    EXPECT_TRUE(check_windows(windows, off, next).open) << "seed " << seed << " trial " << trial;
    EXPECT_FALSE(check_windows(windows, off, next - 1).open)
        << "seed " << seed << " trial " << trial;
  }
}

TEST(Assign, AnUpgradeOutsideTheWindowWaitsForItToOpen) {
  TenantPolicy policy;
  policy.windows = {window(1, 5)};
  const Plan plan = rings();
  const RolloutView r = rollout_of(plan, RolloutState::kCompleted, kStageAll);
  const ChannelReleases releases{{ver("7.10.2"), ver("7.11.0")}};
  const TimeMs now = utc(2024, 7, 19, 18, 0);

  DeviceView ny = device("d-ny", ver("7.10.2"));
  ny.utc_offset_minutes = kNewYork;
  const Assignment waits = assign(ny, policy, releases, ver("7.10.2"), &r, kSensor, now);
  EXPECT_FALSE(waits.desired.has_value());
  EXPECT_EQ(waits.reason.code, AssignmentReason::Code::kOutsideWindow);
  EXPECT_EQ(waits.reason.text, "outside maintenance window; opens at 2024-07-20 06:00 UTC");
  EXPECT_EQ(waits.ask_again_at, utc(2024, 7, 20, 6, 0));

  DeviceView tokyo = device("d-tokyo", ver("7.10.2"));
  tokyo.utc_offset_minutes = kTokyo;
  const Assignment goes = assign(tokyo, policy, releases, ver("7.10.2"), &r, kSensor, now);
  EXPECT_EQ(str(goes.desired), "7.11.0");
  EXPECT_FALSE(goes.ask_again_at.has_value());

  // A device that already runs what it should is not "deferred": nothing changes.
  DeviceView current = device("d-current", ver("7.11.0"));
  current.utc_offset_minutes = kNewYork;
  const Assignment stays = assign(current, policy, releases, ver("7.10.2"), &r, kSensor, now);
  EXPECT_EQ(str(stays.desired), "7.11.0");
  EXPECT_EQ(stays.reason.code, AssignmentReason::Code::kInStage);
}

// --- rollout state -----------------------------------------------------------------

TEST(Assign, StageAdmitsDevicesBelowItsShareAndSaysSo) {
  const Plan plan = rings();
  const RolloutView r = rollout_of(plan, RolloutState::kRunning, 1);  // 'early', 1%
  const ChannelReleases releases{{ver("7.10.2"), ver("7.11.0")}};

  const std::string in_canary = device_in_buckets(r.salt, 0, 1000);
  const Assignment a =
      assign(device(in_canary, ver("7.10.2")), {}, releases, ver("7.10.2"), &r, kSensor, 0);
  EXPECT_EQ(str(a.desired), "7.11.0");
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kInStage);
  EXPECT_EQ(a.reason.text, "in stage 'canary' (bucket " +
                               std::to_string(cohort_bucket(in_canary, r.salt)) + " < 1000 ppm)");

  const std::string later = device_in_buckets(r.salt, 10'000, 100'000);
  const Assignment b =
      assign(device(later, ver("7.10.2")), {}, releases, ver("7.10.2"), &r, kSensor, 0);
  EXPECT_EQ(str(b.desired), "7.10.2");
  EXPECT_EQ(b.reason.code, AssignmentReason::Code::kNotYetInStage);
  EXPECT_EQ(b.reason.text, "not yet: bucket " + std::to_string(cohort_bucket(later, r.salt)) +
                               " is above stage 'early' share 1%");
}

TEST(Assign, CriticalDevicesGetTheReleaseOnlyInAStageThatAdmitsThem) {
  TenantPolicy policy;
  policy.critical.any_of["class"] = {"server"};
  policy.critical_selector_set = true;
  const Plan plan = rings();
  const ChannelReleases releases{{ver("7.10.2"), ver("7.11.0")}};
  const std::string id = device_in_buckets(rollout_salt("r-1"), 0, 1000);  // in 'canary'

  DeviceView server = device(id, ver("7.10.2"));
  server.tags["class"] = "server";
  DeviceView laptop = device(id, ver("7.10.2"));
  laptop.tags["class"] = "laptop";

  for (std::uint32_t k = 0; k < kStageAll; ++k) {
    const RolloutView r = rollout_of(plan, RolloutState::kRunning, k);
    const Assignment a = assign(server, policy, releases, ver("7.10.2"), &r, kSensor, 0);
    EXPECT_EQ(str(a.desired), "7.10.2") << "stage " << k;
    EXPECT_EQ(a.reason.code, AssignmentReason::Code::kCriticalWaits) << "stage " << k;
    EXPECT_EQ(a.reason.text, "critical devices wait for stage 'all'");
    // The same device, not critical, is in from the first ring.
    EXPECT_EQ(str(assign(laptop, policy, releases, ver("7.10.2"), &r, kSensor, 0).desired),
              "7.11.0");
  }
  const RolloutView last = rollout_of(plan, RolloutState::kRunning, kStageAll);
  const Assignment a = assign(server, policy, releases, ver("7.10.2"), &last, kSensor, 0);
  EXPECT_EQ(str(a.desired), "7.11.0");
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kInStage);
}

TEST(Assign, WithoutACriticalSelectorNoDeviceIsCritical) {
  TenantPolicy policy;  // critical selector left empty and unset
  const Plan plan = rings();
  const RolloutView r = rollout_of(plan, RolloutState::kRunning, 0);
  const std::string id = device_in_buckets(r.salt, 0, 1000);
  const Assignment a = assign(device(id), policy, {}, ver("7.10.2"), &r, kSensor, 0);
  EXPECT_EQ(str(a.desired), "7.11.0");
}

TEST(Assign, AStageSelectorLimitsWhoItTakes) {
  Plan plan = rings();
  Selector emea;
  emea.any_of["region"] = {"emea"};
  plan.stages[0].selector = emea;
  const RolloutView r = rollout_of(plan, RolloutState::kRunning, 0);
  const std::string id = device_in_buckets(r.salt, 0, 1000);

  DeviceView in_emea = device(id);
  in_emea.tags["region"] = "emea";
  DeviceView in_apac = device(id);
  in_apac.tags["region"] = "apac";

  EXPECT_EQ(str(assign(in_emea, {}, {}, ver("7.10.2"), &r, kSensor, 0).desired), "7.11.0");
  const Assignment a = assign(in_apac, {}, {}, ver("7.10.2"), &r, kSensor, 0);
  EXPECT_EQ(str(a.desired), "7.10.2");
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kSelectorExcludes);
}

TEST(Assign, RollbackGoesFirstEvenOutsideTheWindow) {
  TenantPolicy policy;
  policy.windows = {window(1, 5)};
  const ChannelReleases releases{{ver("7.10.2"), ver("7.11.0")}};
  const TimeMs now = utc(2024, 7, 19, 12, 0);  // outside 01:00-05:00 UTC
  ASSERT_FALSE(check_windows(policy.windows, 0, now).open);

  const Plan rollback_plan = rings(OnFailure::kRollback);
  for (RolloutState state :
       {RolloutState::kRollingBack, RolloutState::kRolledBack, RolloutState::kHalted}) {
    const RolloutView r = rollout_of(rollback_plan, state, 2);
    const Assignment a =
        assign(device("exposed", ver("7.11.0")), policy, releases, ver("7.10.2"), &r, kSensor, now);
    EXPECT_EQ(str(a.desired), "7.10.2") << to_string(state);
    EXPECT_EQ(a.reason.code, AssignmentReason::Code::kRolledBack) << to_string(state);
    EXPECT_EQ(a.reason.text, "rollout rolled back: back to 7.10.2");
    EXPECT_FALSE(a.ask_again_at.has_value());
    // The version is marked bad: an agent leaves it at once for its other slot.
    EXPECT_EQ(str(a.revoked), "7.11.0") << to_string(state);

    // A device that never got it stays where it is, and hears it is bad too.
    const Assignment b = assign(device("unexposed", ver("7.10.2")), policy, releases, ver("7.10.2"),
                                &r, kSensor, now);
    EXPECT_EQ(str(b.desired), "7.10.2") << to_string(state);
    EXPECT_EQ(str(b.revoked), "7.11.0") << to_string(state);
  }
  // A halt under on_failure: halt stops the rollout but does not condemn the
  // version (the operator decides); neither does a running rollout.
  const Plan halt_plan = rings(OnFailure::kHalt);
  for (RolloutState state : {RolloutState::kHalted, RolloutState::kRunning, RolloutState::kPaused}) {
    const RolloutView r = rollout_of(halt_plan, state, 2);
    const Assignment a =
        assign(device("exposed", ver("7.11.0")), policy, releases, ver("7.10.2"), &r, kSensor, now);
    EXPECT_FALSE(a.revoked.has_value()) << to_string(state);
  }

  // The same window does hold back an upgrade.
  const RolloutView completed = rollout_of(rollback_plan, RolloutState::kCompleted, kStageAll);
  const Assignment c = assign(device("exposed", ver("7.10.2")), policy, releases, ver("7.10.2"),
                              &completed, kSensor, now);
  EXPECT_EQ(c.reason.code, AssignmentReason::Code::kOutsideWindow);
}

TEST(Assign, RollbackBeatsAPinToTheRolledBackVersion) {
  TenantPolicy policy;
  policy.pins[kSensor] = Pin{Pin::Kind::kExact, ver("7.11.0")};
  const Plan plan = rings();
  const RolloutView r = rollout_of(plan, RolloutState::kRollingBack, 1);
  const Assignment a = assign(device("d", ver("7.11.0")), policy, {{ver("7.10.2"), ver("7.11.0")}},
                              ver("7.10.2"), &r, kSensor, 0);
  EXPECT_EQ(str(a.desired), "7.10.2");
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kRolledBack);
}

TEST(Assign, AVersionThatFailedOnTheDeviceIsNeverDesiredAgain) {
  const ChannelReleases releases{{ver("7.10.2"), ver("7.11.0")}};
  const Plan plan = rings(OnFailure::kHalt);
  DeviceView d = device(device_in_buckets(rollout_salt("r-1"), 0, 1000), ver("7.10.2"));
  d.failed = {ver("7.11.0")};

  for (RolloutState state :
       {RolloutState::kPending, RolloutState::kRunning, RolloutState::kPaused,
        RolloutState::kHalted, RolloutState::kRollingBack, RolloutState::kRolledBack,
        RolloutState::kCompleted, RolloutState::kAborted}) {
    for (std::uint32_t k = 0; k <= kStageAll; ++k) {
      const RolloutView r = rollout_of(plan, state, k);
      const Assignment a = assign(d, {}, releases, ver("7.10.2"), &r, kSensor, 0);
      EXPECT_EQ(str(a.desired), "7.10.2") << to_string(state) << " stage " << k;
    }
  }
  const RolloutView done = rollout_of(plan, RolloutState::kCompleted, kStageAll);
  const Assignment a = assign(d, {}, releases, ver("7.10.2"), &done, kSensor, 0);
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kFailedHere);
  EXPECT_EQ(a.reason.text, "7.11.0 failed on this device");

  // Not even a tenant pin brings it back.
  TenantPolicy pinned;
  pinned.pins[kSensor] = Pin{Pin::Kind::kExact, ver("7.11.0")};
  const Assignment p = assign(d, pinned, releases, ver("7.10.2"), &done, kSensor, 0);
  EXPECT_FALSE(p.desired.has_value());
  EXPECT_EQ(p.reason.code, AssignmentReason::Code::kFailedHere);
}

TEST(Assign, LeavingAFailedVersionDoesNotWaitForTheWindow) {
  TenantPolicy policy;
  policy.windows = {window(1, 5)};
  const Plan plan = rings();
  const RolloutView r = rollout_of(plan, RolloutState::kRunning, kStageAll);
  DeviceView d = device("d", ver("7.11.0"));
  d.failed = {ver("7.11.0")};
  const Assignment a = assign(d, policy, {{ver("7.10.2"), ver("7.11.0")}}, ver("7.10.2"), &r,
                              kSensor, utc(2024, 7, 19, 12, 0));
  EXPECT_EQ(str(a.desired), "7.10.2");
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kFailedHere);
}

TEST(Assign, AStoppedRolloutAdmitsNoNewDeviceButKeepsExposedOnes) {
  const ChannelReleases releases{{ver("7.10.2"), ver("7.11.0")}};
  const Plan plan = rings(OnFailure::kHalt);
  const std::string id = device_in_buckets(rollout_salt("r-1"), 0, 100'000);  // in at 'broad'

  // Running, the device would be in.
  const RolloutView running = rollout_of(plan, RolloutState::kRunning, 2);
  ASSERT_EQ(str(assign(device(id, ver("7.10.2")), {}, releases, ver("7.10.2"), &running, kSensor, 0)
                    .desired),
            "7.11.0");

  for (RolloutState state :
       {RolloutState::kPaused, RolloutState::kHalted, RolloutState::kAborted}) {
    const RolloutView r = rollout_of(plan, state, 2);
    const Assignment fresh =
        assign(device(id, ver("7.10.2")), {}, releases, ver("7.10.2"), &r, kSensor, 0);
    EXPECT_EQ(str(fresh.desired), "7.10.2") << to_string(state);
    EXPECT_EQ(fresh.reason.code, AssignmentReason::Code::kPaused) << to_string(state);

    const Assignment exposed =
        assign(device(id, ver("7.11.0")), {}, releases, ver("7.10.2"), &r, kSensor, 0);
    EXPECT_EQ(str(exposed.desired), "7.11.0") << to_string(state);
    EXPECT_EQ(exposed.reason.code, AssignmentReason::Code::kPaused) << to_string(state);
  }
  const RolloutView paused = rollout_of(plan, RolloutState::kPaused, 2);
  EXPECT_EQ(assign(device(id, ver("7.10.2")), {}, releases, ver("7.10.2"), &paused, kSensor, 0)
                .reason.text,
            "rollout paused: no new devices; runs 7.10.2");
}

TEST(Assign, ADeviceInAtStageKIsInAtStageKPlus1) {
  // Selectors, critical devices and a min_devices floor all in play.
  Plan plan = rings();
  plan.stages[0].min_devices = 50;  // of 10,000 eligible: the canary is really 0.5%
  plan.stages[0].selector.any_of["region"] = {"emea", "apac"};
  plan.stages[2].selector.any_of["class"] = {"laptop"};
  TenantPolicy policy;
  policy.critical.any_of["class"] = {"server"};
  policy.critical_selector_set = true;
  const std::vector<std::string> classes = {"server", "desktop", "laptop"};
  const std::vector<std::string> regions = {"americas", "emea", "apac"};

  std::vector<std::size_t> in_count(plan.stages.size(), 0);
  constexpr int kDevices = 5000;
  for (int i = 0; i < kDevices; ++i) {
    DeviceView d = device("fleet-" + std::to_string(i), ver("7.10.2"));
    d.tags["class"] = classes[static_cast<std::size_t>(i) % classes.size()];
    d.tags["region"] = regions[static_cast<std::size_t>(i / 3) % regions.size()];
    bool was_in = false;
    for (std::uint32_t k = 0; k < plan.stages.size(); ++k) {
      RolloutView r = rollout_of(plan, RolloutState::kRunning, k);
      r.eligible_devices = 10'000;
      const Assignment a = assign(d, policy, {}, ver("7.10.2"), &r, kSensor, 0);
      const bool in = a.desired == ver("7.11.0");
      EXPECT_EQ(in, a.reason.code == AssignmentReason::Code::kInStage);
      if (was_in) {
        EXPECT_TRUE(in) << d.id << " dropped out at stage " << k;
      }
      was_in = in;
      if (in) ++in_count[k];
    }
    EXPECT_TRUE(was_in) << d.id << " is not in at the last stage";
  }
  EXPECT_GT(in_count[0], 0u);
  EXPECT_EQ(in_count.back(), static_cast<std::size_t>(kDevices));
}

TEST(Assign, WithoutARolloutTheDeviceGetsTheBaseline) {
  const Assignment a = assign(device("d", ver("7.9.0")), {}, {{ver("7.9.0"), ver("7.10.2")}},
                              ver("7.10.2"), nullptr, kSensor, 0);
  EXPECT_EQ(str(a.desired), "7.10.2");
  EXPECT_EQ(a.reason.code, AssignmentReason::Code::kNoRollout);
}

// min_per_stratum (core::stage_share): a ramp's first step of 10 devices in a
// fleet of 100,000 where 19 of 20 strata are small. In proportion, the step
// misses most small strata; raised to 3 expected per stratum, it samples about
// 1 - e^-3 = 95% of them in each rollout.
TEST(StageShare, ARampStepSamplesEveryStratum) {
  Plan plan = rings();
  plan.strata = {"class", "os"};
  plan.stages[0].percent = Ppm::from_ppm(1);
  plan.stages[0].min_devices = 10;
  // One stratum of 81,000 devices and 19 of 1,000 each.
  std::vector<std::pair<Tags, int>> strata{{Tags{{"class", "laptop"}, {"os", "win11"}}, 81000}};
  for (int s = 0; s < 19; ++s) strata.push_back({Tags{{"class", "kiosk"}, {"os", "build-" + std::to_string(s)}}, 1000});
  StratumCounts counts;
  for (const auto& [tags, n] : strata) counts[stratum_of(tags, plan.strata)] = static_cast<std::uint64_t>(n);
  EXPECT_EQ(stratum_of(strata[1].first, plan.strata), "kiosk|build-0");
  EXPECT_EQ(stratum_of(Tags{{"class", "kiosk"}}, plan.strata), "kiosk|-");

  // The fraction of the small strata with at least one device in the step,
  // averaged over 50 rollouts (salts).
  auto sampled = [&](std::uint32_t k) {
    plan.stages[0].min_per_stratum = k;
    int hit = 0;
    for (int rollout = 0; rollout < 50; ++rollout) {
      RolloutView r = rollout_of(plan, RolloutState::kRunning, 0);
      r.salt = rollout_salt("r-" + std::to_string(rollout));
      r.eligible_devices = 100000;
      r.strata = &counts;
      for (std::size_t s = 1; s < strata.size(); ++s) {
        const Ppm share = stage_share(r, 0, strata[s].first);
        for (int d = 0; d < strata[s].second; ++d) {
          if (bucket_admitted(cohort_bucket("dev-" + std::to_string(s) + "-" + std::to_string(d), r.salt), share)) {
            ++hit;
            break;
          }
        }
      }
    }
    return hit / (50.0 * 19);
  };
  const double proportional = sampled(0);
  const double raised = sampled(3);
  EXPECT_LT(proportional, 0.2) << "10 of 100,000 rarely reaches a stratum of 1%";
  EXPECT_GT(raised, 0.9) << "3 expected per stratum: about 95% of the strata sampled";
  // The big stratum keeps the stage's own share; one not counted at the start too.
  RolloutView r = rollout_of(plan, RolloutState::kRunning, 0);
  r.eligible_devices = 100000;
  r.strata = &counts;
  EXPECT_EQ(stage_share(r, 0, strata[0].first), effective_share(Ppm::from_ppm(1), 10, 100000));
  EXPECT_EQ(stage_share(r, 0, Tags{{"class", "new"}}), effective_share(Ppm::from_ppm(1), 10, 100000));
  EXPECT_EQ(stage_share(r, 0, strata[1].first), effective_share(Ppm::from_ppm(1), 3, 1000));
  // A later stage without min_per_stratum: its own share only.
  EXPECT_EQ(stage_share(r, 1, strata[1].first).value(),
            effective_share(plan.stages[1].percent, plan.stages[1].min_devices, 100000).value());
}

}  // namespace
}  // namespace tranche::core
