// The repository side of TUF: building and signing root, targets, snapshot and
// timestamp metadata. Pure: keys, bytes and times in, metadata bytes out; the
// `tranche` CLI (cli/repo_command.cpp) and the server decide where the bytes
// go. Every function that signs checks its own output the way a client will
// (the signers must meet the threshold the root gives the role), so a wrong
// key is an error here, not a refresh failure on a million devices.
//
// Files are written as canonical JSON (tuf/canonical_json.h) of the whole
// envelope {"signatures": [...], "signed": {...}}: deterministic bytes, and
// "signed" is the envelope's last member, which makes the signed bytes easy to
// cut out for an independent verifier (tests/tuf/repo_cli_test.sh). Unless the
// canonical form has control characters (PEM public keys of ECDSA and RSA
// keys): canonical JSON writes them raw, which is not JSON, so such a file is
// ordinary escaped JSON instead (the signatures are over the canonical form
// all the same).
//
// Layout, servable by any plain HTTP server (consistent snapshots, spec
// "Consistent snapshots"):
//   metadata/1.root.json, 2.root.json, ...   every root version (the chain)
//   metadata/timestamp.json                   the only unversioned file
//   metadata/N.snapshot.json, N.targets.json  versioned
//   targets/DIR/SHA256.NAME                    target files, named by content
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/types.h"
#include "tuf/crypto.h"
#include "tuf/metadata.h"

namespace tranche::tuf {

inline constexpr std::string_view kSpecVersion = "1.0.31";

// Default lifetimes: root and targets are signed offline, rarely; snapshot and
// timestamp online and often (the timestamp is the freshness signal).
inline constexpr core::DurationMs kDay = 24LL * 3600 * 1000;
inline constexpr core::DurationMs kRootExpiry = 365 * kDay;
inline constexpr core::DurationMs kTargetsExpiry = 90 * kDay;
inline constexpr core::DurationMs kSnapshotExpiry = 7 * kDay;
inline constexpr core::DurationMs kTimestampExpiry = 1 * kDay;

// File names in the repository's metadata/ and targets/ directories.
std::string root_file_name(std::int64_t version);      // "3.root.json"
std::string targets_file_name(std::int64_t version);   // "3.targets.json"
std::string snapshot_file_name(std::int64_t version);  // "3.snapshot.json"
inline constexpr std::string_view kTimestampFileName = "timestamp.json";
// "dir/SHA256.name" for target "dir/name" (client: target_remote_path).
std::string target_file_name(const TargetPath& path, std::string_view sha256_hex);

// One role's keys in a root.
struct RoleDefinition {
  std::vector<PublicKey> keys;
  std::uint32_t threshold = 1;
};

struct RootDefinition {
  std::int64_t version = 1;
  core::TimeMs expires = 0;
  bool consistent_snapshot = true;
  RoleDefinition root, targets, snapshot, timestamp;
};

// The "signed" objects, before signing (tests edit them to make bad metadata).
boost::json::object root_signed(const RootDefinition& def);
boost::json::object targets_signed(std::int64_t version, core::TimeMs expires,
                                   const std::map<TargetPath, TargetFile>& targets);
boost::json::object snapshot_signed(std::int64_t version, core::TimeMs expires,
                                    const std::map<std::string, MetaInfo>& meta);
boost::json::object timestamp_signed(std::int64_t version, core::TimeMs expires,
                                     const MetaInfo& snapshot);

// The envelope of `signed_obj` with one signature per signer over its
// canonical form, as canonical JSON bytes. Does not check thresholds.
core::Result<std::string> sign_metadata(const boost::json::object& signed_obj,
                                        const std::vector<SigningKey>& signers);

// The MetaInfo that snapshot and timestamp list for a metadata file: its
// version, length and sha256.
MetaInfo meta_info_of(std::int64_t version, std::string_view bytes);

// A new root (version 1 or a rotation), signed by `signers`. For version 1
// the root's own threshold must be met. kInvalidArgument for a role without
// keys or a threshold above its key count.
core::Result<std::string> make_root(const RootDefinition& def,
                                    const std::vector<SigningKey>& signers);

// Root rotation: version N+1 of `current_root` with the roles `next` gives
// (version and expiry taken from `next` are ignored: N+1, `expires`), signed by
// `signers`, which must meet BOTH the current root's root threshold and the new
// one's (spec 5.3.4: what a client will check).
core::Result<std::string> rotate_root(std::string_view current_root, RootDefinition next,
                                      core::TimeMs expires, const std::vector<SigningKey>& signers);

// A RootDefinition from root metadata bytes (to change one role and rotate).
core::Result<RootDefinition> root_definition(std::string_view root_bytes);

// Targets metadata with `path` added (or replaced), version bumped, expiry
// set; every other field (delegations, other targets, unknown fields) kept.
// `current_targets` empty: version 1 with only this target. The signers must
// meet the threshold `root` gives targets.
core::Result<std::string> add_target(std::string_view root, std::string_view current_targets,
                                     const TargetPath& path, const TargetFile& file,
                                     core::TimeMs expires, const std::vector<SigningKey>& signers);
// Empty targets metadata (version 1) signed for `root`.
core::Result<std::string> empty_targets(std::string_view root, core::TimeMs expires,
                                        const std::vector<SigningKey>& signers);

// What the online roles publish: a new snapshot over the given targets
// metadata and a timestamp over that snapshot.
struct PublishRequest {
  std::string_view root;  // the current root
  // Every targets role's current metadata, by role name ("targets" at least).
  std::map<std::string, std::string_view> targets;
  // The last published snapshot and timestamp, if any: versions continue from
  // them (a client refuses lower versions).
  std::optional<std::string_view> previous_snapshot;
  std::optional<std::string_view> previous_timestamp;
  std::vector<SigningKey> snapshot_keys;
  std::vector<SigningKey> timestamp_keys;
  core::TimeMs now = 0;
  core::DurationMs snapshot_expiry = kSnapshotExpiry;
  core::DurationMs timestamp_expiry = kTimestampExpiry;
};

struct Published {
  std::int64_t snapshot_version = 0;
  std::string snapshot;   // goes to metadata/<snapshot_version>.snapshot.json
  std::string timestamp;  // goes to metadata/timestamp.json
};

core::Result<Published> publish(const PublishRequest& request);

}  // namespace tranche::tuf
