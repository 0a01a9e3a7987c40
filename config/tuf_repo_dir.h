// A TUF repository directory on disk (docs/tuf.md): metadata/N.root.json,
// N.targets.json, N.snapshot.json, timestamp.json, targets/SHA256.NAME — laid out
// so any static HTTP server or CDN can serve it. Shared by the `tranche repo`
// commands (offline keys) and tranche-server (online snapshot and timestamp
// keys, --tuf-online-keys); tuf/repository.h makes the bytes, this writes them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/file_io.h"
#include "core/result.h"
#include "core/types.h"
#include "tuf/crypto.h"

namespace tranche::config {

core::Result<std::string> read_whole_file(const std::filesystem::path& p);
// Files are written with write_file_atomic (config/file_io.h): a server or CDN
// syncing the directory never sees half a file.

// Private keys (PEM) for signing.
core::Result<tuf::SigningKey> load_signing_key(const std::string& path);
core::Result<std::vector<tuf::SigningKey>> load_signing_keys(const std::vector<std::string>& paths);

std::filesystem::path repo_metadata_dir(const std::string& dir);
// The highest N of metadata/N.<role>.json, 0 if none.
std::int64_t repo_latest_version(const std::string& dir, const std::string& role);
// metadata/<latest N>.<role>.json; kNotFound when there is none.
core::Result<std::string> repo_read_latest(const std::string& dir, const std::string& role);

// A target a release names: its path in the repository, and what it must be.
struct ExpectedTarget {
  std::string path;
  std::int64_t length = 0;
  std::string sha256;  // hex
};
// Whether the repository's newest targets metadata (or a role it delegates to,
// one level down) signs each target with this length and sha256. kNotFound
// names the path it expected and the paths that are signed; kConflict a length
// or hash that differs; kNotFound too when the repository has no targets
// metadata. Reads metadata/ only (trusted local files: no signature check).
core::Status repo_check_targets(const std::string& dir, const std::vector<ExpectedTarget>& targets);

// Signs a new snapshot over the current targets metadata and a timestamp over
// it, continuing the versions, and writes both (snapshot first). Returns the
// snapshot version written.
core::Result<std::int64_t> repo_publish(const std::string& dir,
                                        const std::vector<tuf::SigningKey>& snapshot_keys,
                                        const std::vector<tuf::SigningKey>& timestamp_keys,
                                        core::TimeMs now,
                                        std::optional<core::DurationMs> timestamp_expiry);

// Why the online roles should publish now, or nullopt: the snapshot does not
// list the newest targets version (a release was signed), or the timestamp
// expires within `renew_before` (or there is none yet).
std::optional<std::string> repo_publish_reason(const std::string& dir, core::TimeMs now,
                                               core::DurationMs renew_before);

}  // namespace tranche::config
