// Real tranche-agent processes for integration tests, beside tests/server/
// harness.h's real tranche-server: a TUF repository made with the `tranche`
// CLI (served by the server's --tuf-repo), agent data directories and config
// files, and helpers to read what an agent keeps on disk.
#pragma once

#include <cstdio>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "tests/server/harness.h"

namespace tranche::testing {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

inline int run_command(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// A TUF repository made and signed with the `tranche` CLI.
class TufRepo {
 public:
  explicit TufRepo(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_ / "keys");
    for (const char* k : {"root", "targets", "snapshot", "timestamp"}) {
      must(cli() + " keys gen --out " + (dir_ / "keys" / k).string() + " > /dev/null");
    }
    must(cli() + " repo init " + repo().string() + " --root-key " + key("root") + " --targets-key " +
         key("targets") + " --snapshot-key " + key("snapshot") + " --timestamp-key " + key("timestamp") +
         " > /dev/null");
  }
  std::filesystem::path repo() const { return dir_ / "repo"; }
  std::filesystem::path root_file() const { return repo() / "metadata" / "1.root.json"; }
  // Signs `file` as target `name` and publishes a new snapshot and timestamp.
  void add(const std::filesystem::path& file, const std::string& name) {
    must(cli() + " release sign " + repo().string() + " " + file.string() + " --name " + name +
         " --targets-key " + key("targets") + " > /dev/null");
    must(cli() + " repo publish " + repo().string() + " --snapshot-key " + key("snapshot") +
         " --timestamp-key " + key("timestamp") + " > /dev/null");
  }

 private:
  static std::string cli() { return TRANCHE_CLI_BIN; }
  std::string key(const char* k) const { return (dir_ / "keys" / (std::string(k) + ".pem")).string(); }
  static void must(const std::string& cmd) {
    if (run_command(cmd) != 0) throw std::runtime_error("failed: " + cmd);
  }
  std::filesystem::path dir_;
};

// sha256sum's digest of `file`, read from its output (nothing is written next
// to the file: the examples live in the source tree).
inline std::string sha256_of(const std::filesystem::path& file) {
  const std::string cmd = "sha256sum '" + file.string() + "'";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("sha256sum failed");
  char digest[65] = {};
  const std::size_t n = std::fread(digest, 1, 64, p);
  if (::pclose(p) != 0 || n != 64) throw std::runtime_error("sha256sum failed on " + file.string());
  return std::string(digest, 64);
}

struct AgentOptions {
  std::string server_url;
  std::string device_id;
  std::filesystem::path data_dir;
  std::filesystem::path tuf_root;
  std::string tuf_url;  // default: server_url/tuf
  bool contract_check = true;
  int start_budget = 3;
  std::string trial_window = "3s";
  std::string long_poll = "2s";
  std::string max_backoff = "2s";       // checkin.max_backoff
  std::string http_timeout = "5s";      // checkin.http_timeout
  std::string download_timeout = "5s";  // download.timeout
  std::string retry_backoff;            // download.retry_backoff (empty: the agent's default)
  std::string sensor_args;  // more arguments of the sensor, as YAML list items: `, "--rare-every", "25"`
  std::string extra;        // more YAML lines (debug: ...)
};

constexpr const char* kEnrollKey = "acme-enrollment-key-0123";

inline std::string agent_config(const AgentOptions& o) {
  std::string c;
  c += "server_url: " + o.server_url + "\n";
  c += "tenant: acme\nenrollment_key: " + std::string(kEnrollKey) + "\n";
  c += "device_id: " + o.device_id + "\n";
  c += "tags: {class: laptop}\n";
  c += "data_dir: " + o.data_dir.string() + "\n";
  c += "channel: content\n";
  c += "tuf: {url: \"" + (o.tuf_url.empty() ? o.server_url + "/tuf" : o.tuf_url) + "\", root: " +
       o.tuf_root.string() + "}\n";
  c += "service:\n  command: [\"" + std::string(TRANCHE_SENSOR_BIN) +
       "\", \"{slot}\", \"--heartbeat\", \"{data}/heartbeat\", \"--interval-ms\", \"200\"" +
       o.sensor_args + "]\n";
  c += "  health_command: [\"" + std::string(TRANCHE_SENSOR_BIN) +
       "\", \"--health\", \"{data}/heartbeat\", \"--max-age-ms\", \"2000\"]\n";
  c += "  health_interval: 500ms\n  stop_timeout: 2s\n";
  c += "interface: " + std::string(TRANCHE_SOURCE_DIR) + "/examples/content/interface.yaml\n";
  c += std::string("contract_check: ") + (o.contract_check ? "true" : "false") + "\n";
  c += "trial: {start_budget: " + std::to_string(o.start_budget) + ", window: " + o.trial_window + "}\n";
  c += "checkin: {interval: 1s, long_poll: " + o.long_poll + ", max_backoff: " + o.max_backoff +
       ", http_timeout: " + o.http_timeout + "}\n";
  c += "download: {timeout: " + o.download_timeout +
       (o.retry_backoff.empty() ? "" : ", retry_backoff: " + o.retry_backoff) + "}\n";
  c += o.extra;
  return c;
}

// One tranche-agent process; its stderr goes to DATA/../NAME.log.
class AgentProcess {
 public:
  AgentProcess(std::filesystem::path config, std::filesystem::path log)
      : config_(std::move(config)), log_(std::move(log)) {}
  ~AgentProcess() { stop(SIGKILL); }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  void start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no agent (nor sensor) behind
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, STDERR_FILENO);
      ::dup2(fd, STDOUT_FILENO);
      ::execl(TRANCHE_AGENT_BIN, TRANCHE_AGENT_BIN, "--config", config_.c_str(), nullptr);
      ::_exit(127);
    }
  }
  // Sends `sig`, waits; returns the wait status (-1 if not running).
  int stop(int sig, std::chrono::milliseconds grace = std::chrono::milliseconds(10'000)) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return status;
  }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  std::string log() const { return read_text(log_); }
  pid_t pid() const { return pid_; }

 private:
  std::filesystem::path config_;
  std::filesystem::path log_;
  pid_t pid_ = -1;
};

// record.json as JSON (null when absent or unreadable).
inline boost::json::value agent_record(const std::filesystem::path& data_dir) {
  boost::system::error_code ec;
  auto v = boost::json::parse(read_text(data_dir / "record.json"), ec);
  return ec ? boost::json::value(nullptr) : v;
}
inline std::string record_field(const boost::json::value& r, const char* key) {
  if (!r.is_object()) return "";
  const auto* f = r.as_object().if_contains(key);
  return f != nullptr && f->is_string() ? std::string(f->as_string()) : "";
}
inline bool record_bad_has(const boost::json::value& r, const std::string& version) {
  if (!r.is_object()) return false;
  for (const auto& b : r.at("bad").as_array()) {
    if (b.as_string() == version) return true;
  }
  return false;
}

// Whether the sensor wrote its heartbeat within `max_age`.
inline bool sensor_alive(const std::filesystem::path& data_dir,
                         std::chrono::milliseconds max_age = std::chrono::milliseconds(1500)) {
  struct stat st {};
  if (::stat((data_dir / "heartbeat").c_str(), &st) != 0) return false;
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const long long age_ms = (now.tv_sec - st.st_mtim.tv_sec) * 1000LL +  // NOLINT
                           (now.tv_nsec - st.st_mtim.tv_nsec) / 1'000'000;
  return age_ms <= max_age.count();
}

// What slot the active pointer names and the version it holds ("" if none).
inline std::string active_version(const std::filesystem::path& data_dir) {
  std::error_code ec;
  auto target = std::filesystem::read_symlink(data_dir / "active", ec);
  if (ec) return "";
  std::string v = read_text(data_dir / target / "VERSION");
  while (!v.empty() && v.back() == '\n') v.pop_back();
  return v;
}

}  // namespace tranche::testing
