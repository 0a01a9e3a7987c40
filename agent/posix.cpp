#include "agent/posix.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "config/file_io.h"

namespace tranche::agent {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

core::Error errno_error(const std::string& what) {
  const ErrorCode code = errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument;
  return make_error(code, what + ": " + std::strerror(errno));
}

Status write_all(int fd, std::string_view bytes, const std::string& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("write " + path);
    done += static_cast<std::size_t>(n);
  }
  return core::Ok{};
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal) {
    const char* name = ::sigabbrev_np(*signal);
    return "signal " + std::to_string(*signal) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "exit code " + std::to_string(exit_code.value_or(-1));
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status write_durably(FileSystem& fs, const std::string& path, std::string_view bytes,
                     bool private_file) {
  const std::string dir = parent_dir(path);
  const std::string tmp = path + ".tmp";
  if (auto st = fs.write(tmp, bytes, private_file); !st) return st;
  if (auto st = fs.fsync(tmp); !st) return st;
  if (auto st = fs.rename(tmp, path); !st) return st;
  return fs.fsync(dir);
}

core::TimeMs SystemClock::now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- files -------------------------------------------------------------------

Result<std::string> PosixFileSystem::read(const std::string& path, std::size_t max_bytes) {
  return config::read_file_limited(path, max_bytes);
}

Status PosixFileSystem::write(const std::string& path, std::string_view bytes, bool private_file) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                        private_file ? 0600 : 0644);
  if (fd < 0) return errno_error("open " + path);
  if (private_file) ::fchmod(fd, 0600);
  auto st = write_all(fd, bytes, path);
  if (::close(fd) != 0 && st.ok()) return errno_error("close " + path);
  return st;
}

Status PosixFileSystem::append(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error("open " + path);
  auto st = write_all(fd, bytes, path);
  if (::close(fd) != 0 && st.ok()) return errno_error("close " + path);
  return st;
}

Status PosixFileSystem::fsync(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("open " + path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return errno_error("fsync " + path);
  return core::Ok{};
}

Status PosixFileSystem::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return errno_error("rename " + from + " " + to);
  return core::Ok{};
}

Status PosixFileSystem::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("unlink " + path);
  return core::Ok{};
}

Status PosixFileSystem::symlink(const std::string& target, const std::string& link) {
  if (::symlink(target.c_str(), link.c_str()) != 0) return errno_error("symlink " + link);
  return core::Ok{};
}

Result<std::string> PosixFileSystem::readlink(const std::string& link) {
  char buf[4096];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0) return errno_error("readlink " + link);
  return std::string(buf, static_cast<std::size_t>(n));
}

Status PosixFileSystem::make_dirs(const std::string& dir) {
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      const std::string partial = dir.substr(0, i);
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return errno_error("mkdir " + partial);
      }
    }
  }
  return core::Ok{};
}

Result<std::int64_t> PosixFileSystem::size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("stat " + path);
  return static_cast<std::int64_t>(st.st_size);
}

Result<std::vector<std::string>> PosixFileSystem::list(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errno_error("opendir " + dir);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

Status PosixFileSystem::remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status(core::Ok{}) : Status(errno_error("lstat " + path));
  }
  if (S_ISDIR(st.st_mode)) {
    auto names = list(path);
    if (!names) return names.error();
    for (const auto& n : *names) {
      if (auto s = remove_tree(path + "/" + n); !s) return s;
    }
    if (::rmdir(path.c_str()) != 0) return errno_error("rmdir " + path);
    return core::Ok{};
  }
  return remove(path);
}

// ---- processes -----------------------------------------------------------------

namespace {

ExitStatus from_wait_status(int status) {
  ExitStatus e;
  if (WIFSIGNALED(status)) {
    e.signal = WTERMSIG(status);
  } else {
    e.exit_code = WEXITSTATUS(status);
  }
  return e;
}

pid_t fork_exec(const std::vector<std::string>& argv, const std::string& log_file,
                bool die_with_parent) {
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here.
  if (die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
  }
  ::setpgid(0, 0);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  const int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  if (!log_file.empty()) {
    const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
  }
  ::execvp(args[0], args.data());
  ::_exit(127);
}

}  // namespace

Result<pid_t> PosixProcess::spawn(const std::vector<std::string>& argv,
                                  const std::string& log_file) {
  if (argv.empty()) return make_error(ErrorCode::kInvalidArgument, "empty command");
  const pid_t pid = fork_exec(argv, log_file, true);
  if (pid < 0) return errno_error("fork");
  return pid;
}

std::optional<ExitStatus> PosixProcess::try_wait(pid_t pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid) return from_wait_status(status);
  if (r < 0 && errno == ECHILD) return ExitStatus{std::nullopt, SIGKILL};  // reaped elsewhere
  return std::nullopt;
}

void PosixProcess::kill(pid_t pid, int signal) {
  if (pid > 0) ::kill(pid, signal);
}

Result<ExitStatus> PosixProcess::run(const std::vector<std::string>& argv,
                                     std::int64_t timeout_ms) {
  if (argv.empty()) return make_error(ErrorCode::kInvalidArgument, "empty command");
  const pid_t pid = fork_exec(argv, "", true);
  if (pid < 0) return errno_error("fork");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto wait = std::chrono::milliseconds(1);
  while (true) {
    if (auto e = try_wait(pid)) return *e;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
      return make_error(ErrorCode::kOutOfRange,
                        "timed out after " + std::to_string(timeout_ms) + " ms");
    }
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(50));
  }
}

// ---- HTTP ----------------------------------------------------------------------

namespace {

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  bool too_large = false;
  std::optional<core::Error> sink_error;
  bool was_cancelled = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  // Endless data: never read past the cap, whatever the server sends or announces.
  if (t->response->received + n > t->request->max_bytes) {
    t->too_large = true;
    return 0;
  }
  t->response->received += n;
  if (t->request->sink && (t->response->status == 0 || t->response->status / 100 == 2)) {
    auto st = t->request->sink(t->response->status, std::string_view(data, n));
    if (!st) {
      t->sink_error = st.error();
      return 0;
    }
  } else {
    t->response->body.append(data, n);
  }
  return n;
}

// The status is known before the body: only a 2xx body goes to the sink.
std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    const auto space = line.find(' ');
    if (space != std::string_view::npos && line.size() >= space + 4) {
      t->response->status = std::strtol(std::string(line.substr(space + 1, 3)).c_str(), nullptr, 10);
    }
  }
  return size * count;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->request->cancelled && t->request->cancelled()) {
    t->was_cancelled = true;
    return 1;
  }
  return 0;
}

}  // namespace

CurlHttpClient::CurlHttpClient(std::string user_agent)
    : curl_(curl_easy_init()), user_agent_(std::move(user_agent)) {}

CurlHttpClient::~CurlHttpClient() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<HttpResponse> CurlHttpClient::send(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) return make_error(ErrorCode::kInternal, "curl_easy_init failed");
  curl_easy_reset(curl);
  HttpResponse response;
  Transfer t{&request, &response, false, std::nullopt, false};
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));  // NOLINT
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout_ms));  // NOLINT
  // A stalled or trickling server (slow retrieval).
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(request.max_bytes));
  if (request.cancelled) {
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  }
  std::string range;
  if (request.range_from) {
    range = std::to_string(*request.range_from) + "-";
    curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  }
  curl_slist* headers = nullptr;
  std::string auth;
  if (!request.bearer_token.empty()) {
    auth = "Authorization: Bearer " + request.bearer_token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  if (request.method != "GET") {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  long status = 0;  // NOLINT(google-runtime-int)
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return make_error(ErrorCode::kTooLarge, request.url + ": longer than the " +
                                                std::to_string(request.max_bytes) +
                                                "-byte limit");
  }
  if (t.sink_error) return t.sink_error->with_context(request.url + ": ");
  if (t.was_cancelled) return make_error(ErrorCode::kCancelled, request.url + ": cancelled");
  // The server cannot be reached or did not answer in time: retry later.
  if (rc != CURLE_OK) {
    return make_error(rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                      request.url + ": " + (error[0] ? error : curl_easy_strerror(rc)));
  }
  response.status = status;
  return response;
}

}  // namespace tranche::agent
