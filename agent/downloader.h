// Fetching a candidate: a TUF refresh (root chain, timestamp, snapshot,
// targets), each target's signed length and hashes, and the target files into
// DATA/downloads/ (resumed with Range), on a thread of its own so the main
// thread keeps supervising the service while a slow or hostile server takes its
// time. It reads only the settings and its arguments and writes only DATA/tuf
// and DATA/downloads (the main thread touches neither meanwhile). One download
// at a time; a new one cancels the last.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/config.h"
#include "agent/ports.h"
#include "agent/state_files.h"
#include "core/agent_machine.h"
#include "tuf/metadata.h"

namespace tranche::agent {

struct DownloadResult {
  core::AgentEvent event;                               // kDownloaded or kDownloadFailed
  std::map<std::string, tuf::TargetFile> target_info;  // by target path, when downloaded
};

class Downloader {
 public:
  // `done` is called on the download thread when a result is ready.
  Downloader(const AgentSettings& settings, Clock& clock, FileSystem& fs, HttpClient& http, Logger log,
             std::function<void()> done);
  ~Downloader();
  Downloader(const Downloader&) = delete;
  Downloader& operator=(const Downloader&) = delete;

  void start(const core::Version& version, std::vector<TargetRef> targets);
  // Stops the download thread (if any) and forgets its result.
  void cancel();
  // The finished download's result, once.
  std::optional<DownloadResult> take();
  // The download itself, on the calling thread (the thread's body; tests).
  DownloadResult run(const core::Version& version, const std::vector<TargetRef>& targets);

 private:
  const AgentSettings& settings_;
  Clock& clock_;
  FileSystem& fs_;
  HttpClient& http_;
  Logger log_;
  std::function<void()> done_;
  std::thread thread_;
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::optional<DownloadResult> result_;  // mu_
};

}  // namespace tranche::agent
