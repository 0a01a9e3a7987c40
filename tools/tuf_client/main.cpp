// tranche-tuf-client — a TUF 1.0.x client with the command-line protocol that
// TUF client conformance suites drive (issue 4 §2, docs/tuf.md):
//
//   tranche-tuf-client --metadata-dir DIR init ROOT_FILE
//   tranche-tuf-client --metadata-dir DIR --metadata-url URL refresh
//   tranche-tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH
//       [--target-name PATH ...] --target-base-url URL --target-dir DIR download
//
// Exit 0 on success, 1 on any failure (2 for a malformed command line). Every
// decision is tuf::Updater's and tuf::TrustedSet's; this file is the shell:
// HTTP with libcurl (length caps enforced while receiving), files written
// atomically, and the clock, read once and never allowed to go back behind the
// latest time this client has seen (DIR/latest-known-time).
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "tuf/client.h"
#include "tuf/metadata.h"
#include "tuf/updater.h"

namespace {

using tranche::core::Error;
using tranche::core::ErrorCode;
using tranche::core::make_error;
using tranche::core::Result;
using tranche::core::Status;
using tranche::core::TimeMs;
namespace tuf = tranche::tuf;

constexpr const char* kProgram = "tranche-tuf-client";
constexpr const char* kLatestTimeFile = "latest-known-time";

void say(const std::string& line) {
  std::fprintf(stderr, "%s: %s\n", kProgram, line.c_str());
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// ---- files ------------------------------------------------------------------

// Reads at most max_bytes; kTooLarge beyond, kNotFound when absent.
Result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const ErrorCode code = errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument;
    return make_error(code, errno_text(path));
  }
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const Error e = make_error(ErrorCode::kInvalidArgument, errno_text(path));
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return make_error(ErrorCode::kTooLarge,
                        path + ": longer than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kInvalidArgument, errno_text(dir));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return make_error(ErrorCode::kInvalidArgument, errno_text("fsync " + dir));
  return tranche::core::Ok{};
}

// Write a temporary file, fsync it, rename it over `name`, fsync the directory:
// after a crash the file holds the old bytes or the new, never a mix.
Status write_atomically(const std::string& dir, const std::string& name, std::string_view bytes) {
  const std::string path = dir + "/" + name;
  const std::string tmp = dir + "/." + name + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(ErrorCode::kInvalidArgument, errno_text(tmp));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const Error e = make_error(ErrorCode::kInvalidArgument, errno_text(tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const Error e = make_error(ErrorCode::kInvalidArgument, errno_text("fsync " + tmp));
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const Error e = make_error(ErrorCode::kInvalidArgument, errno_text("rename " + path));
    ::unlink(tmp.c_str());
    return e;
  }
  return fsync_dir(dir);
}

Status make_dirs(const std::string& dir) {
  std::string partial;
  for (std::size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      partial = dir.substr(0, i);
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return make_error(ErrorCode::kInvalidArgument, errno_text("mkdir " + partial));
      }
    }
  }
  return tranche::core::Ok{};
}

// The trusted metadata directory (tuf::MetadataStore).
class DirectoryStore : public tuf::MetadataStore {
 public:
  explicit DirectoryStore(std::string dir) : dir_(std::move(dir)) {}
  Result<std::string> load(const std::string& name, std::size_t max_bytes) override {
    return read_file(dir_ + "/" + name, max_bytes);
  }
  Status store(const std::string& name, std::string_view bytes) override {
    return write_atomically(dir_, name, bytes);
  }
  Status remove(const std::string& name) override {
    if (::unlink((dir_ + "/" + name).c_str()) != 0 && errno != ENOENT) {
      return make_error(ErrorCode::kInvalidArgument, errno_text(dir_ + "/" + name));
    }
    return fsync_dir(dir_);
  }

 private:
  std::string dir_;
};

// ---- HTTP -------------------------------------------------------------------

struct Body {
  std::string bytes;
  std::size_t max_bytes = 0;
  bool too_large = false;
};

// libcurl's write callback: stops the transfer as soon as the cap is passed
// (endless-data attack: never read more than the cap, whatever the server
// sends or announces).
std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  const std::size_t n = size * count;
  if (body->bytes.size() + n > body->max_bytes) {
    body->too_large = true;
    return 0;  // aborts with CURLE_WRITE_ERROR
  }
  body->bytes.append(data, n);
  return n;
}

std::string with_slash(std::string url) {
  if (url.empty() || url.back() != '/') url += '/';
  return url;
}

class CurlFetcher : public tuf::Fetcher {
 public:
  CurlFetcher(std::string metadata_url, std::string target_url)
      : metadata_url_(with_slash(std::move(metadata_url))),
        target_url_(with_slash(std::move(target_url))) {}

  Result<std::string> fetch_metadata(const std::string& name, std::size_t max_bytes) override {
    return get(metadata_url_ + name, max_bytes);
  }
  Result<std::string> fetch_target(const std::string& path, std::size_t max_bytes) override {
    return get(target_url_ + path, max_bytes);
  }

 private:
  static Result<std::string> get(const std::string& url, std::size_t max_bytes) {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return make_error(ErrorCode::kInvalidArgument, "curl_easy_init failed");
    Body body;
    body.max_bytes = max_bytes;
    char curl_error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    // A Content-Length over the cap fails before any body is read (0 would
    // mean no limit to libcurl; on_data still holds a 0-byte cap).
    if (max_bytes > 0) {
      curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
    }
    // Timeouts: connecting, a stalled or trickling server (slow retrieval),
    // and the whole transfer.
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "tranche-tuf-client/" TRANCHE_VERSION);
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;  // NOLINT(google-runtime-int): libcurl's type
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    if (body.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
      say("GET " + url + ": aborted, longer than " + std::to_string(max_bytes) + " bytes");
      return make_error(ErrorCode::kTooLarge, url + ": longer than the " +
                                                  std::to_string(max_bytes) +
                                                  "-byte limit (endless-data attack?)");
    }
    if (rc != CURLE_OK) {
      say("GET " + url + ": " + (curl_error[0] ? curl_error : curl_easy_strerror(rc)));
      return make_error(ErrorCode::kInvalidArgument,
                        url + ": " + (curl_error[0] ? curl_error : curl_easy_strerror(rc)));
    }
    say("GET " + url + ": HTTP " + std::to_string(status) + ", " +
        std::to_string(body.bytes.size()) + " bytes");
    if (status == 403 || status == 404) {
      return make_error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(status));
    }
    if (status != 200) {
      return make_error(ErrorCode::kInvalidArgument, url + ": HTTP " + std::to_string(status));
    }
    return std::move(body.bytes);
  }

  std::string metadata_url_;
  std::string target_url_;
};

// ---- time -------------------------------------------------------------------

// 5.1: the fixed update start time, max(clock, the latest time this client
// has recorded), recorded again before any metadata is judged, so that a
// clock set back cannot make expired metadata current.
Result<TimeMs> update_start_time(const std::string& dir) {
  const auto clock = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  TimeMs now = static_cast<TimeMs>(clock);
  auto recorded = read_file(dir + "/" + kLatestTimeFile, 64);
  if (recorded) {
    std::string text = *recorded;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    auto t = tuf::parse_utc_time(text);
    if (!t) return t.error().with_context(dir + "/" + kLatestTimeFile + ": ");
    if (*t > now) {
      say("the clock is behind the latest known time " + text + "; using that");
      now = *t;
    }
  } else if (recorded.error().code != ErrorCode::kNotFound) {
    return recorded.error();
  }
  auto st = write_atomically(dir, kLatestTimeFile, tuf::format_utc_time(now) + "\n");
  if (!st) return st.error();
  return now;
}

// ---- commands ---------------------------------------------------------------

struct Options {
  std::string metadata_dir;
  std::string metadata_url;
  std::vector<std::string> target_names;
  std::string target_base_url;
  std::string target_dir;
  std::string root_file;
};

int fail(const std::string& what, const Error& e) {
  say(what + ": " + e.to_string());
  return 1;
}

int run_init(const Options& o) {
  auto bytes = read_file(o.root_file, tuf::ClientLimits{}.max_root_bytes);
  if (!bytes) return fail("init", bytes.error());
  // Only a root that verifies with its own keys is worth trusting (5.2); its
  // expiry is judged at the first refresh, after any newer root.
  auto set = tuf::TrustedSet::create(*bytes, 0);
  if (!set) return fail("init: " + o.root_file, set.error());
  auto st = make_dirs(o.metadata_dir);
  if (!st) return fail("init", st.error());
  st = write_atomically(o.metadata_dir, "root.json", *bytes);
  if (!st) return fail("init", st.error());
  say("trusting root version " + std::to_string(set->root().body.common.version) + " in " +
      o.metadata_dir + "/root.json");
  return 0;
}

void print_notes(const tuf::Updater& u, std::size_t& printed) {
  for (; printed < u.notes().size(); ++printed) say(u.notes()[printed]);
}

int run_update(const Options& o, bool download) {
  if (o.metadata_url.empty()) {
    say("--metadata-url is required");
    return 1;
  }
  auto now = update_start_time(o.metadata_dir);
  if (!now) return fail("refresh", now.error());
  CurlFetcher fetcher(o.metadata_url, o.target_base_url);
  DirectoryStore store(o.metadata_dir);
  auto updater = tuf::Updater::create(fetcher, store, *now);
  if (!updater) return fail("refresh", updater.error());
  std::size_t printed = 0;
  auto st = updater->refresh();
  print_notes(*updater, printed);
  if (!st) return fail("refresh failed", st.error());
  const auto& set = updater->trusted();
  say("refreshed: root v" + std::to_string(set.root().body.common.version) + ", timestamp v" +
      std::to_string(set.timestamp()->body.common.version) + ", snapshot v" +
      std::to_string(set.snapshot()->body.common.version) + ", targets v" +
      std::to_string(set.targets()->body.common.version));
  if (!download) return 0;

  if (o.target_base_url.empty() || o.target_dir.empty()) {
    say("download needs --target-base-url and --target-dir");
    return 1;
  }
  st = make_dirs(o.target_dir);
  if (!st) return fail("download", st.error());
  for (const std::string& name : o.target_names) {
    auto path = tuf::TargetPath::parse(name);
    if (!path) return fail("target '" + name + "'", path.error());
    auto info = updater->get_target_info(*path);
    print_notes(*updater, printed);
    if (!info) return fail("target '" + name + "'", info.error());
    const std::string local = tuf::target_local_name(*path);
    // A copy already here with the signed length and hashes is kept.
    auto existing = read_file(o.target_dir + "/" + local, static_cast<std::size_t>(info->length));
    if (existing && tuf::verify_target(*info, *existing).ok()) {
      say("target '" + name + "': " + o.target_dir + "/" + local + " is up to date");
      continue;
    }
    auto bytes = updater->download_target(*path, *info);
    if (!bytes) return fail("target '" + name + "'", bytes.error());
    st = write_atomically(o.target_dir, local, *bytes);
    if (!st) return fail("target '" + name + "'", st.error());
    say("target '" + name + "': verified " + std::to_string(bytes->size()) + " bytes -> " +
        o.target_dir + "/" + local);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  CLI::App app{
      "tranche-tuf-client: a TUF 1.0.x client (The Update Framework, client workflow of\n"
      "section 5). Trusted metadata lives in --metadata-dir under root.json,\n"
      "timestamp.json, snapshot.json, targets.json and ROLE.json; a refresh replaces a\n"
      "file only with metadata that passed every check. Exit 0 on success, 1 on any\n"
      "failure, with the reason on stderr (the spec section of the failed check).",
      kProgram};
  app.set_version_flag("--version", std::string(kProgram) + " " + TRANCHE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  Options o;
  app.add_option("--metadata-dir", o.metadata_dir, "Directory of the trusted metadata")->required();
  app.add_option("--metadata-url", o.metadata_url,
                 "Base URL of the repository's metadata (N.root.json, timestamp.json, ...)");
  app.add_option("--target-name", o.target_names,
                 "Target path to download (repeatable; fetched in order, stop at the first "
                 "failure)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--target-base-url", o.target_base_url, "Base URL of the target files");
  app.add_option("--target-dir", o.target_dir,
                 "Where downloaded targets go (file name: the target path percent-encoded)");
  CLI::App* init = app.add_subcommand(
      "init",
      "Trust ROOT_FILE: copy it to METADATA_DIR/root.json (no network). It must be "
      "signed by a threshold of its own root keys.");
  init->add_option("root_file", o.root_file, "The root metadata to trust")->required();
  CLI::App* refresh =
      app.add_subcommand("refresh",
                         "Update root (the whole chain), timestamp, snapshot and targets from "
                         "--metadata-url");
  CLI::App* download =
      app.add_subcommand("download",
                         "Refresh, then fetch and verify each --target-name from --target-base-url "
                         "into --target-dir (a verified copy already there is kept)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (init->parsed()) return run_init(o);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 1;
  if (refresh->parsed()) rc = run_update(o, false);
  if (download->parsed()) rc = run_update(o, true);
  curl_global_cleanup();
  return rc;
}
