#include "cli/demo_command.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>

#include "tuf/canonical_json.h"
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/api_client.h"
#include "core/rollout_machine.h"

namespace tranche::cli {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Set by SIGINT/SIGTERM; every wait in this file looks at it.
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int /*sig*/) { g_stop = 1; }

constexpr const char* kTenant = "demo";
constexpr const char* kEnrollKey = "demo-enrollment-key-0123456789";
constexpr const char* kGood = "1.0";
constexpr const char* kBad = "2.0";
constexpr const char* kMarker = ".tranche-demo";
constexpr const char* kGoodId = "r-good";
constexpr const char* kBadId = "r-bad";
// The engine's period: a fifth of a second, so a halt follows the first failures
// at once (the server's default is 1 s).
constexpr const char* kTickMs = "200";

// The plan of both releases: three rings, short bakes, an engine that looks every
// second. The canary's min_devices raises a small fleet's first ring to an expected
// 3 devices; which ones is a hash of device and rollout id, so the rollout ids are
// fixed (kGoodId, kBadId: the same devices in every run of the same size). A
// ring can still come out empty; min_acknowledged: 0 lets the engine move past it
// after its bake instead of waiting for an acknowledgement that cannot come.
// With a handful of devices the gate can only see a large regression: the test is
// tuned to a 10x failure rate (a sensor that dies at start is far beyond that) and
// a false-halt rate of 20% — a demo's plan, not a production one (see
// examples/plans/rings.yaml for that).
constexpr const char* kPlan = R"(name: demo
on_failure: rollback
gate:
  alpha: 0.2
  alternative_ratio: 10
  min_acknowledged: 0
  heartbeat_interval: 1s
  silent_after_missed: 5
  tick: 1s
stages:
  - {name: canary, percent: 10%, bake: 15s, min_devices: 3}
  - {name: early, percent: 50%, bake: 15s}
  - {name: all, percent: 100%, bake: 0s}
)";

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  return static_cast<bool>(out);
}

std::string random_hex(std::size_t bytes) {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string out;
  static const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto c = static_cast<unsigned char>(in.get());
    out += digits[c >> 4U];
    out += digits[c & 0xFU];
  }
  return out;
}

fs::path self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p;
}

bool executable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p); }

// NAME next to this `tranche` (the same build/bin or install bin), else on PATH.
std::optional<fs::path> find_binary(const std::string& name) {
  const fs::path here = self_exe().parent_path() / name;
  if (executable(here)) return here;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && executable(fs::path(dir) / name)) return fs::path(dir) / name;
  }
  return std::nullopt;
}

// examples/ of the source tree, or of the installation this `tranche` belongs to.
std::optional<fs::path> find_examples() {
  const fs::path candidates[] = {fs::path(TRANCHE_SOURCE_EXAMPLES), fs::path(TRANCHE_INSTALL_EXAMPLES),
                                 self_exe().parent_path().parent_path() / "share/tranche/examples"};
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c / "content/channel-291.yaml")) return c;
  }
  return std::nullopt;
}

// The processes of the demo: one process group (led by the server) apart from the
// terminal's, so Ctrl-C reaches only `tranche demo`, which stops them in order.
// Each child also dies with this process (PR_SET_PDEATHSIG) if it is killed.
class Processes {
 public:
  Processes() = default;
  Processes(const Processes&) = delete;
  Processes& operator=(const Processes&) = delete;
  ~Processes() { stop_all(); }

  // Starts argv with stdout and stderr appended to `log`; returns the pid (-1 on failure).
  // `grouped`: joins the demo's process group (the long-running processes); the
  // short `tranche` steps stay in ours.
  pid_t spawn(const std::vector<std::string>& argv, const fs::path& log, const fs::path& out = {},
              bool grouped = true) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      if (grouped) ::setpgid(0, group_);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      const int ofd = out.empty() ? fd : ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(ofd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      std::vector<char*> args;
      args.reserve(argv.size() + 1);
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    if (grouped) {
      ::setpgid(pid, group_);  // both sides: whichever runs first
      if (group_ == 0) group_ = pid;
    }
    pids_.push_back(pid);
    return pid;
  }

  // Runs argv to completion (a `tranche` step such as keys gen); true on exit 0.
  bool run(const std::vector<std::string>& argv, const fs::path& log) {
    const pid_t pid = spawn(argv, log, {}, false);
    if (pid < 0) return false;
    int status = 0;
    ::waitpid(pid, &status, 0);
    forget(pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  bool alive(pid_t pid) {
    int status = 0;
    return pid > 0 && ::waitpid(pid, &status, WNOHANG) == 0;
  }

  // SIGTERM to each of `pids`, then waits up to `grace` for all; SIGKILL after.
  void stop(const std::vector<pid_t>& pids, std::chrono::milliseconds grace) {
    for (pid_t p : pids) ::kill(p, SIGTERM);
    const auto deadline = Clock::now() + grace;
    for (pid_t p : pids) {
      int status = 0;
      while (::waitpid(p, &status, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
          ::kill(p, SIGKILL);
          ::waitpid(p, &status, 0);
          break;
        }
        std::this_thread::sleep_for(20ms);
      }
      forget(p);
    }
  }

  // Everything still running, the servers last; then whatever is left of the group.
  void stop_all() {
    if (pids_.empty() && group_ == 0) return;
    std::vector<pid_t> first = pids_;
    for (pid_t s : servers_) first.erase(std::remove(first.begin(), first.end(), s), first.end());
    stop(first, 8s);
    if (!servers_.empty()) stop(servers_, 8s);
    servers_.clear();
    if (group_ > 0) ::kill(-group_, SIGKILL);  // nothing of ours should be left; be sure
    group_ = 0;
    pids_.clear();
  }
  void add_server(pid_t p) { servers_.push_back(p); }

 private:
  void forget(pid_t p) { pids_.erase(std::remove(pids_.begin(), pids_.end(), p), pids_.end()); }
  pid_t group_ = 0;
  std::vector<pid_t> servers_;
  std::vector<pid_t> pids_;
};

// A free TCP port on 127.0.0.1 (bound and released: another process may take it
// in between, which the caller's start then reports).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// packaging/haproxy/tranche.cfg of the source tree or of the installation.
std::optional<fs::path> find_haproxy_config() {
  const fs::path candidates[] = {fs::path(TRANCHE_SOURCE_HAPROXY), fs::path(TRANCHE_INSTALL_HAPROXY),
                                 self_exe().parent_path().parent_path() / "share/tranche/haproxy/tranche.cfg"};
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return c;
  }
  return std::nullopt;
}

// A PostgreSQL server of the demo's own (--servers 2 or 3): initdb into a fresh
// directory under /tmp (as the `postgres` user when run as root: PostgreSQL
// refuses root, and the work directory may sit where that user cannot read),
// listening on 127.0.0.1 and a socket in that directory only, trust
// authentication (nothing else can reach it), stopped and deleted with the demo.
class DemoPostgres {
 public:
  DemoPostgres() = default;
  DemoPostgres(const DemoPostgres&) = delete;
  DemoPostgres& operator=(const DemoPostgres&) = delete;
  ~DemoPostgres() { stop(); }

  // Starts it; the store URL, or nullopt with `error`.
  std::optional<std::string> start(Processes& procs, const fs::path& log, std::string& error) {
    const char* env_bin = std::getenv("TRANCHE_PG_BIN");
    bin_ = env_bin != nullptr ? env_bin : "/usr/lib/postgresql/15/bin";
    if (!executable(bin_ / "initdb")) {
      error = "PostgreSQL 15 is not installed (" + (bin_ / "initdb").string() +
              " missing; `make deps` or apt-get install postgresql)";
      return std::nullopt;
    }
    char tmpl[] = "/tmp/tranche-demo-pg.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error = "cannot make a directory for PostgreSQL under /tmp";
      return std::nullopt;
    }
    root_ = tmpl;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr || ::chown(root_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        error = "running as root needs the `postgres` user (Debian's postgresql package makes it)";
        return std::nullopt;
      }
    }
    if (!procs.run(as_owner({(bin_ / "initdb").string(), "-D", (root_ / "data").string(), "-U", "postgres", "-A",
                             "trust", "-E", "UTF8", "--no-locale", "--no-sync"}),
                   log)) {
      error = "initdb failed (see " + log.string() + ")";
      return std::nullopt;
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int port = free_port();
      if (port <= 0) break;
      if (procs.run(as_owner({(bin_ / "pg_ctl").string(), "-D", (root_ / "data").string(), "-l",
                              (root_ / "server.log").string(), "-w", "-t", "60", "-o",
                              "-c listen_addresses=127.0.0.1 -p " + std::to_string(port) +
                                  " -c unix_socket_directories=" + root_.string(),
                              "start"}),
                    log)) {
        started_ = true;
        if (!procs.run(as_owner({(bin_ / "createdb").string(), "-h", root_.string(), "-p", std::to_string(port),
                                 "-U", "postgres", "tranche"}),
                       log)) {
          error = "createdb failed (see " + log.string() + ")";
          return std::nullopt;
        }
        return "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/tranche";
      }
    }
    error = "PostgreSQL did not start (see " + (root_ / "server.log").string() + ")";
    return std::nullopt;
  }
  const fs::path& root() const { return root_; }

  // pg_ctl stop (fast), then the directory goes.
  void stop() {
    if (root_.empty()) return;
    if (started_) {
      Processes quiet;
      (void)quiet.run(as_owner({(bin_ / "pg_ctl").string(), "-D", (root_ / "data").string(), "-m", "fast", "-w",
                                "-t", "30", "stop"}),
                      "/dev/null");
      started_ = false;
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
    root_.clear();
  }

 private:
  static std::vector<std::string> as_owner(std::vector<std::string> argv) {
    if (::geteuid() != 0) return argv;
    std::vector<std::string> out{"/usr/sbin/runuser", "-u", "postgres", "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
  fs::path bin_;
  fs::path root_;
  bool started_ = false;
};

// What one agent keeps on disk (docs/agent.md): record.json, the active slot, the
// sensor's heartbeat file.
struct AgentState {
  std::string phase;
  std::string good;
  std::vector<std::string> bad;
  std::string active;  // the version the active slot holds
  bool sensor_alive = false;
  bool bad_has(const std::string& v) const { return std::find(bad.begin(), bad.end(), v) != bad.end(); }
};

AgentState read_agent(const fs::path& data) {
  AgentState s;
  auto parsed = tuf::parse_document(read_text(data / "record.json"), kMaxAnswerBytes);
  const json::value r = parsed ? std::move(*parsed) : json::value();
  if (r.is_object()) {
    const auto& o = r.as_object();
    if (const auto* p = o.if_contains("phase"); p != nullptr && p->is_string()) s.phase = std::string(p->as_string());
    if (const auto* g = o.if_contains("good"); g != nullptr && g->is_string()) s.good = std::string(g->as_string());
    if (const auto* b = o.if_contains("bad"); b != nullptr && b->is_array()) {
      for (const auto& v : b->as_array()) {
        if (v.is_string()) s.bad.emplace_back(v.as_string());
      }
    }
  }
  std::error_code fec;
  const auto target = fs::read_symlink(data / "active", fec);
  if (!fec) {
    s.active = read_text(data / target / "VERSION");
    while (!s.active.empty() && (s.active.back() == '\n' || s.active.back() == ' ')) s.active.pop_back();
  }
  struct stat st {};
  if (::stat((data / "heartbeat").c_str(), &st) == 0) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const long long age_ms = (now.tv_sec - st.st_mtim.tv_sec) * 1000LL + (now.tv_nsec - st.st_mtim.tv_nsec) / 1'000'000;
    s.sensor_alive = age_ms <= 1500;
  }
  return s;
}

// "1.0", "0.967": at most three decimals, at least one.
std::string fmt_number(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

std::string sha256_hex(const fs::path& file) {
  // The same digest the agents verify; computed here to keep the demo self-contained.
  FILE* p = ::popen(("sha256sum '" + file.string() + "'").c_str(), "r");
  if (p == nullptr) return "";
  char buf[128] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  return got ? std::string(buf).substr(0, 64) : "";
}

// One SWUpdate client of the demo: its device, directory (log, TMPDIR, the
// installed content.txt) and token.
struct SwupdateClient {
  std::string id;
  fs::path dir;
  std::string token;
};

class Demo {
 public:
  Demo(const DemoArgs& args, fs::path work, fs::path examples, std::map<std::string, fs::path> bins)
      : args_(args), work_(std::move(work)), examples_(std::move(examples)), bins_(std::move(bins)) {}

  int run() {
    t0_ = Clock::now();
    if (!make_repo() || !make_images() || !(args_.servers > 1 ? start_cluster() : start_server()) || !enroll_fleet() ||
        !start_swupdate()) {
      return fail();
    }
    pause();
    if (!good_release()) return fail();
    pause();
    if (!bad_release()) return fail();
    const bool contained = summary();
    if (!args_.once && g_stop == 0) {
      say("the fleet keeps running: explore " + url_ + "/ (token above); Ctrl-C stops every process");
      wait_for([] { return false; }, std::chrono::hours(24 * 365));  // health steps go on
      std::printf("\n");
    }
    say("stopping " + std::to_string(agents_.size()) + " agents" +
        (swu_.empty() ? std::string() : ", " + std::to_string(swu_.size()) + " SWUpdate clients") + " and " +
        (args_.servers > 1 ? "the servers, HAProxy and PostgreSQL" : std::string("the server")));
    procs_.stop_all();
    pg_.stop();
    if (args_.once) std::printf("%s\n", json_line().c_str());  // last, for scripts
    return contained ? 0 : 1;
  }

 private:
  void say(const std::string& line) {
    const double t = std::chrono::duration<double>(Clock::now() - t0_).count();
    std::printf("[%6.1fs] %s\n", t, line.c_str());
    std::fflush(stdout);
  }
  void pause() {
    if (args_.once) return;
    for (int i = 0; i < 50 && g_stop == 0; ++i) std::this_thread::sleep_for(100ms);
  }
  int fail() {
    if (g_stop != 0) {
      std::printf("\n");
      say("interrupted: stopping every process");
      procs_.stop_all();
      pg_.stop();
      return 1;
    }
    std::fprintf(stderr, "tranche demo: %s\n  logs: %s (%s, agents/*.log%s)\n", error_.c_str(), work_.c_str(),
                 args_.servers > 1 ? "server-N.log, haproxy.log, postgres.log" : "server.log",
                 args_.swupdate > 0 ? ", swupdate/*/log, swu.log" : "");
    procs_.stop_all();
    pg_.stop();
    return 1;
  }

  // Polls `done` every 200 ms until true, Ctrl-C, or `limit`; the SWUpdate
  // clients' health steps run in between.
  template <class Rep, class Period>
  bool wait_for(const std::function<bool()>& done, std::chrono::duration<Rep, Period> limit) {
    const auto deadline = Clock::now() + limit;
    while (g_stop == 0) {
      health_steps();
      if (done()) return true;
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  std::optional<json::value> api(const std::string& method, const std::string& path, const json::value& body,
                                 const std::string& token, long want) {
    ApiClient client(url_, token, 10);
    auto r = client.request(method, path, body.is_null() ? "" : json::serialize(body));
    if (!r) {
      error_ = method + " " + path + ": " + r.error().to_string();
      return std::nullopt;
    }
    if (r->status != want) {
      error_ = method + " " + path + ": " + std::to_string(r->status) + " " + r->error_code + ": " + r->error_message;
      return std::nullopt;
    }
    auto parsed = tuf::parse_document(r->body, kMaxAnswerBytes);
    if (!parsed) {
      error_ = method + " " + path + ": the answer is not JSON (" + parsed.error().message + ")";
      return std::nullopt;
    }
    json::value v = std::move(*parsed);
    return v;
  }
  std::optional<json::value> get(const std::string& path) { return api("GET", path, nullptr, admin_, 200); }

  // One tranche-server (data in DATA_DIR, logs NAME.log), with `extra` flags;
  // its port, or "" with error_.
  std::string spawn_server(const std::string& name, const fs::path& data, const std::vector<std::string>& extra) {
    fs::create_directories(data);
    const fs::path out = work_ / (name + ".out");
    std::vector<std::string> argv{bins_["tranche-server"].string(), "--listen", "127.0.0.1", "--port", "0",
                                  "--data-dir", data.string(), "--admin-token", admin_, "--tick-ms", kTickMs,
                                  "--batch-ms", "50", "--ask-again-s", "1", "--tuf-repo",
                                  (work_ / "tuf" / "repo").string(), "--interface",
                                  "content=" + (examples_ / "content" / "interface.yaml").string()};
    if (args_.swupdate > 0) {
      argv.push_back("--artifact-dir");
      argv.push_back(artifacts().string());
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    const pid_t pid = procs_.spawn(argv, work_ / (name + ".log"), out);
    if (pid < 0) {
      error_ = "cannot start tranche-server";
      return "";
    }
    procs_.add_server(pid);
    std::string port;
    const bool up = wait_for(
        [&] {
          const std::string text = read_text(out);
          const auto at = text.find("listening on");
          const auto nl = text.find('\n', at);
          if (at == std::string::npos || nl == std::string::npos) return !procs_.alive(pid);
          const std::string line = text.substr(at, nl - at);
          port = line.substr(line.rfind(':') + 1);
          return true;
        },
        15s);
    if (!up || port.empty()) {
      error_ = "tranche-server did not start (see " + name + ".log)";
      return "";
    }
    return port;
  }

  bool start_server() {
    admin_ = random_hex(24);
    const fs::path data = work_ / "server";
    const std::string port = spawn_server("server", data, {});
    if (port.empty()) return false;
    url_ = "http://127.0.0.1:" + port;
    if (!operator_token("tranche-server on " + url_ + " (SQLite in " + data.string() + ", TUF repo at /tuf/, engine tick " +
                        kTickMs + " ms)")) {
      return false;
    }
    std::printf("    admin token:    %s/admin-token\n\n", data.c_str());
    std::fflush(stdout);
    return true;
  }

  // --servers N: PostgreSQL of its own, N servers on it, HAProxy in front with
  // the checked-in configuration; the agents and the operator talk to HAProxy.
  bool start_cluster() {
    admin_ = random_hex(24);
    const auto cfg = find_haproxy_config();
    if (!cfg) {
      error_ = std::string("packaging/haproxy/tranche.cfg not found (") + TRANCHE_SOURCE_HAPROXY + " or " +
               TRANCHE_INSTALL_HAPROXY + ")";
      return false;
    }
    const auto haproxy = find_binary("haproxy").value_or(fs::path("/usr/sbin/haproxy"));
    if (!executable(haproxy)) {
      error_ = "haproxy is not installed (`make deps` or apt-get install haproxy)";
      return false;
    }
    const auto store = pg_.start(procs_, work_ / "postgres.log", error_);
    if (!store) return false;
    say("PostgreSQL 15 of the demo's own on " + store->substr(store->rfind('@') + 1) + " (data in " +
        pg_.root().string() + ", deleted at the end)");
    std::vector<std::string> ports;
    for (int i = 1; i <= args_.servers; ++i) {
      const std::string name = "server-" + std::to_string(i);
      const std::string port =
          spawn_server(name, work_ / name, {"--store", *store, "--server-id", "s" + std::to_string(i)});
      if (port.empty()) return false;
      ports.push_back(port);
    }
    // The configuration names three servers: fewer repeat the first ones. A copy
    // in the work directory, so every process of the demo names it.
    const fs::path copy = work_ / "haproxy.cfg";
    std::error_code ec;
    fs::copy_file(*cfg, copy, fs::copy_options::overwrite_existing, ec);
    const int port = free_port();
    if (ec || port <= 0) {
      error_ = "cannot prepare HAProxy's configuration in " + copy.string();
      return false;
    }
    ::setenv("TRANCHE_HAPROXY_PORT", std::to_string(port).c_str(), 1);
    for (int i = 0; i < 3; ++i) {
      const std::string addr = "127.0.0.1:" + ports[static_cast<std::size_t>(i) % ports.size()];
      ::setenv(("TRANCHE_SERVER_" + std::to_string(i + 1)).c_str(), addr.c_str(), 1);
    }
    if (procs_.spawn({haproxy.string(), "-db", "-f", copy.string()}, work_ / "haproxy.log") < 0) {
      error_ = "cannot start haproxy";
      return false;
    }
    url_ = "http://127.0.0.1:" + std::to_string(port);
    if (!wait_for(
            [&] {
              ApiClient probe(url_, "", 2);
              auto r = probe.request("GET", "/healthz", "");
              return r && r->status == 200;
            },
            15s)) {
      error_ = "HAProxy did not answer on " + url_ + " (see haproxy.log)";
      return false;
    }
    std::string names;
    for (std::size_t i = 0; i < ports.size(); ++i) {
      names += (i == 0 ? "" : ", ") + std::string("s") + std::to_string(i + 1) + " on :" + ports[i];
    }
    say(std::to_string(args_.servers) + " tranche-servers on it (" + names + "; one runs the engine), HAProxy on " +
        url_ + " in front (" + cfg->string() + ")");
    if (!operator_token("the agents and you talk to HAProxy: " + url_ + " (TUF repo at /tuf/, engine tick " + kTickMs +
                        " ms)")) {
      return false;
    }
    std::printf("\n");
    std::fflush(stdout);
    return true;
  }

  // The demo tenant and an operator token for the person watching; prints them.
  bool operator_token(const std::string& headline) {
    if (!api("POST", "/v1/tenants", json::object{{"id", kTenant}, {"enrollment_key", kEnrollKey}}, admin_, 201)) {
      return false;
    }
    auto tok = api("POST", "/v1/tokens", json::object{{"name", "you"}, {"role", "operator"}}, admin_, 201);
    if (!tok) return false;
    const std::string token(tok->at("token").as_string());
    say(headline);
    std::printf("\n    dashboard:      %s/\n    operator token: %s\n"
                "    CLI:            tranche login --server %s --token %s\n",
                url_.c_str(), token.c_str(), url_.c_str(), token.c_str());
    std::fflush(stdout);
    return true;
  }

  std::string key(const char* role) const { return (work_ / "tuf" / "keys" / (std::string(role) + ".pem")).string(); }

  bool make_repo() {
    const std::string cli = self_exe().string();
    const fs::path log = work_ / "tuf.log";
    fs::create_directories(work_ / "tuf" / "keys");
    for (const char* role : {"root", "targets", "snapshot", "timestamp"}) {
      if (!procs_.run({cli, "keys", "gen", "--out", (work_ / "tuf" / "keys" / role).string()}, log)) {
        error_ = "tranche keys gen failed (see tuf.log)";
        return false;
      }
    }
    if (!procs_.run({cli, "repo", "init", (work_ / "tuf" / "repo").string(), "--root-key", key("root"),
                     "--targets-key", key("targets"), "--snapshot-key", key("snapshot"), "--timestamp-key",
                     key("timestamp")},
                    log)) {
      error_ = "tranche repo init failed (see tuf.log)";
      return false;
    }
    say("TUF repository and its four keys made with `tranche keys gen` and `tranche repo init` (" +
        (work_ / "tuf").string() + ")");
    return true;
  }

  std::string agent_config(const std::string& id, const fs::path& data) const {
    const std::string sensor = bins_.at("tranche-demo-sensor").string();
    std::string c;
    c += "server_url: " + url_ + "\n";
    c += std::string("tenant: ") + kTenant + "\nenrollment_key: " + kEnrollKey + "\n";
    c += "device_id: " + id + "\n";
    c += "tags: {class: laptop}\n";
    c += "data_dir: " + data.string() + "\n";
    c += "channel: content\n";
    c += "tuf: {url: \"" + url_ + "/tuf\", root: " + (work_ / "tuf" / "repo" / "metadata" / "1.root.json").string() +
         "}\n";
    c += "service:\n  command: [\"" + sensor + "\", \"{slot}\", \"--heartbeat\", \"{data}/heartbeat\", \"--interval-ms\", \"200\"]\n";
    c += "  health_command: [\"" + sensor + "\", \"--health\", \"{data}/heartbeat\", \"--max-age-ms\", \"2000\"]\n";
    c += "  health_interval: 500ms\n  stop_timeout: 2s\n";
    c += "interface: " + (examples_ / "content" / "interface.yaml").string() + "\n";
    // The 2024 model on the device side: the agent's own contract check would refuse
    // Channel File 291 (docs/agent.md), so it is off here, as in the fleet e2e test.
    c += "contract_check: false\n";
    c += "trial: {start_budget: 3, window: 3s}\n";
    c += "checkin: {interval: 1s, long_poll: 2s, max_backoff: 2s, http_timeout: 5s}\n";
    c += "download: {timeout: 5s}\n";
    return c;
  }

  bool enroll_fleet() {
    fs::create_directories(work_ / "agents");
    for (int i = 0; i < args_.agents; ++i) {
      char id[32];
      std::snprintf(id, sizeof id, "dev-%02d", i);
      const fs::path data = work_ / "agents" / id;
      fs::create_directories(data);
      const fs::path config = work_ / "agents" / (std::string(id) + ".yaml");
      if (!write_text(config, agent_config(id, data))) {
        error_ = "cannot write " + config.string();
        return false;
      }
      const pid_t pid = procs_.spawn({bins_["tranche-agent"].string(), "--config", config.string()},
                                     work_ / "agents" / (std::string(id) + ".log"));
      if (pid < 0) {
        error_ = "cannot start tranche-agent";
        return false;
      }
      agents_.push_back(pid);
      data_.push_back(data);
    }
    say("started " + std::to_string(args_.agents) + " tranche-agent processes, each with its own data dir and a tranche-demo-sensor");
    std::int64_t enrolled = 0;
    const bool all = wait_for(
        [&] {
          auto f = get("/v1/fleet");
          enrolled = f ? f->at("devices").as_int64() : 0;
          return enrolled >= args_.agents;
        },
        60s);
    if (!all) {
      error_ = "only " + std::to_string(enrolled) + " of " + std::to_string(args_.agents) + " agents enrolled in 60 s";
      return false;
    }
    say("all " + std::to_string(enrolled) + " agents enrolled with tenant '" + kTenant + "' and checking in");
    return true;
  }

  // --- the SWUpdate clients (--swupdate N) -------------------------------------------------

  fs::path artifacts() const { return work_ / "artifacts"; }

  // The two .swu images, CMS-signed with a signer made here (examples/ddi/make_swu.sh):
  // 1.0 writes content.txt into the client's directory; 2.0's preinstall script
  // refuses every device before anything is written — SWUpdate's own check of an
  // image, failing as the 2024 sensor did, and reported as closed/failure.
  bool make_images() {
    if (args_.swupdate == 0) return true;
    const fs::path script = examples_ / "ddi" / "make_swu.sh";
    const fs::path log = work_ / "swu.log";
    for (const auto& [version, mode] : {std::pair{kGood, "good"}, std::pair{kBad, "refuse"}}) {
      if (!procs_.run({bins_["bash"].string(), script.string(), artifacts().string(), version,
                       std::string("content ") + version, "/proc/self/cwd/content.txt", mode},
                      log)) {
        error_ = "making update-" + std::string(version) + ".swu failed (see swu.log)";
        return false;
      }
    }
    say("SWUpdate images update-1.0.swu and update-2.0.swu (whose preinstall script refuses every device) signed "
        "with a CMS signer made by " + script.string());
    return true;
  }

  // N devices enrolled through the bulk API, each polled by a real swupdate
  // (suricatta, hawkBit DDI) in its own directory under swupdate/, with its own TMPDIR.
  bool start_swupdate() {
    if (args_.swupdate == 0) return true;
    json::array devices;
    for (int i = 1; i <= args_.swupdate; ++i) {
      char id[32];
      std::snprintf(id, sizeof id, "swu-%02d", i);
      devices.push_back(json::object{{"device_id", id}, {"tags", json::object{{"class", "gateway"}}}});
    }
    auto enrolled = api("POST", "/v1/devices/bulk", json::object{{"tenant", kTenant}, {"devices", devices}}, admin_, 201);
    if (!enrolled) return false;
    for (const auto& d : enrolled->at("devices").as_array()) {
      SwupdateClient c{std::string(d.at("device_id").as_string()), {}, std::string(d.at("device_token").as_string())};
      c.dir = work_ / "swupdate" / c.id;
      fs::create_directories(c.dir / "tmp");
      const pid_t pid = procs_.spawn(
          {bins_["env"].string(), "-C", c.dir.string(), "TMPDIR=" + (c.dir / "tmp").string(),
           bins_["swupdate"].string(), "-v", "-k", (artifacts() / "signer.pem").string(), "-H", "board:1.0", "-u",
           "-t " + std::string(kTenant) + " -u " + url_ + " -i " + c.id + " -k " + c.token},
          c.dir / "log");
      if (pid < 0) {
        error_ = "cannot start swupdate";
        return false;
      }
      swu_.push_back(std::move(c));
    }
    const bool polling = wait_for(
        [&] {
          for (const auto& c : swu_) {
            if (read_text(c.dir / "log").find("No pending action on server") == std::string::npos) return false;
          }
          return true;
        },
        30s);
    if (!polling) {
      error_ = "not every swupdate polled the server in 30 s (see swupdate/*/log)";
      return false;
    }
    say("started " + std::to_string(swu_.size()) + " swupdate processes (hawkBit DDI clients, enrolled through "
        "POST /v1/devices/bulk) polling /" + kTenant + "/controller/v1/swu-NN: the same rollouts and gate as the agents");
    return true;
  }

  // A GET as the device (its TargetToken), parsed; nullopt on any failure.
  std::optional<json::value> as_device(const SwupdateClient& c, const std::string& path) const {
    ApiClient device(url_, c.token, 5);
    device.scheme("TargetToken");
    auto r = device.request("GET", path);
    if (!r || r->status != 200) return std::nullopt;
    auto parsed = tuf::parse_document(r->body, kMaxAnswerBytes);
    if (!parsed || !parsed->is_object()) return std::nullopt;
    json::value v = std::move(*parsed);
    return v;
  }

  // The version of the action the server offers C in its base poll, and the
  // action's id; nullopt when none.
  std::optional<std::pair<std::string, std::string>> offered(const SwupdateClient& c) const {
    const std::string base = "/" + std::string(kTenant) + "/controller/v1/" + c.id;
    auto poll = as_device(c, base);
    if (!poll) return std::nullopt;
    const auto* href = poll->as_object().if_contains("_links");
    for (const char* key : {"deploymentBase", "href"}) {
      href = href != nullptr && href->is_object() ? href->as_object().if_contains(key) : nullptr;
    }
    if (href == nullptr || !href->is_string()) return std::nullopt;
    const std::string link(href->as_string());
    const std::string action = link.substr(link.rfind('/') + 1);
    auto deployment = as_device(c, base + "/deploymentBase/" + action);
    if (!deployment) return std::nullopt;
    const auto* chunks = deployment->as_object().if_contains("deployment");
    chunks = chunks != nullptr && chunks->is_object() ? chunks->as_object().if_contains("chunks") : nullptr;
    if (chunks == nullptr || !chunks->is_array() || chunks->as_array().empty()) return std::nullopt;
    const auto& chunk = chunks->as_array().front();
    const auto* version = chunk.is_object() ? chunk.as_object().if_contains("version") : nullptr;
    if (version == nullptr || !version->is_string()) return std::nullopt;
    return std::pair{std::string(version->as_string()), action};
  }

  // Each client's health step, as a device's own would run, at most once a
  // second: when the action it is offered is for the version its content.txt now
  // holds, the install worked — close the action through that client's swupdate
  // (swupdate-ipc sendtohawkbit ... success closed). swupdate-ipc exits 0 even
  // when its message was not taken (swupdate still busy), so the step repeats
  // until the server stops offering the action. An image that refused the device
  // never gets here: its content.txt keeps the old version, and swupdate itself
  // reported closed/failure.
  void health_steps() {
    if (swu_.empty() || Clock::now() < next_health_) return;
    next_health_ = Clock::now() + 1s;
    for (const auto& c : swu_) {
      const auto action = offered(c);
      if (!action || read_text(c.dir / "content.txt") != "content " + action->first + "\n") continue;
      (void)procs_.run({bins_["env"].string(), "TMPDIR=" + (c.dir / "tmp").string(), bins_["swupdate-ipc"].string(),
                        "sendtohawkbit", action->second, "2", "success", "closed", "health check passed"},
                       c.dir / "health.log");
    }
  }

  // What one client's directory shows: the content it runs, whether 2.0 refused it.
  int swu_running(const std::string& version) const {
    int n = 0;
    for (const auto& c : swu_) n += read_text(c.dir / "content.txt") == "content " + version + "\n" ? 1 : 0;
    return n;
  }
  int swu_refused(const std::string& version) const {
    int n = 0;
    for (const auto& c : swu_) {
      n += read_text(c.dir / "log").find("refusing version " + version) != std::string::npos ? 1 : 0;
    }
    return n;
  }

  bool publish(const std::string& version, const fs::path& bundle, bool skip_check) {
    const std::string name = "content/" + version + ".yaml";
    const fs::path log = work_ / "tuf.log";
    const std::string cli = self_exe().string();
    const std::string repo = (work_ / "tuf" / "repo").string();
    if (!procs_.run({cli, "release", "sign", repo, bundle.string(), "--name", name, "--targets-key", key("targets")},
                    log) ||
        !procs_.run({cli, "repo", "publish", repo, "--snapshot-key", key("snapshot"), "--timestamp-key",
                     key("timestamp")},
                    log)) {
      error_ = "signing " + name + " failed (see tuf.log)";
      return false;
    }
    json::object body{{"channel", "content"},
                      {"version", version},
                      {"targets", json::array{json::object{{"path", name},
                                                           {"length", static_cast<std::int64_t>(fs::file_size(bundle))},
                                                           {"sha256", sha256_hex(bundle)}}}},
                      {"content_bundle", read_text(bundle)}};
    if (args_.swupdate > 0) {  // a mixed fleet's release: the agents' target and the SWUpdate image
      body["kind"] = "swu";
      body["artifact"] = "update-" + version + ".swu";
    }
    if (skip_check) body["skip_contract_check"] = true;
    auto r = api("POST", "/v1/releases", body, admin_, 201);
    if (!r) return false;
    check_result_ = std::string(r->at("contract_check").as_string());
    return true;
  }

  std::optional<std::string> start_rollout(const std::string& version, const char* id) {
    auto r = api("POST", "/v1/rollouts",
                 json::object{{"channel", "content"}, {"version", version}, {"id", id}, {"plan_yaml", kPlan}}, admin_, 201);
    if (!r) return std::nullopt;
    return std::string(r->at("id").as_string());
  }

  static std::string state_of(const json::value& ro) { return std::string(ro.at("status").at("state").as_string()); }
  // core's one definition of final (completed, rolled back, aborted) and stopped
  // (halted, rolling back, rolled back); an unknown state is neither.
  static bool is_final(const std::string& state) {
    const auto s = core::parse_rollout_state(state);
    return s && core::is_final(*s);
  }
  static bool is_stopped(const std::string& state) {
    const auto s = core::parse_rollout_state(state);
    return s && core::is_stopped(*s);
  }
  static std::int64_t stage_of(const json::value& ro) { return ro.at("status").at("stage").as_int64(); }

  bool good_release() {
    if (!publish(kGood, examples_ / "content" / "good.yaml", false)) return false;
    say(std::string("release ") + kGood + " (examples/content/good.yaml) signed into the TUF repo, registered; server contract check: " + check_result_);
    auto id = start_rollout(kGood, kGoodId);
    if (!id) return false;
    good_id_ = *id;
    say("rollout " + good_id_ + " of " + kGood + ": canary 10% (at least 3) -> early 50% -> all 100%, 15 s bakes");
    std::int64_t last_stage = -1;
    std::string state;
    const bool done = wait_for(
        [&] {
          auto ro = get("/v1/rollouts/" + good_id_);
          if (!ro) return false;
          state = state_of(*ro);
          const auto stage = stage_of(*ro);
          if (stage != last_stage && state == "running") {
            last_stage = stage;
            const auto& st = ro->at("stages").at(static_cast<std::size_t>(stage));
            say("  stage " + std::string(st.at("name").as_string()) + ": " +
                std::to_string(st.at("target_devices").as_int64()) + " devices");
          }
          return is_final(state) || is_stopped(state);
        },
        180s);
    if (!done || state != "completed") {
      error_ = "the good rollout did not complete (state '" + state + "')";
      return false;
    }
    int on_good = 0;
    wait_for(
        [&] {
          on_good = 0;
          for (const auto& d : data_) {
            const auto s = read_agent(d);
            if (s.phase == "committed" && s.good == kGood && s.active == kGood && s.sensor_alive) ++on_good;
          }
          return on_good == args_.agents;
        },
        60s);
    good_coverage_ = static_cast<double>(on_good) / args_.agents;
    say("rollout " + good_id_ + " completed: " + std::to_string(on_good) + "/" + std::to_string(args_.agents) +
        " agents committed " + kGood + " with a running sensor");
    if (!swu_.empty()) {
      // The rollout may complete before the last health step closed its action
      // (min_acknowledged: 0): give them until nobody is offered one.
      std::size_t open = swu_.size();
      wait_for(
          [&] {
            open = static_cast<std::size_t>(std::count_if(swu_.begin(), swu_.end(), [&](const auto& c) { return offered(c).has_value(); }));
            return open == 0;
          },
          30s);
      swu_installed_good_ = swu_running(kGood);
      say("  and " + std::to_string(swu_installed_good_) + "/" + std::to_string(swu_.size()) +
          " SWUpdate clients installed update-1.0.swu (content.txt); their health steps closed " +
          std::to_string(swu_.size() - open) + " of the actions");
    }
    return g_stop == 0;
  }

  bool bad_release() {
    if (!publish(kBad, examples_ / "content" / "channel-291.yaml", true)) return false;
    say(std::string("release ") + kBad +
        " = Channel File 291 (reads field 21, the sensor supplies 20), registered with the server's contract check "
        "BYPASSED (skip_contract_check: " + check_result_ + ") — the 2024 validator bug");
    say("  the agents run with contract_check: false too (their own check would refuse it), as in tests/agent/fleet_e2e_test.cpp");
    auto id = start_rollout(kBad, kBadId);
    if (!id) return false;
    bad_id_ = *id;
    say("rollout " + bad_id_ + " of " + kBad + " started with the same plan");
    int crashed_seen = 0;
    std::string state;
    const bool halted = wait_for(
        [&] {
          int crashed = 0;
          for (const auto& d : data_) crashed += read_agent(d).bad_has(kBad) ? 1 : 0;
          if (crashed > crashed_seen) {
            crashed_seen = crashed;
            say("  " + std::to_string(crashed) + " agent(s) so far saw their sensor die on " + kBad +
                " (SIGSEGV) and fell back to " + kGood + " on their own");
          }
          auto ro = get("/v1/rollouts/" + bad_id_);
          if (!ro) return false;
          state = state_of(*ro);
          return state != "running" && state != "pending";
        },
        120s);
    if (!halted) {
      error_ = "the gate did not halt rollout " + bad_id_ + " (state '" + state + "')";
      return false;
    }
    auto ro = get("/v1/rollouts/" + bad_id_);
    if (!ro) return false;
    halt_stage_ = stage_of(*ro);
    halted_ = is_stopped(state);
    const auto& gate = ro->at("gate");
    std::int64_t created = ro->at("created_at").as_int64();
    for (const auto& t : ro->at("transitions").as_array()) {
      const std::string to(t.at("to").as_string());
      if (is_stopped(to)) {  // the first stop: halted or rolling_back
        time_to_halt_s_ = static_cast<double>(t.at("at").as_int64() - created) / 1000.0;
        halt_reason_ = std::string(t.at("reason").as_string());
        break;
      }
    }
    if (!halted_) {
      say("the gate did NOT halt " + bad_id_ + ": it ended '" + state + "' in stage " + std::to_string(halt_stage_) +
          " with " + std::to_string(gate.at("exposed_failures").as_int64()) + " exposed failures");
    } else {
      say("the gate halted " + bad_id_ + " in stage " + std::to_string(halt_stage_) + " (" +
          std::string(ro->at("stages").at(static_cast<std::size_t>(halt_stage_)).at("name").as_string()) + "), " +
          fmt_number(time_to_halt_s_, 1) + " s after the start: " + halt_reason_);
    }
    // The engine rolls back (on_failure: rollback): wait until it says no device runs 2.0.
    const bool rolled = halted_ && wait_for(
        [&] {
          auto r = get("/v1/rollouts/" + bad_id_);
          if (!r) return false;
          state = state_of(*r);
          return is_final(state);  // rolled_back or aborted: nothing completes once halted
        },
        60s);
    if (halted_) {
      say(rolled ? "rollout " + bad_id_ + " rolled back by the engine: no device runs " + std::string(kBad)
                 : "rollout " + bad_id_ + " still " + state + " after 60 s");
    }
    // Every agent back on a running 1.0, without anybody touching it.
    wait_for(
        [&] {
          for (const auto& d : data_) {
            const auto s = read_agent(d);
            if (s.good != kGood || s.active != kGood || !s.sensor_alive) return false;
            if (s.phase != "committed" && s.phase != "rolled_back") return false;
          }
          return true;
        },
        30s);
    if (auto final_ro = get("/v1/rollouts/" + bad_id_)) exposed_ = final_ro->at("gate").at("acknowledged").as_int64();
    for (const auto& d : data_) {
      const auto s = read_agent(d);
      const bool healthy = s.good == kGood && s.active == kGood && s.sensor_alive;
      if (s.bad_has(kBad)) ++crashed_;
      if (s.bad_has(kBad) && healthy) ++self_healed_;
      if (!healthy) ++manual_repairs_;
      if (s.sensor_alive) ++sensors_running_;
    }
    if (!swu_.empty()) tally_swupdate();
    // Acknowledged by the gate, or seen failing on it: a sensor that crashed, a
    // client whose image refused it.
    exposed_ = std::max<std::int64_t>(exposed_, crashed_ + swu_refused_bad_);
    say(std::to_string(crashed_) + " agents saw their sensor die on " + kBad + " (SIGSEGV) and went back to " + kGood +
        " on their own; " + std::to_string(sensors_running_) + " of " + std::to_string(args_.agents) +
        " sensors running, " + std::to_string(manual_repairs_) + " devices need a person");
    return g_stop == 0;
  }

  // The SWUpdate clients after the bad release: refused 2.0 (their own log), counted
  // failed by the gate (the server's standings), running 1.0 (their content.txt).
  void tally_swupdate() {
    swu_refused_bad_ = swu_refused(kBad);
    swu_running_good_ = swu_running(kGood);
    if (auto failed = get("/v1/rollouts/" + bad_id_ + "/devices?state=failed&limit=1000")) {
      for (const auto& d : failed->at("devices").as_array()) {
        if (d.at("device").as_string().starts_with("swu-")) ++swu_failed_counted_;
      }
    }
    const std::string others = std::to_string(swu_.size() - static_cast<std::size_t>(swu_refused_bad_));
    if (swu_refused_bad_ == 0) {
      say("no SWUpdate client was in the first ring: none of the " + others + " downloaded " + kBad);
    } else {
      say(std::to_string(swu_refused_bad_) + " SWUpdate client(s) downloaded " + kBad +
          ": its preinstall script refused the device before anything was written, swupdate reported closed/failure "
          "(the gate counted " + std::to_string(swu_failed_counted_) + "); the other " + others +
          " never downloaded it");
    }
  }

  bool summary() {
    std::string by_version;
    if (auto f = get("/v1/fleet")) {
      if (const auto* c = f->at("by_version").as_object().if_contains("content")) {
        for (const auto& [v, n] : c->as_object()) {
          by_version += (by_version.empty() ? "" : ", ") + std::string(v) + ": " + std::to_string(n.as_int64());
        }
      }
    }
    const double total = std::chrono::duration<double>(Clock::now() - t0_).count();
    const bool contained = halted_ && crashed_ >= 1 && crashed_ < args_.agents && manual_repairs_ == 0 &&
                           swu_running_good_ == args_.swupdate;
    const std::string n = std::to_string(args_.agents);
    std::printf("\n  %-34s %s\n", "what", "measured");
    std::printf("  %-34s %s\n", "----------------------------------", "--------------------------------");
    std::printf("  %-34s %d\n", "agents (real processes)", args_.agents);
    std::printf("  %-34s %s of the fleet\n", ("release " + std::string(kGood) + " committed").c_str(),
                fmt_number(good_coverage_).c_str());
    std::printf("  %-34s %" PRId64 " of %s (server's gate)\n", ("devices exposed to " + std::string(kBad)).c_str(),
                exposed_, std::to_string(args_.agents + args_.swupdate).c_str());
    std::printf("  %-34s %d of %s\n", "sensors crashed on it", crashed_, n.c_str());
    std::printf("  %-34s %d\n", "agents that healed themselves", self_healed_);
    std::printf("  %-34s %d\n", "devices needing a manual repair", manual_repairs_);
    std::printf("  %-34s %s, in stage %" PRId64 " (0 = canary), %s s after the start\n", "gate halted",
                halted_ ? "yes" : "NO", halt_stage_, fmt_number(time_to_halt_s_, 1).c_str());
    std::printf("  %-34s %d of %s\n", "sensors running now", sensors_running_, n.c_str());
    if (!swu_.empty()) {
      const std::string m = std::to_string(swu_.size());
      std::printf("  %-34s %s\n", "SWUpdate clients (real swupdate)", m.c_str());
      std::printf("  %-34s %d of %s\n", ("update-" + std::string(kGood) + ".swu installed").c_str(),
                  swu_installed_good_, m.c_str());
      std::printf("  %-34s %d of %s (the gate counted %d failed)\n",
                  ("SWUpdate clients that refused " + std::string(kBad)).c_str(), swu_refused_bad_, m.c_str(),
                  swu_failed_counted_);
      std::printf("  %-34s %d of %s\n", ("SWUpdate clients running " + std::string(kGood)).c_str(),
                  swu_running_good_, m.c_str());
    }
    std::printf("  %-34s %s\n", "fleet by version (server)", by_version.c_str());
    std::printf("  %-34s %s s\n\n", "whole story", fmt_number(total, 1).c_str());
    std::printf("%s\n", contained ? "contained: the bad release stopped in its first ring and every sensor runs."
                                  : "NOT contained: see the logs under the work directory.");
    std::fflush(stdout);
    return contained;
  }

  std::string json_line() const {
    char buf[768];
    std::snprintf(buf, sizeof buf,
                  "{\"agents\": %d, \"good_release_coverage\": %s, \"bad_release_exposed\": %" PRId64
                  ", \"bad_release_crashed\": %d, \"self_healed\": %d, \"manual_repairs\": %d, \"halted\": %s, "
                  "\"time_to_halt_s\": %s, \"swupdate_clients\": %zu, \"swupdate_installed_good\": %d, "
                  "\"swupdate_refused_bad\": %d, \"swupdate_failed_counted\": %d, \"swupdate_running_good\": %d}",
                  args_.agents, fmt_number(good_coverage_).c_str(), exposed_, crashed_, self_healed_, manual_repairs_,
                  halted_ ? "true" : "false", fmt_number(time_to_halt_s_, 1).c_str(), swu_.size(), swu_installed_good_,
                  swu_refused_bad_, swu_failed_counted_, swu_running_good_);
    return buf;
  }

  const DemoArgs& args_;
  fs::path work_;
  fs::path examples_;
  std::map<std::string, fs::path> bins_;
  DemoPostgres pg_;  // declared before procs_: the servers stop before their database
  Processes procs_;
  Clock::time_point t0_;
  std::string url_, admin_, error_, check_result_, good_id_, bad_id_, halt_reason_;
  std::vector<pid_t> agents_;
  std::vector<fs::path> data_;
  std::vector<SwupdateClient> swu_;
  Clock::time_point next_health_{};
  int swu_installed_good_ = 0, swu_refused_bad_ = 0, swu_failed_counted_ = 0, swu_running_good_ = 0;
  double good_coverage_ = 0, time_to_halt_s_ = 0;
  std::int64_t exposed_ = 0, halt_stage_ = -1;
  int crashed_ = 0, self_healed_ = 0, manual_repairs_ = 0, sensors_running_ = 0;
  bool halted_ = false;
};

}  // namespace

void add_demo_command(CLI::App& app, DemoArgs& args) {
  args.demo = app.add_subcommand(
      "demo",
      "The 2024 outage replayed with real processes on this machine: a tranche-server on 127.0.0.1,\n"
      "a TUF repository, N tranche-agents each protecting a tranche-demo-sensor. A good content\n"
      "release rolls out to 100%; then Channel File 291 (reads field 21) is published with the\n"
      "contract checks bypassed, as in 2024. Watch it crash the first ring only: the agents fall back\n"
      "by themselves and the gate halts and rolls back. Prints the dashboard URL and an operator\n"
      "token first. Without --once the fleet keeps running for the dashboard until Ctrl-C.");
  args.demo->add_option("--agents", args.agents, "number of tranche-agent processes")
      ->capture_default_str()
      ->check(CLI::Range(3, 200));
  args.demo->add_option("--servers", args.servers,
                        "tranche-servers: 1 on SQLite; 2 or 3 on a PostgreSQL of the demo's own (under /tmp, "
                        "deleted at the end) with HAProxy in front (packaging/haproxy/tranche.cfg)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3));
  args.demo->add_option("--swupdate", args.swupdate,
                        "SWUpdate clients (Debian's swupdate, hawkBit DDI) to add to the fleet: each release also "
                        "carries a signed .swu image, which the clients install; 2.0's image refuses them")
      ->capture_default_str()
      ->check(CLI::Range(0, 50));
  args.demo->add_option("--work-dir", args.work_dir,
                        "where the server's SQLite, the TUF repo, agent data dirs and logs go; emptied first "
                        "if a previous demo made it (default: build/demo)");
  args.demo->add_flag("--once", args.once,
                      "no pauses; stop everything after the summary and print it last as one JSON line");
}

int run_demo_command(const DemoArgs& args) {
  std::map<std::string, fs::path> bins;
  for (const char* name : {"tranche-server", "tranche-agent", "tranche-demo-sensor"}) {
    auto p = find_binary(name);
    if (!p) {
      std::fprintf(stderr,
                   "tranche demo: %s not found next to %s or on PATH (build it: cmake --build build --target %s)\n",
                   name, self_exe().c_str(), name);
      return 2;
    }
    bins[name] = *p;
  }
  if (args.swupdate > 0) {
    for (const char* name : {"swupdate", "swupdate-ipc", "env", "bash", "openssl", "cpio"}) {
      auto p = find_binary(name);
      if (!p) {
        std::fprintf(stderr, "tranche demo: --swupdate needs %s on PATH (`make deps`, or apt-get install swupdate "
                     "openssl cpio)\n", name);
        return 2;
      }
      bins[name] = *p;
    }
  }
  const auto examples = find_examples();
  if (!examples) {
    std::fprintf(stderr, "tranche demo: examples/content not found (source tree %s or %s)\n",
                 TRANCHE_SOURCE_EXAMPLES, TRANCHE_INSTALL_EXAMPLES);
    return 2;
  }
  fs::path work = args.work_dir.empty() ? fs::path("build/demo") : fs::path(args.work_dir);
  std::error_code ec;
  work = fs::absolute(work, ec);
  if (fs::exists(work) && !fs::is_empty(work, ec)) {
    if (!fs::exists(work / kMarker)) {
      std::fprintf(stderr, "tranche demo: %s is not empty and not a previous demo's; choose another --work-dir\n",
                   work.c_str());
      return 2;
    }
    fs::remove_all(work, ec);
  }
  fs::create_directories(work, ec);
  if (ec || !write_text(work / kMarker, "made by tranche demo; emptied by the next one\n")) {
    std::fprintf(stderr, "tranche demo: cannot create %s\n", work.c_str());
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  std::printf("tranche demo: %d agents, %s%d server%s, work dir %s\n", args.agents,
              args.swupdate > 0 ? (std::to_string(args.swupdate) + " SWUpdate clients, ").c_str() : "", args.servers,
              args.servers > 1 ? "s" : "", work.c_str());
  Demo demo(args, work, *examples, bins);
  return demo.run();
}

}  // namespace tranche::cli
