// Crash consistency, the way robust update clients test it (Mender's
// state_test.cpp): an update of a real tranche-agent from 1.0 to 2.0 is run once
// with the step log on, to learn its steps (every file-system change and every
// service start, in order). Then, for each kill point, a fresh device starts the
// same update with `debug.pause_after_step: N` — the agent stops dead right
// after step N — is killed with SIGKILL there, and started again. It must end
// on a working version (sensor running, active slot = the record's good) with
// the right report: killed in the middle of an action list while activating or
// on trial (an unclean start) it falls back to 1.0 at once and reports
// rolled_back; anywhere else it finishes the update and runs 2.0. Kill points in
// a trial between lists are also replayed as a machine restart (the boot id
// changes): that too falls back at once.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <regex>
#include <set>

#include "tests/agent/agent_harness.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kAdmin = "test-admin-token-0123456789";

struct Step {
  std::uint64_t n;
  std::string name;  // "rename record.json (phase downloading, in list)"
};

class CrashConsistency : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir("tranche-agent-crash");
    repo_ = std::make_unique<TufRepo>(dir_ / "tuf");
    server_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--data-dir", (dir_ / "server").string(), "--admin-token", kAdmin, "--tick-ms", "100",
        "--batch-ms", "50", "--ask-again-s", "1", "--tuf-repo", repo_->repo().string()});
    ASSERT_EQ(op("POST", "/v1/tenants", json::object{{"id", "acme"}, {"enrollment_key", kEnrollKey}}).status, 201);
    const auto examples = std::filesystem::path(TRANCHE_SOURCE_DIR) / "examples/content";
    v1_ = dir_ / "1.0.yaml";
    v2_ = dir_ / "2.0.yaml";
    write_text(v1_, read_text(examples / "good.yaml"));
    write_text(v2_, read_text(examples / "good.yaml") + "# release 2.0\n");
    for (const auto& [version, file] : {std::pair{std::string("1.0"), v1_}, std::pair{std::string("2.0"), v2_}}) {
      repo_->add(file, "content/" + version + ".yaml");
      auto r = op("POST", "/v1/releases",
                  json::object{{"channel", "content"},
                               {"version", version},
                               {"targets", json::array{json::object{
                                               {"path", "content/" + version + ".yaml"},
                                               {"length", static_cast<std::int64_t>(std::filesystem::file_size(file))},
                                               {"sha256", sha256_of(file)}}}}});
      ASSERT_EQ(r.status, 201) << r.body;
    }
    auto r = op("POST", "/v1/rollouts",
                json::object{{"channel", "content"}, {"version", "2.0"},
                             {"plan_yaml", "name: all\nstages:\n  - {name: everyone, percent: 100%, bake: 0s}\n"}});
    ASSERT_EQ(r.status, 201) << r.body;
    write_text(dir_ / "boot_id", "boot-1\n");
  }
  void TearDown() override {
    server_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  HttpResult op(const std::string& method, const std::string& path, const json::value& body = nullptr) {
    return http_.request(method, server_->url(path), body.is_null() ? "" : json::serialize(body), kAdmin);
  }

  // A device that runs 1.0, committed: slot a, the active pointer, the record.
  std::filesystem::path seed(const std::string& device, const std::string& debug) {
    const auto data = dir_ / device;
    std::filesystem::create_directories(data / "slots/a");
    std::filesystem::create_directories(data / "tuf");
    std::filesystem::copy_file(v1_, data / "slots/a/content%2F1.0.yaml");
    write_text(data / "slots/a/VERSION", "1.0\n");
    std::filesystem::create_symlink("slots/a", data / "active");
    write_text(data / "record.json",
               R"({"phase":"committed","good":"1.0","candidate":null,"starts_left":0,"trial_started_at":0,"bad":[]})");
    AgentOptions o;
    o.server_url = server_->url("");
    o.device_id = device;
    o.data_dir = data;
    o.tuf_root = repo_->root_file();
    o.trial_window = "1s";
    o.long_poll = "0s";
    o.extra = "debug: {boot_id_file: " + (dir_ / "boot_id").string() + debug + "}\n";
    write_text(dir_ / (device + ".yaml"), agent_config(o));
    o.extra = "debug: {boot_id_file: " + (dir_ / "boot_id").string() + "}\n";
    write_text(dir_ / (device + ".after.yaml"), agent_config(o));
    return data;
  }

  // Waits for the end state; "" if none came.
  std::string settle(const std::filesystem::path& data) {
    std::string outcome;
    eventually(
        [&] {
          const auto r = agent_record(data);
          const auto phase = record_field(r, "phase");
          const auto good = record_field(r, "good");
          if (!sensor_alive(data, 1000ms) || active_version(data) != good) return false;
          if (phase == "committed" && good == "2.0") outcome = "committed 2.0";
          else if (phase == "rolled_back" && good == "1.0" && record_bad_has(r, "2.0")) outcome = "rolled back to 1.0";
          else return false;
          // Every report is with the server.
          return read_text(data / "events.json").find("\"pending\":[]") != std::string::npos;
        },
        20s);
    return outcome;
  }

  std::filesystem::path dir_, v1_, v2_;
  std::unique_ptr<TufRepo> repo_;
  std::unique_ptr<ServerProcess> server_;
  HttpClient http_;
};

TEST_F(CrashConsistency, KilledAtEveryStepOfAnUpdateEndsOnAWorkingVersionWithTheRightReport) {
  // The dry run: learn the steps.
  std::vector<Step> steps;
  {
    const auto data = seed("dry", ", step_log: true");
    AgentProcess agent(dir_ / "dry.yaml", dir_ / "dry.log");
    agent.start();
    ASSERT_EQ(settle(data), "committed 2.0") << agent.log();
    agent.stop(SIGTERM);
    const std::regex line(R"(step (\d+): (.*)$)");
    std::stringstream log(agent.log());
    for (std::string l; std::getline(log, l);) {
      std::smatch m;
      if (std::regex_search(l, m, line)) steps.push_back({std::stoull(m[1]), m[2]});
    }
  }
  ASSERT_GE(steps.size(), 20u);
  // Steps after the commit (the clean stop's) are not part of the update.
  std::size_t last = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].name.find("phase committed") != std::string::npos && i > 0 &&
        steps[i - 1].name.find("phase trial") != std::string::npos) {
      last = i;  // after the commit, steps depend on when events are posted
    }
  }
  if (last == 0 || last > steps.size()) last = steps.size();
  // Busy-marker steps repeat around every list: keep the first of each kind per phase.
  std::vector<Step> points;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < last; ++i) {
    const std::string key = steps[i].name;
    if (key.find("busy") != std::string::npos && !seen.insert(key).second) continue;
    points.push_back(steps[i]);
  }
  ASSERT_GE(points.size(), 20u);

  int n_rolled_back = 0, n_committed = 0, n_reboot = 0, n_skipped = 0;
  for (const Step& point : points) {
    for (int reboot = 0; reboot < 2; ++reboot) {
      const std::string device = "k" + std::to_string(point.n) + (reboot ? "-reboot" : "");
      const auto data = seed(device, ", pause_after_step: " + std::to_string(point.n));
      write_text(dir_ / "boot_id", "boot-1\n");
      AgentProcess agent(dir_ / (device + ".yaml"), dir_ / (device + ".log"));
      agent.start();
      if (!eventually([&] { return agent.log().find("paused after step") != std::string::npos; }, 15s)) {
        // A step whose place depends on timing (an event upload's acknowledgement).
        std::printf("kill point %llu %s: not reached in this run, skipped\n",
                    static_cast<unsigned long long>(point.n), point.name.c_str());  // NOLINT
        ++n_skipped;
        break;
      }
      const bool busy = std::filesystem::exists(data / "busy");
      const std::string phase = record_field(agent_record(data), "phase");
      const bool on_trial = phase == "trial" || phase == "activating";
      if (reboot && !(on_trial && !busy)) break;  // the reboot variant only for a trial between lists
      agent.stop(SIGKILL);
      if (reboot) write_text(dir_ / "boot_id", "boot-2\n");
      const bool expect_fallback = on_trial && (busy || reboot);

      AgentProcess again(dir_ / (device + ".after.yaml"), dir_ / (device + ".log"));
      again.start();
      const std::string outcome = settle(data);
      const std::string expected = expect_fallback ? "rolled back to 1.0" : "committed 2.0";
      ASSERT_EQ(outcome, expected) << "kill point " << point.n << " " << point.name << (reboot ? " (machine restart)" : "")
                                   << "\n" << again.log();
      // The report the server got.
      auto dev = op("GET", "/v1/devices/" + device).json();
      if (expect_fallback) {
        // The agent reports after it has fallen back: the upload may land a
        // moment after the record says so.
        EXPECT_TRUE(eventually([&] {
          dev = op("GET", "/v1/devices/" + device).json();
          return json::serialize(dev.at("failed")).find("2.0") != std::string::npos;
        }, 10s)) << json::serialize(dev);
        EXPECT_NE(again.log().find("report rolled_back 2.0"), std::string::npos);
        ++n_rolled_back;
      } else {
        ASSERT_TRUE(eventually([&] {
          return op("GET", "/v1/devices/" + device).json().at("channels").at("content").at("current") == "2.0";
        }, 5s)) << json::serialize(op("GET", "/v1/devices/" + device).json());
        ++n_committed;
      }
      again.stop(SIGTERM);
      n_reboot += reboot;
      std::printf("kill point %s%s: ok (%s)\n", (std::to_string(point.n) + " " + point.name).c_str(),
                  reboot ? " + machine restart" : "", outcome.c_str());
      std::fflush(stdout);
      std::filesystem::remove_all(data);
    }
  }
  std::printf("%zu kill points: %d committed 2.0, %d rolled back (%d after a machine restart)\n", points.size(),
              n_committed, n_rolled_back, n_reboot);
  EXPECT_GE(n_rolled_back + n_committed, 20);
  EXPECT_LE(n_skipped, 3);
  EXPECT_GT(n_rolled_back, 0);
  EXPECT_GT(n_committed, 0);
}

}  // namespace
}  // namespace tranche::testing
