// HttpServer's file bodies (server/http_server.h, FileBody), in process on
// 127.0.0.1: a byte range of a file larger than one 64 KiB chunk arrives exact,
// the connection serves the next request after it, and a file shorter than its
// promised length ends the connection instead of passing a short body as whole.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "server/http_server.h"
#include "tests/server/harness.h"

namespace tranche::server {
namespace {

class FileBodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("tranche-file-body-" + std::to_string(::getpid()));
    std::mt19937 gen(7);
    content_.resize(3 * 1024 * 1024 + 123);
    for (auto& c : content_) c = static_cast<char>(gen() & 0xFFU);
    std::ofstream(path_, std::ios::binary) << content_;
    HttpServerOptions options;
    options.port = 0;
    auto started = HttpServer::start(options, [this](HttpRequest&& req, Responder respond) {
      HttpResponse r;
      r.content_type = "application/octet-stream";
      const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (req.path == "/range") {
        r.file = std::make_shared<FileBody>(fd, 1000, 2 * 1024 * 1024 + 7);
      } else if (req.path == "/past-the-end") {  // promises 10 bytes more than the file has
        r.file = std::make_shared<FileBody>(fd, 0, content_.size() + 10);
      } else {
        ::close(fd);
        r.body = "small";
      }
      respond(std::move(r));
    });
    ASSERT_TRUE(started) << started.error().message;
    server_ = std::move(*started);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    if (server_) server_->stop(std::chrono::milliseconds(500));
    std::filesystem::remove(path_);
  }

  std::filesystem::path path_;
  std::string content_;
  std::unique_ptr<HttpServer> server_;
  std::string base_;
};

TEST_F(FileBodyTest, ARangeOfManyChunksArrivesExactAndTheConnectionGoesOn) {
  testing::HttpClient client;
  const auto r = client.request("GET", base_ + "/range");
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 200);
  EXPECT_EQ(r.headers.at("content-length"), std::to_string(2 * 1024 * 1024 + 7));
  ASSERT_EQ(r.body.size(), 2u * 1024 * 1024 + 7);
  EXPECT_TRUE(r.body == content_.substr(1000, 2 * 1024 * 1024 + 7)) << "the bytes differ from the file's";
  // The same client (one kept-alive connection) asks again: a plain body.
  const auto next = client.request("GET", base_ + "/small");
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.body, "small");
}

TEST_F(FileBodyTest, AFileShorterThanPromisedEndsTheConnection) {
  testing::HttpClient client;
  const auto r = client.request("GET", base_ + "/past-the-end", "", "", 20);
  EXPECT_EQ(r.status, -1) << "a short body must not pass as whole";
  // Closed at once by the server (curl: partial file), not left to time out.
  EXPECT_NE(r.body.find("partial"), std::string::npos) << r.body;
  // The server still serves others.
  testing::HttpClient other;
  EXPECT_EQ(other.request("GET", base_ + "/small").body, "small");
}

}  // namespace
}  // namespace tranche::server
