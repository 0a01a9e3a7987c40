// The production implementations of ports.h: POSIX files, the system clock,
// libcurl, fork/exec.
#pragma once

#include <memory>
#include <string>

#include "agent/ports.h"

namespace tranche::agent {

class SystemClock : public Clock {
 public:
  core::TimeMs now() override;
};

class PosixFileSystem : public FileSystem {
 public:
  core::Result<std::string> read(const std::string& path, std::size_t max_bytes) override;
  core::Status write(const std::string& path, std::string_view bytes, bool private_file) override;
  core::Status append(const std::string& path, std::string_view bytes) override;
  core::Status fsync(const std::string& path) override;
  core::Status rename(const std::string& from, const std::string& to) override;
  core::Status remove(const std::string& path) override;
  core::Status symlink(const std::string& target, const std::string& link) override;
  core::Result<std::string> readlink(const std::string& link) override;
  core::Status make_dirs(const std::string& path) override;
  core::Result<std::int64_t> size(const std::string& path) override;
  core::Result<std::vector<std::string>> list(const std::string& dir) override;
  core::Status remove_tree(const std::string& path) override;
};

// Calls `observer(op, path)` after every operation that changes the file system
// succeeded ("rename", "fsync", ...). The agent numbers these as its steps
// (docs/agent.md: the step log, and the crash-consistency test's kill points).
class ObservedFileSystem : public FileSystem {
 public:
  using Observer = std::function<void(std::string_view op, const std::string& path)>;
  ObservedFileSystem(FileSystem& inner, Observer observer)
      : inner_(&inner), observer_(std::move(observer)) {}
  core::Result<std::string> read(const std::string& path, std::size_t max_bytes) override {
    return inner_->read(path, max_bytes);
  }
  core::Status write(const std::string& path, std::string_view bytes, bool private_file) override {
    return seen(inner_->write(path, bytes, private_file), "write", path);
  }
  core::Status append(const std::string& path, std::string_view bytes) override {
    return seen(inner_->append(path, bytes), "append", path);
  }
  core::Status fsync(const std::string& path) override {
    return seen(inner_->fsync(path), "fsync", path);
  }
  core::Status rename(const std::string& from, const std::string& to) override {
    return seen(inner_->rename(from, to), "rename", to);
  }
  core::Status remove(const std::string& path) override {
    return seen(inner_->remove(path), "remove", path);
  }
  core::Status symlink(const std::string& target, const std::string& link) override {
    return seen(inner_->symlink(target, link), "symlink", link);
  }
  core::Result<std::string> readlink(const std::string& link) override {
    return inner_->readlink(link);
  }
  core::Status make_dirs(const std::string& path) override { return inner_->make_dirs(path); }
  core::Result<std::int64_t> size(const std::string& path) override { return inner_->size(path); }
  core::Result<std::vector<std::string>> list(const std::string& dir) override {
    return inner_->list(dir);
  }
  core::Status remove_tree(const std::string& path) override {
    return seen(inner_->remove_tree(path), "remove_tree", path);
  }

 private:
  core::Status seen(core::Status st, std::string_view op, const std::string& path) {
    if (st.ok()) observer_(op, path);
    return st;
  }
  FileSystem* inner_;
  Observer observer_;
};

class PosixProcess : public Process {
 public:
  core::Result<pid_t> spawn(const std::vector<std::string>& argv,
                            const std::string& log_file) override;
  std::optional<ExitStatus> try_wait(pid_t pid) override;
  void kill(pid_t pid, int signal) override;
  core::Result<ExitStatus> run(const std::vector<std::string>& argv,
                               std::int64_t timeout_ms) override;
};

// libcurl, one easy handle kept for keep-alive. Not thread-safe: one per thread.
// curl_global_init must have run (main does it).
class CurlHttpClient : public HttpClient {
 public:
  explicit CurlHttpClient(std::string user_agent);
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;
  core::Result<HttpResponse> send(const HttpRequest& request) override;

 private:
  void* curl_;  // CURL*, kept out of the header
  std::string user_agent_;
};

}  // namespace tranche::agent
