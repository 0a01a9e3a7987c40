// A mixed fleet (issue 15): three unmodified SWUpdate clients (Debian's
// swupdate, hawkBit DDI) and three tranche-agents on one channel, one rollout
// and one gate. Release 1.1 carries both the agents' TUF target (signed in the
// lab's repository) and a CMS-signed .swu image built by examples/ddi/make_swu.sh.
// Each SWUpdate client is offered the image, installs it, and its health step
// closes the action (swupdate-ipc); each agent downloads the TUF target only,
// runs it through its trial and commits. The server counts all six as exposed
// and acknowledged in the one rollout, which completes with no failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "tests/agent/agent_lab.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const char* kPlan = R"(name: mixed
gate:
  min_acknowledged: 6
  heartbeat_interval: 1s
  silent_after_missed: 10
stages:
  - {name: all, percent: 100%, bake: 1s}
)";

// One swupdate process (and the children it forks), in its own process group
// and directory, which is its working directory and TMPDIR.
class SwupdateClient {
 public:
  SwupdateClient(const std::filesystem::path& dir, const std::vector<std::string>& args) : dir_(dir) {
    std::filesystem::create_directories(dir / "tmp");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no swupdate behind
      ::setpgid(0, 0);
      if (::chdir(dir.c_str()) != 0) ::_exit(127);
      ::setenv("TMPDIR", (dir / "tmp").c_str(), 1);
      const std::string log = (dir / "log").string();
      if (std::freopen(log.c_str(), "a", stdout) == nullptr) ::_exit(127);
      ::dup2(STDOUT_FILENO, STDERR_FILENO);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~SwupdateClient() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  SwupdateClient(const SwupdateClient&) = delete;
  SwupdateClient& operator=(const SwupdateClient&) = delete;
  std::string log() const { return read_text(dir_ / "log"); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

class MixedFleet : public AgentLabTest {
 protected:
  void SetUp() override { start_lab("tranche-mixed-fleet", "100", /*artifacts=*/true); }
  std::string diagnostics() override {
    std::string out = "--- server\n" + server_->output();
    for (const auto& c : clients_) out += "--- " + c->dir().string() + "\n" + c->log();
    if (!agents_.empty()) out += "--- agent 0\n" + agents_[0]->log();
    return out;
  }
  void TearDown() override {
    clients_.clear();
    AgentLabTest::TearDown();
  }

  // The action a DDI device's base poll offers ("" when none).
  std::string offered_action(const std::string& device, const std::string& token) {
    auto r = http_.request("GET", server_->url("/acme/controller/v1/" + device), "", "TargetToken " + token);
    if (r.status != 200) return "";
    const json::value body = r.json();
    const auto* links = body.at("_links").as_object().if_contains("deploymentBase");
    if (links == nullptr) return "";
    const std::string href(links->at("href").as_string());
    return href.substr(href.rfind('/') + 1);
  }

  std::vector<std::unique_ptr<SwupdateClient>> clients_;
};

TEST_F(MixedFleet, SwupdateClientsAndAgentsShareOneRolloutAndOneGate) {
  constexpr int kEach = 3;
  const std::filesystem::path source(TRANCHE_SOURCE_DIR);
  const std::string make_swu = "bash " + (source / "examples/ddi/make_swu.sh").string() + " " +
                               artifact_dir().string() +
                               " 1.1 'payload 1.1' /proc/self/cwd/payload.txt > /dev/null";
  ASSERT_EQ(std::system(make_swu.c_str()), 0) << make_swu;

  // The SWUpdate clients, enrolled through the bulk API, each polling once with
  // nothing to do before the release (as a fleet already running would).
  json::array ids;
  for (int i = 1; i <= kEach; ++i) ids.push_back(json::object{{"device_id", "swu-" + std::to_string(i)}});
  auto enrolled = op("POST", "/v1/devices/bulk", json::object{{"tenant", "acme"}, {"devices", ids}});
  ASSERT_EQ(enrolled.status, 201) << enrolled.body;
  std::map<std::string, std::string> token;
  const json::value enrolled_json = enrolled.json();
  for (const auto& d : enrolled_json.at("devices").as_array()) {
    token[std::string(d.at("device_id").as_string())] = std::string(d.at("device_token").as_string());
  }
  for (const auto& [id, tok] : token) {
    clients_.push_back(std::make_unique<SwupdateClient>(
        dir_ / id, std::vector<std::string>{"swupdate", "-v", "-k", (artifact_dir() / "signer.pem").string(), "-H",
                                            "board:1.0", "-u",
                                            "-t acme -u " + server_->url("") + " -i " + id + " -k " + tok}));
  }
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& c : clients_) {
          if (c->log().find("No pending action on server") == std::string::npos) return false;
        }
        return true;
      },
      20s))
      << "not every swupdate polled";

  // The agents, on no version yet.
  for (int i = 0; i < kEach; ++i) start_agent(agent_options("agent-" + std::to_string(i)));

  // Release 1.1 for both: the agents' TUF target and the clients' image. Its
  // TUF target is checked against the repository as for kind tuf: unsigned, 422.
  const auto bundle = source / "examples/content/good.yaml";
  const json::object target{{"path", "content/1.1.yaml"},
                            {"length", static_cast<std::int64_t>(std::filesystem::file_size(bundle))},
                            {"sha256", sha256_of(bundle)}};
  auto unsigned_release = op("POST", "/v1/releases",
                             json::object{{"channel", "content"}, {"version", "1.1"}, {"kind", "swu"},
                                          {"artifact", "update-1.1.swu"}, {"targets", json::array{target}}});
  EXPECT_EQ(unsigned_release.status, 422) << unsigned_release.body;
  EXPECT_NE(unsigned_release.body.find("not_signed"), std::string::npos) << unsigned_release.body;
  auto bundle_alone = op("POST", "/v1/releases",
                         json::object{{"channel", "content"}, {"version", "1.1"}, {"kind", "swu"},
                                      {"artifact", "update-1.1.swu"}, {"content_bundle", read_text(bundle)}});
  EXPECT_EQ(bundle_alone.status, 400) << "a content bundle without TUF targets: " << bundle_alone.body;
  repo_->add(bundle, "content/1.1.yaml");
  auto r = op("POST", "/v1/releases",
              json::object{{"channel", "content"},
                           {"version", "1.1"},
                           {"kind", "swu"},
                           {"artifact", "update-1.1.swu"},
                           {"targets", json::array{target}},
                           {"content_bundle", read_text(bundle)}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json().at("targets").as_array().size(), 2u) << r.body;
  const std::string id = rollout("1.1", kPlan);
  ASSERT_FALSE(id.empty());

  // Each client installs the image; its health step then closes the action.
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& c : clients_) {
          if (read_text(c->dir() / "payload.txt") != "payload 1.1\n") return false;
        }
        return true;
      },
      30s))
      << "not every swupdate installed the image";
  ASSERT_TRUE(eventually(
      [&] {
        bool open = false;
        for (const auto& c : clients_) {
          const std::string device = c->dir().filename().string();
          const std::string action = offered_action(device, token[device]);
          if (action.empty()) continue;
          open = true;
          const std::string close = "TMPDIR=" + (c->dir() / "tmp").string() + " swupdate-ipc sendtohawkbit " +
                                    action + " 2 success closed 'health check passed' > /dev/null 2>&1";
          (void)std::system(close.c_str());
        }
        return !open;
      },
      30s))
      << "a health step could not close its action";

  // One rollout, one gate: six acknowledged, none failed; the rollout completes.
  json::value ro;
  ASSERT_TRUE(eventually(
      [&] {
        ro = op("GET", "/v1/rollouts/" + id).json();
        return ro.at("status").at("state").as_string() == "completed";
      },
      40s))
      << json::serialize(ro);
  EXPECT_EQ(ro.at("gate").at("acknowledged").as_int64(), 2 * kEach) << json::serialize(ro);
  EXPECT_EQ(ro.at("gate").at("exposed_devices").as_int64(), 2 * kEach) << json::serialize(ro);
  EXPECT_EQ(ro.at("gate").at("exposed_failures").as_int64(), 0) << json::serialize(ro);

  // The agents took the TUF target (never the image) and committed 1.1.
  for (std::size_t i = 0; i < data_.size(); ++i) {
    const auto rec = agent_record(data_[i]);
    EXPECT_EQ(record_field(rec, "phase"), "committed") << agents_[i]->log();
    EXPECT_EQ(record_field(rec, "good"), "1.1") << agents_[i]->log();
    EXPECT_EQ(agents_[i]->log().find("update-1.1.swu"), std::string::npos) << agents_[i]->log();
  }
  // Each client downloaded the image once, from this server.
  const std::string log = server_->output();
  for (const auto& [device, tok] : token) {
    EXPECT_NE(log.find("ddi: device acme/" + device + " downloads content 1.1 "), std::string::npos) << device;
  }
}

}  // namespace
}  // namespace tranche::testing
