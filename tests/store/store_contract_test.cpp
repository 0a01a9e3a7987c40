// The contract of store/store.h, run against every backend (store_contract.h).
// Each case opens an empty database of its own.
#include "tests/store/store_contract.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/evidence.h"
#include "store/store.h"

namespace tranche::store {
namespace {

using core::ErrorCode;

// Status or Result: "ok", or the error as text, so a failure says which.
template <typename R>
std::string status_of(const R& r) {
  return r.ok() ? "ok" : r.error().to_string();
}

#define ASSERT_OK(expr)                                           \
  do {                                                            \
    const auto& tranche_r = (expr);                               \
    ASSERT_TRUE(tranche_r.ok()) << tranche_r.error().to_string(); \
  } while (false)

// Unwraps a Result or fails the test.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                               \
  auto lhs##_result = (expr);                                         \
  ASSERT_TRUE(lhs##_result.ok()) << lhs##_result.error().to_string(); \
  auto lhs = std::move(lhs##_result).value()

TenantRow tenant(const std::string& id) {
  return TenantRow{id, "hash-" + id, R"({"pin":"N-1"})"};
}
DeviceRow device(const std::string& id) {
  return DeviceRow{id, "acme", "tok-" + id, R"({"class":"laptop"})", -330, 1'700'000'000'000};
}
DeviceStateRow state(const std::string& dev, std::int64_t seen, std::int64_t seq) {
  return DeviceStateRow{dev,
                        R"({"content":"291.1"})",
                        R"({"content":["291.2"]})",
                        R"({"crashes":0})",
                        seen,
                        (seen % 2) == 0,
                        seq,
                        "",
                        0,
                        seen};  // revision: a later state has a higher one
}
DeviceEventRow event(const std::string& dev, std::int64_t seq) {
  return DeviceEventRow{
      dev, seq, "installed", "content", "291." + std::to_string(seq), R"({"exit":0})", 1000 + seq};
}
ReleaseRow release(const std::string& version) {
  return ReleaseRow{"content", version, R"([{"path":"c.bin","length":12,"sha256":"ab"}])", false,
                    5000};
}
RolloutRow rollout(const std::string& id) {
  return RolloutRow{id,
                    "content",
                    "291.2",
                    "291.1",
                    "name: rings\nstages: []\n",
                    std::numeric_limits<std::uint64_t>::max() - 7,  // bit 63 set: stored as bits
                    R"({"state":"pending"})",
                    R"({"state":"collecting"})",
                    0,
                    10'000,
                    10'000};
}
AuditRow audit(const std::string& action, const std::string& target) {
  return AuditRow{0, 42, "alice", action, target, "because"};
}

// The next generation of `row`, with its transition.
struct Step {
  RolloutRow row;
  TransitionRow transition;
};
Step step(const RolloutRow& from, const std::string& to_state) {
  Step s{from, {}};
  s.row.generation = from.generation + 1;
  s.row.status_json = R"({"state":")" + to_state + R"("})";
  s.row.updated_at = from.updated_at + 1000;
  s.transition = TransitionRow{from.id, s.row.generation, "pending",       to_state,
                               "tick",  "bake time over", s.row.updated_at};
  return s;
}

bool operator==(const TenantRow& a, const TenantRow& b) {
  return a.id == b.id && a.enrollment_key_hash == b.enrollment_key_hash &&
         a.policy_json == b.policy_json;
}
bool operator==(const OperatorTokenRow& a, const OperatorTokenRow& b) {
  return a.token_hash == b.token_hash && a.name == b.name && a.role == b.role && a.created_at == b.created_at;
}
bool operator==(const DeviceRow& a, const DeviceRow& b) {
  return a.id == b.id && a.tenant == b.tenant && a.token_hash == b.token_hash &&
         a.tags_json == b.tags_json && a.utc_offset_minutes == b.utc_offset_minutes &&
         a.enrolled_at == b.enrolled_at;
}
bool operator==(const DeviceStateRow& a, const DeviceStateRow& b) {
  return a.device == b.device && a.versions_json == b.versions_json &&
         a.failed_json == b.failed_json && a.health_json == b.health_json &&
         a.last_seen == b.last_seen && a.said_goodbye == b.said_goodbye &&
         a.last_event_seq == b.last_event_seq;
}
bool operator==(const DeviceEventRow& a, const DeviceEventRow& b) {
  return a.device == b.device && a.seq == b.seq && a.kind == b.kind && a.channel == b.channel &&
         a.version == b.version && a.detail_json == b.detail_json && a.at == b.at;
}
bool operator==(const ReleaseRow& a, const ReleaseRow& b) {
  return a.channel == b.channel && a.version == b.version && a.targets_json == b.targets_json &&
         a.contract_bypassed == b.contract_bypassed && a.registered_at == b.registered_at;
}
bool operator==(const RolloutRow& a, const RolloutRow& b) {
  return a.id == b.id && a.channel == b.channel && a.version == b.version &&
         a.previous == b.previous && a.plan_yaml == b.plan_yaml && a.salt == b.salt &&
         a.status_json == b.status_json && a.gate_json == b.gate_json &&
         a.generation == b.generation && a.created_at == b.created_at &&
         a.updated_at == b.updated_at;
}
bool operator==(const TransitionRow& a, const TransitionRow& b) {
  return a.rollout == b.rollout && a.generation == b.generation && a.from_state == b.from_state &&
         a.to_state == b.to_state && a.event == b.event && a.reason == b.reason && a.at == b.at;
}
// seq is the store's: compared by the caller.
bool same_entry(const AuditRow& a, const AuditRow& b) {
  return a.at == b.at && a.actor == b.actor && a.action == b.action && a.target == b.target &&
         a.reason == b.reason;
}

template <typename Row, typename Key>
std::vector<Row> sorted(std::vector<Row> rows, Key key) {
  std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) { return key(a) < key(b); });
  return rows;
}

TEST_P(StoreContract, EmptyStoreIsAtTheLatestSchema) {
  ASSERT_OK_AND_ASSIGN(store, open());
  EXPECT_EQ(store->backend(), GetParam()->name);
  ASSERT_OK_AND_ASSIGN(version, store->schema_version());
  EXPECT_EQ(version, latest_schema_version());
  EXPECT_GE(latest_schema_version(), 2);
  ASSERT_OK_AND_ASSIGN(tenants, store->load_tenants());
  ASSERT_OK_AND_ASSIGN(devices, store->load_devices());
  ASSERT_OK_AND_ASSIGN(rollouts, store->load_rollouts());
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 100));
  EXPECT_TRUE(tenants.empty() && devices.empty() && rollouts.empty() && entries.empty());
}

TEST_P(StoreContract, TenantsAndOperatorTokensAreReplacedWhole) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->put_tenant(tenant("acme"), audit("tenant.put", "t")));
  ASSERT_OK(store->put_tenant(tenant("globex"), audit("tenant.put", "t")));
  TenantRow changed = tenant("acme");
  changed.policy_json = "{}";
  changed.enrollment_key_hash = "rotated";
  ASSERT_OK(store->put_tenant(changed, audit("tenant.put", "t")));
  ASSERT_OK_AND_ASSIGN(tenants, store->load_tenants());
  ASSERT_EQ(tenants.size(), 2u);
  EXPECT_TRUE(tenants[0] == changed);
  EXPECT_TRUE(tenants[1] == tenant("globex"));

  const OperatorTokenRow alice{"h-alice", "alice", Role::kAdmin, 1'700'000'000'000};
  const OperatorTokenRow ci{"h-ci", "ci", Role::kViewer, 1'700'000'000'001};
  ASSERT_OK(store->put_operator_token(alice, audit("token.create", "t")));
  ASSERT_OK(store->put_operator_token(ci, audit("token.create", "t")));
  // Replaced: the new name and role, the first creation time.
  const OperatorTokenRow ci_promoted{"h-ci", "ci", Role::kOperator, 1'700'000'000'001};
  ASSERT_OK(store->put_operator_token({"h-ci", "ci", Role::kOperator, 1'800'000'000'000}, audit("token.create", "t")));
  ASSERT_OK_AND_ASSIGN(tokens, store->load_operator_tokens());
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_TRUE(tokens[0] == alice);
  EXPECT_TRUE(tokens[1] == ci_promoted);
}

TEST_P(StoreContract, RevokingDeletesEveryTokenOfTheNameWithItsAuditEntry) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->put_operator_token({"h-alice", "alice", Role::kAdmin}, audit("token.create", "t")));
  ASSERT_OK(store->put_operator_token({"h-ci-1", "ci", Role::kViewer}, audit("token.create", "t")));
  ASSERT_OK(store->put_operator_token({"h-ci-2", "ci", Role::kOperator}, audit("token.create", "t")));
  ASSERT_OK(store->delete_operator_tokens("ci", audit("token.revoke", "token ci")));
  ASSERT_OK_AND_ASSIGN(tokens, store->load_operator_tokens());
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].name, "alice");
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 100));
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries.back().action, "token.revoke");
  // No such name: kNotFound, and no audit entry either.
  auto again = store->delete_operator_tokens("ci", audit("token.revoke", "token ci"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, core::ErrorCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(after, store->load_audit(0, 100));
  EXPECT_EQ(after.size(), 4u);
}

TEST_P(StoreContract, DevicesRoundTripAndADuplicateIdIsAConflict) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->insert_device(device("d-1")));
  ASSERT_OK(store->insert_device(device("d-2")));
  DeviceRow again = device("d-1");
  again.tenant = "globex";
  auto dup = store->insert_device(again);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict) << dup.error().to_string();
  ASSERT_OK_AND_ASSIGN(devices, store->load_devices());
  devices = sorted(devices, [](const DeviceRow& r) { return r.id; });
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_TRUE(devices[0] == device("d-1"));  // the first one, untouched
  EXPECT_TRUE(devices[1] == device("d-2"));
}

// The counts min_per_stratum works from (server count_strata on a shared store):
// grouped in the database by the values of the keys, a missing key absent from
// the group's tags, any key spelling (bound, never spliced into the SQL).
TEST_P(StoreContract, DevicesAreCountedByTheirValuesOfTagKeys) {
  ASSERT_OK_AND_ASSIGN(store, open());
  const std::vector<std::pair<std::string, std::string>> fleet = {
      {"d-1", R"({"class":"laptop","region":"emea"})"}, {"d-2", R"({"class":"laptop","region":"emea"})"},
      {"d-3", R"({"region":"emea","class":"laptop","os":"x"})"}, {"d-4", R"({"class":"laptop"})"},
      {"d-5", R"({})"}, {"d-6", R"({"class":"kiosk","region":"apac"})"},
      {"d-7", R"({"we'i\"rd":"v","class":"kiosk","region":"apac"})"}};
  for (const auto& [id, tags] : fleet) {
    DeviceRow row = device(id);
    row.tags_json = tags;
    ASSERT_OK(store->insert_device(row));
  }
  ASSERT_OK_AND_ASSIGN(groups, store->count_devices_by_tags({"class", "region"}));
  std::map<core::Tags, std::uint64_t> got(groups.begin(), groups.end());
  const std::map<core::Tags, std::uint64_t> want = {
      {{{"class", "laptop"}, {"region", "emea"}}, 3},
      {{{"class", "laptop"}}, 1},
      {{}, 1},
      {{{"class", "kiosk"}, {"region", "apac"}}, 2}};
  EXPECT_EQ(got, want);
  ASSERT_OK_AND_ASSIGN(odd, store->count_devices_by_tags({"we'i\"rd"}));
  std::map<core::Tags, std::uint64_t> odd_got(odd.begin(), odd.end());
  const std::map<core::Tags, std::uint64_t> odd_want = {{{{"we'i\"rd", "v"}}, 1}, {{}, 6}};
  EXPECT_EQ(odd_got, odd_want);
}

TEST_P(StoreContract, StatesAreUpsertedAndTheLastOfABatchWins) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->write_batch({state("d-1", 1, 0), state("d-2", 2, 0)}, {}));
  // d-1 twice in one batch: the later state is the one kept.
  ASSERT_OK(store->write_batch({state("d-1", 3, 1), state("d-3", 4, 0), state("d-1", 5, 2)},
                               {event("d-1", 1), event("d-1", 2)}));
  ASSERT_OK(store->write_batch({}, {}));  // an empty batch is fine
  ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
  states = sorted(states, [](const DeviceStateRow& r) { return r.device; });
  ASSERT_EQ(states.size(), 3u);
  EXPECT_TRUE(states[0] == state("d-1", 5, 2));
  EXPECT_TRUE(states[1] == state("d-2", 2, 0));
  EXPECT_TRUE(states[2] == state("d-3", 4, 0));
  EXPECT_FALSE(states[0].said_goodbye);
  EXPECT_TRUE(states[1].said_goodbye);
}

TEST_P(StoreContract, EventsComeBackOldestFirstTheNewestLimit) {
  ASSERT_OK_AND_ASSIGN(store, open());
  std::vector<DeviceEventRow> events;
  for (std::int64_t seq = 1; seq <= 5; ++seq) events.push_back(event("d-1", seq));
  events.push_back(event("d-2", 1));
  DeviceEventRow goodbye{"d-1", 6, "goodbye", "", "", "{}", 2000};  // empty text stays empty
  events.push_back(goodbye);
  ASSERT_OK(store->write_batch({}, events));

  ASSERT_OK_AND_ASSIGN(all, store->load_events("d-1", 100));
  ASSERT_EQ(all.size(), 6u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_TRUE(all[i] == events[i]) << i;
  EXPECT_TRUE(all[5] == goodbye);

  ASSERT_OK_AND_ASSIGN(newest, store->load_events("d-1", 2));
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].seq, 5);
  EXPECT_EQ(newest[1].seq, 6);
  ASSERT_OK_AND_ASSIGN(none, store->load_events("d-9", 10));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreContract, AnEventSentAgainIsStoredOnceAndTheBatchGoesThrough) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->write_batch({state("d-1", 1, 1)}, {event("d-1", 1)}));

  // A replay of (d-1, 1) — the answer to the first batch was lost, and the
  // device sent it again, here or to another server — beside a new event.
  DeviceEventRow changed = event("d-1", 1);
  changed.kind = "crashed";
  ASSERT_OK(store->write_batch({state("d-1", 9, 2), state("d-2", 9, 0)}, {event("d-1", 2), changed}));
  // The same (device, seq) twice in one batch.
  ASSERT_OK(store->write_batch({state("d-3", 9, 0)}, {event("d-3", 1), event("d-3", 1)}));

  ASSERT_OK_AND_ASSIGN(events, store->load_events("d-1", 10));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0] == event("d-1", 1)) << "the first one stays";
  EXPECT_TRUE(events[1] == event("d-1", 2));
  ASSERT_OK_AND_ASSIGN(d3, store->load_events("d-3", 10));
  EXPECT_EQ(d3.size(), 1u);
  ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
  EXPECT_EQ(states.size(), 3u);
}

TEST_P(StoreContract, AStaleStateNeverOverwritesANewerOne) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->write_batch({state("d-1", 5, 5)}, {}));
  ASSERT_OK(store->write_batch({state("d-1", 4, 9)}, {}));  // revision 4 < 5: stays
  ASSERT_OK(store->write_batch({state("d-1", 5, 7)}, {}));  // equal: stays
  ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].last_event_seq, 5);
  ASSERT_OK(store->write_batch({state("d-1", 6, 8)}, {}));
  ASSERT_OK_AND_ASSIGN(after, store->load_device_states());
  EXPECT_EQ(after[0].last_event_seq, 8);
}

TEST_P(StoreContract, AClaimItsCheckRefusesWritesNothing) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->insert_device(device("d-1")));
  ASSERT_OK(store->claim_device("d-1", "s-a", 100, {}));
  // A request with another secret: the check sees the stored device and says no.
  std::string seen;
  auto refused = store->claim_device("d-1", "s-b", 200, [&](const DeviceRow& row) {
    seen = row.id;
    return false;
  });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(seen, "d-1");
  ASSERT_OK_AND_ASSIGN(now, store->load_device("d-1"));
  EXPECT_EQ(now.state.owner, "s-a") << "a refused claim moved the device";
  EXPECT_EQ(now.state.revision, std::int64_t{1} << 32);
  ASSERT_OK_AND_ASSIGN(claims, store->load_claims(0, 10));
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].owner, "s-a");
  // Accepted: claimed.
  ASSERT_OK_AND_ASSIGN(b, store->claim_device("d-1", "s-b", 300, [](const DeviceRow&) { return true; }));
  EXPECT_EQ(b.state.owner, "s-b");
}

TEST_P(StoreContract, AClaimMovesTheRevisionPastEverythingTheFormerOwnerQueued) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->insert_device(device("d-1")));
  auto missing = store->claim_device("d-9", "s-a", 100, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);

  // First claim: no state yet, a fresh one is made.
  ASSERT_OK_AND_ASSIGN(a, store->claim_device("d-1", "s-a", 100, {}));
  EXPECT_TRUE(a.device == device("d-1"));
  EXPECT_EQ(a.state.owner, "s-a");
  EXPECT_EQ(a.state.owner_since, 100);
  EXPECT_EQ(a.state.revision, std::int64_t{1} << 32);
  EXPECT_TRUE(a.marks.empty());
  // s-a writes; s-b claims; s-a's queued write (a higher low count) is refused.
  DeviceStateRow by_a = state("d-1", 7, 3);
  by_a.owner = "s-a";
  by_a.owner_since = 100;
  by_a.revision = a.state.revision + 1;
  ASSERT_OK(store->write_batch({by_a}, {}));
  ASSERT_OK(store->write_device_batch(DeviceBatch{{}, {}, {RolloutMarkRow{"r-1", "d-1", "acknowledged", "none", 90, 95, 0}}}));
  ASSERT_OK_AND_ASSIGN(b, store->claim_device("d-1", "s-b", 200, {}));
  EXPECT_EQ(b.state.owner, "s-b");
  EXPECT_EQ(b.state.last_event_seq, 3) << "the new owner reads what the old one wrote";
  EXPECT_EQ(b.state.revision, std::int64_t{2} << 32);
  ASSERT_EQ(b.marks.size(), 1u);
  EXPECT_EQ(b.marks[0].standing, "acknowledged");
  DeviceStateRow late = by_a;
  late.revision = a.state.revision + 50;
  late.last_event_seq = 99;
  ASSERT_OK(store->write_batch({late}, {}));
  ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
  EXPECT_EQ(states[0].owner, "s-b");
  EXPECT_EQ(states[0].last_event_seq, 3);

  ASSERT_OK_AND_ASSIGN(claims, store->load_claims(150, 10));
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].owner, "s-b");
  EXPECT_EQ(claims[0].owner_since, 200);
  ASSERT_OK_AND_ASSIGN(none, store->load_claims(200, 10));
  EXPECT_TRUE(none.empty());
}

// A device whose owner stopped saying it is alive is an orphan for the leader;
// a live server's devices and the asking server's own never are.
TEST_P(StoreContract, DevicesOfAStoppedServerAreOrphansUntilClaimed) {
  ASSERT_OK_AND_ASSIGN(store, open());
  for (const char* id : {"d-1", "d-2", "d-3", "d-4"}) ASSERT_OK(store->insert_device(device(id)));
  ASSERT_OK(store->beat_server("s-live", 1000));
  ASSERT_OK(store->beat_server("s-dead", 1000));
  ASSERT_OK(store->beat_server("s-leader", 1000));
  ASSERT_OK(store->claim_device("d-1", "s-live", 1000, {}));
  ASSERT_OK(store->claim_device("d-2", "s-dead", 1000, {}));
  ASSERT_OK(store->claim_device("d-3", "s-dead", 1000, {}));
  ASSERT_OK(store->claim_device("d-4", "s-leader", 1000, {}));
  ASSERT_OK_AND_ASSIGN(none, store->find_orphans("s-leader", 900, 10));
  EXPECT_TRUE(none.empty()) << "every server beat at 1000";

  ASSERT_OK(store->beat_server("s-live", 5000));
  ASSERT_OK(store->beat_server("s-live", 4000));  // a late beat never moves it back
  ASSERT_OK_AND_ASSIGN(orphans, store->find_orphans("s-leader", 4500, 10));
  std::sort(orphans.begin(), orphans.end());
  EXPECT_EQ(orphans, (std::vector<std::string>{"d-2", "d-3"}))
      << "s-dead's devices; not s-live's, and not the leader's own (it beat at 1000 too)";
  ASSERT_OK_AND_ASSIGN(one, store->find_orphans("s-leader", 4500, 1));
  EXPECT_EQ(one.size(), 1u) << "at most `limit`";

  ASSERT_OK(store->claim_device("d-2", "s-leader", 5000, {}));
  ASSERT_OK(store->claim_device("d-3", "s-leader", 5000, {}));
  ASSERT_OK_AND_ASSIGN(after, store->find_orphans("s-leader", 4500, 10));
  EXPECT_TRUE(after.empty());
  // s-dead owns nothing now and is forgotten; a beat brings it back.
  ASSERT_OK(store->claim_device("d-1", "s-dead", 5100, {}));
  ASSERT_OK_AND_ASSIGN(unknown, store->find_orphans("s-leader", 4500, 10));
  EXPECT_TRUE(unknown.empty()) << "a device claimed by a server that never beat again is not guessed at";
  ASSERT_OK(store->beat_server("s-dead", 5200));
  ASSERT_OK_AND_ASSIGN(alive, store->find_orphans("s-leader", 4500, 10));
  EXPECT_TRUE(alive.empty());
  ASSERT_OK_AND_ASSIGN(stopped, store->find_orphans("s-leader", 6000, 10));
  EXPECT_EQ(stopped, std::vector<std::string>{"d-1"});
}

// The store keeps core::merge_standing of every mark written, in any order and
// in any batching, and counts them like core::count_standing.
TEST_P(StoreContract, MarksMoveOnlyForwardAsCoreMergesThem) {
  ASSERT_OK_AND_ASSIGN(store, open());
  const std::vector<std::string> standings = {"control", "exposed", "acknowledged", "exposed_failed",
                                              "control_failed"};
  std::uint64_t seed = 5;
  auto next = [&] {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::size_t>(seed >> 33);
  };
  std::map<std::string, core::Standing> expected;
  for (int round = 0; round < 20; ++round) {
    std::vector<RolloutMarkRow> batch;
    for (int i = 0; i < 30; ++i) {
      const std::string dev = "d-" + std::to_string(next() % 12);
      const std::string& st = standings[next() % standings.size()];
      batch.push_back(RolloutMarkRow{"r-1", dev, st, st.ends_with("failed") ? "crashed" : "none",
                                     1, 2, 3});
      auto parsed = *core::parse_standing(st);
      auto [it, inserted] = expected.try_emplace(dev, core::Standing::kControl);
      it->second = core::merge_standing(it->second, parsed);
    }
    ASSERT_OK(store->write_device_batch(DeviceBatch{{}, {}, batch}));
  }
  ASSERT_OK_AND_ASSIGN(marks, store->load_marks());
  ASSERT_EQ(marks.size(), expected.size());
  for (const auto& m : marks) {
    EXPECT_EQ(m.standing, core::to_string(expected.at(m.device))) << m.device;
  }
  ASSERT_OK_AND_ASSIGN(sums, store->load_evidence("r-1", 0));
  std::int64_t counted = 0;
  for (const auto& c : sums.counts) counted += c.devices;
  EXPECT_EQ(counted, static_cast<std::int64_t>(expected.size()));
  auto bad = store->write_device_batch(DeviceBatch{{}, {}, {RolloutMarkRow{"r-1", "d-1", "sideways", "none", 0, 0, 0}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST_P(StoreContract, EventsPageBackNewestFirstBeforeASeq) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->insert_device(device("d-1")));
  std::vector<DeviceEventRow> events;
  for (std::int64_t seq = 1; seq <= 7; ++seq) events.push_back(event("d-1", seq));
  ASSERT_OK(store->write_batch({}, events));
  ASSERT_OK(store->write_batch({}, {event("d-2", 1)}));
  std::vector<std::int64_t> seen;
  std::int64_t before = std::numeric_limits<std::int64_t>::max();
  for (int page = 0; page < 10; ++page) {
    ASSERT_OK_AND_ASSIGN(rows, store->load_events_before("d-1", before, 3));
    if (rows.empty()) break;
    EXPECT_LE(rows.size(), 3u);
    for (const auto& r : rows) {
      EXPECT_EQ(r.device, "d-1");
      seen.push_back(r.seq);
    }
    before = rows.back().seq;
  }
  EXPECT_EQ(seen, (std::vector<std::int64_t>{7, 6, 5, 4, 3, 2, 1})) << "newest first, none twice";
  ASSERT_OK_AND_ASSIGN(first, store->load_events_before("d-1", 3, 100));
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(first[0] == event("d-1", 2));
}

TEST_P(StoreContract, TheDeviceListPagesByIdWithStateMarksAndTheNewestEvent) {
  ASSERT_OK_AND_ASSIGN(store, open());
  std::vector<std::string> ids;
  for (int i = 0; i < 23; ++i) {
    ids.push_back("dev-" + std::to_string(100 + i));
    ASSERT_OK(store->insert_device(device(ids.back())));
  }
  ASSERT_OK(store->write_device_batch(
      DeviceBatch{{state("dev-105", 10, 2)},
                  {event("dev-105", 1), event("dev-105", 2), event("dev-107", 4)},
                  {RolloutMarkRow{"r-1", "dev-105", "exposed_failed", "crashed", 1, 0, 3},
                   RolloutMarkRow{"r-2", "dev-105", "exposed", "none", 1, 0, 0}}}));
  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    ASSERT_OK_AND_ASSIGN(rows, store->list_devices(after, 5));
    if (rows.empty()) break;
    EXPECT_LE(rows.size(), 5u);
    for (const auto& r : rows) {
      seen.push_back(r.record.device.id);
      if (r.record.device.id == "dev-105") {
        EXPECT_TRUE(r.record.state == state("dev-105", 10, 2));
        EXPECT_TRUE(r.record.device == device("dev-105"));
        EXPECT_EQ(r.record.marks.size(), 2u);
        ASSERT_TRUE(r.last_event.has_value());
        EXPECT_TRUE(*r.last_event == event("dev-105", 2)) << "the newest event";
      } else if (r.record.device.id == "dev-107") {
        ASSERT_TRUE(r.last_event.has_value());
        EXPECT_EQ(r.last_event->seq, 4);
        EXPECT_EQ(r.record.state.revision, 0) << "no state written: a blank one";
        EXPECT_TRUE(r.record.marks.empty());
      } else {
        EXPECT_FALSE(r.last_event.has_value()) << r.record.device.id;
        EXPECT_TRUE(r.record.marks.empty()) << r.record.device.id;
      }
    }
    after = rows.back().record.device.id;
  }
  EXPECT_EQ(seen, ids) << "every device once, by id";
  ASSERT_OK_AND_ASSIGN(none, store->list_devices("dev-122", 5));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreContract, RolloutDevicesAtAStandingComeWithTheirNewestEventAboutTheRelease) {
  ASSERT_OK_AND_ASSIGN(store, open());
  DeviceEventRow crash{"d-1", 1, "crashed", "content", "291.2", R"({"signal":11})", 50};
  DeviceEventRow other{"d-1", 2, "installed", "content", "291.1", "{}", 60};  // another version
  DeviceEventRow refused{"d-3", 1, "offer_refused", "content", "291.2", R"({"reason":"known_bad"})", 70};
  ASSERT_OK(store->write_device_batch(DeviceBatch{
      {},
      {crash, other, refused},
      {RolloutMarkRow{"r-1", "d-1", "exposed_failed", "crashed", 1, 0, 50},
       RolloutMarkRow{"r-1", "d-2", "exposed_failed", "silent", 1, 0, 80},
       RolloutMarkRow{"r-1", "d-3", "exposed", "none", 1, 0, 0},
       RolloutMarkRow{"r-1", "d-4", "acknowledged", "none", 1, 2, 0},
       RolloutMarkRow{"r-2", "d-5", "exposed_failed", "crashed", 1, 0, 9}}}));
  ASSERT_OK_AND_ASSIGN(failed, store->list_rollout_devices("r-1", 3, "content", "291.2", "", 100));
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].mark.device, "d-1");
  ASSERT_TRUE(failed[0].last_event.has_value());
  EXPECT_TRUE(*failed[0].last_event == crash) << "the newest event about 291.2, not about 291.1";
  EXPECT_EQ(failed[1].mark.device, "d-2");
  EXPECT_EQ(failed[1].mark.failure, "silent");
  EXPECT_FALSE(failed[1].last_event.has_value());
  ASSERT_OK_AND_ASSIGN(after, store->list_rollout_devices("r-1", 3, "content", "291.2", "d-1", 100));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].mark.device, "d-2");
  ASSERT_OK_AND_ASSIGN(limited, store->list_rollout_devices("r-1", 3, "content", "291.2", "", 1));
  EXPECT_EQ(limited.size(), 1u);
  ASSERT_OK_AND_ASSIGN(exposed, store->list_rollout_devices("r-1", 1, "content", "291.2", "", 100));
  ASSERT_EQ(exposed.size(), 1u);
  EXPECT_EQ(exposed[0].mark.device, "d-3");
  ASSERT_TRUE(exposed[0].last_event.has_value());
  EXPECT_TRUE(*exposed[0].last_event == refused);
}

TEST_P(StoreContract, ExposureIsSummedOverServersAndNeverGoesDown) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->save_exposure(ExposureRow{"r-1", "s-a", 10500, 2000, 5, 4, 3, 100}));
  ASSERT_OK(store->save_exposure(ExposureRow{"r-1", "s-b", 4250, 1000, 7, 6, 2, 100}));
  ASSERT_OK(store->save_exposure(ExposureRow{"r-1", "s-a", 9000, 3000, 1, 1, 1, 90}));  // a late, older write
  ASSERT_OK(store->save_exposure(ExposureRow{"r-1", "s-dead", 1000, 1000, 50, 50, 50, 40}));
  ASSERT_OK(store->save_exposure(ExposureRow{"r-2", "s-a", 100, 100, 100, 100, 100, 100}));
  ASSERT_OK_AND_ASSIGN(sums, store->load_evidence("r-1", 60));
  EXPECT_EQ(sums.exposed_ms, 15750);
  EXPECT_EQ(sums.control_ms, 4000);
  EXPECT_TRUE(sums.counts.empty());
  // Counts only of servers that wrote since 60: s-dead's devices are someone else's now.
  EXPECT_EQ(sums.coverage_target, 12);
  EXPECT_EQ(sums.coverage_running, 10);
  EXPECT_EQ(sums.online_on_version, 5);
}

TEST_P(StoreContract, ReleasesRoundTripAndADuplicateIsAConflict) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->insert_release(release("291.1"), audit("release.register", "r")));
  ReleaseRow bypassed = release("291.2");
  bypassed.contract_bypassed = true;
  bypassed.registered_at = 6000;
  ASSERT_OK(store->insert_release(bypassed, audit("release.register", "r")));
  ReleaseRow other_channel = release("291.1");
  other_channel.channel = "sensor";
  ASSERT_OK(store->insert_release(other_channel, audit("release.register", "r")));
  auto dup = store->insert_release(release("291.1"), audit("release.register", "r"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  ASSERT_OK_AND_ASSIGN(releases, store->load_releases());
  ASSERT_EQ(releases.size(), 3u);
  EXPECT_TRUE(releases[0] == release("291.1"));
  EXPECT_TRUE(releases[1] == other_channel);
  EXPECT_TRUE(releases[2] == bypassed);
  // Each release with its audit entry; the refused one with none.
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 10));
  EXPECT_EQ(entries.size(), 3u);
}

TEST_P(StoreContract, ARolloutIsInsertedWithItsAuditEntryOnce) {
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK(store->insert_rollout(rollout("r-1"), audit("rollout.create", "rollout r-1")));
  auto dup = store->insert_rollout(rollout("r-1"), audit("rollout.create", "again"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  ASSERT_OK_AND_ASSIGN(rollouts, store->load_rollouts());
  ASSERT_EQ(rollouts.size(), 1u);
  EXPECT_TRUE(rollouts[0] == rollout("r-1"));
  EXPECT_EQ(rollouts[0].salt, std::numeric_limits<std::uint64_t>::max() - 7);
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 10));
  ASSERT_EQ(entries.size(), 1u);  // the refused insert wrote no audit entry
  EXPECT_TRUE(same_entry(entries[0], audit("rollout.create", "rollout r-1")));
}

TEST_P(StoreContract, UpdatesAreGuardedByTheGeneration) {
  ASSERT_OK_AND_ASSIGN(store, open());
  const RolloutRow r0 = rollout("r-1");
  ASSERT_OK(store->insert_rollout(r0, audit("rollout.create", "rollout r-1")));
  const Step s1 = step(r0, "canary");
  ASSERT_OK(store->update_rollout(s1.row, 0, s1.transition, audit("rollout.advance", "r-1")));

  // A second engine that read generation 0 too: refused, nothing written.
  Step stale = step(r0, "aborted");
  auto refused = store->update_rollout(stale.row, 0, stale.transition, audit("stale", "r-1"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict) << refused.error().to_string();
  auto gate = store->save_gate("r-1", 0, R"({"stale":true})", 99'999);
  ASSERT_FALSE(gate.ok());
  EXPECT_EQ(gate.error().code, ErrorCode::kConflict);

  ASSERT_OK_AND_ASSIGN(rollouts, store->load_rollouts());
  ASSERT_EQ(rollouts.size(), 1u);
  EXPECT_TRUE(rollouts[0] == s1.row);
  ASSERT_OK_AND_ASSIGN(transitions, store->load_transitions("r-1"));
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_TRUE(transitions[0] == s1.transition);
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 10));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].action, "rollout.advance");

  // The current generation goes through; save_gate changes only gate and time.
  ASSERT_OK(store->save_gate("r-1", 1, R"({"ok":1})", 20'000));
  const Step s2 = step(s1.row, "early");
  ASSERT_OK(store->update_rollout(s2.row, 1, s2.transition, audit("rollout.advance", "r-1")));
  ASSERT_OK_AND_ASSIGN(after, store->load_rollouts());
  EXPECT_TRUE(after[0] == s2.row);
  ASSERT_OK_AND_ASSIGN(all, store->load_transitions("r-1"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].generation, 2);
  ASSERT_OK(store->save_gate("r-1", 2, R"({"ok":2})", 30'000));
  ASSERT_OK_AND_ASSIGN(saved, store->load_rollouts());
  EXPECT_EQ(saved[0].gate_json, R"({"ok":2})");
  EXPECT_EQ(saved[0].updated_at, 30'000);
  EXPECT_EQ(saved[0].status_json, s2.row.status_json);
  EXPECT_EQ(saved[0].generation, 2);
}

TEST_P(StoreContract, UpdatesOfAMissingRolloutOrWithAMismatchedTransitionAreRefused) {
  ASSERT_OK_AND_ASSIGN(store, open());
  const Step s = step(rollout("r-9"), "canary");
  auto missing = store->update_rollout(s.row, 0, s.transition, audit("x", "r-9"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << missing.error().to_string();
  auto gate = store->save_gate("r-9", 0, "{}", 1);
  ASSERT_FALSE(gate.ok());
  EXPECT_EQ(gate.error().code, ErrorCode::kNotFound);

  ASSERT_OK(store->insert_rollout(rollout("r-1"), audit("rollout.create", "r-1")));
  Step wrong = step(rollout("r-1"), "canary");
  wrong.transition.rollout = "r-2";
  EXPECT_EQ(store->update_rollout(wrong.row, 0, wrong.transition, audit("x", "r-1")).error().code,
            ErrorCode::kInvalidArgument);
  Step same = step(rollout("r-1"), "canary");
  same.row.generation = 0;  // a generation that does not move would defeat the guard
  same.transition.generation = 0;
  EXPECT_EQ(store->update_rollout(same.row, 0, same.transition, audit("x", "r-1")).error().code,
            ErrorCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 10));
  EXPECT_EQ(entries.size(), 1u);
  ASSERT_OK_AND_ASSIGN(transitions, store->load_transitions("r-1"));
  EXPECT_TRUE(transitions.empty());
}

TEST_P(StoreContract, AuditSeqsIncreaseAndPageWithoutGapsOrRepeats) {
  ASSERT_OK_AND_ASSIGN(store, open());
  for (int i = 0; i < 25; ++i) {
    AuditRow row = audit("action." + std::to_string(i), "tenant acme");
    row.seq = 1000;  // ignored: the store assigns it
    ASSERT_OK(store->append_audit(row));
  }
  std::vector<AuditRow> seen;
  std::int64_t after = 0;
  for (;;) {
    ASSERT_OK_AND_ASSIGN(page, store->load_audit(after, 10));
    if (page.empty()) break;
    EXPECT_LE(page.size(), 10u);
    for (const AuditRow& row : page) {
      EXPECT_GT(row.seq, after);
      after = row.seq;
      seen.push_back(row);
    }
  }
  ASSERT_EQ(seen.size(), 25u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].action, "action." + std::to_string(i));
  }
  ASSERT_OK_AND_ASSIGN(tail, store->load_audit(seen[19].seq, 100));
  ASSERT_EQ(tail.size(), 5u);
  EXPECT_EQ(tail[0].seq, seen[20].seq);
}

TEST_P(StoreContract, WhatWasWrittenIsThereAfterReopening) {
  {
    ASSERT_OK_AND_ASSIGN(store, open());
    ASSERT_OK(store->put_tenant(tenant("acme"), audit("tenant.put", "t")));
    ASSERT_OK(store->put_operator_token({"h-alice", "alice", Role::kOperator}, audit("token.create", "t")));
    ASSERT_OK(store->insert_device(device("d-1")));
    ASSERT_OK(store->write_batch({state("d-1", 7, 3)}, {event("d-1", 3)}));
    ASSERT_OK(store->insert_release(release("291.2"), audit("release.register", "r")));
    ASSERT_OK(store->insert_rollout(rollout("r-1"), audit("rollout.create", "r-1")));
    const Step s = step(rollout("r-1"), "canary");
    ASSERT_OK(store->update_rollout(s.row, 0, s.transition, audit("rollout.advance", "r-1")));
  }
  ASSERT_OK_AND_ASSIGN(store, open());
  ASSERT_OK_AND_ASSIGN(tenants, store->load_tenants());
  ASSERT_EQ(tenants.size(), 1u);
  EXPECT_TRUE(tenants[0] == tenant("acme"));
  ASSERT_OK_AND_ASSIGN(tokens, store->load_operator_tokens());
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].role, Role::kOperator);
  ASSERT_OK_AND_ASSIGN(devices, store->load_devices());
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_TRUE(devices[0] == device("d-1"));
  ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
  ASSERT_EQ(states.size(), 1u);
  EXPECT_TRUE(states[0] == state("d-1", 7, 3));
  ASSERT_OK_AND_ASSIGN(events, store->load_events("d-1", 10));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0] == event("d-1", 3));
  ASSERT_OK_AND_ASSIGN(releases, store->load_releases());
  ASSERT_EQ(releases.size(), 1u);
  ASSERT_OK_AND_ASSIGN(rollouts, store->load_rollouts());
  ASSERT_EQ(rollouts.size(), 1u);
  EXPECT_EQ(rollouts[0].generation, 1);
  ASSERT_OK_AND_ASSIGN(transitions, store->load_transitions("r-1"));
  EXPECT_EQ(transitions.size(), 1u);
  ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 10));
  EXPECT_EQ(entries.size(), 5u);  // tenant, token, release, rollout: each with its own; one appended
}

// Migration walk: data written at version 1 survives every later
// migration, one version at a time, and the walk ends at the latest.
TEST_P(StoreContract, MigrationsWalkFromTheFirstVersionToTheLatest) {
  {
    ASSERT_OK_AND_ASSIGN(store, open(1));
    ASSERT_OK_AND_ASSIGN(version, store->schema_version());
    ASSERT_EQ(version, 1);
    ASSERT_OK(store->put_tenant(tenant("acme"), audit("tenant.put", "t")));
    ASSERT_OK(store->insert_device(device("d-1")));
    ASSERT_OK(store->insert_release(release("291.2"), audit("release.register", "r")));
    ASSERT_OK(store->insert_rollout(rollout("r-1"), audit("rollout.create", "rollout r-1")));
  }
  // Device states and events are written with the newest statements, which
  // version 1 lacks columns for: from version 3 on.
  bool wrote_states = false;
  for (int v = 2; v <= latest_schema_version(); ++v) {
    SCOPED_TRACE("schema version " + std::to_string(v));
    ASSERT_OK_AND_ASSIGN(store, open(v));
    ASSERT_OK_AND_ASSIGN(version, store->schema_version());
    EXPECT_EQ(version, v);
    ASSERT_OK_AND_ASSIGN(tenants, store->load_tenants());
    ASSERT_EQ(tenants.size(), 1u);
    EXPECT_TRUE(tenants[0] == tenant("acme"));
    ASSERT_OK_AND_ASSIGN(devices, store->load_devices());
    ASSERT_EQ(devices.size(), 1u);
    // From version 5 a device is stored by its key, "<tenant>/<id>": every
    // row of it moved with it.
    const std::string dev = v >= 5 ? "acme/d-1" : "d-1";
    EXPECT_EQ(devices[0].id, dev);
    if (v >= 3) {
      if (!wrote_states) {
        ASSERT_OK(store->write_device_batch(
            DeviceBatch{{state("d-1", 7, 3)}, {event("d-1", 3)}, {RolloutMarkRow{"r-1", "d-1", "exposed", "none", 1, 0, 0}}}));
      }
      wrote_states = true;
      ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
      ASSERT_EQ(states.size(), 1u);
      EXPECT_TRUE(states[0] == state(dev, 7, 3));
      ASSERT_OK_AND_ASSIGN(events, store->load_events(dev, 10));
      ASSERT_EQ(events.size(), 1u);
      ASSERT_OK_AND_ASSIGN(record, store->load_device(dev));
      ASSERT_EQ(record.marks.size(), 1u);
      EXPECT_EQ(record.marks[0].device, dev);
    }
    ASSERT_OK_AND_ASSIGN(rollouts, store->load_rollouts());
    ASSERT_EQ(rollouts.size(), 1u);
    EXPECT_TRUE(rollouts[0] == rollout("r-1"));
    // Each version also takes new writes.
    ASSERT_OK(store->append_audit(audit("walk", "v" + std::to_string(v))));
    ASSERT_OK_AND_ASSIGN(entries, store->load_audit(0, 100));
    EXPECT_EQ(entries.size(), static_cast<std::size_t>(v) + 2);  // + tenant, release
  }
  // Opening at a lower version than the database's never goes back.
  ASSERT_OK_AND_ASSIGN(store, open(1));
  ASSERT_OK_AND_ASSIGN(version, store->schema_version());
  EXPECT_EQ(version, latest_schema_version());
}

// A migration that fails is undone whole: migration 5 moves device states to
// their keys before the devices, so a device row that cannot move (its key is
// taken — only the store's own API could have written "acme/d-1" at version 4)
// must leave the states where they were, and the database at version 4.
TEST_P(StoreContract, AMigrationThatFailsLeavesTheDatabaseAtThePreviousVersion) {
  {
    ASSERT_OK_AND_ASSIGN(store, open(4));
    ASSERT_OK(store->put_tenant(tenant("acme"), audit("tenant.put", "t")));
    ASSERT_OK(store->insert_device(device("d-1")));
    ASSERT_OK(store->insert_device(device("acme/d-1")));
    ASSERT_OK(store->write_batch({state("d-1", 7, 3)}, {event("d-1", 3)}));
  }
  {
    auto failed = open(5);
    ASSERT_FALSE(failed.ok()) << "the key acme/d-1 is taken: the migration cannot apply";
    EXPECT_NE(failed.error().message.find("0005_device_keys.sql"), std::string::npos) << failed.error().message;
  }
  ASSERT_OK_AND_ASSIGN(store, open(4));
  ASSERT_OK_AND_ASSIGN(version, store->schema_version());
  EXPECT_EQ(version, 4);
  ASSERT_OK_AND_ASSIGN(states, store->load_device_states());
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].device, "d-1") << "the states moved back with the failed migration";
  ASSERT_OK_AND_ASSIGN(events, store->load_events("d-1", 10));
  EXPECT_EQ(events.size(), 1u);
}

TEST_P(StoreContract, AVersionOutsideTheKnownOnesIsRefused) {
  for (int v : {0, -1, latest_schema_version() + 1}) {
    auto store = open(v);
    ASSERT_FALSE(store.ok()) << v;
    EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace tranche::store
