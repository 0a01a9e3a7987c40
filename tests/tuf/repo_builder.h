// A TUF repository in memory for tests: one set of keys per role and helpers
// that sign any metadata the test wants, good or bad (tuf/repository.h builds
// the "signed" objects; tests edit them before signing to make attacks).
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "tuf/crypto.h"
#include "tuf/repository.h"

namespace tranche::tuf::testing {

inline SigningKey new_key(KeyScheme scheme = KeyScheme::kEd25519) {
  auto k = generate_signing_key(scheme);
  TRANCHE_ASSERT(k.ok(), "key generation");
  return std::move(*k);
}

inline std::vector<PublicKey> public_keys(const std::vector<SigningKey>& keys) {
  std::vector<PublicKey> out;
  for (const SigningKey& k : keys) out.push_back(k.public_key);
  return out;
}

inline std::string must(core::Result<std::string> r) {
  TRANCHE_ASSERT(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
  return std::move(*r);
}

// 2025-01-01T00:00:00Z: the tests' "now".
inline constexpr core::TimeMs kNow = 1735689600000;

struct RepoBuilder {
  std::vector<SigningKey> root_keys{new_key()};
  std::vector<SigningKey> targets_keys{new_key()};
  std::vector<SigningKey> snapshot_keys{new_key()};
  std::vector<SigningKey> timestamp_keys{new_key()};
  std::uint32_t root_threshold = 1;
  std::uint32_t targets_threshold = 1;
  std::uint32_t snapshot_threshold = 1;
  std::uint32_t timestamp_threshold = 1;
  bool consistent = true;
  core::TimeMs expires = kNow + 30 * kDay;

  RootDefinition root_def(std::int64_t version = 1) const {
    RootDefinition d;
    d.version = version;
    d.expires = expires;
    d.consistent_snapshot = consistent;
    d.root = {public_keys(root_keys), root_threshold};
    d.targets = {public_keys(targets_keys), targets_threshold};
    d.snapshot = {public_keys(snapshot_keys), snapshot_threshold};
    d.timestamp = {public_keys(timestamp_keys), timestamp_threshold};
    return d;
  }
  std::string root(std::int64_t version = 1) const {
    return must(sign_metadata(root_signed(root_def(version)), root_keys));
  }
  static std::string sign(const boost::json::object& o, const std::vector<SigningKey>& keys) {
    return must(sign_metadata(o, keys));
  }
  std::string targets(std::int64_t version,
                      const std::map<TargetPath, TargetFile>& files = {}) const {
    return sign(targets_signed(version, expires, files), targets_keys);
  }
  std::string snapshot(std::int64_t version, const std::map<std::string, MetaInfo>& meta) const {
    return sign(snapshot_signed(version, expires, meta), snapshot_keys);
  }
  // A snapshot listing targets.json `targets_bytes` at `targets_version`.
  std::string snapshot_for(std::int64_t version, std::int64_t targets_version,
                           const std::string& targets_bytes) const {
    return snapshot(version, {{"targets.json", meta_info_of(targets_version, targets_bytes)}});
  }
  std::string timestamp(std::int64_t version, std::int64_t snapshot_version,
                        const std::string& snapshot_bytes) const {
    return sign(timestamp_signed(version, expires, meta_info_of(snapshot_version, snapshot_bytes)),
                timestamp_keys);
  }
};

inline TargetFile target_file_of(const std::string& bytes) {
  TargetFile f;
  f.length = static_cast<std::int64_t>(bytes.size());
  f.hashes = {{"sha256", sha256_hex(bytes)}};
  return f;
}

inline TargetPath target_path(const std::string& s) {
  auto p = TargetPath::parse(s);
  TRANCHE_ASSERT(p.ok(), "target path");
  return *p;
}

}  // namespace tranche::tuf::testing
