// The refresh and download steps of TUF 1.0.x section 5 over two small ports:
// where files come from (Fetcher) and where trusted metadata is kept
// (MetadataStore). Every decision is TrustedSet's (tuf/client.h); the Updater
// only sequences it the way python-tuf's ngclient Updater does, so it can be
// tested with in-memory fakes and the shell (tools/tuf_client) supplies HTTP
// and files. No clock: `now` comes in.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/types.h"
#include "tuf/client.h"
#include "tuf/metadata.h"

namespace tranche::tuf {

// Where metadata and targets come from (an HTTP client in the shell).
class Fetcher {
 public:
  virtual ~Fetcher() = default;
  // The bytes of `file_name` relative to the metadata URL. Errors: kNotFound
  // when the server answers that the file does not exist (HTTP 403 or 404:
  // this ends the root chain, 5.3.3); kTooLarge when the file is longer than
  // max_bytes (the transfer is aborted there: endless-data attack); any other
  // code for a transport failure.
  virtual core::Result<std::string> fetch_metadata(const std::string& file_name,
                                                   std::size_t max_bytes) = 0;
  // The same for a target, `remote_path` relative to the target base URL.
  virtual core::Result<std::string> fetch_target(const std::string& remote_path,
                                                 std::size_t max_bytes) = 0;
};

// Where trusted metadata is kept between runs, under non-versioned names
// ("root.json", "timestamp.json", "snapshot.json", "targets.json",
// "ROLE.json" with ROLE percent-encoded).
class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  // kNotFound when there is no such file; kTooLarge when it is over max_bytes.
  virtual core::Result<std::string> load(const std::string& file_name, std::size_t max_bytes) = 0;
  // Replaces the file atomically: after a crash it holds the old or the new
  // bytes, never a mix.
  virtual core::Status store(const std::string& file_name, std::string_view bytes) = 0;
  // Absent already is fine.
  virtual core::Status remove(const std::string& file_name) = 0;
};

class Updater {
 public:
  // 5.2: loads the trusted root.json from `store` (it must verify with its
  // own keys). Both ports must outlive the Updater.
  static core::Result<Updater> create(Fetcher& fetcher, MetadataStore& store, core::TimeMs now,
                                      const ClientLimits& limits = {});

  // 5.3 to 5.6.6: root chain, timestamp, snapshot, top-level targets. Each
  // file that passes its checks is persisted at once (5.3.8, 5.4.5, 5.5.7,
  // 5.6.6), so a refresh that fails half way keeps what did verify. Ok only
  // if every step succeeded.
  core::Status refresh();

  // 5.6.7: the targets metadata for `path`, by a pre-order depth-first search
  // of the delegations (loading delegated roles as needed; at most
  // max_delegations roles; a terminating role ends the search). kNotFound
  // when no trusted role lists it (5.7.2). Refreshes first if needed.
  core::Result<TargetFile> get_target_info(const TargetPath& path);

  // 5.7.3: fetches the target (at most info.length bytes) and verifies its
  // length and hashes. Returns the verified bytes.
  core::Result<std::string> download_target(const TargetPath& path, const TargetFile& info);

  // What the updater did that is not an error but helps debugging ("local
  // snapshot.json not used: ..."), in order.
  const std::vector<std::string>& notes() const { return notes_; }
  const TrustedSet& trusted() const { return *set_; }

 private:
  Updater(Fetcher& fetcher, MetadataStore& store, TrustedSet set)
      : fetcher_(&fetcher), store_(&store), set_(std::move(set)) {}

  core::Status load_root();
  core::Status load_timestamp();
  core::Status load_snapshot();
  core::Status load_targets(const std::string& role, const std::string& delegator);

  Fetcher* fetcher_;
  // Reads the trusted copy of `file` under the local cap `max_bytes` and hands
  // it to `trust`, which must leave it trusted (current or stale). A missing
  // file is a first run; an unreadable or unverifiable one fails the refresh.
  core::Status load_trusted(const char* file, std::size_t max_bytes,
                            const std::function<core::Status(std::string_view)>& trust);
  MetadataStore* store_;
  std::optional<TrustedSet> set_;
  bool refreshed_ = false;
  std::vector<std::string> notes_;
};

}  // namespace tranche::tuf
