// The shell of the TUF client workflow (tuf/updater.h) over the agent's ports:
// metadata and targets fetched over HttpClient with per-file length caps, trusted
// metadata kept in a directory through FileSystem (each file replaced durably),
// and the update start time that a clock set back cannot move behind the latest
// time seen (TUF 1.0.x 5.1). Shared by tranche-agent and tranche-tuf-client.
#pragma once

#include <string>

#include "agent/ports.h"
#include "tuf/updater.h"

namespace tranche::agent {

class HttpFetcher : public tuf::Fetcher {
 public:
  // `metadata_url` and `target_url`: base URLs (a missing trailing '/' is added).
  // `log` receives one line per request ("GET URL: HTTP 200, N bytes").
  HttpFetcher(HttpClient& http, std::string metadata_url, std::string target_url,
              std::function<void(const std::string&)> log = {});
  core::Result<std::string> fetch_metadata(const std::string& file_name,
                                           std::size_t max_bytes) override;
  core::Result<std::string> fetch_target(const std::string& remote_path,
                                         std::size_t max_bytes) override;

  std::int64_t timeout_ms = 60'000;
  // Polled during each transfer: true aborts it (HttpRequest::cancelled).
  std::function<bool()> cancelled;

 private:
  core::Result<std::string> get(const std::string& url, std::size_t max_bytes);
  HttpClient* http_;
  std::string metadata_url_;
  std::string target_url_;
  std::function<void(const std::string&)> log_;
};

class DirectoryMetadataStore : public tuf::MetadataStore {
 public:
  DirectoryMetadataStore(FileSystem& fs, std::string dir) : fs_(&fs), dir_(std::move(dir)) {}
  core::Result<std::string> load(const std::string& file_name, std::size_t max_bytes) override;
  core::Status store(const std::string& file_name, std::string_view bytes) override;
  core::Status remove(const std::string& file_name) override;

 private:
  FileSystem* fs_;
  std::string dir_;
};

// 5.1: max(clock, the time recorded in DIR/latest-known-time), recorded again
// before any metadata is judged.
core::Result<core::TimeMs> tuf_update_start_time(FileSystem& fs, const std::string& dir,
                                                 core::TimeMs clock_now);

// An HTTP status as an error for a fetch: 403/404 -> kNotFound (ends the root
// chain, 5.3.3), anything else not 2xx -> kInvalidArgument naming the status.
core::Status http_status_error(const std::string& url, long status);  // NOLINT(google-runtime-int)

}  // namespace tranche::agent
