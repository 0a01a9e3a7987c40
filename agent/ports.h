// The agent's touchpoints with the operating system, as small ports: the shell
// (agent.h) talks to these and nothing else, so tests run it on fakes
// (fake_file_system.h) and production on posix.h. No library type (CURL*,
// FILE*) appears here.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/types.h"

namespace tranche::agent {

// Where a part of the agent's shell writes its log lines (the agent adds the
// time and the device).
using Logger = std::function<void(const std::string&)>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual core::TimeMs now() = 0;  // wall clock, ms since the Unix epoch
};

// Files and directories. Writes are not durable until fsync'd: a file's bytes
// by fsync(file), a name in a directory (create, rename, remove, symlink) by
// fsync(its directory). fake_file_system.h forgets whatever was not.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // kNotFound when absent; kTooLarge beyond max_bytes.
  virtual core::Result<std::string> read(const std::string& path, std::size_t max_bytes) = 0;
  // Creates or truncates `path` and writes `bytes` (mode 0600 if `private_file`).
  virtual core::Status write(const std::string& path, std::string_view bytes,
                             bool private_file = false) = 0;
  // Appends to `path`, creating it.
  virtual core::Status append(const std::string& path, std::string_view bytes) = 0;
  virtual core::Status fsync(const std::string& path) = 0;  // a file or a directory
  virtual core::Status rename(const std::string& from, const std::string& to) = 0;
  virtual core::Status remove(const std::string& path) = 0;  // absent is fine
  virtual core::Status symlink(const std::string& target, const std::string& link) = 0;
  virtual core::Result<std::string> readlink(const std::string& link) = 0;  // kNotFound
  virtual core::Status make_dirs(const std::string& path) = 0;
  virtual core::Result<std::int64_t> size(const std::string& path) = 0;  // kNotFound
  virtual core::Result<std::vector<std::string>> list(const std::string& dir) = 0;  // names
  // Removes a directory and everything under it (absent is fine).
  virtual core::Status remove_tree(const std::string& path) = 0;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::string body;                  // POST body (JSON)
  std::string bearer_token;          // Authorization: Bearer, when set
  std::int64_t timeout_ms = 30'000;  // the whole transfer
  std::int64_t connect_timeout_ms = 10'000;
  std::size_t max_bytes = 1 << 20;   // longer bodies abort the transfer (kTooLarge)
  std::optional<std::int64_t> range_from;  // "Range: bytes=N-" (resume)
  // When set, the body bytes of a 2xx answer go here as they arrive (with the
  // status: 200 or 206) instead of into the response; an error aborts the transfer.
  std::function<core::Status(long status, std::string_view)> sink;  // NOLINT(google-runtime-int)
  // Polled while the transfer runs: true aborts it (kConflict "cancelled").
  std::function<bool()> cancelled;
};

struct HttpResponse {
  long status = 0;  // NOLINT(google-runtime-int): HTTP status
  std::string body;
  std::size_t received = 0;  // body bytes, also those given to the sink
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // A transport failure (refused, timeout, too large) is an error; any HTTP
  // status is a response. kTooLarge when the body passed max_bytes.
  virtual core::Result<HttpResponse> send(const HttpRequest& request) = 0;
};

// How a process ended: exactly one of the two is set.
struct ExitStatus {
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string describe() const;  // "exit code 3", "signal 11 (SIGSEGV)"
  bool success() const { return exit_code == 0; }
};

class Process {
 public:
  virtual ~Process() = default;
  // Starts argv (argv[0] looked up in PATH); stdout and stderr go to `log_file`
  // (appended) unless empty. The child dies with the agent (no orphan keeps the
  // old version running behind a restarted agent).
  virtual core::Result<pid_t> spawn(const std::vector<std::string>& argv,
                                    const std::string& log_file) = 0;
  // nullopt while it runs.
  virtual std::optional<ExitStatus> try_wait(pid_t pid) = 0;
  virtual void kill(pid_t pid, int signal) = 0;
  // Runs argv to completion, killing it after timeout_ms (then: signal 9).
  virtual core::Result<ExitStatus> run(const std::vector<std::string>& argv,
                                       std::int64_t timeout_ms) = 0;
};

// Write a temporary file, fsync it, rename it over `path`, fsync the directory:
// after a crash `path` holds the old bytes or the new, never a mix, never nothing.
core::Status write_durably(FileSystem& fs, const std::string& path, std::string_view bytes,
                           bool private_file = false);
// `path`'s directory ("." when it has none).
std::string parent_dir(const std::string& path);

}  // namespace tranche::agent
