// Several real tranche-servers on one PostgreSQL (a cluster), for tests/cluster:
// start them, find the engine's leader, route each request to a random server,
// keep a fleet of devices heartbeating, run HAProxy in front of them, or run a
// private PostgreSQL the test may restart. Built on tests/server/harness.h
// (ServerProcess, HttpClient) and tests/store/pg_test_db.h.
#pragma once

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/harness.h"

namespace tranche::testing {

namespace json = boost::json;
using namespace std::chrono_literals;

inline constexpr const char* kClusterAdmin = "cluster-admin-token-0123456789";
inline constexpr const char* kTenant = "acme";
inline constexpr const char* kEnrollmentKey = "acme-enrollment-key-0123";

// --- small helpers ----------------------------------------------------------------

// Output of `command` (stdout), or nullopt when it could not run.
inline std::optional<std::string> run_capture(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// Whether tranche-server's --help lists `flag` (a flag the cluster work adds).
inline bool server_has_flag(const std::string& flag) {
  static std::map<std::string, bool> cache;
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (auto it = cache.find(flag); it != cache.end()) return it->second;
  auto help = run_capture("'" + server_binary() + "' --help 2>&1");
  bool has = help && help->find(flag) != std::string::npos;
  cache[flag] = has;
  return has;
}

// The value of a Prometheus sample `name` (or `name`_total) in a /metrics body.
inline std::optional<double> metric_value(const std::string& body, const std::string& name) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    for (const std::string& n : {name, name + "_total"}) {
      if (line.size() > n.size() && line.compare(0, n.size(), n) == 0 && line[n.size()] == ' ') {
        return std::strtod(line.c_str() + n.size() + 1, nullptr);
      }
    }
  }
  return std::nullopt;
}

// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// One value of a query on `url` (libpq), as text; nullopt with `why` on error.
inline std::optional<std::string> pg_scalar(const std::string& url, const std::string& sql,
                                            const std::vector<std::string>& params,
                                            std::string* why = nullptr) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(url.c_str()), PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    if (why) *why = std::string("connect: ") + PQerrorMessage(conn.get());
    return std::nullopt;
  }
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(
      PQexecParams(conn.get(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                   nullptr, nullptr, 0),
      PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1) {
    if (why) *why = sql + ": " + PQerrorMessage(conn.get());
    return std::nullopt;
  }
  return std::string(PQgetvalue(r.get(), 0, 0));
}

// Rows of device_events for one device of the test's tenant (-1 when the
// query failed). The store keys a device by "<tenant>/<id>".
inline long long stored_events(const std::string& url, const std::string& device,
                               std::string* why = nullptr) {
  auto v = pg_scalar(url, "SELECT count(*) FROM device_events WHERE device = $1",
                     {std::string(kTenant) + "/" + device}, why);
  return v ? std::stoll(*v) : -1;
}

// A directory of the test's own, removed when the test ends however it ends.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) : path_(fresh_dir(prefix)) {}
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// --- the cluster ------------------------------------------------------------------

// The last `n` lines of a file.
inline std::string tail(const std::filesystem::path& p, std::size_t n) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line.size() > 400 ? line.substr(0, 400) + "..." : line);
    if (lines.size() > n) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

struct ClusterOptions {
  int servers = 3;
  std::chrono::milliseconds tick{250};
  std::vector<std::string> extra_args;
};

// N tranche-servers on one store URL, each with its own data directory and
// --server-id s1..sN (when the binary has the flag). Killed servers stay
// killed; the rest are killed (SIGKILL) when the cluster goes.
class Cluster {
 public:
  Cluster(std::string store_url, ClusterOptions o = {})
      : store_url_(std::move(store_url)), o_(std::move(o)) {
    for (int i = 0; i < o_.servers; ++i) {
      auto dir = fresh_dir("tranche-cluster-s" + std::to_string(i + 1));
      dirs_.push_back(dir);
      std::vector<std::string> args{
          "--data-dir",    dir.string(),  "--store",   store_url_,
          "--admin-token", kClusterAdmin, "--tick-ms", std::to_string(o_.tick.count())};
      if (server_has_flag("--server-id")) {
        args.push_back("--server-id");
        args.push_back(name(i));
      }
      for (const auto& a : o_.extra_args) args.push_back(a);
      // Each server's log (its stderr) goes to a file: three servers' logs in
      // the test's output would bury its messages. The child inherits fd 2 as
      // it is at the fork.
      logs_.push_back(dir.parent_path() / (dir.filename().string() + ".log"));
      std::fflush(stderr);
      int saved = ::dup(STDERR_FILENO);
      int fd = ::open(logs_.back().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDERR_FILENO);
        ::close(fd);
      }
      try {
        servers_.push_back(std::make_unique<ServerProcess>(args));
      } catch (...) {
        ::dup2(saved, STDERR_FILENO);
        ::close(saved);
        std::fprintf(stderr, "%s: %s\n", name(i).c_str(), tail(logs_.back(), 40).c_str());
        throw;
      }
      ::dup2(saved, STDERR_FILENO);
      ::close(saved);
      alive_.push_back(std::make_unique<std::atomic<bool>>(true));
    }
  }
  ~Cluster() {
    servers_.clear();
    // A failed test shows the end of each server's log.
    if (::testing::Test::HasFailure()) {
      for (std::size_t i = 0; i < logs_.size(); ++i) {
        std::printf("--- last lines of %s's log (%s) ---\n%s", name(static_cast<int>(i)).c_str(),
                    logs_[i].c_str(), tail(logs_[i], 25).c_str());
      }
    }
    for (const auto& l : logs_) {
      std::error_code ec;
      std::filesystem::remove(l, ec);
    }
    for (const auto& d : dirs_) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int size() const { return static_cast<int>(servers_.size()); }
  static std::string name(int i) { return "s" + std::to_string(i + 1); }
  ServerProcess& at(int i) { return *servers_.at(static_cast<std::size_t>(i)); }
  std::string url(int i, const std::string& path) const {
    return servers_.at(static_cast<std::size_t>(i))->url(path);
  }
  bool alive(int i) const { return alive_.at(static_cast<std::size_t>(i))->load(); }
  std::vector<int> alive_indexes() const {
    std::vector<int> out;
    for (int i = 0; i < size(); ++i) {
      if (alive(i)) out.push_back(i);
    }
    return out;
  }
  std::chrono::milliseconds tick() const { return o_.tick; }
  const std::string& store_url() const { return store_url_; }

  // kill -9: marked dead first, so routers stop choosing it before it goes.
  void kill9(int i) {
    alive_.at(static_cast<std::size_t>(i))->store(false);
    at(i).stop(SIGKILL);
  }

  bool leads(HttpClient& http, int i) {
    auto m = http.request("GET", url(i, "/metrics"), "", "", 5);
    return m.status == 200 && metric_value(m.body, "tranche_engine_leader") == 1.0;
  }
  // The one live server that leads, or nullopt when none or several do.
  std::optional<int> leader(HttpClient& http) {
    std::optional<int> found;
    int n = 0;
    for (int i : alive_indexes()) {
      if (leads(http, i)) {
        found = i;
        ++n;
      }
    }
    return n == 1 ? found : std::nullopt;
  }
  std::optional<int> wait_leader(HttpClient& http, std::chrono::milliseconds timeout) {
    std::optional<int> l;
    eventually([&] { return (l = leader(http)).has_value(); }, timeout);
    return l;
  }

  HttpResult admin(HttpClient& http, int i, const std::string& method, const std::string& path,
                   const json::value& body = nullptr) {
    return http.request(method, url(i, path),
                        body.is_null() ? std::string() : json::serialize(body), kClusterAdmin);
  }
  // A /metrics sample of server i (nullopt when unreachable or absent).
  std::optional<double> metric(HttpClient& http, int i, const std::string& name) {
    auto m = http.request("GET", url(i, "/metrics"), "", "", 5);
    if (m.status != 200) return std::nullopt;
    return metric_value(m.body, name);
  }

 private:
  std::string store_url_;
  ClusterOptions o_;
  std::vector<std::filesystem::path> dirs_;
  std::vector<std::filesystem::path> logs_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
  std::vector<std::unique_ptr<std::atomic<bool>>> alive_;
};

// "Each request to a random server": a fixed seed, so a run can be repeated.
class Router {
 public:
  explicit Router(std::uint32_t seed) : rng_(seed) {}
  // A random live server, other than `except` when there is another.
  int pick(const Cluster& c, std::optional<int> except = std::nullopt) {
    std::vector<int> choices;
    for (int i : c.alive_indexes()) {
      if (!except || i != *except) choices.push_back(i);
    }
    if (choices.empty()) choices = c.alive_indexes();
    if (choices.empty()) throw std::runtime_error("no live server");
    std::lock_guard lock(mu_);
    return choices[std::uniform_int_distribution<std::size_t>(0, choices.size() - 1)(rng_)];
  }

 private:
  std::mutex mu_;
  std::mt19937 rng_;
};

// --- the fleet --------------------------------------------------------------------

struct TestDevice {
  std::string id;
  std::string token;
  std::string key() const { return std::string(kTenant) + "/" + id; }  // as the store keys it
};

inline std::string checkin_body(const std::string& version) {
  return json::serialize(json::object{{"versions", json::object{{"content", version}}}});
}

// The action a check-in answer gives the content channel ("" if none).
inline std::string content_action(const HttpResult& r) {
  auto v = r.json();
  if (!v.is_object()) return "";
  auto* ch = v.as_object().if_contains("channels");
  if (ch == nullptr || !ch->is_object()) return "";
  auto* c = ch->as_object().if_contains("content");
  if (c == nullptr || !c->is_object()) return "";
  auto* a = c->as_object().if_contains("action");
  return a != nullptr && a->is_string() ? std::string(a->as_string()) : "";
}

// The tenant and the content releases 1.0 and 2.0, made at server `at`.
inline ::testing::AssertionResult make_tenant_and_releases(Cluster& c, HttpClient& http, int at) {
  auto t = c.admin(http, at, "POST", "/v1/tenants",
                   json::object{{"id", kTenant}, {"enrollment_key", kEnrollmentKey}});
  if (t.status != 201)
    return ::testing::AssertionFailure() << "POST /v1/tenants: " << t.status << " " << t.body;
  for (const char* v : {"1.0", "2.0"}) {
    auto r = c.admin(
        http, at, "POST", "/v1/releases",
        json::object{{"channel", "content"},
                     {"version", v},
                     {"targets", json::array{json::object{{"path", std::string("c-") + v},
                                                          {"length", 1},
                                                          {"sha256", std::string(64, 'c')}}}}});
    if (r.status != 201)
      return ::testing::AssertionFailure() << "POST /v1/releases " << v << ": " << r.body;
  }
  return ::testing::AssertionSuccess();
}

// Every live server knows both releases (and so the tenant made before them:
// a server reads tenants, releases and rollouts from the store together).
inline ::testing::AssertionResult wait_synced(Cluster& c, HttpClient& http,
                                              const std::string& rollout = "",
                                              std::chrono::milliseconds timeout = 5s) {
  for (int i : c.alive_indexes()) {
    bool ok = eventually(
        [&] {
          auto r = c.admin(http, i, "GET", "/v1/releases");
          if (r.status != 200 || r.body.find("\"2.0\"") == std::string::npos) return false;
          return rollout.empty() ||
                 c.admin(http, i, "GET", "/v1/rollouts/" + rollout).status == 200;
        },
        timeout);
    if (!ok)
      return ::testing::AssertionFailure()
             << Cluster::name(i) << " did not see the releases/rollout";
  }
  return ::testing::AssertionSuccess();
}

inline std::vector<TestDevice> bulk_enroll(Cluster& c, HttpClient& http, int at,
                                           const std::string& prefix, int n) {
  json::array list;
  for (int i = 0; i < n; ++i)
    list.push_back(json::object{{"device_id", prefix + std::to_string(i)}});
  auto r = c.admin(http, at, "POST", "/v1/devices/bulk",
                   json::object{{"tenant", kTenant}, {"devices", list}});
  if (r.status != 201)
    throw std::runtime_error("bulk enrollment: " + std::to_string(r.status) + " " + r.body);
  std::vector<TestDevice> out;
  const json::value answer = r.json();
  for (const auto& d : answer.at("devices").as_array()) {
    out.push_back(TestDevice{std::string(d.at("device_id").as_string()),
                             std::string(d.at("device_token").as_string())});
  }
  return out;
}

// Starts a rollout of content `version` (2.0) with `plan_yaml` at server `at`; its id.
inline std::string start_rollout(Cluster& c, HttpClient& http, int at, const std::string& id,
                                 const std::string& plan_yaml, const std::string& version = "2.0") {
  auto r = c.admin(
      http, at, "POST", "/v1/rollouts",
      json::object{
          {"channel", "content"}, {"version", version}, {"id", id}, {"plan_yaml", plan_yaml}});
  if (r.status != 201)
    throw std::runtime_error("POST /v1/rollouts: " + std::to_string(r.status) + " " + r.body);
  return id;
}

// GET /v1/rollouts/{id} at server i as JSON (null when not 200).
inline json::value rollout_at(Cluster& c, HttpClient& http, int i, const std::string& id) {
  auto r = c.admin(http, i, "GET", "/v1/rollouts/" + id);
  return r.status == 200 ? r.json() : json::value(nullptr);
}
inline std::int64_t gate_int(const json::value& rollout, const char* field) {
  if (!rollout.is_object()) return -1;
  const auto& g = rollout.at("gate");
  const auto* v = g.as_object().if_contains(field);
  return v != nullptr && v->is_int64()    ? v->as_int64()
         : v != nullptr && v->is_uint64() ? static_cast<std::int64_t>(v->as_uint64())
                                          : -1;
}
inline std::int64_t failures_by_cause(const json::value& rollout, const char* cause) {
  if (!rollout.is_object()) return -1;
  const auto& by = rollout.at("gate").at("exposed_failures_by_cause").as_object();
  const auto* v = by.if_contains(cause);
  return v != nullptr && v->is_int64()    ? v->as_int64()
         : v != nullptr && v->is_uint64() ? static_cast<std::int64_t>(v->as_uint64())
                                          : -1;
}
inline std::string rollout_state(const json::value& rollout) {
  return rollout.is_object() ? std::string(rollout.at("status").at("state").as_string()) : "";
}
inline std::string gate_summary(const json::value& r) {
  if (!r.is_object()) return "(no rollout)";
  return "state " + rollout_state(r) + ", gate " + json::serialize(r.at("gate"));
}

// Devices checking in, each every `period`, each check-in to a random live
// server (its own Router), in a thread. `version_of` says what each reports.
class Heartbeats {
 public:
  Heartbeats(Cluster& c, std::vector<TestDevice> devices,
             std::map<std::string, std::string> version_of, std::chrono::milliseconds period,
             std::uint32_t seed)
      : c_(c),
        devices_(std::move(devices)),
        version_of_(std::move(version_of)),
        period_(period),
        router_(seed) {
    thread_ = std::thread([this] { run(); });
  }
  ~Heartbeats() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Stop heartbeating this device (it goes quiet, as a dead machine would).
  void silence(const std::string& device) {
    std::lock_guard lock(mu_);
    quiet_.push_back(device);
  }
  std::size_t sent() const { return sent_; }
  // Check-ins to a live server not answered 200 (the first few, for messages).
  std::size_t failed() const { return failed_; }
  std::string failures() const {
    std::lock_guard lock(mu_);
    return failure_text_;
  }
  // How many times a device's consecutive check-ins went to different servers.
  std::size_t moves() const { return moves_; }

 private:
  void run() {
    HttpClient http;
    std::map<std::string, int> last_server;
    while (!stop_) {
      auto round_start = std::chrono::steady_clock::now();
      for (std::size_t k = 0; k < devices_.size() && !stop_; ++k) {
        const auto& d = devices_[k];
        bool quiet;
        {
          std::lock_guard lock(mu_);
          quiet = std::find(quiet_.begin(), quiet_.end(), d.id) != quiet_.end();
        }
        if (!quiet) {
          int s = router_.pick(c_);
          auto r = http.request("POST", c_.url(s, "/v1/checkin"),
                                checkin_body(version_of_.at(d.id)), d.token, 10);
          ++sent_;
          auto it = last_server.find(d.id);
          if (it != last_server.end() && it->second != s) ++moves_;
          last_server[d.id] = s;
          // A request caught by a kill -9 of its server is not the server's fault.
          if (r.status != 200 && c_.alive(s)) {
            ++failed_;
            std::lock_guard lock(mu_);
            if (failure_text_.size() < 2000) {
              failure_text_ += d.id + "@" + Cluster::name(s) + ": " + std::to_string(r.status) +
                               " " + r.body.substr(0, 160) + "\n";
            }
          }
        }
        // Spread the round over the period.
        auto due =
            round_start + period_ * static_cast<long>(k + 1) / static_cast<long>(devices_.size());
        std::this_thread::sleep_until(due);
      }
      std::this_thread::sleep_until(round_start + period_);
    }
  }

  Cluster& c_;
  std::vector<TestDevice> devices_;
  std::map<std::string, std::string> version_of_;
  std::chrono::milliseconds period_;
  Router router_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> sent_{0}, failed_{0}, moves_{0};
  mutable std::mutex mu_;
  std::vector<std::string> quiet_;
  std::string failure_text_;
};

// --- HAProxy ----------------------------------------------------------------------

inline std::string haproxy_binary() {
  if (const char* bin = std::getenv("TRANCHE_HAPROXY_BIN")) return bin;
  for (const char* p : {"/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

// packaging/haproxy/tranche.cfg, compiled in by tests/cluster/CMakeLists.txt.
inline std::string haproxy_template() {
#ifdef TRANCHE_HAPROXY_CFG
  return TRANCHE_HAPROXY_CFG;
#else
  return "packaging/haproxy/tranche.cfg";
#endif
}

// The environment that fills in the template: the port HAProxy listens on and
// the cluster's servers (TRANCHE_SERVER_1..N).
inline std::map<std::string, std::string> haproxy_env(std::uint16_t port,
                                                      const std::vector<std::uint16_t>& servers) {
  std::map<std::string, std::string> env{{"TRANCHE_HAPROXY_PORT", std::to_string(port)}};
  for (std::size_t i = 0; i < servers.size(); ++i) {
    env["TRANCHE_SERVER_" + std::to_string(i + 1)] = "127.0.0.1:" + std::to_string(servers[i]);
  }
  return env;
}

// Runs haproxy with `args` and `env` in a child; its stdout and stderr go to
// `log`. Returns the child's pid.
inline pid_t spawn_haproxy(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env,
                           const std::filesystem::path& log) {
  std::string bin = haproxy_binary();
  if (bin.empty())
    throw std::runtime_error("haproxy is not installed (scripts/deps.sh installs it)");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<std::string> argv_s{bin};
    for (const auto& a : args) argv_s.push_back(a);
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::perror("execv haproxy");
    ::_exit(127);
  }
  if (pid < 0) throw std::runtime_error("fork failed");
  return pid;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `haproxy -c -f cfg` with `env`: exit status and output.
inline std::pair<int, std::string> haproxy_check(const std::string& cfg,
                                                 const std::map<std::string, std::string>& env,
                                                 const std::filesystem::path& dir) {
  auto log = dir / "haproxy-check.log";
  pid_t pid = spawn_haproxy({"-c", "-f", cfg}, env, log);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_text(log)};
}

// HAProxy in the foreground (-db) with the template filled in from `env`.
class HaproxyProcess {
 public:
  HaproxyProcess(const std::vector<std::uint16_t>& servers, std::filesystem::path dir)
      : dir_(std::move(dir)), port_(free_port()) {
    pid_ =
        spawn_haproxy({"-db", "-f", haproxy_template()}, haproxy_env(port_, servers), log_path());
  }
  ~HaproxyProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  HaproxyProcess(const HaproxyProcess&) = delete;
  HaproxyProcess& operator=(const HaproxyProcess&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::filesystem::path log_path() const { return dir_ / "haproxy.log"; }
  std::string log() const { return read_text(log_path()); }
  bool running() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

 private:
  std::filesystem::path dir_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// A request that also returns the X-Tranche-Server header HAProxy adds.
struct ProxiedResult {
  HttpResult http;
  std::string server;  // "s1".. or "" (no answer from a server)
};

class ProxyClient {
 public:
  ProxyClient() : curl_(curl_easy_init()) {}
  ~ProxyClient() { curl_easy_cleanup(curl_); }
  ProxyClient(const ProxyClient&) = delete;
  ProxyClient& operator=(const ProxyClient&) = delete;

  ProxiedResult request(const std::string& method, const std::string& url, const std::string& body,
                        const std::string& token, long timeout_s = 10) {
    ProxiedResult r;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    std::string auth = "Authorization: Bearer " + token;
    if (!token.empty()) headers = curl_slist_append(headers, auth.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    if (method != "GET") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &ProxyClient::on_data);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.http.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &ProxyClient::on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.server);
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      r.http.status = -1;
      r.http.body = curl_easy_strerror(rc);
      return r;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.http.status);
    return r;
  }

 private:
  static std::size_t on_data(char* p, std::size_t size, std::size_t n, void* user) {
    static_cast<std::string*>(user)->append(p, size * n);
    return size * n;
  }
  static std::size_t on_header(char* p, std::size_t size, std::size_t n, void* user) {
    std::string line(p, size * n);
    const std::string key = "x-tranche-server:";
    if (line.size() > key.size()) {
      std::string head = line.substr(0, key.size());
      for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (head == key) {
        std::string v = line.substr(key.size());
        while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
          v.pop_back();
        while (!v.empty() && v.front() == ' ') v.erase(v.begin());
        *static_cast<std::string*>(user) = v;
      }
    }
    return size * n;
  }
  CURL* curl_;
};

// --- a PostgreSQL of the test's own -----------------------------------------------

inline std::string pg_cluster_script() {
#ifdef TRANCHE_PG_CLUSTER_SH
  return TRANCHE_PG_CLUSTER_SH;
#else
  return "tests/pg/pg_cluster.sh";
#endif
}

inline std::string pg_bin() {
  const char* env_bin = std::getenv("TRANCHE_PG_BIN");
  return env_bin != nullptr ? env_bin : "/usr/lib/postgresql/15/bin";
}

// The port of a postgresql://user@host:PORT/db URL ("" when it has none).
inline std::string url_port(const std::string& url) {
  auto slash = url.rfind('/');
  auto colon = url.rfind(':', slash);
  if (slash == std::string::npos || colon == std::string::npos) return "";
  return url.substr(colon + 1, slash - colon - 1);
}

// tests/pg/pg_cluster.sh start on a directory of its own: a PostgreSQL server
// nobody else uses, so the test may restart it. With a `primary`, `replica`
// instead: a synchronous streaming replica of that server (promote() makes it
// the primary).
class PrivatePostgres {
 public:
  PrivatePostgres() : PrivatePostgres(nullptr) {}
  explicit PrivatePostgres(const PrivatePostgres* primary) : dir_(fresh_dir("tranche-cluster-pg")) {
    const std::string what = primary != nullptr ? "replica" : "start";
    std::string cmd = "bash '" + pg_cluster_script() + "' " + what + " '" + dir_.string() + "'";
    if (primary != nullptr) cmd += " '" + primary->dir_.string() + "'";
    int rc = std::system(cmd.c_str());
    if (rc != 0) {
      error_ = "pg_cluster.sh " + what + " failed (status " + std::to_string(rc) + ")";
      return;
    }
    std::ifstream u(dir_ / "url"), c(dir_ / "cluster");
    std::getline(u, url_);
    std::getline(c, root_);
    if (url_.empty() || root_.empty())
      error_ = "pg_cluster.sh wrote no url or cluster file in " + dir_.string();
  }
  ~PrivatePostgres() {
    (void)std::system(
        ("bash '" + pg_cluster_script() + "' stop '" + dir_.string() + "' >/dev/null 2>&1")
            .c_str());
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& url() const { return url_; }

  // pg_ctl restart -m fast (as the postgres user when root): the same port and
  // options (postmaster.opts). Returns pg_ctl's exit status.
  int restart() {
    return pg_ctl("-l '" + root_ + "/server.log' -w -t 60 restart -m fast");
  }
  // The server's crash: pg_ctl stop -m immediate (no checkpoint, every
  // session cut at once). Returns pg_ctl's exit status.
  int crash() { return pg_ctl("-w -t 60 stop -m immediate"); }
  // A replica becomes the primary (pg_ctl promote -w).
  int promote() {
    int rc = std::system(
        ("bash '" + pg_cluster_script() + "' promote '" + dir_.string() + "' >/dev/null").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  }

 private:
  int pg_ctl(const std::string& args) {
    std::string cmd = "'" + pg_bin() + "/pg_ctl' -D '" + root_ + "/data' " + args + " >/dev/null";
    if (::geteuid() == 0) cmd = "runuser -u postgres -- " + cmd;
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  }

  std::filesystem::path dir_;
  std::string url_;
  std::string root_;
  std::string error_;
};

}  // namespace tranche::testing
