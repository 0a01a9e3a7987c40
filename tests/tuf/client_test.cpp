// TrustedSet (tuf/client.h): each check of the TUF 1.0.x client workflow,
// section 5, refuses what it must and accepts what it must.
#include "tuf/client.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "tests/tuf/worlds.h"

namespace tranche::tuf {
namespace {

namespace json = boost::json;
using core::ErrorCode;
using testing::error_of;
using testing::kNow;
using testing::Repo;
using testing::RepoBuilder;

// ---- 5.2 / 5.3 root ----

TEST(TrustedSetRoot, TrustedRootMustCarryItsOwnThreshold) {
  Repo r;
  EXPECT_TRUE(TrustedSet::create(r.root, kNow).ok());
  std::string unsigned_root = RepoBuilder::sign(root_signed(r.b.root_def()), {});
  auto e = error_of(TrustedSet::create(unsigned_root, kNow));
  EXPECT_EQ(e.code, ErrorCode::kUnverified);
  EXPECT_NE(e.message.find("(5.2)"), std::string::npos) << e.message;
}

TEST(TrustedSetRoot, RotationNeedsOldAndNewThresholds) {
  Repo r;
  RepoBuilder next = r.b;
  next.root_keys = {testing::new_key()};
  const std::string v2_both =
      RepoBuilder::sign(root_signed(next.root_def(2)), {r.b.root_keys[0], next.root_keys[0]});
  const std::string v2_new_only = next.root(2);
  const std::string v2_old_only = RepoBuilder::sign(root_signed(next.root_def(2)), r.b.root_keys);

  TrustedSet s = r.set();
  // 5.3.4: the trusted root's threshold.
  auto e = error_of(s.update_root(v2_new_only));
  EXPECT_EQ(e.code, ErrorCode::kUnverified);
  EXPECT_NE(e.message.find("keys of trusted version 1 (5.3.4)"), std::string::npos) << e.message;
  // 5.3.4: the new root's own threshold.
  e = error_of(s.update_root(v2_old_only));
  EXPECT_NE(e.message.find("by its own keys (5.3.4)"), std::string::npos) << e.message;
  EXPECT_EQ(s.root().body.common.version, 1);
  ASSERT_TRUE(s.update_root(v2_both).ok());
  EXPECT_EQ(s.root().body.common.version, 2);
  EXPECT_EQ(s.next_root_download()->file_name, "3.root.json");
}

TEST(TrustedSetRoot, VersionMustBeExactlyNextOne) {
  Repo r;
  TrustedSet s = r.set();
  // 5.3.5: N+2 and N itself are both refused.
  auto e = error_of(s.update_root(r.b.root(3)));
  EXPECT_NE(e.message.find("5.3.5 rollback"), std::string::npos) << e.message;
  e = error_of(s.update_root(r.b.root(1)));
  EXPECT_NE(e.message.find("expected 2"), std::string::npos) << e.message;
  EXPECT_TRUE(s.update_root(r.b.root(2)).ok());
}

TEST(TrustedSetRoot, IntermediateExpiryIgnoredFinalExpiryRefused) {
  Repo r;
  RepoBuilder old = r.b;
  old.expires = kNow - kDay;
  TrustedSet s = TrustedSet::create(old.root(1), kNow).value();
  // 5.3.6: an expired intermediate root is accepted ...
  ASSERT_TRUE(s.update_root(old.root(2)).ok());
  // ... but 5.3.10: the final one must be current.
  TrustedSet expired = s;
  auto e = error_of(expired.finish_root_update());
  EXPECT_NE(e.message.find("5.3.10 freeze attack"), std::string::npos) << e.message;
  ASSERT_TRUE(s.update_root(r.b.root(3)).ok());
  EXPECT_TRUE(s.finish_root_update().ok());
}

TEST(TrustedSetRoot, ChainIsBoundedPerRefresh) {
  Repo r;
  ClientLimits limits;
  limits.max_root_rotations = 3;
  TrustedSet s = TrustedSet::create(r.root, kNow, limits).value();
  for (int v = 2; v <= 4; ++v) ASSERT_TRUE(s.update_root(r.b.root(v)).ok());
  // 5.3.3: no more downloads, and no more roots accepted.
  EXPECT_FALSE(s.next_root_download().has_value());
  EXPECT_EQ(error_of(s.update_root(r.b.root(5))).code, ErrorCode::kTooLarge);
}

TEST(TrustedSetRoot, ReportsTimestampOrSnapshotKeyRotation) {
  Repo r;
  TrustedSet same = r.set();
  ASSERT_TRUE(same.update_root(r.b.root(2)).ok());
  EXPECT_FALSE(same.finish_root_update().value());  // 5.3.11: nothing rotated

  for (int role = 0; role < 2; ++role) {
    RepoBuilder next = r.b;
    (role == 0 ? next.timestamp_keys : next.snapshot_keys) = {testing::new_key()};
    TrustedSet s = r.set();
    ASSERT_TRUE(s.update_root(next.root(2)).ok());
    EXPECT_TRUE(s.finish_root_update().value()) << "role " << role;  // 5.3.11
  }
}

TEST(TrustedSetRoot, NoRootUpdateAfterTimestamp) {
  Repo r;
  TrustedSet s = r.set_through("snapshot");
  EXPECT_EQ(error_of(s.update_root(r.b.root(2))).code, ErrorCode::kInvalidTransition);
}

// ---- 5.4 timestamp ----

TEST(TrustedSetTimestamp, NeedsTheRootUpdateFirst) {
  Repo r;
  TrustedSet s = r.set();
  EXPECT_EQ(error_of(s.update_timestamp(r.timestamp)).code, ErrorCode::kInvalidTransition);
}

TEST(TrustedSetTimestamp, SignedByTimestampKeys) {
  Repo r;
  TrustedSet s = r.set_through("timestamp");
  // 5.4.2: signed by the snapshot key instead.
  std::string forged = RepoBuilder::sign(
      timestamp_signed(1, r.b.expires, meta_info_of(1, r.snapshot)), r.b.snapshot_keys);
  auto e = error_of(s.update_timestamp(forged));
  EXPECT_EQ(e.code, ErrorCode::kUnverified);
  EXPECT_NE(e.message.find("(5.4.2)"), std::string::npos) << e.message;
  EXPECT_EQ(s.timestamp(), nullptr);
}

TEST(TrustedSetTimestamp, RollbackOfVersionAndOfSnapshotVersion) {
  Repo r;
  TrustedSet s = r.set_through("timestamp");
  ASSERT_EQ(s.update_timestamp(r.b.timestamp(5, 5, r.snapshot)).value(), TimestampUpdate::kNew);
  // 5.4.3.1: lower version.
  auto e = error_of(s.update_timestamp(r.b.timestamp(4, 5, r.snapshot)));
  EXPECT_NE(e.message.find("5.4.3.1 rollback"), std::string::npos) << e.message;
  // 5.4.3.1: equal version is ignored, the trusted one stays.
  EXPECT_EQ(s.update_timestamp(r.b.timestamp(5, 9, r.snapshot)).value(),
            TimestampUpdate::kSameVersion);
  EXPECT_EQ(s.timestamp()->body.snapshot.version, 5);
  // 5.4.3.2: higher version listing an older snapshot.
  e = error_of(s.update_timestamp(r.b.timestamp(6, 4, r.snapshot)));
  EXPECT_NE(e.message.find("5.4.3.2 rollback"), std::string::npos) << e.message;
  EXPECT_EQ(s.timestamp()->body.common.version, 5);
}

TEST(TrustedSetTimestamp, ExpiredIsRefusedButKeptForRollbackChecks) {
  Repo r;
  RepoBuilder old = r.b;
  old.expires = kNow;  // expired at exactly now: now >= expires
  TrustedSet s = r.set_through("timestamp");
  auto e = error_of(s.update_timestamp(old.timestamp(3, 1, r.snapshot)));
  EXPECT_NE(e.message.find("5.4.4 freeze attack"), std::string::npos) << e.message;
  ASSERT_NE(s.timestamp(), nullptr);
  // The expired one still blocks a rollback below it ...
  EXPECT_FALSE(s.update_timestamp(r.b.timestamp(2, 1, r.snapshot)).ok());
  // ... and a snapshot cannot be checked against an expired timestamp.
  EXPECT_FALSE(s.update_snapshot(r.snapshot).ok());
  EXPECT_TRUE(s.update_timestamp(r.b.timestamp(4, 1, r.snapshot)).ok());
}

// ---- 5.5 snapshot ----

TEST(TrustedSetSnapshot, DownloadNameAndCapFollowTheTimestamp) {
  Repo r;
  TrustedSet s = r.set_through("snapshot");
  Download d = s.snapshot_download().value();
  EXPECT_EQ(d.file_name, "1.snapshot.json");  // 5.5.1 consistent snapshot
  EXPECT_EQ(d.max_bytes, r.snapshot.size());
  r.b.consistent = false;
  r.root = r.b.root(1);
  EXPECT_EQ(r.set_through("snapshot").snapshot_download()->file_name, "snapshot.json");
}

TEST(TrustedSetSnapshot, LengthAndHashesAsTheTimestampLists) {
  Repo r;
  TrustedSet s = r.set_through("snapshot");
  // 5.5.2: same signed content, other bytes (a space more) -> length differs.
  auto e = error_of(s.update_snapshot(r.snapshot + " "));
  EXPECT_NE(e.message.find("5.5.2 length"), std::string::npos) << e.message;
  // Another validly signed snapshot of the same length -> hash differs.
  RepoBuilder later = r.b;
  later.expires += 1000;  // one second later: same length
  std::string other = r.b.snapshot_for(1, 1, later.targets(1));
  ASSERT_EQ(other.size(), r.snapshot.size());
  e = error_of(s.update_snapshot(other));
  EXPECT_NE(e.message.find("5.5.2 hash"), std::string::npos) << e.message;
  // A local copy skips 5.5.2 (it was checked when fetched).
  EXPECT_TRUE(s.update_snapshot(other, /*from_local=*/true).ok());
}

TEST(TrustedSetSnapshot, SignedBySnapshotKeys) {
  Repo r;
  std::string forged = RepoBuilder::sign(
      snapshot_signed(1, r.b.expires, {{"targets.json", meta_info_of(1, r.targets)}}),
      r.b.targets_keys);
  r.timestamp = r.b.timestamp(1, 1, forged);
  TrustedSet s = r.set_through("snapshot");
  auto e = error_of(s.update_snapshot(forged));
  EXPECT_NE(e.message.find("(5.5.3)"), std::string::npos) << e.message;
}

TEST(TrustedSetSnapshot, VersionAsTheTimestampLists) {
  Repo r;
  r.snapshot = r.b.snapshot_for(2, 1, r.targets);
  r.timestamp = r.b.timestamp(1, 3, r.snapshot);  // hash of v2, version 3
  TrustedSet s = r.set_through("snapshot");
  auto e = error_of(s.update_snapshot(r.snapshot));
  EXPECT_NE(e.message.find("(5.5.4)"), std::string::npos) << e.message;
}

TEST(TrustedSetSnapshot, TargetsVersionsNeverGoBackNorDisappear) {
  Repo r;
  auto snap = [&](std::int64_t version, std::int64_t targets_version, bool with_role1) {
    std::map<std::string, MetaInfo> meta{{"targets.json", MetaInfo{targets_version, {}, {}}}};
    if (with_role1) meta["role1.json"] = MetaInfo{2, {}, {}};
    return r.b.snapshot(version, meta);
  };
  const std::string trusted = snap(1, 5, true);
  struct Case {
    std::string bytes;
    const char* error;  // nullptr: accepted
  };
  for (const Case& c : {Case{snap(2, 4, true), "version 4 is lower than the trusted 5"},
                        Case{snap(2, 5, false), "'role1.json' is listed by the trusted snapshot"},
                        Case{snap(2, 6, true), nullptr}}) {
    TrustedSet s = r.set();
    ASSERT_TRUE(s.finish_root_update().ok());
    ASSERT_TRUE(s.update_timestamp(r.b.timestamp(2, 2, c.bytes)).ok());
    // The stored snapshot is stale (5.5.4) but stays for the comparison.
    EXPECT_FALSE(s.update_snapshot(trusted, /*from_local=*/true).ok());
    ASSERT_NE(s.snapshot(), nullptr);
    auto st = s.update_snapshot(c.bytes);
    if (c.error == nullptr) {
      EXPECT_TRUE(st.ok()) << st.error().to_string();
    } else {
      auto e = error_of(st);
      EXPECT_NE(e.message.find(c.error), std::string::npos) << e.message;
      EXPECT_NE(e.message.find("5.5.5 rollback"), std::string::npos) << e.message;
    }
  }
}

TEST(TrustedSetSnapshot, ExpiredIsRefused) {
  Repo r;
  RepoBuilder old = r.b;
  old.expires = kNow - 1;
  r.snapshot = old.snapshot_for(1, 1, r.targets);
  r.timestamp = r.b.timestamp(1, 1, r.snapshot);
  TrustedSet s = r.set_through("snapshot");
  auto e = error_of(s.update_snapshot(r.snapshot));
  EXPECT_NE(e.message.find("5.5.6 freeze attack"), std::string::npos) << e.message;
}

// ---- 5.6 targets ----

TEST(TrustedSetTargets, AcceptsTheListedTargets) {
  Repo r;
  TrustedSet s = r.set_through("targets");
  Download d = s.targets_download("targets").value();
  EXPECT_EQ(d.file_name, "1.targets.json");  // 5.6.1
  EXPECT_EQ(d.max_bytes, r.targets.size());
  ASSERT_TRUE(s.update_targets(r.targets).ok());
  EXPECT_NE(s.targets(), nullptr);
  EXPECT_EQ(error_of(s.update_targets(r.targets)).code, ErrorCode::kInvalidTransition);
}

TEST(TrustedSetTargets, HashSignatureVersionExpiry) {
  Repo r;
  // 5.6.2: bytes other than the snapshot lists.
  auto e = error_of(r.set_through("targets").update_targets(r.b.targets(1) + "\n"));
  EXPECT_NE(e.message.find("5.6.2"), std::string::npos) << e.message;
  // 5.6.3: signed by the snapshot key.
  {
    Repo f;
    f.targets = RepoBuilder::sign(targets_signed(1, f.b.expires, {}), f.b.snapshot_keys);
    f.snapshot = f.b.snapshot_for(1, 1, f.targets);
    f.timestamp = f.b.timestamp(1, 1, f.snapshot);
    e = error_of(f.set_through("targets").update_targets(f.targets));
    EXPECT_NE(e.message.find("(5.6.3)"), std::string::npos) << e.message;
  }
  // 5.6.4: version other than the snapshot lists (hash matches: listed as v2).
  {
    Repo f;
    f.snapshot = f.b.snapshot_for(1, 2, f.targets);
    f.timestamp = f.b.timestamp(1, 1, f.snapshot);
    e = error_of(f.set_through("targets").update_targets(f.targets));
    EXPECT_NE(e.message.find("(5.6.4)"), std::string::npos) << e.message;
  }
  // 5.6.5: expired.
  {
    Repo f;
    RepoBuilder old = f.b;
    old.expires = kNow - 1;
    f.targets = old.targets(1);
    f.snapshot = f.b.snapshot_for(1, 1, f.targets);
    f.timestamp = f.b.timestamp(1, 1, f.snapshot);
    e = error_of(f.set_through("targets").update_targets(f.targets));
    EXPECT_NE(e.message.find("5.6.5 freeze attack"), std::string::npos) << e.message;
  }
}

// Top-level targets delegating "role1" (paths "a/*") to its own key.
struct DelegatingRepo : Repo {
  SigningKey role_key = testing::new_key();
  std::string role1;
  DelegatingRepo() {
    json::object t = targets_signed(1, b.expires, {});
    json::object keys{{key_id(role_key.public_key), role_key.public_key.json}};
    t["delegations"] = json::object{
        {"keys", keys},
        {"roles", json::array{json::object{{"name", "role1"},
                                           {"keyids", json::array{key_id(role_key.public_key)}},
                                           {"threshold", 1},
                                           {"terminating", false},
                                           {"paths", json::array{"a/*"}}}}}};
    targets = RepoBuilder::sign(t, b.targets_keys);
    role1 = RepoBuilder::sign(targets_signed(1, b.expires, {}), {role_key});
    snapshot = b.snapshot(
        1, {{"targets.json", meta_info_of(1, targets)}, {"role1.json", meta_info_of(1, role1)}});
    timestamp = b.timestamp(1, 1, snapshot);
  }
};

TEST(TrustedSetTargets, DelegatedRoleUsesTheDelegatorsKeys) {
  DelegatingRepo r;
  TrustedSet s = r.set_through("targets");
  // The delegator must be trusted first.
  EXPECT_EQ(error_of(s.update_delegated_targets(r.role1, "role1", "targets")).code,
            ErrorCode::kInvalidTransition);
  ASSERT_TRUE(s.update_targets(r.targets).ok());
  EXPECT_EQ(s.targets_download("role1")->file_name, "1.role1.json");
  // Signed by the top-level targets key: not role1's key (5.6.3).
  std::string wrong = RepoBuilder::sign(targets_signed(1, r.b.expires, {}), r.b.targets_keys);
  EXPECT_FALSE(TrustedSet(s).update_delegated_targets(wrong, "role1", "targets").ok());
  // A role the delegator does not delegate to.
  EXPECT_EQ(error_of(s.update_delegated_targets(r.role1, "role2", "targets")).code,
            ErrorCode::kNotFound);
  ASSERT_TRUE(s.update_delegated_targets(r.role1, "role1", "targets").ok());
  EXPECT_NE(s.targets("role1"), nullptr);
}

TEST(TrustedSetTargets, RoleNamesAreValidatedBeforeUseAsFileNames) {
  Repo r;
  TrustedSet s = r.set_through("targets");
  EXPECT_EQ(error_of(s.targets_download("..")).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of(s.targets_download("a\nb")).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of(s.targets_download(std::string(300, 'x'))).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of(s.targets_download("missing")).code, ErrorCode::kNotFound);
  EXPECT_EQ(role_file_stem("../../etc/passwd").value(), "..%2F..%2Fetc%2Fpasswd");
  EXPECT_EQ(role_file_stem("bins-0a").value(), "bins-0a");
}

// ---- 5.7 targets and names ----

TEST(TargetFiles, LengthAndEveryHashMustMatch) {
  TargetFile f = testing::target_file_of("hello");
  EXPECT_TRUE(verify_target(f, "hello").ok());
  EXPECT_EQ(error_of(verify_target(f, "hello!")).code, ErrorCode::kUnverified);
  EXPECT_EQ(error_of(verify_target(f, "hellO")).code, ErrorCode::kUnverified);
  f.hashes["sha512"] = sha512_hex("other");
  EXPECT_FALSE(verify_target(f, "hello").ok());
  f.hashes["sha512"] = sha512_hex("hello");
  EXPECT_TRUE(verify_target(f, "hello").ok());
  f.hashes["md5"] = "00";
  auto e = error_of(verify_target(f, "hello"));
  EXPECT_NE(e.message.find("not supported"), std::string::npos) << e.message;
}

TEST(TargetFiles, RemoteAndLocalNames) {
  TargetFile f = testing::target_file_of("x");
  const std::string h = f.hashes.at("sha256");
  auto p = testing::target_path("dir/sub/file name.bin");
  EXPECT_EQ(target_remote_path(p, f, true), "dir/sub/" + h + ".file%20name.bin");
  EXPECT_EQ(target_remote_path(p, f, false), "dir/sub/file%20name.bin");
  EXPECT_EQ(target_local_name(p), "dir%2Fsub%2Ffile%20name.bin");
  EXPECT_EQ(percent_encode("a~b-c_d.e/f?"), "a~b-c_d.e%2Ff%3F");
}

}  // namespace
}  // namespace tranche::tuf
