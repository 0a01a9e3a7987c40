#include "tuf/crypto.h"

#include <climits>
#include <memory>
#include <utility>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "tuf/canonical_json.h"

namespace tranche::tuf {
namespace {

using core::ErrorCode;
using core::make_error;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

constexpr int kMinRsaBits = 2048;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Leaves OpenSSL's thread-local error queue empty, so a failure here cannot be
// mistaken for someone else's later.
struct ErrorQueueGuard {
  ErrorQueueGuard() = default;
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

enum class Algo { kEd25519, kEcdsaP256, kRsaPss };

// The keytype/scheme pairs securesystemslib's SSlibKey accepts for these three.
std::optional<Algo> algo_of(std::string_view keytype, std::string_view scheme) {
  if (keytype == kKeyTypeEd25519 && scheme == kSchemeEd25519) return Algo::kEd25519;
  if ((keytype == kKeyTypeEcdsa || keytype == kKeyTypeEcdsaLegacy) && scheme == kSchemeEcdsaP256) {
    return Algo::kEcdsaP256;
  }
  if (keytype == kKeyTypeRsa && scheme == kSchemeRsaPssSha256) return Algo::kRsaPss;
  return std::nullopt;
}

Pkey read_pem_public(std::string_view pem) {
  if (pem.size() > static_cast<std::size_t>(INT_MAX)) return nullptr;
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return Pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

bool is_p256(EVP_PKEY* pkey) {
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) return false;
  char name[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, name, sizeof name, &len) != 1) return false;
  return std::string_view(name, len) == "prime256v1";
}

core::Result<Pkey> load_public(const PublicKey& key, Algo algo) {
  switch (algo) {
    case Algo::kEd25519: {
      auto raw = hex_decode(key.public_value);
      if (!raw || raw->size() != 32) {
        return make_error(ErrorCode::kInvalidArgument,
                          "ed25519 public key must be 64 hex characters");
      }
      Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes_of(*raw), raw->size()));
      if (!pkey) return make_error(ErrorCode::kInvalidArgument, "ed25519 public key rejected");
      return pkey;
    }
    case Algo::kEcdsaP256: {
      Pkey pkey = read_pem_public(key.public_value);
      if (!pkey) return make_error(ErrorCode::kInvalidArgument, "ecdsa public key is not a PEM public key");
      if (!is_p256(pkey.get())) {
        return make_error(ErrorCode::kInvalidArgument, "ecdsa public key is not on curve P-256");
      }
      return pkey;
    }
    case Algo::kRsaPss: {
      Pkey pkey = read_pem_public(key.public_value);
      if (!pkey) return make_error(ErrorCode::kInvalidArgument, "rsa public key is not a PEM public key");
      if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) {
        return make_error(ErrorCode::kInvalidArgument, "rsa public key is not an RSA key");
      }
      if (EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits) {
        return make_error(ErrorCode::kInvalidArgument, "rsa public key is shorter than 2048 bits");
      }
      return pkey;
    }
  }
  TRANCHE_ASSERT(false, "unknown key algorithm");
  return make_error(ErrorCode::kInvalidArgument, "unknown key algorithm");
}

// RSASSA-PSS with SHA-256 and MGF1-SHA-256. Salt: any length when verifying
// (securesystemslib: PSS.AUTO), digest length when signing.
bool set_pss(EVP_PKEY_CTX* pctx, bool signing) {
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(
             pctx, signing ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_AUTO) == 1;
}

std::string digest_bytes(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  int rc = EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  TRANCHE_ASSERT(rc == 1, "EVP_Digest failed");
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::optional<std::string> pem_of(EVP_PKEY* pkey, bool private_key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return std::nullopt;
  int rc = private_key
               ? PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PUBKEY(bio.get(), pkey);
  if (rc != 1) return std::nullopt;
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len < 0 || data == nullptr) return std::nullopt;
  return std::string(data, static_cast<std::size_t>(len));
}

core::Result<SigningKey> signing_key_of(Pkey pkey) {
  SigningKey out;
  int id = EVP_PKEY_get_base_id(pkey.get());
  if (id == EVP_PKEY_ED25519) {
    unsigned char raw[32];
    std::size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey.get(), raw, &len) != 1 || len != sizeof raw) {
      return make_error(ErrorCode::kInvalidArgument, "cannot read the ed25519 public key");
    }
    out.public_key = make_public_key(std::string(kKeyTypeEd25519), std::string(kSchemeEd25519),
                                     hex_encode(std::string_view(reinterpret_cast<const char*>(raw), len)));
  } else if (id == EVP_PKEY_EC || id == EVP_PKEY_RSA) {
    if (id == EVP_PKEY_EC && !is_p256(pkey.get())) {
      return make_error(ErrorCode::kInvalidArgument, "EC private key is not on curve P-256");
    }
    if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits) {
      return make_error(ErrorCode::kInvalidArgument, "RSA private key is shorter than 2048 bits");
    }
    auto pub = pem_of(pkey.get(), false);
    if (!pub) return make_error(ErrorCode::kInvalidArgument, "cannot write the public key as PEM");
    if (id == EVP_PKEY_EC) {
      out.public_key = make_public_key(std::string(kKeyTypeEcdsa), std::string(kSchemeEcdsaP256), *pub);
    } else {
      out.public_key = make_public_key(std::string(kKeyTypeRsa), std::string(kSchemeRsaPssSha256), *pub);
    }
  } else {
    return make_error(ErrorCode::kInvalidArgument,
                      "unsupported private key type (want Ed25519, EC P-256 or RSA)");
  }
  auto priv = pem_of(pkey.get(), true);
  if (!priv) return make_error(ErrorCode::kInvalidArgument, "cannot write the private key as PEM");
  out.private_pem = std::move(*priv);
  return out;
}

}  // namespace

PublicKey make_public_key(std::string keytype, std::string scheme, std::string public_value) {
  PublicKey key;
  key.json["keytype"] = keytype;
  key.json["scheme"] = scheme;
  boost::json::object keyval;
  keyval["public"] = public_value;
  key.json["keyval"] = std::move(keyval);
  key.keytype = std::move(keytype);
  key.scheme = std::move(scheme);
  key.public_value = std::move(public_value);
  return key;
}

std::string key_id(const PublicKey& key) {
  auto canonical = canonical_json(boost::json::value(key.json));
  // A PublicKey's json comes from our parser or make_public_key: no floats, UTF-8.
  TRANCHE_ASSERT(canonical.ok(), "a key dict without a canonical form");
  return sha256_hex(*canonical);
}

core::Status verify_signature(const PublicKey& key, std::string_view data,
                              std::string_view signature_hex) {
  ErrorQueueGuard guard;
  auto algo = algo_of(key.keytype, key.scheme);
  if (!algo) {
    return make_error(ErrorCode::kInvalidArgument, "unsupported keytype/scheme '" + key.keytype +
                                                       "'/'" + key.scheme + "'");
  }
  auto pkey = load_public(key, *algo);
  if (!pkey) return pkey.error();
  auto sig = hex_decode(signature_hex);
  if (!sig) return make_error(ErrorCode::kUnverified, "signature is not hex");

  MdCtx ctx(EVP_MD_CTX_new());
  TRANCHE_ASSERT(ctx != nullptr, "out of memory");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  // Ed25519 is "pure": it hashes internally, so no digest is named.
  const EVP_MD* md = *algo == Algo::kEd25519 ? nullptr : EVP_sha256();
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey->get()) != 1) {
    return make_error(ErrorCode::kInvalidArgument, "key cannot verify");
  }
  if (*algo == Algo::kRsaPss && !set_pss(pctx, false)) {
    return make_error(ErrorCode::kInvalidArgument, "cannot set RSASSA-PSS parameters");
  }
  int rc = EVP_DigestVerify(ctx.get(), bytes_of(*sig), sig->size(), bytes_of(data), data.size());
  if (rc != 1) return make_error(ErrorCode::kUnverified, "signature does not verify");
  return core::Ok{};
}

std::string sha256_bytes(std::string_view data) { return digest_bytes(EVP_sha256(), data); }
std::string sha256_hex(std::string_view data) { return hex_encode(sha256_bytes(data)); }
std::string sha512_hex(std::string_view data) { return hex_encode(digest_bytes(EVP_sha512(), data)); }

std::string hex_encode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 0xFu]);
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

core::Result<SigningKey> generate_signing_key(KeyScheme scheme, int rsa_bits) {
  ErrorQueueGuard guard;
  Pkey pkey;
  switch (scheme) {
    case KeyScheme::kEd25519:
      pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
      break;
    case KeyScheme::kEcdsaP256:
      pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
      break;
    case KeyScheme::kRsaPssSha256:
      if (rsa_bits < kMinRsaBits) {
        return make_error(ErrorCode::kInvalidArgument, "RSA keys need at least 2048 bits");
      }
      pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits)));
      break;
  }
  if (!pkey) return make_error(ErrorCode::kInvalidArgument, "key generation failed");
  return signing_key_of(std::move(pkey));
}

core::Result<SigningKey> signing_key_from_pem(std::string_view private_pem) {
  ErrorQueueGuard guard;
  if (private_pem.size() > static_cast<std::size_t>(INT_MAX)) {
    return make_error(ErrorCode::kTooLarge, "PEM too large");
  }
  Bio bio(BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size())));
  if (!bio) return make_error(ErrorCode::kInvalidArgument, "out of memory");
  // The empty passphrase callback refuses encrypted keys instead of prompting.
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                    [](char*, int, int, void*) -> int { return 0; }, nullptr));
  if (!pkey) return make_error(ErrorCode::kParse, "not an unencrypted PEM private key");
  return signing_key_of(std::move(pkey));
}

core::Result<std::string> sign(const SigningKey& key, std::string_view data) {
  ErrorQueueGuard guard;
  auto algo = algo_of(key.public_key.keytype, key.public_key.scheme);
  if (!algo) return make_error(ErrorCode::kInvalidArgument, "unsupported signing scheme");
  if (key.private_pem.size() > static_cast<std::size_t>(INT_MAX)) {
    return make_error(ErrorCode::kTooLarge, "PEM too large");
  }
  Bio bio(BIO_new_mem_buf(key.private_pem.data(), static_cast<int>(key.private_pem.size())));
  if (!bio) return make_error(ErrorCode::kInvalidArgument, "out of memory");
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                    [](char*, int, int, void*) -> int { return 0; }, nullptr));
  if (!pkey) return make_error(ErrorCode::kParse, "not an unencrypted PEM private key");

  MdCtx ctx(EVP_MD_CTX_new());
  TRANCHE_ASSERT(ctx != nullptr, "out of memory");
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = *algo == Algo::kEd25519 ? nullptr : EVP_sha256();
  if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, pkey.get()) != 1) {
    return make_error(ErrorCode::kInvalidArgument, "key cannot sign");
  }
  if (*algo == Algo::kRsaPss && !set_pss(pctx, true)) {
    return make_error(ErrorCode::kInvalidArgument, "cannot set RSASSA-PSS parameters");
  }
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, bytes_of(data), data.size()) != 1) {
    return make_error(ErrorCode::kInvalidArgument, "signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, bytes_of(data),
                     data.size()) != 1) {
    return make_error(ErrorCode::kInvalidArgument, "signing failed");
  }
  sig.resize(len);  // a DER ECDSA signature can be shorter than the maximum
  return hex_encode(sig);
}

}  // namespace tranche::tuf
