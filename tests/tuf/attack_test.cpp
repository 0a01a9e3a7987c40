// The attacks of the TUF specification's threat list, each against the real
// tranche-tuf-client binary fetching over HTTP from a repository this test
// serves on 127.0.0.1 (a small file server in a thread). Each attack asserts
// the exit code, the section of the spec the client names on stderr, and that
// the trusted metadata on disk did not change (or, where the spec persists a
// file that did verify before the attacked one, that only that file changed).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/tuf/repo_builder.h"
#include "tuf/client.h"

namespace tranche::tuf {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace json = boost::json;
using testing::RepoBuilder;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_all(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Serves the files under `root` (GET only, one connection at a time). Paths in
// `endless` answer with an endless body instead. Records each request path.
class FileServer {
 public:
  explicit FileServer(fs::path root) : root_(std::move(root)), acceptor_(io_) {
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~FileServer() {
    stopping_ = true;
    boost::system::error_code ec;
    asio::ip::tcp::socket wake(io_);
    wake.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  void set_endless(const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    endless_.insert(path);
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  void clear_requests() {
    std::lock_guard<std::mutex> l(mu_);
    requests_.clear();
  }

 private:
  static std::string decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }
  void run() {
    while (true) {
      asio::ip::tcp::socket sock(io_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (stopping_) return;
      if (ec) continue;
      serve(sock);
    }
  }
  void serve(asio::ip::tcp::socket& sock) {
    boost::system::error_code ec;
    asio::streambuf buf;
    asio::read_until(sock, buf, "\r\n\r\n", ec);
    if (ec) return;
    std::istream in(&buf);
    std::string method, target;
    in >> method >> target;
    const std::string path = decode(target.substr(1));
    bool endless = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      requests_.push_back(path);
      endless = endless_.count(path) != 0;
    }
    if (endless) {
      asio::write(sock, asio::buffer(std::string("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")),
                  ec);
      const std::string chunk(64 * 1024, 'x');
      for (int i = 0; i < 100000 && !ec; ++i) asio::write(sock, asio::buffer(chunk), ec);
      return;
    }
    const fs::path file = root_ / path;
    std::string response;
    if (path.find("..") == std::string::npos && fs::is_regular_file(file)) {
      const std::string body = read_all(file);
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body;
    } else {
      response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    }
    asio::write(sock, asio::buffer(response), ec);
  }

  fs::path root_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mu_;
  std::set<std::string> endless_;
  std::vector<std::string> requests_;
};

// The current time, for metadata expiry (the client reads the real clock).
core::TimeMs wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A repository on disk (metadata/, targets/) served over HTTP, a client
// directory, and the binary.
class AttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tranche-tuf-attack-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    repo_ = dir_ / "repo";
    fs::remove_all(dir_);
    fs::create_directories(repo_ / "metadata");
    b_.expires = wall_now() + 30 * kDay;
    write_meta("1.root.json", b_.root(1));
    server_ = std::make_unique<FileServer>(repo_);
    // Every attack starts from a client that trusts version 1 of everything.
    publish_target("app.bin", "release 1");
    ASSERT_EQ(init(), 0) << log_;
    ASSERT_EQ(refresh(), 0) << log_;
  }
  void TearDown() override {
    server_.reset();
    if (!HasFailure() && std::getenv("KEEP") == nullptr) fs::remove_all(dir_);
  }

  void write_meta(const std::string& name, const std::string& bytes) {
    write_all(repo_ / "metadata" / name, bytes);
  }
  std::string meta(const std::string& name) { return read_all(repo_ / "metadata" / name); }

  // Adds (or changes) a target and publishes targets, snapshot and timestamp
  // one version up, as tranche release sign + repo publish would.
  void publish_target(const std::string& name, const std::string& content) {
    const TargetPath p = testing::target_path(name);
    files_[p] = testing::target_file_of(content);
    write_all(repo_ / "targets" / target_file_name(p, sha256_hex(content)), content);
    publish();
  }
  void publish(const RepoBuilder& signer) {
    ++version_;
    const std::string t = signer.targets(version_, files_);
    write_meta(targets_file_name(version_), t);
    const std::string s = signer.snapshot_for(version_, version_, t);
    write_meta(snapshot_file_name(version_), s);
    write_meta("timestamp.json", signer.timestamp(version_, version_, s));
  }
  void publish() { publish(b_); }

  // Runs the client; its stderr is kept in log_.
  int client(const std::string& args) {
    const fs::path log = dir_ / "client.log";
    const std::string cmd = std::string(TRANCHE_TUF_CLIENT) + " --metadata-dir " +
                            (dir_ / "client").string() + " --metadata-url " + server_->url() +
                            "metadata/ " + args + " 2>" + log.string();
    const int status = std::system(cmd.c_str());
    log_ = read_all(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  int init() {
    write_all(dir_ / "trusted-root.json", meta("1.root.json"));
    return client("init " + (dir_ / "trusted-root.json").string());
  }
  int refresh() { return client("refresh"); }
  int download(const std::string& target) {
    return client("--target-name " + target + " --target-base-url " + server_->url() +
                  "targets/ --target-dir " + (dir_ / "downloads").string() + " download");
  }
  // The trusted metadata on disk, by file name.
  std::map<std::string, std::string> trusted() {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(dir_ / "client")) {
      const std::string n = e.path().filename().string();
      if (n.size() > 5 && n.substr(n.size() - 5) == ".json") out[n] = read_all(e.path());
    }
    return out;
  }
  // A refresh that must fail naming `section`, leaving the trusted files as
  // they were except `allowed_to_change`.
  void expect_refused(int rc, const std::map<std::string, std::string>& before,
                      const std::string& section, const std::set<std::string>& allowed = {}) {
    EXPECT_EQ(rc, 1) << log_;
    EXPECT_NE(log_.find(section), std::string::npos) << "expected " << section << " in:\n" << log_;
    auto after = trusted();
    for (const auto& [name, bytes] : before) {
      if (allowed.count(name) != 0) continue;
      EXPECT_EQ(after[name], bytes) << name << " changed";
    }
    for (const auto& [name, bytes] : after) {
      if (allowed.count(name) == 0) {
        EXPECT_EQ(before.count(name), 1u) << name << " appeared";
      }
    }
  }

  fs::path dir_;
  fs::path repo_;
  RepoBuilder b_;
  std::map<TargetPath, TargetFile> files_;
  std::int64_t version_ = 0;
  std::unique_ptr<FileServer> server_;
  std::string log_;
};

TEST_F(AttackTest, GoodPathDownloadsVerifiesAndKeepsAVerifiedCopy) {
  ASSERT_EQ(download("app.bin"), 0) << log_;
  EXPECT_EQ(read_all(dir_ / "downloads" / "app.bin"), "release 1");
  for (const char* f : {"root.json", "timestamp.json", "snapshot.json", "targets.json"}) {
    EXPECT_EQ(trusted().count(f), 1u) << f;
  }
  server_->clear_requests();
  ASSERT_EQ(download("app.bin"), 0) << log_;
  for (const std::string& r : server_->requests()) {
    EXPECT_EQ(r.find("targets/"), std::string::npos) << "fetched again: " << r;
  }
  EXPECT_NE(log_.find("up to date"), std::string::npos) << log_;
}

TEST_F(AttackTest, TargetChangedUpstreamIsReplaced) {
  ASSERT_EQ(download("app.bin"), 0) << log_;
  publish_target("app.bin", "release 2, longer");
  ASSERT_EQ(download("app.bin"), 0) << log_;
  EXPECT_EQ(read_all(dir_ / "downloads" / "app.bin"), "release 2, longer");
  EXPECT_EQ(trusted()["targets.json"], meta("2.targets.json"));
}

TEST_F(AttackTest, RollbackOfTimestampIsRefused) {
  const std::string old_ts = meta("timestamp.json");
  publish_target("app.bin", "release 2");
  ASSERT_EQ(refresh(), 0) << log_;
  auto before = trusted();
  write_meta("timestamp.json", old_ts);  // a mirror replays version 1
  expect_refused(refresh(), before, "5.4.3.1");
}

TEST_F(AttackTest, RollbackOfTargetsThroughCompromisedOnlineKeysIsRefused) {
  publish_target("app.bin", "release 2");
  ASSERT_EQ(refresh(), 0) << log_;
  auto before = trusted();
  // The online keys (snapshot, timestamp) sign a snapshot listing targets v1.
  const std::string s = b_.snapshot_for(3, 1, meta("1.targets.json"));
  write_meta("3.snapshot.json", s);
  write_meta("timestamp.json", b_.timestamp(3, 3, s));
  // The new timestamp itself verifies and is kept (5.4.5); nothing else.
  expect_refused(refresh(), before, "5.5.5 rollback", {"timestamp.json"});
}

TEST_F(AttackTest, FreezeWithExpiredTimestampIsRefused) {
  auto before = trusted();
  RepoBuilder stale = b_;
  stale.expires = wall_now() - kDay;  // validly signed, but expired
  const std::string s = meta("1.snapshot.json");
  write_meta("timestamp.json", stale.timestamp(2, 1, s));
  expect_refused(refresh(), before, "5.4.4 freeze attack");
}

TEST_F(AttackTest, ClockSetBackCannotUnexpireMetadata) {
  auto before = trusted();
  // The client once saw a time after everything expires; its clock now says
  // otherwise. The persisted latest-known time wins.
  write_all(dir_ / "client" / "latest-known-time", format_utc_time(b_.expires + kDay) + "\n");
  expect_refused(refresh(), before, "freeze attack");
}

TEST_F(AttackTest, MixAndMatchSnapshotIsRefused) {
  const std::string old_snapshot = meta("1.snapshot.json");
  publish_target("app.bin", "release 2");
  auto before = trusted();
  write_meta("2.snapshot.json", old_snapshot);  // served under the new name
  expect_refused(refresh(), before, "5.5.2", {"timestamp.json"});
}

TEST_F(AttackTest, MixAndMatchTargetsIsRefused) {
  const std::string old_targets = meta("1.targets.json");
  publish_target("app.bin", "release 2");
  auto before = trusted();
  write_meta("2.targets.json", old_targets);
  expect_refused(refresh(), before, "5.6.2", {"timestamp.json", "snapshot.json"});
}

TEST_F(AttackTest, ArbitrarySoftwareIsNotWritten) {
  auto before = trusted();
  const TargetFile& f = files_.begin()->second;
  // Same length, other bytes, at the name the client will fetch.
  write_all(repo_ / "targets" / target_file_name(files_.begin()->first, f.hashes.at("sha256")),
            "release X");
  expect_refused(download("app.bin"), before, "5.7.3 hash");
  EXPECT_FALSE(fs::exists(dir_ / "downloads" / "app.bin"));
}

TEST_F(AttackTest, EndlessTimestampIsCutAtItsCap) {
  auto before = trusted();
  server_->set_endless("metadata/timestamp.json");
  expect_refused(refresh(), before, "16384-byte limit");
}

TEST_F(AttackTest, EndlessRootIsCutAtItsCap) {
  auto before = trusted();
  server_->set_endless("metadata/2.root.json");
  expect_refused(refresh(), before, "512000-byte limit");
}

TEST_F(AttackTest, EndlessTargetIsCutAtItsSignedLength) {
  auto before = trusted();
  const TargetFile& f = files_.begin()->second;
  write_all(repo_ / "targets" / target_file_name(files_.begin()->first, f.hashes.at("sha256")),
            "release 1" + std::string(100000, 'x'));
  expect_refused(download("app.bin"), before, "9-byte limit");
  EXPECT_FALSE(fs::exists(dir_ / "downloads" / "app.bin"));
}

TEST_F(AttackTest, RootKeyCompromiseBelowThresholdIsRefused) {
  // Root 2 adds a second root key and threshold 2 (signed by both).
  RepoBuilder two = b_;
  two.root_keys.push_back(testing::new_key());
  two.root_threshold = 2;
  write_meta("2.root.json", two.root(2));
  ASSERT_EQ(refresh(), 0) << log_;
  auto before = trusted();
  // The attacker holds one of the two root keys and gives every role to
  // himself.
  RepoBuilder evil = two;
  evil.targets_keys = evil.snapshot_keys = evil.timestamp_keys = {two.root_keys[1]};
  write_meta("3.root.json", RepoBuilder::sign(root_signed(evil.root_def(3)), {two.root_keys[1]}));
  expect_refused(refresh(), before, "1 of the 2 required signatures");
}

TEST_F(AttackTest, TargetsKeyCompromiseBelowThresholdIsRefused) {
  // Root 2: targets needs 2 of 2 keys.
  RepoBuilder two = b_;
  two.targets_keys.push_back(testing::new_key());
  json::object r = root_signed(two.root_def(2));
  r["roles"].as_object()["targets"].as_object()["threshold"] = 2;
  write_meta("2.root.json", RepoBuilder::sign(r, two.root_keys));
  b_ = two;  // repository signs targets with both keys from now on
  publish();
  ASSERT_EQ(refresh(), 0) << log_;
  auto before = trusted();
  // The attacker (with the online keys) has one targets key.
  RepoBuilder evil = two;
  evil.targets_keys = {two.targets_keys[1]};
  files_[testing::target_path("evil.bin")] = testing::target_file_of("evil");
  publish(evil);
  expect_refused(refresh(), before, "1 of the 2 required signatures",
                 {"timestamp.json", "snapshot.json"});
}

TEST_F(AttackTest, FastForwardRecoveryAfterTimestampKeyRotation) {
  // A compromised timestamp key pushes the timestamp to version 1000.
  const std::string s = meta("1.snapshot.json");
  write_meta("timestamp.json", b_.timestamp(1000, 1, s));
  ASSERT_EQ(refresh(), 0) << log_;
  // Recovery without rotating the key cannot help: version 2 is a rollback.
  write_meta("timestamp.json", b_.timestamp(2, 1, s));
  auto before = trusted();
  expect_refused(refresh(), before, "5.4.3.1");
  // The repository rotates the timestamp key in root 2 and signs version 2.
  RepoBuilder next = b_;
  next.timestamp_keys = {testing::new_key()};
  write_meta("2.root.json", next.root(2));
  write_meta("timestamp.json", next.timestamp(2, 1, s));
  ASSERT_EQ(refresh(), 0) << log_;
  EXPECT_NE(log_.find("5.3.11"), std::string::npos) << log_;
  EXPECT_EQ(trusted()["timestamp.json"], meta("timestamp.json"));
  EXPECT_EQ(trusted()["root.json"], meta("2.root.json"));
}

}  // namespace
}  // namespace tranche::tuf
