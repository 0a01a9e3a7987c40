// Signatures for all three key types: keys made here by our signer, and a
// fixture signed by the openssl command line (tests/tuf/fixtures).
#include "tuf/crypto.h"

#include <memory>
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tests/tuf/fixture_paths.h"
#include "tuf/canonical_json.h"

namespace tranche::tuf {
namespace {

using core::ErrorCode;

void expect_code(const core::Status& s, ErrorCode code, const std::string& what) {
  ASSERT_FALSE(s.ok()) << what << ": verified";
  EXPECT_EQ(s.error().code, code) << what << ": " << s.error().to_string();
}

// A public key of the given keytype from the hand-made fixture.
PublicKey fixture_key(const std::string& keytype) {
  auto doc = parse_json(testing::read_fixture("root.json"));
  TRANCHE_ASSERT(doc.ok(), "fixture root.json does not parse");
  for (const auto& kv : doc->at("signed").at("keys").as_object()) {
    const auto& k = kv.value().as_object();
    if (k.at("keytype").as_string() == keytype) {
      return PublicKey{keytype, std::string(k.at("scheme").as_string()),
                       std::string(k.at("keyval").at("public").as_string()), k};
    }
  }
  TRANCHE_ASSERT(false, "no such key in the fixture");
  return {};
}

// Sign, verify, and check that every kind of tampering fails.
void round_trip(const SigningKey& key, const PublicKey& other) {
  const std::string data = R"({"_type":"targets","version":1})";
  auto sig = sign(key, data);
  ASSERT_TRUE(sig.ok()) << sig.error().to_string();
  EXPECT_TRUE(verify_signature(key.public_key, data, *sig).ok()) << key.public_key.scheme;

  expect_code(verify_signature(key.public_key, data + " ", *sig), ErrorCode::kUnverified,
              "longer data");
  std::string flipped = data;
  flipped[3] = 'T';
  expect_code(verify_signature(key.public_key, flipped, *sig), ErrorCode::kUnverified,
              "changed data");
  std::string bad_sig = *sig;
  bad_sig[bad_sig.size() / 2] = bad_sig[bad_sig.size() / 2] == '0' ? '1' : '0';
  expect_code(verify_signature(key.public_key, data, bad_sig), ErrorCode::kUnverified,
              "changed signature");
  expect_code(verify_signature(key.public_key, data, sig->substr(0, sig->size() - 2)),
              ErrorCode::kUnverified, "truncated signature");
  expect_code(verify_signature(key.public_key, data, "zz"), ErrorCode::kUnverified,
              "non-hex signature");
  expect_code(verify_signature(key.public_key, data, ""), ErrorCode::kUnverified,
              "empty signature");
  expect_code(verify_signature(other, data, *sig), ErrorCode::kUnverified,
              "another key of the same type");

  // The private PEM reloads to the same public key (same key id).
  auto reloaded = signing_key_from_pem(key.private_pem);
  ASSERT_TRUE(reloaded.ok()) << reloaded.error().to_string();
  EXPECT_EQ(key_id(reloaded->public_key), key_id(key.public_key));
}

TEST(Crypto, Ed25519SignAndVerify) {
  auto a = generate_signing_key(KeyScheme::kEd25519);
  auto b = generate_signing_key(KeyScheme::kEd25519);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->public_key.keytype, "ed25519");
  EXPECT_EQ(a->public_key.public_value.size(), 64u);
  round_trip(*a, b->public_key);
  // Ed25519 is deterministic: the same data gives the same signature.
  EXPECT_EQ(*sign(*a, "x"), *sign(*a, "x"));
  EXPECT_EQ(sign(*a, "x")->size(), 128u);
}

TEST(Crypto, EcdsaP256SignAndVerify) {
  auto a = generate_signing_key(KeyScheme::kEcdsaP256);
  auto b = generate_signing_key(KeyScheme::kEcdsaP256);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->public_key.keytype, "ecdsa");
  EXPECT_EQ(a->public_key.scheme, "ecdsa-sha2-nistp256");
  EXPECT_EQ(a->public_key.public_value.rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  round_trip(*a, b->public_key);
  // The legacy keytype securesystemslib still accepts.
  PublicKey legacy = make_public_key("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256",
                                     a->public_key.public_value);
  EXPECT_TRUE(verify_signature(legacy, "m", *sign(*a, "m")).ok());
}

TEST(Crypto, RsaPssSha256SignAndVerify) {
  // One RSA key generation (the slow one); the other key is the fixture's.
  auto a = generate_signing_key(KeyScheme::kRsaPssSha256, 2048);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->public_key.keytype, "rsa");
  EXPECT_EQ(a->public_key.scheme, "rsassa-pss-sha256");
  round_trip(*a, fixture_key("rsa"));
  EXPECT_FALSE(generate_signing_key(KeyScheme::kRsaPssSha256, 1024).ok());
}

TEST(Crypto, UnusableKeysAreInvalidArgumentsNotBadSignatures) {
  auto ed = generate_signing_key(KeyScheme::kEd25519);
  auto ec = generate_signing_key(KeyScheme::kEcdsaP256);
  ASSERT_TRUE(ed.ok() && ec.ok());
  auto sig = *sign(*ed, "m");
  // keytype/scheme pairs securesystemslib does not accept
  expect_code(verify_signature(make_public_key("ed25519", "ecdsa-sha2-nistp256",
                                               ed->public_key.public_value),
                               "m", sig),
              ErrorCode::kInvalidArgument, "ed25519 key, ecdsa scheme");
  expect_code(verify_signature(make_public_key("rsa", "rsassa-pss-sha512",
                                               ec->public_key.public_value),
                               "m", sig),
              ErrorCode::kInvalidArgument, "unsupported scheme");
  // malformed public values
  expect_code(verify_signature(make_public_key("ed25519", "ed25519", "abcd"), "m", sig),
              ErrorCode::kInvalidArgument, "short ed25519 key");
  expect_code(verify_signature(make_public_key("ecdsa", "ecdsa-sha2-nistp256", "not pem"), "m",
                               sig),
              ErrorCode::kInvalidArgument, "ecdsa key not PEM");
  // an EC key used as an RSA key, and the other way round
  expect_code(verify_signature(make_public_key("rsa", "rsassa-pss-sha256",
                                               ec->public_key.public_value),
                               "m", sig),
              ErrorCode::kInvalidArgument, "EC key as rsa");
}

std::string public_pem_of(EVP_PKEY* pkey) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), pkey);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

TEST(Crypto, RefusesWrongCurveAndShortRsaKeys) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> p384(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"), &EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> rsa1024(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024)), &EVP_PKEY_free);
  ASSERT_TRUE(p384 && rsa1024);
  expect_code(verify_signature(make_public_key("ecdsa", "ecdsa-sha2-nistp256",
                                               public_pem_of(p384.get())),
                               "m", "00"),
              ErrorCode::kInvalidArgument, "P-384 key");
  expect_code(verify_signature(make_public_key("rsa", "rsassa-pss-sha256",
                                               public_pem_of(rsa1024.get())),
                               "m", "00"),
              ErrorCode::kInvalidArgument, "1024-bit RSA key");
}

// The fixture: signatures made by the openssl command line over canonical bytes
// made by an independent encoder, key ids computed by that encoder.
TEST(Crypto, VerifiesOpensslCommandLineFixture) {
  auto doc = parse_json(testing::read_fixture("root.json"));
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  const std::string canonical = testing::read_fixture("root.signed.canonical");
  ASSERT_FALSE(canonical.empty());
  const auto& keys = doc->at("signed").at("keys").as_object();
  const auto& sigs = doc->at("signatures").as_array();
  ASSERT_EQ(sigs.size(), 3u);
  int verified = 0;
  for (const auto& s : sigs) {
    std::string keyid(s.at("keyid").as_string());
    const auto& k = keys.at(keyid).as_object();
    PublicKey key{std::string(k.at("keytype").as_string()), std::string(k.at("scheme").as_string()),
                  std::string(k.at("keyval").at("public").as_string()), k};
    EXPECT_EQ(key_id(key), keyid) << key.keytype;
    std::string sig(s.at("sig").as_string());
    auto st = verify_signature(key, canonical, sig);
    EXPECT_TRUE(st.ok()) << key.keytype << ": " << st.error().to_string();
    verified += st.ok() ? 1 : 0;
    // ...and not over other bytes.
    EXPECT_FALSE(verify_signature(key, canonical + "\n", sig).ok()) << key.keytype;
  }
  EXPECT_EQ(verified, 3);
}

TEST(Crypto, HashVectors) {
  // FIPS 180-2 "abc" vectors.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha512_hex("abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_bytes("abc").size(), 32u);
}

TEST(Crypto, Hex) {
  EXPECT_EQ(hex_encode(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*hex_decode("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(hex_decode("abc").has_value());
  EXPECT_FALSE(hex_decode("0g").has_value());
  EXPECT_EQ(*hex_decode(""), "");
}

TEST(Crypto, KeyIdIsSha256OfCanonicalKeyDict) {
  PublicKey k = make_public_key("ed25519", "ed25519", std::string(64, 'a'));
  EXPECT_EQ(key_id(k),
            sha256_hex(R"({"keytype":"ed25519","keyval":{"public":")" + std::string(64, 'a') +
                       R"("},"scheme":"ed25519"})"));
  // Extra fields in the metadata's key dict are part of the id.
  k.json["keyid_hash_algorithms"] = boost::json::array{"sha256", "sha512"};
  EXPECT_NE(key_id(k), key_id(make_public_key("ed25519", "ed25519", std::string(64, 'a'))));
}

}  // namespace
}  // namespace tranche::tuf
