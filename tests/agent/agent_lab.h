// The fixture every end-to-end agent test starts from: a real tranche-server
// (fast ticks, 1 s check-ins) serving a TUF repository made with the `tranche`
// CLI, tenant "acme", and real tranche-agent processes, each protecting a real
// tranche-demo-sensor. A test releases bundles, starts rollouts and agents, and
// reads what the server and the agents' disks say.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/agent/agent_harness.h"

namespace tranche::testing {

class AgentLabTest : public ::testing::Test {
 protected:
  static constexpr const char* kAdmin = "test-admin-token-0123456789";

  // Call from SetUp: `name` names the scratch directory; the engine looks
  // every `tick_ms`. With `artifacts`, the server serves SWUpdate images from
  // artifact_dir() (DDI, docs/ddi.md).
  void start_lab(const std::string& name, const std::string& tick_ms = "100", bool artifacts = false) {
    dir_ = fresh_dir(name);
    repo_ = std::make_unique<TufRepo>(dir_ / "tuf");
    std::vector<std::string> args{"--data-dir", (dir_ / "server").string(), "--admin-token", kAdmin,
                                  "--tick-ms", tick_ms, "--batch-ms", "50", "--ask-again-s", "1",
                                  "--tuf-repo", repo_->repo().string()};
    if (artifacts) {
      std::filesystem::create_directories(artifact_dir());
      args.insert(args.end(), {"--artifact-dir", artifact_dir().string()});
    }
    server_ = std::make_unique<ServerProcess>(std::move(args));
    auto r = op("POST", "/v1/tenants", boost::json::object{{"id", "acme"}, {"enrollment_key", kEnrollKey}});
    ASSERT_EQ(r.status, 201) << r.body;
  }
  std::filesystem::path artifact_dir() const { return dir_ / "artifacts"; }
  // What a failed test prints before the lab is torn down (the server is still up).
  virtual std::string diagnostics() { return ""; }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "%s\n", diagnostics().c_str());
    agents_.clear();  // SIGKILL; the sensors die with their agents
    server_.reset();
    if (!HasFailure()) {
      std::filesystem::remove_all(dir_);
    } else {
      std::fprintf(stderr, "kept %s for a look\n", dir_.c_str());
    }
  }

  HttpResult op(const std::string& method, const std::string& path,
                const boost::json::value& body = nullptr) {
    return http_.request(method, server_->url(path),
                         body.is_null() ? "" : boost::json::serialize(body), kAdmin);
  }

  // Signs the bundle into the TUF repository and registers the release;
  // `skip_check` bypasses the server's contract check (the 2024 validator bug);
  // without `with_bundle` the server gets the target only (no content_bundle),
  // as `tranche release publish` without --bundle sends it.
  void release(const std::string& version, const std::filesystem::path& bundle,
               bool skip_check = false, bool with_bundle = true) {
    const std::string name = "content/" + version + ".yaml";
    repo_->add(bundle, name);
    boost::json::object body{
        {"channel", "content"},
        {"version", version},
        {"targets", boost::json::array{boost::json::object{
                        {"path", name},
                        {"length", static_cast<std::int64_t>(std::filesystem::file_size(bundle))},
                        {"sha256", sha256_of(bundle)}}}}};
    if (with_bundle) body["content_bundle"] = read_text(bundle);
    if (skip_check) body["skip_contract_check"] = true;
    auto r = op("POST", "/v1/releases", body);
    ASSERT_EQ(r.status, 201) << r.body;
  }
  // A named rollout ("rollout-VERSION" unless `id` is given): the name salts
  // the cohort, so its rings take the same devices in every run. Returns its id
  // ("" on failure).
  std::string rollout(const std::string& version, const std::string& plan_yaml, std::string id = "") {
    if (id.empty()) id = "rollout-" + version;
    auto r = op("POST", "/v1/rollouts",
                boost::json::object{{"channel", "content"}, {"version", version},
                                    {"plan_yaml", plan_yaml}, {"id", id}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.json().at("id").as_string()) : "";
  }
  std::string rollout_state(const std::string& id) {
    auto r = op("GET", "/v1/rollouts/" + id);
    return r.status == 200 ? std::string(r.json().at("status").at("state").as_string()) : "";
  }

  // Options for device `id` of this lab (its data directory, the server, the
  // trusted root); change what a test needs before start_agent.
  AgentOptions agent_options(const std::string& id) const {
    AgentOptions o;
    o.server_url = server_->url("");
    o.device_id = id;
    o.data_dir = dir_ / id;
    o.tuf_root = repo_->root_file();
    return o;
  }
  AgentProcess& start_agent(const AgentOptions& o) {
    std::filesystem::create_directories(o.data_dir);
    const auto config = dir_ / (o.device_id + ".yaml");
    write_text(config, agent_config(o));
    data_.push_back(o.data_dir);
    agents_.push_back(std::make_unique<AgentProcess>(config, dir_ / (o.device_id + ".log")));
    agents_.back()->start();
    return *agents_.back();
  }

  std::filesystem::path dir_;
  std::unique_ptr<TufRepo> repo_;
  std::unique_ptr<ServerProcess> server_;
  std::vector<std::filesystem::path> data_;  // each started agent's, in order
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  HttpClient http_;
};

}  // namespace tranche::testing
