// Signatures and hashes for TUF metadata, with OpenSSL 3, in the encodings
// securesystemslib (python-tuf's crypto layer) uses, so metadata signed by
// python-tuf, go-tuf or tough verifies here and the other way round:
//
//   keytype                      scheme               keyval.public      signature
//   ed25519                      ed25519              64 hex chars       64 bytes, hex
//   ecdsa (or the legacy         ecdsa-sha2-nistp256  PEM SubjectPublic- DER ECDSA-Sig-Value
//   keytype ecdsa-sha2-nistp256)                      KeyInfo, P-256     over SHA-256, hex
//   rsa                          rsassa-pss-sha256    PEM SubjectPublic- RSASSA-PSS, SHA-256,
//                                                     KeyInfo            MGF1-SHA-256, hex
//
// RSA-PSS: verification accepts any salt length (securesystemslib verifies with
// PSS.AUTO), signing uses a salt as long as the digest (securesystemslib's
// CryptoSigner). RSA keys under 2048 bits are refused.
//
// Pure: no files, clock, logging or globals of our own. OpenSSL keeps its own
// process-wide initialisation and a thread-local error queue, which every
// function here leaves empty. Key generation and the ECDSA/PSS signers draw on
// OpenSSL's random generator; verification is deterministic.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "core/result.h"

namespace tranche::tuf {

inline constexpr std::string_view kKeyTypeEd25519 = "ed25519";
inline constexpr std::string_view kKeyTypeEcdsa = "ecdsa";
inline constexpr std::string_view kKeyTypeEcdsaLegacy = "ecdsa-sha2-nistp256";
inline constexpr std::string_view kKeyTypeRsa = "rsa";
inline constexpr std::string_view kSchemeEd25519 = "ed25519";
inline constexpr std::string_view kSchemeEcdsaP256 = "ecdsa-sha2-nistp256";
inline constexpr std::string_view kSchemeRsaPssSha256 = "rsassa-pss-sha256";

// A public key as TUF metadata carries it. `json` is the key's whole dict as it
// appeared in the metadata (unknown fields such as keyid_hash_algorithms
// included): the key id is computed over it.
struct PublicKey {
  std::string keytype;
  std::string scheme;
  std::string public_value;  // keyval.public
  boost::json::object json;
};

// The dict {"keytype", "scheme", "keyval": {"public"}} securesystemslib writes
// for a new key (no other fields).
PublicKey make_public_key(std::string keytype, std::string scheme, std::string public_value);

// TUF spec, "Document formats": KEYID is "the hexdigest of the SHA-256 hash of
// the canonical form of the key" — sha256(canonical_json(key.json)), lowercase
// hex (securesystemslib compute_default_keyid). TUF clients do not require that
// metadata's key ids match this (python-tuf does not check); callers decide.
std::string key_id(const PublicKey& key);

// Verifies `signature_hex` over `data` with `key`. Ok on a valid signature;
// kUnverified when the signature does not verify (or is not hex); kInvalidArgument
// when the key cannot be used (unsupported keytype/scheme pair, malformed or
// wrong-curve public key, RSA under 2048 bits). Never throws.
core::Status verify_signature(const PublicKey& key, std::string_view data,
                              std::string_view signature_hex);

// Digests of bytes, lowercase hex (64 and 128 characters).
std::string sha256_hex(std::string_view data);
std::string sha512_hex(std::string_view data);
// The raw 32-byte SHA-256 digest.
std::string sha256_bytes(std::string_view data);

std::string hex_encode(std::string_view bytes);
// Accepts upper and lower case (Python's bytes.fromhex does); nullopt on an odd
// length or a non-hex character.
std::optional<std::string> hex_decode(std::string_view hex);

// ---- The signing side (repository tools and tests) ----

enum class KeyScheme { kEd25519, kEcdsaP256, kRsaPssSha256 };

// A private key as PKCS#8 PEM, with its public half in TUF form.
struct SigningKey {
  PublicKey public_key;
  std::string private_pem;
};

// A fresh key from OpenSSL's generator. rsa_bits applies to RSA only (>= 2048;
// securesystemslib's default is 3072).
core::Result<SigningKey> generate_signing_key(KeyScheme scheme, int rsa_bits = 3072);
// A key from a PEM private key (PKCS#8 or traditional); the scheme follows the
// key's algorithm (Ed25519, EC P-256, RSA).
core::Result<SigningKey> signing_key_from_pem(std::string_view private_pem);
// The signature of `data`, hex-encoded as TUF metadata carries it.
core::Result<std::string> sign(const SigningKey& key, std::string_view data);

}  // namespace tranche::tuf
