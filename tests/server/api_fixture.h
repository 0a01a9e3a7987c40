// The fixture the API suites share: a real tranche-server process on 127.0.0.1
// with a fresh data directory, on SQLite — or, in a binary built with
// TRANCHE_SERVER_TEST_POSTGRES, on a PostgreSQL database of its own in the
// `postgres` fixture's server — its admin token, and helpers that speak the API
// as devices and operators do.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "tests/server/harness.h"
#include "tests/store/pg_test_db.h"

namespace tranche::testing {

// The hash the server keeps of a token (hex SHA-256): a test that writes a
// device row itself, as an older schema or another server left it.
inline std::string token_hash_hex(const std::string& token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(token.data(), token.size(), digest, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

class ApiFixture : public ::testing::Test {
 protected:
  static constexpr const char* kAdmin = "test-admin-token-0123456789";
  static constexpr const char* kEnrollKey = "acme-enrollment-key-0123";

  static bool use_postgres() {
#ifdef TRANCHE_SERVER_TEST_POSTGRES
    return true;
#else
    return false;
#endif
  }

  void SetUp() override {
    data_dir_ = fresh_dir("tranche-api-test");
    if (use_postgres()) {
      pg_ = std::make_unique<PgTestDb>();
      if (!pg_->ok()) FAIL() << "PostgreSQL unavailable: " << pg_->error();
    }
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(data_dir_);
  }

  // The server's flags: an engine tick of `tick_ms` (fast by default), a fast
  // writer, `data` (default: this test's data directory) and its database, the
  // admin token, then `extra`.
  std::vector<std::string> args(const std::vector<std::string>& extra = {}, const std::string& tick_ms = "100",
                                const std::filesystem::path& data = {}) const {
    std::vector<std::string> a = {"--data-dir", (data.empty() ? data_dir_ : data).string(),
                                  "--admin-token", kAdmin,
                                  "--tick-ms",  tick_ms,
                                  "--batch-ms",    "50",
                                  "--threads",  "2"};
    if (pg_) {
      a.push_back("--store");
      a.push_back(pg_->url());
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  void start(const std::vector<std::string>& extra = {}) { server_ = std::make_unique<ServerProcess>(args(extra)); }

  // An operator request, with the admin token unless another is given.
  HttpResult op(const std::string& method, const std::string& path, const boost::json::value& body = nullptr,
                const std::string& token = kAdmin) {
    return http_.request(method, server_->url(path), body.is_null() ? "" : boost::json::serialize(body), token);
  }
  // The same with a body sent as it is (malformed ones included).
  HttpResult op_raw(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& token = kAdmin) {
    return http_.request(method, server_->url(path), body, token);
  }

  void create_tenant() {
    auto r = op("POST", "/v1/tenants", boost::json::object{{"id", "acme"}, {"enrollment_key", kEnrollKey}});
    ASSERT_EQ(r.status, 201) << r.body;
  }

  // Enrolls `id` in tenant acme: its device token ("" when refused).
  std::string enroll(const std::string& id, const boost::json::object& tags = {}) {
    boost::json::object body{{"tenant", "acme"}, {"enrollment_key", kEnrollKey}, {"device_id", id}};
    if (!tags.empty()) body["tags"] = tags;
    auto r = http_.request("POST", server_->url("/v1/enroll"), boost::json::serialize(body));
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.json().at("device_token").as_string()) : std::string();
  }

  // A release of channel content with one (unsigned) target.
  void release(const std::string& version) {
    auto r = op("POST", "/v1/releases",
                boost::json::object{
                    {"channel", "content"},
                    {"version", version},
                    {"targets", boost::json::array{boost::json::object{{"path", "content-" + version + ".yaml"},
                                                                        {"length", 100},
                                                                        {"sha256", std::string(64, 'a')}}}}});
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::filesystem::path data_dir_;
  std::unique_ptr<PgTestDb> pg_;
  std::unique_ptr<ServerProcess> server_;
  HttpClient http_;
};

}  // namespace tranche::testing
