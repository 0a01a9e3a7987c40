// tuf/repository.h: what it writes is what a client accepts, for every key
// scheme, and it refuses to sign with keys the root does not give the role.
#include "tuf/repository.h"

#include <gtest/gtest.h>

#include "tests/tuf/repo_builder.h"
#include "tuf/client.h"

namespace tranche::tuf {
namespace {

using testing::kNow;

TEST(Repository, EveryKeySchemeWritesMetadataAClientAccepts) {
  for (KeyScheme scheme : {KeyScheme::kEd25519, KeyScheme::kEcdsaP256, KeyScheme::kRsaPssSha256}) {
    std::vector<SigningKey> keys{testing::new_key(scheme)};
    RootDefinition def;
    def.expires = kNow + kDay;
    def.root = def.targets = def.snapshot = def.timestamp = {{keys[0].public_key}, 1};
    auto root = make_root(def, keys);
    ASSERT_TRUE(root.ok()) << root.error().to_string();
    auto targets = add_target(*root, "", testing::target_path("a/b.bin"),
                              testing::target_file_of("b"), kNow + kDay, keys);
    ASSERT_TRUE(targets.ok()) << targets.error().to_string();
    PublishRequest req;
    req.root = *root;
    req.targets = {{"targets", *targets}};
    req.snapshot_keys = req.timestamp_keys = keys;
    req.now = kNow;
    auto pub = publish(req);
    ASSERT_TRUE(pub.ok()) << pub.error().to_string();

    auto set = TrustedSet::create(*root, kNow);
    ASSERT_TRUE(set.ok()) << set.error().to_string();
    ASSERT_TRUE(set->finish_root_update().ok());
    ASSERT_TRUE(set->update_timestamp(pub->timestamp).ok());
    ASSERT_TRUE(set->update_snapshot(pub->snapshot).ok());
    auto st = set->update_targets(*targets);
    EXPECT_TRUE(st.ok()) << st.error().to_string();
  }
}

TEST(Repository, RefusesKeysTheRootDoesNotTrustForTheRole) {
  testing::RepoBuilder b;
  const std::string root = b.root(1);
  EXPECT_FALSE(empty_targets(root, kNow + kDay, b.snapshot_keys).ok());
  auto targets = empty_targets(root, kNow + kDay, b.targets_keys);
  ASSERT_TRUE(targets.ok());
  PublishRequest req;
  req.root = root;
  req.targets = {{"targets", *targets}};
  req.snapshot_keys = b.timestamp_keys;  // swapped
  req.timestamp_keys = b.snapshot_keys;
  req.now = kNow;
  EXPECT_EQ(publish(req).error().code, core::ErrorCode::kUnverified);
}

TEST(Repository, RotationNeedsBothThresholdsAndPublishVersionsGoUp) {
  testing::RepoBuilder b;
  const std::string v1 = b.root(1);
  RootDefinition next = b.root_def();
  SigningKey new_root = testing::new_key();
  next.root = {{new_root.public_key}, 1};
  EXPECT_FALSE(rotate_root(v1, next, kNow + kDay, {new_root}).ok());
  EXPECT_FALSE(rotate_root(v1, next, kNow + kDay, b.root_keys).ok());
  auto v2 = rotate_root(v1, next, kNow + kDay, {b.root_keys[0], new_root});
  ASSERT_TRUE(v2.ok()) << v2.error().to_string();
  auto set = TrustedSet::create(v1, kNow);
  ASSERT_TRUE(set->update_root(*v2).ok());

  auto targets = empty_targets(v1, kNow + kDay, b.targets_keys).value();
  PublishRequest req;
  req.root = v1;
  req.targets = {{"targets", targets}};
  req.snapshot_keys = b.snapshot_keys;
  req.timestamp_keys = b.timestamp_keys;
  req.now = kNow;
  auto first = publish(req).value();
  req.previous_snapshot = first.snapshot;
  req.previous_timestamp = first.timestamp;
  auto second = publish(req).value();
  EXPECT_EQ(second.snapshot_version, first.snapshot_version + 1);
  EXPECT_EQ(parse_timestamp(second.timestamp)->body.common.version, 2);
}

}  // namespace
}  // namespace tranche::tuf
