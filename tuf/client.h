// The client workflow of the TUF specification 1.0.x, section 5, as pure
// functions of (fetched bytes, trusted state, now). TrustedSet is modelled on
// python-tuf's TrustedMetadataSet: it holds the metadata the client trusts and
// accepts a new file only when every check of the spec passes; each update_*
// takes the bytes as fetched and returns why it refused them. Nothing here
// fetches, reads a clock or touches a file: the shell (tuf/updater.h with its
// ports, tools/tuf_client) does that and passes `now` in.
//
// `now` is the fixed update start time of 5.1, which the shell takes as
// max(clock, the latest time it has persisted), so that setting the clock back
// cannot make expired metadata current again.
//
// The order of a refresh is fixed by the spec and enforced here: root (any
// number of update_root, then finish_root_update), timestamp, snapshot,
// targets, then delegated targets on demand. A call out of order is refused
// with kInvalidTransition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/types.h"
#include "tuf/metadata.h"

namespace tranche::tuf {

// Caps and bounds, with python-tuf's UpdaterConfig defaults.
struct ClientLimits {
  // Download caps when metadata names no length (5.3.3, 5.4.1, 5.5.1, 5.6.1):
  // the endless-data attack cannot make the client read more than this.
  std::size_t max_root_bytes = 512'000;
  std::size_t max_timestamp_bytes = 16'384;
  std::size_t max_snapshot_bytes = 2'000'000;
  std::size_t max_targets_bytes = 5'000'000;
  // Root versions fetched in one refresh (5.3.3 "more than Y root files").
  std::uint32_t max_root_rotations = 32;
  // Roles visited in one delegation search (5.6.7.1).
  std::uint32_t max_delegations = 32;
};

// Python's urllib.parse.quote(s, safe=""): every byte but A-Z a-z 0-9 - . _ ~
// as %XX. python-tuf names metadata files and URLs of roles this way, and
// local target files too. With keep_slash, '/' stays (target URLs).
std::string percent_encode(std::string_view s, bool keep_slash = false);

// A role name made safe to use as the stem of a file name ("ROLE" in
// ROLE.json, VERSION.ROLE.json): rejects empty names, control characters and
// names whose encoded form would not fit a file name (over 200 bytes); returns
// the percent-encoded stem, which has no '/' and is never "." or "..".
// kInvalidArgument naming the role otherwise.
core::Result<std::string> role_file_stem(std::string_view role_name);

// 5.7.3: the bytes are exactly `info.length` long and every listed hash
// matches (sha256 and sha512; any other algorithm cannot be checked and fails).
// kUnverified naming what differs.
core::Status verify_target(const TargetFile& info, std::string_view bytes,
                           std::string_view what = "target");

// The file a target is fetched from, relative to the target base URL: its path,
// or with consistent snapshots "DIR/HASH.NAME" (5.7.3) using the sha256 digest
// (the first digest when there is none). Percent-encoded but for '/'.
std::string target_remote_path(const TargetPath& path, const TargetFile& info,
                               bool consistent_snapshot);
// The file name a downloaded target is kept under in the target directory:
// the whole path percent-encoded (python-tuf's choice), so never a subdirectory.
std::string target_local_name(const TargetPath& path);

// A file to fetch: its name relative to the metadata URL and the most bytes
// to read before giving up.
struct Download {
  std::string file_name;
  std::size_t max_bytes = 0;
};

// How a new timestamp compared with the trusted one (5.4.3.1).
enum class TimestampUpdate {
  kNew,          // trusted now; persist it
  kSameVersion,  // equal version: the new file is ignored, the trusted one stays
};

class TrustedSet {
 public:
  // 5.2: the root the client already trusts (from its own storage). It must
  // be signed by a threshold of its own root keys; its expiry is not checked
  // until finish_root_update (a newer root may replace it first).
  static core::Result<TrustedSet> create(std::string_view root_bytes, core::TimeMs now,
                                         const ClientLimits& limits = {});

  core::TimeMs now() const { return now_; }
  const ClientLimits& limits() const { return limits_; }
  const Metadata<Root>& root() const { return root_; }
  const Metadata<Timestamp>* timestamp() const { return timestamp_ ? &*timestamp_ : nullptr; }
  const Metadata<Snapshot>* snapshot() const { return snapshot_ ? &*snapshot_ : nullptr; }
  // Top-level "targets" or a delegated role, when trusted.
  const Metadata<Targets>* targets(std::string_view role = "targets") const;

  // ---- 5.3 root ----
  // The next root version to try (5.3.3): "N+1.root.json", capped at
  // max_root_bytes; nullopt once max_root_rotations versions were accepted in
  // this refresh (the shell then stops the chain and calls finish_root_update).
  std::optional<Download> next_root_download() const;
  // 5.3.4 signed by the trusted and by the new root's thresholds, 5.3.5
  // version exactly N+1, 5.3.6 expiry not yet checked, 5.3.7 becomes trusted.
  core::Status update_root(std::string_view bytes);
  // After the last root of the chain: 5.3.10 the trusted root must not be
  // expired; 5.3.11 returns true when the root rotated the timestamp or
  // snapshot keys during this refresh, so the shell deletes its trusted
  // timestamp and snapshot files (fast-forward attack recovery) instead of
  // loading them. 5.3.12 consistent snapshots follow the now trusted root.
  core::Result<bool> finish_root_update();

  // ---- 5.4 timestamp ----
  Download timestamp_download() const;  // "timestamp.json", max_timestamp_bytes
  // 5.4.2 signatures, 5.4.3.1 version not lower than the trusted one (equal:
  // kSameVersion, nothing changes), 5.4.3.2 snapshot version not lower, 5.4.4
  // not expired. As in python-tuf, a timestamp that passes every check but
  // expiry is kept as trusted (it still protects against rollback) and the
  // expiry error is returned: the shell must not persist it.
  core::Result<TimestampUpdate> update_timestamp(std::string_view bytes);

  // ---- 5.5 snapshot ----
  // 5.5.1: "snapshot.json" or "V.snapshot.json" (V from the timestamp), capped
  // at the length the timestamp lists or max_snapshot_bytes.
  core::Result<Download> snapshot_download() const;
  // 5.5.2 length and hashes as the timestamp lists (skipped with from_local:
  // the file was checked when fetched, and the timestamp may be newer now),
  // 5.5.3 signatures, 5.5.5 no role listed in the trusted snapshot is missing
  // or older, then 5.5.4 version as the timestamp lists and 5.5.6 not expired.
  // Like the timestamp, a snapshot that fails only 5.5.4/5.5.6 stays trusted
  // for the rollback checks of the next one (a stale local copy).
  core::Status update_snapshot(std::string_view bytes, bool from_local = false);

  // ---- 5.6 targets ----
  // 5.6.1: "ROLE.json" or "V.ROLE.json" (V from the snapshot), capped at the
  // length the snapshot lists or max_targets_bytes. The role name is validated
  // (role_file_stem) before it becomes a file name.
  core::Result<Download> targets_download(std::string_view role) const;
  // Top-level targets, delegated by root.
  core::Status update_targets(std::string_view bytes) {
    return update_delegated_targets(bytes, "targets", "root");
  }
  // 5.6.2 length and hashes as the snapshot lists, 5.6.3 signed by the keys
  // `delegator` gives `role`, 5.6.4 version as the snapshot lists, 5.6.5 not
  // expired.
  // A role already trusted, reached again through `delegator` (another path of
  // the delegation search): its metadata must carry that delegator's
  // threshold of the keys it gives the role (5.6.7.2).
  core::Status verify_trusted_via(std::string_view role, std::string_view delegator) const;
  core::Status update_delegated_targets(std::string_view bytes, std::string_view role,
                                        std::string_view delegator);

 private:
  // The keys `delegator` trusts `role` with: its key map and the role's keys.
  using Trust = std::pair<const std::map<std::string, PublicKey>*, const RoleKeys*>;
  core::Result<Trust> delegation(std::string_view role, std::string_view delegator) const;
  TrustedSet(Metadata<Root> root, core::TimeMs now, const ClientLimits& limits)
      : now_(now), limits_(limits), root_(std::move(root)), initial_root_(root_.body) {}

  core::Status check_final_timestamp() const;
  core::Status check_final_snapshot() const;

  core::TimeMs now_;
  ClientLimits limits_;
  Metadata<Root> root_;
  Root initial_root_;  // the root this refresh started from (5.3.11)
  std::uint32_t roots_accepted_ = 0;
  bool root_finished_ = false;
  std::optional<Metadata<Timestamp>> timestamp_;
  std::optional<Metadata<Snapshot>> snapshot_;
  std::map<std::string, Metadata<Targets>, std::less<>> targets_;
};

}  // namespace tranche::tuf
