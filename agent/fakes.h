// Fakes of the agent's ports (ports.h) beside FakeFileSystem, for in-process
// tests of the agent's parts: a clock that moves only when told, an HTTP client
// that answers from a table of handlers and remembers every request, and
// processes that run nothing and end when a test says so.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/ports.h"

namespace tranche::agent {

class FakeClock : public Clock {
 public:
  explicit FakeClock(core::TimeMs start = 1'721'362'140'000) : now_(start) {}
  core::TimeMs now() override {
    const core::TimeMs t = now_;
    now_ = core::saturating_add(now_, tick_);
    return t;
  }
  void advance(core::DurationMs by) { now_ = core::saturating_add(now_, by); }
  // Every read moves the clock on by `by` afterwards: a loop that waits for a
  // deadline ends without real time passing.
  void tick_on_read(core::DurationMs by) { tick_ = by; }

 private:
  core::TimeMs now_;
  core::DurationMs tick_ = 0;
};

// Answers by the request's method and path (the URL after the host); a request
// that no handler takes gets a transport error (kUnavailable, "refused").
class FakeHttpClient : public HttpClient {
 public:
  using Handler = std::function<core::Result<HttpResponse>(const HttpRequest&)>;
  // `path`: the URL's path, e.g. "/v1/checkin"; "" matches any.
  void on(const std::string& method, const std::string& path, Handler handler) {
    std::lock_guard lock(mu_);
    handlers_.push_back({method, path, std::move(handler)});
  }
  // Shorthand: always this status and body.
  void answer(const std::string& method, const std::string& path, long status,  // NOLINT(google-runtime-int)
              std::string body) {
    on(method, path, [status, body](const HttpRequest&) -> core::Result<HttpResponse> {
      HttpResponse r;
      r.status = status;
      r.body = body;
      r.received = body.size();
      return r;
    });
  }
  core::Result<HttpResponse> send(const HttpRequest& request) override {
    Handler handler;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
      const std::string path = path_of(request.url);
      // The latest handler wins: a test changes the server's mind by adding one.
      for (auto it = handlers_.rbegin(); it != handlers_.rend(); ++it) {
        if (it->method == request.method && (it->path.empty() || it->path == path)) {
          handler = it->handler;
          break;
        }
      }
    }
    if (!handler) return core::make_error(core::ErrorCode::kUnavailable, "refused: " + request.url);
    return handler(request);
  }
  std::vector<HttpRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::size_t count(const std::string& path) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& r : requests_) n += path_of(r.url) == path ? 1U : 0U;
    return n;
  }
  static std::string path_of(const std::string& url) {
    const auto scheme = url.find("://");
    const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    return slash == std::string::npos ? "/" : url.substr(slash);
  }

 private:
  struct Route {
    std::string method;
    std::string path;
    Handler handler;
  };
  std::mutex mu_;
  std::vector<Route> handlers_;
  std::vector<HttpRequest> requests_;
};

// Spawned processes run nothing: a test ends them with exit() (or they end on
// a signal from kill(), unless `ignore_term`). Health checks (run) answer
// `health`.
class FakeProcess : public Process {
 public:
  struct Spawned {
    pid_t pid;
    std::vector<std::string> argv;
    std::string log_file;
  };
  core::Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log_file) override {
    const pid_t pid = next_pid_++;
    spawned.push_back({pid, argv, log_file});
    running_.insert({pid, std::nullopt});
    return pid;
  }
  std::optional<ExitStatus> try_wait(pid_t pid) override {
    auto it = running_.find(pid);
    if (it == running_.end() || !it->second) return std::nullopt;
    ExitStatus s = *it->second;
    running_.erase(it);
    return s;
  }
  void kill(pid_t pid, int signal) override {
    signals.push_back({pid, signal});
    auto it = running_.find(pid);
    if (it == running_.end() || it->second) return;
    if (signal == 15 && ignore_term) return;
    ExitStatus s;
    s.signal = signal;
    it->second = s;
  }
  core::Result<ExitStatus> run(const std::vector<std::string>& argv, std::int64_t) override {
    health_runs.push_back(argv);
    return health;
  }
  // The process ends (as if it died: try_wait reports it).
  void exit(pid_t pid, ExitStatus status) {
    auto it = running_.find(pid);
    if (it != running_.end()) it->second = status;
  }
  bool alive(pid_t pid) const {
    auto it = running_.find(pid);
    return it != running_.end() && !it->second;
  }

  std::vector<Spawned> spawned;
  std::vector<std::pair<pid_t, int>> signals;
  std::vector<std::vector<std::string>> health_runs;
  ExitStatus health{0, std::nullopt};
  bool ignore_term = false;

 private:
  pid_t next_pid_ = 1000;
  std::map<pid_t, std::optional<ExitStatus>> running_;
};

}  // namespace tranche::agent
