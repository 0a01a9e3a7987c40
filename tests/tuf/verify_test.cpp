// Threshold counting over distinct key ids (TUF 1.0.x section 5).
#include "tuf/verify.h"

#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/tuf/fixture_paths.h"

namespace tranche::tuf {
namespace {

namespace json = boost::json;
using core::ErrorCode;

struct Fixture {
  std::vector<SigningKey> signers;
  std::map<std::string, PublicKey> keys;
  std::vector<std::string> ids;
  std::string canonical = R"({"_type":"snapshot","version":2})";

  explicit Fixture(int n) {
    for (int i = 0; i < n; ++i) {
      auto k = generate_signing_key(i % 2 == 0 ? KeyScheme::kEd25519 : KeyScheme::kEcdsaP256);
      TRANCHE_ASSERT(k.ok(), "keygen");
      ids.push_back(key_id(k->public_key));
      keys.emplace(ids.back(), k->public_key);
      signers.push_back(std::move(*k));
    }
  }
  Signature sig(int i, std::string_view data) const {
    return Signature{ids[static_cast<std::size_t>(i)], *sign(signers[static_cast<std::size_t>(i)], data)};
  }
  Signature sig(int i) const { return sig(i, canonical); }
  RoleKeys role(std::uint32_t threshold) const { return RoleKeys{ids, threshold}; }
};

TEST(VerifyRole, MeetsThresholdWithDistinctValidKeys) {
  Fixture f(3);
  EXPECT_TRUE(verify_role(f.canonical, {f.sig(0), f.sig(2)}, f.keys, f.role(2), "snapshot").ok());
  auto counted = count_role_signatures(f.canonical, {f.sig(2), f.sig(0)}, f.keys, f.role(2));
  EXPECT_EQ(counted.valid_keyids, (std::vector<std::string>{f.ids[2], f.ids[0]}));
  EXPECT_TRUE(counted.threshold_met());
}

TEST(VerifyRole, DuplicateSignaturesByOneKeyCountOnce) {
  Fixture f(2);
  auto st = verify_role(f.canonical, {f.sig(0), f.sig(0), f.sig(0)}, f.keys, f.role(2), "root");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnverified);
  EXPECT_EQ(st.error().message, "root: 1 of the 2 required signatures are valid");
}

TEST(VerifyRole, SameKeyMaterialUnderTwoIdsCountsOnce) {
  Fixture f(1);
  // The role lists the one key under a second id, with an extra field so the
  // dict (and so its canonical hash) differs.
  PublicKey alias = f.keys.at(f.ids[0]);
  alias.json["x-alias"] = true;
  f.keys.emplace("alias", alias);
  RoleKeys role{{f.ids[0], "alias"}, 2};
  Signature second{"alias", f.sig(0).sig};
  EXPECT_FALSE(verify_role(f.canonical, {f.sig(0), second}, f.keys, role, "root").ok());
}

TEST(VerifyRole, IgnoresUnknownKeyidsBadSignaturesAndOtherRolesKeys) {
  Fixture f(4);
  RoleKeys role{{f.ids[0], f.ids[1]}, 2};  // keys 2 and 3 exist but belong to another role
  Signature forged{f.ids[1], f.sig(1, "other bytes").sig};
  Signature garbage{f.ids[1], "not hex"};
  Signature unknown{"no-such-key", f.sig(0).sig};
  std::vector<Signature> sigs{garbage, forged, unknown, f.sig(2), f.sig(3), f.sig(0)};
  auto counted = count_role_signatures(f.canonical, sigs, f.keys, role);
  EXPECT_EQ(counted.valid_keyids, std::vector<std::string>{f.ids[0]});
  EXPECT_FALSE(counted.threshold_met());
  // A valid signature after the bad ones by the same key id still counts.
  sigs.push_back(f.sig(1));
  EXPECT_TRUE(verify_role(f.canonical, sigs, f.keys, role, "targets").ok());
}

TEST(VerifyRole, ListedKeyIdWithoutKeyOrUnusableKeyIsIgnored) {
  Fixture f(2);
  RoleKeys role{{f.ids[0], f.ids[1], "missing"}, 2};
  f.keys[f.ids[1]] = make_public_key("ed25519", "rsassa-pss-sha256", "xx");  // unusable
  Signature missing{"missing", f.sig(0).sig};
  EXPECT_FALSE(verify_role(f.canonical, {f.sig(0), f.sig(1), missing}, f.keys, role, "r").ok());
  EXPECT_TRUE(verify_role(f.canonical, {f.sig(0)}, f.keys, RoleKeys{role.keyids, 1}, "r").ok());
}

TEST(VerifyRole, NoSignaturesFails) {
  Fixture f(1);
  auto st = verify_role(f.canonical, {}, f.keys, f.role(1), "timestamp");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "timestamp: 0 of the 1 required signatures are valid");
}

// The openssl-signed fixture: threshold 3 over ed25519, ecdsa and rsa keys.
TEST(VerifyRole, OpensslFixtureRootFromBytes) {
  const std::string bytes = testing::read_fixture("root.json");
  auto root = parse_root(bytes);
  ASSERT_TRUE(root.ok()) << root.error().to_string();
  const Root& r = root->body;
  EXPECT_TRUE(verify_role(*root, r.keys, r.root, "root").ok());
  EXPECT_TRUE(verify_role_from_bytes(bytes, "root", r.keys, r.root, "root").ok());
  EXPECT_TRUE(verify_role(*root, r.keys, r.timestamp, "timestamp").ok());  // the rsa key

  // Any change to "signed" breaks every signature, even a whitespace-free one
  // like bumping the version.
  auto doc = json::parse(bytes);
  doc.as_object()["signed"].as_object()["version"] = 2;
  auto st = verify_role_from_bytes(json::serialize(doc), "root", r.keys, r.root, "root");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "root: 0 of the 3 required signatures are valid");

  // Re-serialising without changing content keeps them valid: signatures are
  // over the canonical form, not the served bytes.
  doc.as_object()["signed"].as_object()["version"] = 1;
  EXPECT_TRUE(verify_role_from_bytes(json::serialize(doc), "root", r.keys, r.root, "root").ok());

  // Dropping one of three signatures misses the threshold of 3.
  doc.as_object()["signatures"].as_array().pop_back();
  EXPECT_FALSE(verify_role_from_bytes(json::serialize(doc), "root", r.keys, r.root, "root").ok());

  // Wrong _type is a parse error, not a signature count.
  auto wrong = verify_role_from_bytes(bytes, "timestamp", r.keys, r.root, "timestamp");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace tranche::tuf
