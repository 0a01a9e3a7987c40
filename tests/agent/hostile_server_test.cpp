// Issue 5 §6: a real tranche-agent (protecting a real tranche-demo-sensor) against
// a hostile server — tests/agent/hostile_server.py, which plays both the control
// plane and the TUF host, serving a repository signed with the real `tranche` CLI.
//
// Each case starts a fresh agent that installs and commits 1.0.0 from an honest
// server; then the server offers 2.0.0 and misbehaves in one way. The agent must
// stay on last-known-good with its sensor running, log the cause and — for a
// download or TUF failure — report `download_failed` naming it. It must not
// report `install_failed` nor mark 2.0.0 bad: a hostile network cannot ban a good
// release. Once the server is honest again the agent installs 2.0.0. A release
// whose content breaks the contract is the permanent case: `install_failed`,
// marked bad, never downloaded again although the server keeps offering it.
#include <gtest/gtest.h>
#include <sys/prctl.h>

#include <ctime>
#include <memory>

#include "tests/agent/agent_harness.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// tests/agent/hostile_server.py under python3, on 127.0.0.1 (port 0).
class HostileServer {
 public:
  HostileServer(const std::filesystem::path& repo, const std::filesystem::path& expired_repo,
                std::filesystem::path log_dir)
      : log_dir_(std::move(log_dir)) {
    std::filesystem::create_directories(log_dir_);
    const std::string script = std::string(TRANCHE_SOURCE_DIR) + "/tests/agent/hostile_server.py";
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test, whatever happens to it
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execlp("python3", "python3", script.c_str(), "--repo", repo.c_str(), "--expired-repo",
               expired_repo.c_str(), "--log-dir", log_dir_.c_str(), nullptr);
      std::perror("execlp python3");
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[128] = {};
    const bool got = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    if (!got || std::sscanf(line, "port %hu", &port_) != 1) {  // NOLINT(cert-err34-c)
      throw std::runtime_error("hostile_server.py did not start (its stderr is above)");
    }
  }
  ~HostileServer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  HostileServer(const HostileServer&) = delete;
  HostileServer& operator=(const HostileServer&) = delete;

  // The agent's server_url: the path prefix names the device, each has its own mode.
  std::string device_url(const std::string& device) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/d/" + device;
  }
  // `extra`: the mode's "ask_again_s" or "retry_after" text (hostile_server.py).
  void set_mode(const std::string& device, const std::string& mode, const json::value& offer,
                json::object extra = {}) {
    extra["device"] = device;
    extra["mode"] = mode;
    extra["offer"] = offer;
    auto r = http_.request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/_mode",
                           json::serialize(extra));
    if (r.status != 200) throw std::runtime_error("set_mode " + mode + ": " + r.body);
  }
  // What the server received from `device`: events (events.jsonl) and requests.
  std::vector<json::object> events(const std::string& device) const {
    return lines("events.jsonl", device);
  }
  std::vector<json::object> requests(const std::string& device) const {
    return lines("requests.jsonl", device);
  }

 private:
  std::vector<json::object> lines(const char* file, const std::string& device) const {
    std::vector<json::object> out;
    std::istringstream in(read_text(log_dir_ / file));
    for (std::string line; std::getline(in, line);) {
      boost::system::error_code ec;
      auto v = json::parse(line, ec);  // the last line may be half written
      if (ec || !v.is_object()) continue;
      if (v.as_object().at("device").as_string() == device) out.push_back(v.as_object());
    }
    return out;
  }
  std::filesystem::path log_dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  HttpClient http_;
};

std::string str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : "";
}

// "YYYY-MM-DDTHH:MM:SSZ" as seconds since the epoch.
std::time_t utc_seconds(const std::string& text) {
  std::tm tm{};
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday,  // NOLINT
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    throw std::runtime_error("not a UTC time: " + text);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return ::timegm(&tm);
}

class HostileServerTest : public ::testing::Test {
 protected:
  // One repository and one server for every case: 1.0.0 (good), 2.0.0 (good,
  // other bytes) and 3.0.0 (Channel File 291: reads field 21 of 20), and a copy
  // whose timestamp was re-published with a lifetime of one second.
  static void SetUpTestSuite() {
    suite_dir = fresh_dir("tranche-agent-hostile");
    const std::filesystem::path examples =
        std::filesystem::path(TRANCHE_SOURCE_DIR) / "examples/content";
    repo = std::make_unique<TufRepo>(suite_dir / "tuf");
    const std::filesystem::path v2 = suite_dir / "good-2.yaml";
    write_text(v2, read_text(examples / "good.yaml") +
                       "# release 2.0.0: the same templates, other bytes\n");
    for (const auto& [version, file] :
         {std::pair<std::string, std::filesystem::path>{"1.0.0", examples / "good.yaml"},
          {"2.0.0", v2},
          {"3.0.0", examples / "channel-291.yaml"}}) {
      const std::string name = "content/" + version + ".yaml";
      repo->add(file, name);
      offers[version] = json::object{
          {"action", "install"},
          {"desired", version},
          {"targets", json::array{json::object{
                          {"path", name},
                          {"length", static_cast<std::int64_t>(std::filesystem::file_size(file))},
                          {"sha256", sha256_of(file)}}}},
          {"reason", "hostile test offers " + version}};
    }
    const auto expired = suite_dir / "tuf" / "expired-repo";
    std::filesystem::copy(repo->repo(), expired, std::filesystem::copy_options::recursive);
    const auto keys = suite_dir / "tuf" / "keys";
    if (run_command(std::string(TRANCHE_CLI_BIN) + " repo publish " + expired.string() +
                    " --snapshot-key " + (keys / "snapshot.pem").string() + " --timestamp-key " +
                    (keys / "timestamp.pem").string() + " --expires 1s > /dev/null") != 0) {
      throw std::runtime_error("tranche repo publish --expires 1s failed");
    }
    expired_timestamp = expired / "metadata" / "timestamp.json";
    server = std::make_unique<HostileServer>(repo->repo(), expired, suite_dir / "server");
  }
  static void TearDownTestSuite() {
    server.reset();
    repo.reset();
    if (!suite_failed && std::getenv("TRANCHE_KEEP_TEST_DIR") == nullptr)
      std::filesystem::remove_all(suite_dir);
    else
      std::fprintf(stderr, "kept %s for a look\n", suite_dir.c_str());
  }

  void SetUp() override {
    ASSERT_NE(server, nullptr) << "the suite's set-up failed";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    device_ = "hostile-" + std::to_string(++case_number);
    std::fprintf(stderr, "%s: device %s\n", info->name(), device_.c_str());
    data_ = suite_dir / device_;
    std::filesystem::create_directories(data_);
    AgentOptions& o = options_;
    o.server_url = server->device_url(device_);
    o.device_id = device_;
    o.data_dir = data_;
    o.tuf_root = repo->root_file();
    o.trial_window = "1s";
    o.long_poll = "0s";  // the hostile server answers at once; ask_again_s is 1
    o.http_timeout = "2s";
    o.max_backoff = "2s";
    o.download_timeout = "3s";
    o.retry_backoff = "1s";
    write_text(suite_dir / (device_ + ".yaml"), agent_config(o));
    agent_ = std::make_unique<AgentProcess>(suite_dir / (device_ + ".yaml"),
                                            suite_dir / (device_ + ".log"));
  }
  void TearDown() override {
    if (HasFailure()) suite_failed = true;
    if (!agent_) return;
    server->set_mode(device_, "honest", nullptr);  // a held request ends
    if (agent_->running() && agent_->stop(SIGTERM, 5s) != 0) {
      ADD_FAILURE() << "no clean stop on SIGTERM\n" << agent_->log();
      suite_failed = true;
    }
  }

  static json::value offer(const std::string& version) { return offers.at(version); }

  std::string diagnostics() const {
    std::string s = "record: " + json::serialize(agent_record(data_)) + "\nevents:";
    for (const auto& e : server->events(device_)) s += "\n  " + json::serialize(e);
    s += "\nagent log:\n" + agent_->log();
    return s;
  }

  // Events of `kind` about `version` the server received.
  std::vector<json::object> events(const std::string& kind, const std::string& version) const {
    std::vector<json::object> out;
    for (auto& e : server->events(device_)) {
      if (str(e, "kind") == kind && str(e, "version") == version) out.push_back(std::move(e));
    }
    return out;
  }
  // Requests of the device whose path contains `part` (after entry `from`).
  std::vector<json::object> requests(const std::string& part, std::size_t from = 0) const {
    auto all = server->requests(device_);
    std::vector<json::object> out;
    for (std::size_t i = from; i < all.size(); ++i) {
      if (str(all[i], "path").find(part) != std::string::npos) out.push_back(all[i]);
    }
    return out;
  }
  // A line of the agent's log that holds every one of `words`.
  bool log_has_line(const std::vector<std::string>& words) const {
    std::istringstream in(agent_->log());
    for (std::string line; std::getline(in, line);) {
      bool all = true;
      for (const auto& w : words) all = all && line.find(w) != std::string::npos;
      if (all) return true;
    }
    return false;
  }

  // On last-known-good: a stable phase, the active slot and a running sensor.
  bool on_good(const std::string& version) const {
    const auto r = agent_record(data_);
    return record_field(r, "phase") == "committed" && record_field(r, "good") == version &&
           active_version(data_) == version && sensor_alive(data_);
  }

  // A fresh agent installs 1.0.0 from the honest server and commits it.
  void run_on_first_release() {
    server->set_mode(device_, "honest", offer("1.0.0"));
    agent_->start();
    ASSERT_TRUE(eventually([&] { return on_good("1.0.0"); }, 30s)) << "1.0.0 not committed\n"
                                                                   << diagnostics();
  }

  // The server gives up the hostile mode: the agent installs 2.0.0, and it was
  // never reported as an install failure.
  void expect_recovery() {
    server->set_mode(device_, "honest", offer("2.0.0"));
    EXPECT_TRUE(eventually([&] { return !events("installed", "2.0.0").empty(); }, 20s))
        << "2.0.0 not installed once the server was honest\n"
        << diagnostics();
    EXPECT_TRUE(
        eventually([&] { return active_version(data_) == "2.0.0" && sensor_alive(data_); }, 10s))
        << diagnostics();
    EXPECT_TRUE(events("install_failed", "2.0.0").empty()) << diagnostics();
    EXPECT_FALSE(record_bad_has(agent_record(data_), "2.0.0")) << diagnostics();
  }

  // A download or TUF failure: transient, reported, never a ban, retried after
  // download.retry_backoff (1 s here) and no sooner.
  void expect_transient_failure(const std::string& mode, const std::vector<std::string>& causes) {
    ASSERT_NO_FATAL_FAILURE(run_on_first_release());
    const std::size_t mark = server->requests(device_).size();
    server->set_mode(device_, mode, offer("2.0.0"));
    // Every refresh starts with the root chain's next file (the trusted root is
    // version 1): one request of 2.root.json per attempt.
    auto attempts = [&] {
      std::vector<double> t;
      for (const auto& r : requests("/tuf/metadata/2.root.json", mark)) {
        if (str(r, "mode") == mode) t.push_back(r.at("t").as_double());
      }
      return t;
    };
    ASSERT_TRUE(eventually(
        [&] { return events("download_failed", "2.0.0").size() >= 2 && attempts().size() >= 2; },
        20s))
        << "not two download_failed for 2.0.0 in mode " << mode << "\n"
        << diagnostics();
    const std::string message = str(events("download_failed", "2.0.0").front(), "message");
    bool named = false;
    bool logged = false;
    for (const auto& c : causes) {
      named = named || message.find(c) != std::string::npos;
      logged = logged || log_has_line({"2.0.0", c});
    }
    EXPECT_TRUE(named) << "the reported message does not name the cause (" << causes.front()
                       << "): " << message;
    EXPECT_TRUE(logged) << "no log line names the cause (" << causes.front() << ")\n"
                        << agent_->log();
    const auto t = attempts();
    for (std::size_t i = 1; i < t.size(); ++i) {
      EXPECT_GE(t[i] - t[i - 1], 0.85)
          << "attempts " << i - 1 << " and " << i << " within the retry backoff";
    }
    // Still on last-known-good (between two retries: phase committed again).
    EXPECT_TRUE(eventually([&] { return on_good("1.0.0"); }, 10s)) << diagnostics();
    EXPECT_TRUE(events("install_failed", "2.0.0").empty()) << diagnostics();
    EXPECT_TRUE(events("installed", "2.0.0").empty()) << diagnostics();
    EXPECT_FALSE(record_bad_has(agent_record(data_), "2.0.0"))
        << "a hostile server banned a good release\n"
        << diagnostics();
    expect_recovery();
  }

  // A check-in that fails: nothing to report, the agent backs off and asks again.
  void expect_checkin_failure(const std::string& mode, const std::vector<std::string>& words) {
    ASSERT_NO_FATAL_FAILURE(run_on_first_release());
    const std::size_t mark = server->requests(device_).size();
    server->set_mode(device_, mode, offer("2.0.0"));
    auto failed_checkins = [&] {
      std::vector<json::object> out;
      for (auto& r : requests("/v1/checkin", mark)) {
        if (str(r, "mode") == mode) out.push_back(std::move(r));
      }
      return out;
    };
    ASSERT_TRUE(eventually([&] { return failed_checkins().size() >= 3; }, 15s))
        << "the agent stopped checking in\n"
        << diagnostics();
    // Backoff: 1 s after the first failure, doubled to checkin.max_backoff (2 s)
    // after the next; the jitter is 10%.
    const auto seen = failed_checkins();
    for (std::size_t i = 1; i < seen.size(); ++i) {
      EXPECT_GE(seen[i].at("t").as_double() - seen[i - 1].at("t").as_double(), i == 1 ? 0.85 : 1.7)
          << "check-ins " << i - 1 << " and " << i << " without backoff";
    }
    EXPECT_TRUE(log_has_line(words)) << agent_->log();
    EXPECT_TRUE(on_good("1.0.0")) << diagnostics();
    EXPECT_TRUE(requests("2.0.0.yaml").empty()) << "2.0.0 was downloaded from a broken check-in";
    EXPECT_TRUE(events("download_failed", "2.0.0").empty() &&
                events("install_failed", "2.0.0").empty())
        << diagnostics();
    expect_recovery();
  }

  static inline std::filesystem::path suite_dir;
  static inline std::unique_ptr<TufRepo> repo;
  static inline json::object offers;
  static inline std::filesystem::path expired_timestamp;
  static inline std::unique_ptr<HostileServer> server;
  static inline bool suite_failed = false;
  static inline int case_number = 0;
  std::string device_;
  std::filesystem::path data_;
  AgentOptions options_;
  std::unique_ptr<AgentProcess> agent_;
};

// ---- TUF and download failures: transient -------------------------------------------

TEST_F(HostileServerTest, BadSignatureOnTimestamp) {
  expect_transient_failure("bad_signature", {"signature"});
}

TEST_F(HostileServerTest, WrongHashOfTarget) {
  expect_transient_failure("wrong_hash", {"hash"});
}

TEST_F(HostileServerTest, TruncatedTargetIsResumedLater) {
  expect_transient_failure("truncated", {"transfer closed", "truncated"});
  // The half that came is kept: the honest download went on from there.
  bool resumed = false;
  for (const auto& r : requests("2.0.0.yaml")) {
    resumed = resumed || (str(r, "mode") == "honest" && r.at("status").as_int64() == 206);
  }
  EXPECT_TRUE(resumed) << "no Range request answered 206 after the truncated transfer\n"
                       << diagnostics();
}

TEST_F(HostileServerTest, EndlessTarget) {
  expect_transient_failure("endless", {"longer than"});
}

TEST_F(HostileServerTest, ExpiredTimestamp) {
  // Signed by the real timestamp key with one second to live: wait until it has run out.
  const auto expires = utc_seconds(std::string(
      json::parse(read_text(expired_timestamp)).at("signed").at("expires").as_string()));
  ASSERT_TRUE(eventually([&] { return std::time(nullptr) > expires; }, 5s));
  expect_transient_failure("expired", {"expired"});
}

TEST_F(HostileServerTest, Http500OnTuf) {
  expect_transient_failure("http_500_tuf", {"HTTP 500"});
}

TEST_F(HostileServerTest, TufHostNeverAnswers) {
  expect_transient_failure("timeout", {"timed out", "Timeout"});
}

TEST_F(HostileServerTest, MetadataNotJson) {
  expect_transient_failure("malformed_json_metadata", {"JSON"});
}

// While a download hangs (on its own thread), the main thread still supervises the
// service: a sensor that dies meanwhile is restarted at once, not after the
// download gives up.
TEST_F(HostileServerTest, TheServiceStaysSupervisedWhileADownloadHangs) {
  options_.http_timeout = "60s";
  options_.download_timeout = "60s";
  write_text(suite_dir / (device_ + ".yaml"), agent_config(options_));
  ASSERT_NO_FATAL_FAILURE(run_on_first_release());
  const std::size_t mark = server->requests(device_).size();
  server->set_mode(device_, "timeout", offer("2.0.0"));
  ASSERT_TRUE(eventually([&] { return !requests("/tuf/metadata/", mark).empty(); }, 10s)) << diagnostics();
  // The pid of the running sensor, from the agent's last "started the service ... (pid N)".
  auto sensor_pid = [&] {
    const std::string log = agent_->log();
    const auto at = log.rfind("started the service on ");
    if (at == std::string::npos) return pid_t{-1};
    const auto pid = log.find("(pid ", at);
    return pid == std::string::npos ? pid_t{-1} : static_cast<pid_t>(std::stol(log.substr(pid + 5)));
  };
  const pid_t before = sensor_pid();
  ASSERT_GT(before, 0) << agent_->log();
  ASSERT_EQ(::kill(before, SIGKILL), 0);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return sensor_pid() != before && sensor_alive(data_, 1000ms); }, 5s))
      << "the sensor was not restarted while the download hung\n"
      << diagnostics();
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 4s);
  EXPECT_TRUE(log_has_line({"1.0.0", "exited", "signal 9"})) << agent_->log();
  // The download was still hanging all along: nothing reported about 2.0.0 yet.
  EXPECT_TRUE(events("download_failed", "2.0.0").empty()) << diagnostics();
  const auto record = agent_record(data_);
  EXPECT_EQ(record_field(record, "phase"), "downloading") << diagnostics();
  EXPECT_EQ(record_field(record, "good"), "1.0.0") << diagnostics();
  EXPECT_EQ(active_version(data_), "1.0.0");
  expect_recovery();
}

// ---- check-in failures: nothing to report, backoff ---------------------------------

TEST_F(HostileServerTest, Http500OnCheckin) {
  expect_checkin_failure("http_500_checkin", {"check-in", "HTTP 500"});
}

TEST_F(HostileServerTest, CheckinNotJson) {
  expect_checkin_failure("malformed_json_checkin", {"check-in", "malformed JSON"});
}

// A repeated key is refused, not resolved to one of its values (issue 14).
TEST_F(HostileServerTest, CheckinWithADuplicateKeyIsRefused) {
  expect_checkin_failure("duplicate_key_checkin", {"check-in", "duplicate key 'channels'"});
}

TEST_F(HostileServerTest, CheckinWrongShape) {
  expect_checkin_failure("wrong_shape_checkin", {"check-in", "malformed answer"});
}

// ---- the permanent case: content that breaks the contract ---------------------------

TEST_F(HostileServerTest, ContractViolationIsPermanentAndNeverDownloadedAgain) {
  ASSERT_NO_FATAL_FAILURE(run_on_first_release());
  server->set_mode(device_, "honest", offer("3.0.0"));
  ASSERT_TRUE(eventually([&] { return !events("install_failed", "3.0.0").empty(); }, 20s))
      << diagnostics();
  EXPECT_NE(str(events("install_failed", "3.0.0").front(), "message").find("contract"),
            std::string::npos)
      << diagnostics();
  EXPECT_TRUE(log_has_line({"3.0.0", "content contract"})) << agent_->log();
  EXPECT_TRUE(eventually([&] { return on_good("1.0.0"); }, 10s)) << diagnostics();
  EXPECT_TRUE(record_bad_has(agent_record(data_), "3.0.0")) << diagnostics();
  // The server keeps offering 3.0.0: three more answers, and not one more download.
  const std::size_t downloads = requests("3.0.0.yaml").size();
  EXPECT_EQ(downloads, 1U) << diagnostics();
  const std::size_t mark = server->requests(device_).size();
  ASSERT_TRUE(eventually([&] { return requests("/v1/checkin", mark).size() >= 3; }, 15s))
      << diagnostics();
  EXPECT_EQ(requests("3.0.0.yaml").size(), downloads) << "3.0.0 was downloaded again\n"
                                                      << diagnostics();
  EXPECT_EQ(events("install_failed", "3.0.0").size(), 1U) << diagnostics();
  EXPECT_TRUE(events("download_failed", "3.0.0").empty()) << diagnostics();
  EXPECT_TRUE(on_good("1.0.0")) << diagnostics();
}

// ---- extreme durations: the check-in rate stays within its bounds ------------------

// Agents that are offered nothing, each told one extreme duration from its first
// answer on, all at once for a few seconds. A server's ask_again_s is clamped to
// 1 s .. 1 day (checkin.interval is 1 s here, the jitter 10%) and a failed
// check-in backs off 1 s, then 2 s (checkin.max_backoff) whatever Retry-After
// says: no two check-ins closer than 0.9 s, and after a failure none further
// apart than 2.2 s. A wait the server asks to be longer than a day is a day, not
// a wrapped "at once". docs/agent.md, "Durations from the server".
TEST_F(HostileServerTest, ExtremeDurationsKeepTheCheckinRateWithinItsBounds) {
  struct Probe {
    std::string mode;
    const char* field;  // "ask_again_s" or "retry_after"
    std::string text;
    enum { kEverySecond, kOnceADay, kBackoff } expect;
    std::string device;
    std::unique_ptr<AgentProcess> agent;
  };
  std::vector<Probe> probes;
  for (const char* v : {"0", "-1", "-4611686018427387904", "-9223372036854775808", "0.001", "-1e300",
                        "\"0\"", "null"}) {
    probes.push_back({"ask_again", "ask_again_s", v, Probe::kEverySecond, {}, nullptr});
  }
  for (const char* v : {"4611686018427387904", "9223372036854775807", "18446744073709551616",
                        "1e300", "86401"}) {
    probes.push_back({"ask_again", "ask_again_s", v, Probe::kOnceADay, {}, nullptr});
  }
  for (const char* v : {"0", "-1", "4611686018427387904", "Fri, 31 Dec 9999 23:59:59 GMT"}) {
    probes.push_back({"retry_after_checkin", "retry_after", v, Probe::kBackoff, {}, nullptr});
  }
  int n = 0;
  for (Probe& p : probes) {
    p.device = device_ + "-" + std::to_string(++n);
    server->set_mode(p.device, p.mode, nullptr, json::object{{p.field, p.text}});
    AgentOptions o = options_;
    o.server_url = server->device_url(p.device);
    o.device_id = p.device;
    o.data_dir = suite_dir / p.device;
    std::filesystem::create_directories(o.data_dir);
    write_text(suite_dir / (p.device + ".yaml"), agent_config(o));
    p.agent = std::make_unique<AgentProcess>(suite_dir / (p.device + ".yaml"),
                                             suite_dir / (p.device + ".log"));
  }
  const auto started = std::chrono::steady_clock::now();
  for (Probe& p : probes) p.agent->start();
  std::this_thread::sleep_for(6s);
  const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  for (Probe& p : probes) {
    const std::string what = p.mode + " " + p.field + "=" + p.text + " (" + p.device + ")";
    std::vector<double> t;
    for (const auto& r : server->requests(p.device)) {
      if (str(r, "path") == "/v1/checkin") t.push_back(r.at("t").as_double());
    }
    ASSERT_FALSE(t.empty()) << what << ": no check-in\n" << p.agent->log();
    for (std::size_t i = 1; i < t.size(); ++i) {
      const double gap = t[i] - t[i - 1];
      // A failure backs off 1 s, then 2 s: the first gap of a backoff is the shorter.
      const double least = p.expect == Probe::kBackoff && i > 1 ? 1.7 : 0.85;
      EXPECT_GE(gap, least) << what << ": check-ins " << i - 1 << " and " << i << " " << gap
                            << " s apart\n"
                            << p.agent->log();
      if (p.expect == Probe::kBackoff) {
        EXPECT_LE(gap, 2.2 + 0.5) << what << ": a Retry-After stretched the backoff past "
                                  << "checkin.max_backoff\n"
                                  << p.agent->log();
      }
    }
    // The rate over the whole window, the first check-in included.
    EXPECT_LE(static_cast<double>(t.size()), window / 0.9 + 1) << what;
    switch (p.expect) {
      case Probe::kEverySecond:
        EXPECT_GE(t.size(), 3U) << what << ": stopped checking in\n" << p.agent->log();
        break;
      case Probe::kOnceADay:
        EXPECT_EQ(t.size(), 1U) << what << ": asked to wait a day, checked in again\n"
                                << p.agent->log();
        break;
      case Probe::kBackoff:
        EXPECT_GE(t.size(), 3U) << what << ": stopped checking in\n" << p.agent->log();
        break;
    }
    // A wait of a day ends at once on SIGTERM too.
    EXPECT_EQ(p.agent->stop(SIGTERM, 5s), 0) << what << ": no clean stop\n" << p.agent->log();
  }
}

// A server that answers every post of events with "replayed: last accepted seq
// is 0" acknowledges nothing: the agent backs off (1 s, 2 s) instead of posting
// the same events again at once, in a loop.
TEST_F(HostileServerTest, EventsThatAreNeverAcknowledgedAreRetriedWithBackoff) {
  server->set_mode(device_, "replayed_events", nullptr);
  agent_->start();
  ASSERT_TRUE(eventually([&] { return !requests("/v1/checkin").empty(); }, 10s)) << diagnostics();
  // The goodbye of a clean stop is refused: still queued at the next start.
  ASSERT_EQ(agent_->stop(SIGTERM, 5s), 0) << agent_->log();
  ASSERT_FALSE(requests("/v1/events").empty()) << diagnostics();
  const std::size_t mark = server->requests(device_).size();
  agent_->start();
  std::this_thread::sleep_for(5s);
  std::vector<double> t;
  for (const auto& r : requests("/v1/events", mark)) t.push_back(r.at("t").as_double());
  ASSERT_GE(t.size(), 2U) << "the queued events were not posted again\n" << diagnostics();
  EXPECT_LE(t.size(), 5U) << "events posted in a loop\n" << diagnostics();
  for (std::size_t i = 1; i < t.size(); ++i) {
    EXPECT_GE(t[i] - t[i - 1], 0.85) << "posts " << i - 1 << " and " << i << " without backoff";
  }
  EXPECT_TRUE(log_has_line({"posting events failed", "409"})) << agent_->log();
}

}  // namespace
}  // namespace tranche::testing
