// Real tranche-server processes for integration tests: start the binary on a
// free 127.0.0.1 port, talk HTTP to it with libcurl, kill it with any signal,
// restart it on the same data. Nothing here is a mock: the test sees what a
// device or an operator sees.
#pragma once

#include <curl/curl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

namespace tranche::testing {

// The binary under test: $TRANCHE_SERVER_BIN, else the path CMake compiled in.
inline std::string server_binary() {
  if (const char* bin = std::getenv("TRANCHE_SERVER_BIN")) return bin;
#ifdef TRANCHE_SERVER_BIN
  return TRANCHE_SERVER_BIN;
#else
  throw std::runtime_error("TRANCHE_SERVER_BIN is not set");
#endif
}

inline std::filesystem::path fresh_dir(const std::string& prefix) {
  std::random_device r;
  auto dir = std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(r()) + std::to_string(r()));
  std::filesystem::create_directories(dir);
  return dir;
}

class ServerProcess {
 public:
  // Starts tranche-server with `args` (plus --port 0 unless given) and waits for
  // its "listening on" line.
  explicit ServerProcess(std::vector<std::string> args) : args_(std::move(args)) { start(); }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  void start() {
    int out[2];
    int err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> argv_s = {server_binary()};
    bool has_port = false;
    for (const auto& a : args_) has_port = has_port || a == "--port";
    if (!has_port) {
      argv_s.push_back("--port");
      argv_s.push_back(port_ == 0 ? "0" : std::to_string(port_));
    }
    for (const auto& a : args_) argv_s.push_back(a);
    pid_ = ::fork();
    if (pid_ == 0) {
      // The server dies with the test, even when the test crashes: a server left
      // behind would hold CTest's output pipe open.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::close(err[0]);
      ::close(err[1]);
      std::vector<char*> argv;
      for (auto& s : argv_s) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::perror("execv tranche-server");
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    // Its log (stderr) goes on to the test's stderr, and the last 64 KiB are
    // kept for output().
    std::thread([fd = err[0], log = log_] {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        (void)!::write(STDERR_FILENO, buf, static_cast<std::size_t>(n));
        std::lock_guard lock(log->mu);
        log->text.append(buf, static_cast<std::size_t>(n));
        if (log->text.size() > 65536) log->text.erase(0, log->text.size() - 65536);
      }
      ::close(fd);
    }).detach();
    FILE* f = ::fdopen(out[0], "r");
    char line[512];
    std::string first;
    while (std::fgets(line, sizeof line, f) != nullptr) {
      first = line;
      if (first.find("listening on") != std::string::npos) break;
    }
    // Keep reading stdout in the background so the server never blocks on it.
    std::thread([f] {
      char buf[512];
      while (std::fgets(buf, sizeof buf, f) != nullptr) {
      }
      std::fclose(f);
    }).detach();
    auto colon = first.rfind(':');
    if (first.find("listening on") == std::string::npos || colon == std::string::npos) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      throw std::runtime_error("tranche-server did not start (exit status " + std::to_string(status) +
                               "); its stderr is above");
    }
    port_ = static_cast<std::uint16_t>(std::stoi(first.substr(colon + 1)));
  }

  // Sends `sig` and waits for the process; returns its wait status.
  int stop(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  // Restart on the same port and data (after stop()).
  void restart() { start(); }

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // What the server has logged (its stderr; the last 64 KiB).
  std::string output() const {
    std::lock_guard lock(log_->mu);
    return log_->text;
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  struct Log {
    std::mutex mu;
    std::string text;
  };
  std::shared_ptr<Log> log_ = std::make_shared<Log>();
};

struct HttpResult {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  boost::json::value json() const {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    return ec ? boost::json::value(nullptr) : v;
  }
  // error.code of an error response, or "".
  std::string error_code() const {
    auto v = json();
    if (!v.is_object()) return "";
    auto* e = v.as_object().if_contains("error");
    if (e == nullptr || !e->is_object()) return "";
    auto* c = e->as_object().if_contains("code");
    return c != nullptr && c->is_string() ? std::string(c->as_string()) : "";
  }
};

// One libcurl handle (keep-alive), one request at a time.
class HttpClient {
 public:
  HttpClient() : curl_(curl_easy_init()) {}
  ~HttpClient() { curl_easy_cleanup(curl_); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResult request(const std::string& method, const std::string& url, const std::string& body = "",
                     const std::string& token = "", long timeout_s = 30) {
    HttpResult r;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    // A bearer token; a token with its scheme ("TargetToken t", DDI) goes as given.
    std::string auth = "Authorization: " + (token.find(' ') == std::string::npos ? "Bearer " + token : token);
    if (!token.empty()) headers = curl_slist_append(headers, auth.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    if (method != "GET") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &HttpClient::on_data);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &HttpClient::on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.headers);
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      r.status = -1;
      r.body = curl_easy_strerror(rc);
      return r;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }

 private:
  static std::size_t on_data(char* p, std::size_t size, std::size_t n, void* user) {
    static_cast<std::string*>(user)->append(p, size * n);
    return size * n;
  }
  static std::size_t on_header(char* p, std::size_t size, std::size_t n, void* user) {
    std::string line(p, size * n);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ')) value.erase(value.begin());
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
      (*static_cast<std::map<std::string, std::string>*>(user))[name] = value;
    }
    return size * n;
  }
  CURL* curl_;
};

// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

}  // namespace tranche::testing
