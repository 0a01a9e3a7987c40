#include "tuf/verify.h"

#include <set>

namespace tranche::tuf {

RoleSignatures count_role_signatures(std::string_view canonical_signed,
                                     const std::vector<Signature>& signatures,
                                     const std::map<std::string, PublicKey>& keys,
                                     const RoleKeys& role) {
  TRANCHE_ASSERT(role.threshold >= 1, "a role threshold below 1");
  RoleSignatures out;
  out.threshold = role.threshold;
  const std::set<std::string_view> authorized(role.keyids.begin(), role.keyids.end());
  std::set<std::string> counted_ids;
  std::set<std::string> counted_material;
  for (const Signature& s : signatures) {
    if (authorized.count(s.keyid) == 0) continue;     // not this role's key
    if (counted_ids.count(s.keyid) != 0) continue;    // spec: one vote per key id
    auto key = keys.find(s.keyid);
    if (key == keys.end()) continue;                  // listed but not defined
    // Same key material under two ids is still one key.
    const std::string material = key_id(make_public_key(key->second.keytype, key->second.scheme,
                                                        key->second.public_value));
    if (counted_material.count(material) != 0) continue;
    if (!verify_signature(key->second, canonical_signed, s.sig).ok()) continue;
    counted_ids.insert(s.keyid);
    counted_material.insert(material);
    out.valid_keyids.push_back(s.keyid);
  }
  return out;
}

core::Status verify_role(std::string_view canonical_signed, const std::vector<Signature>& signatures,
                         const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                         std::string_view role_name) {
  RoleSignatures r = count_role_signatures(canonical_signed, signatures, keys, role);
  if (r.threshold_met()) return core::Ok{};
  return core::make_error(core::ErrorCode::kUnverified,
                          std::string(role_name) + ": " + std::to_string(r.valid_keyids.size()) +
                              " of the " + std::to_string(r.threshold) +
                              " required signatures are valid");
}

core::Status verify_role_from_bytes(std::string_view metadata_bytes, std::string_view expected_type,
                         const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                         std::string_view role_name, const JsonLimits& limits) {
  auto env = parse_envelope(metadata_bytes, expected_type, role_name, limits);
  if (!env) return env.error();
  return verify_role(env->canonical_signed, env->signatures, keys, role, role_name);
}

}  // namespace tranche::tuf
