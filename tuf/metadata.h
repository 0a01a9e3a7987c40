// Typed TUF metadata (specification 1.0.x, "Document formats"): root, targets
// (with delegations), snapshot and timestamp, parsed from the signed envelope
//   {"signed": {...}, "signatures": [{"keyid": KEYID, "sig": HEX}, ...]}
// Parsing validates shape and values and names the offending field in every
// error ("targets.signed.targets['a.txt'].length: expected a non-negative
// integer"); it does not verify signatures (tuf/verify.h) or judge freshness
// (the client workflow). Unrecognized fields are allowed, as python-tuf allows
// them: they are part of the signed canonical bytes, so nobody can add them
// without a signature.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "core/result.h"
#include "core/types.h"
#include "tuf/canonical_json.h"
#include "tuf/crypto.h"

namespace tranche::tuf {

// A target's path as the repository names it, validated once at the trust
// boundary: 1..4096 bytes, no leading '/', no empty, '.' or '..' component, no
// backslash, NUL or other ASCII control character. Anything a client later
// joins to a directory therefore stays inside it.
class TargetPath {
 public:
  static constexpr std::size_t kMaxBytes = 4096;
  static core::Result<TargetPath> parse(std::string_view text);
  const std::string& str() const { return value_; }
  auto operator<=>(const TargetPath&) const = default;

 private:
  explicit TargetPath(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

// Metadata times ("expires") are read by core::parse_utc_time.
using core::parse_utc_time;
// And written in the same form, "2030-01-01T00:00:00Z" (milliseconds dropped,
// rounding down). Years outside 0000..9999 cannot be written in that form:
// they are clamped to its ends.
std::string format_utc_time(core::TimeMs t);

struct Signature {
  std::string keyid;
  std::string sig;  // hex
};

// keyids (unique, in metadata order) and how many of them must sign.
struct RoleKeys {
  std::vector<std::string> keyids;
  std::uint32_t threshold = 1;
};

using Hashes = std::map<std::string, std::string>;  // algorithm -> hex digest

// Fields every role's "signed" carries.
struct CommonFields {
  std::string spec_version;  // "1.x" or "1.x.y"
  std::int64_t version = 0;  // >= 1
  core::TimeMs expires = 0;
};

struct Root {
  CommonFields common;
  bool consistent_snapshot = false;  // absent means false
  std::map<std::string, PublicKey> keys;
  RoleKeys root, targets, snapshot, timestamp;
};

// METAFILES entry of snapshot and timestamp.
struct MetaInfo {
  std::int64_t version = 0;           // >= 1
  std::optional<std::int64_t> length;  // >= 0
  std::optional<Hashes> hashes;        // non-empty when present
};

struct Timestamp {
  CommonFields common;
  MetaInfo snapshot;  // meta["snapshot.json"]
};

struct Snapshot {
  CommonFields common;
  std::map<std::string, MetaInfo> meta;  // "targets.json", "ROLE.json"
};

struct TargetFile {
  std::int64_t length = 0;  // >= 0
  Hashes hashes;            // non-empty
  std::optional<boost::json::value> custom;
};

struct DelegatedRole {
  std::string name;
  RoleKeys keys;
  bool terminating = false;
  // Exactly one of the two is set.
  std::optional<std::vector<std::string>> paths;
  std::optional<std::vector<std::string>> path_hash_prefixes;

  // Whether this role is trusted for `path` (spec 5.6.7.2 / python-tuf
  // DelegatedRole.is_delegated_path): a pattern matches when it has as many
  // '/'-separated components as the path and each component matches with
  // shell-style wildcards (* ? [seq] [!seq]); a hash prefix matches when the
  // hex SHA-256 of the path starts with it.
  bool is_delegated_path(const TargetPath& path) const;
};

// TAP 15 succinct hash bin delegation: 2^bit_length roles named
// NAME_PREFIX-<bin in hex, zero-padded>, all with the same keys.
struct SuccinctRoles {
  RoleKeys keys;
  std::uint32_t bit_length = 1;  // 1..32
  std::string name_prefix;
  std::uint64_t number_of_bins() const { return std::uint64_t{1} << bit_length; }
  // The bin role trusted for `path`: the first bit_length bits of SHA-256(path).
  std::string role_for(const TargetPath& path) const;
};

struct Delegations {
  std::map<std::string, PublicKey> keys;
  std::vector<DelegatedRole> roles;  // in priority order; empty with succinct_roles
  std::optional<SuccinctRoles> succinct_roles;
};

struct Targets {
  CommonFields common;
  std::map<TargetPath, TargetFile> targets;
  std::optional<Delegations> delegations;
};

// A parsed metadata file: the typed "signed" part, the canonical bytes the
// signatures are over, and the signatures as listed (duplicates kept: counting
// distinct key ids is verify_role's job).
template <typename Body>
struct Metadata {
  Body body;
  std::string canonical_signed;
  std::vector<Signature> signatures;
};

// The envelope alone: "signed" must be an object whose _type is `expected_type`.
struct Envelope {
  boost::json::value signed_value;
  std::string canonical_signed;
  std::vector<Signature> signatures;
};
core::Result<Envelope> parse_envelope(std::string_view bytes, std::string_view expected_type,
                                      std::string_view role_name, const JsonLimits& limits = {});

// Each parses the whole file. `role_name` starts error paths ("root.signed...");
// for targets it is "targets" or a delegated role's name. Errors: kParse and
// kTooLarge from the JSON parser, kInvalidArgument naming the field.
core::Result<Metadata<Root>> parse_root(std::string_view bytes, const JsonLimits& limits = {});
core::Result<Metadata<Timestamp>> parse_timestamp(std::string_view bytes,
                                                  const JsonLimits& limits = {});
core::Result<Metadata<Snapshot>> parse_snapshot(std::string_view bytes,
                                                const JsonLimits& limits = {});
core::Result<Metadata<Targets>> parse_targets(std::string_view bytes,
                                              std::string_view role_name = "targets",
                                              const JsonLimits& limits = {});

// Shell-style match of one path component (python fnmatch.fnmatchcase).
bool fnmatch_component(std::string_view pattern, std::string_view text);

}  // namespace tranche::tuf
