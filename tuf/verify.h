// Threshold signature verification of one role's metadata (TUF specification
// 1.0.x, section 5: 5.3.4 root, 5.4.2 timestamp, 5.5.3 snapshot, 5.6.3 targets,
// 5.6.7.2 delegated targets): metadata is trusted only when at least
// `threshold` of the role's keys produced valid signatures over the canonical
// form of "signed".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "tuf/canonical_json.h"
#include "tuf/crypto.h"
#include "tuf/metadata.h"

namespace tranche::tuf {

// How a role's signatures fared.
struct RoleSignatures {
  std::vector<std::string> valid_keyids;  // distinct, in signature order
  std::uint32_t threshold = 0;
  bool threshold_met() const { return valid_keyids.size() >= threshold; }
};

// Counts valid signatures over `canonical_signed`:
//   - only key ids listed in `role.keyids` and present in `keys` count; other
//     signatures (unknown key ids, keys of other roles) are ignored;
//   - a key id counts once however many signatures carry it (the spec requires
//     unique key ids in "signatures"; counting repeats would let one key meet
//     any threshold);
//   - two listed key ids whose keys have the same key material count once too
//     (a root that lists one key under two ids must not halve its threshold);
//   - a signature that does not verify, or a key that cannot be used
//     (unsupported scheme, malformed), is ignored, never an error: a later valid
//     signature by another key still counts.
RoleSignatures count_role_signatures(std::string_view canonical_signed,
                                     const std::vector<Signature>& signatures,
                                     const std::map<std::string, PublicKey>& keys,
                                     const RoleKeys& role);

// Ok when the threshold is met; otherwise kUnverified:
// "<role_name>: 1 of the 2 required signatures are valid".
core::Status verify_role(std::string_view canonical_signed, const std::vector<Signature>& signatures,
                         const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                         std::string_view role_name);

template <typename Body>
core::Status verify_role(const Metadata<Body>& metadata, const std::map<std::string, PublicKey>& keys,
                         const RoleKeys& role, std::string_view role_name) {
  return verify_role(metadata.canonical_signed, metadata.signatures, keys, role, role_name);
}

// From the metadata file's bytes (a separate name: with verify_role's
// (canonical bytes, signatures, ...) overload, `{}` for signatures would be
// ambiguous with a string): parses the envelope (its "signed" must have
// _type `expected_type`), then verifies. Parse errors pass through.
core::Status verify_role_from_bytes(std::string_view metadata_bytes, std::string_view expected_type,
                         const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                         std::string_view role_name, const JsonLimits& limits = {});

}  // namespace tranche::tuf
