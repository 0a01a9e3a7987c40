#include "agent/tuf_io.h"

#include "tuf/metadata.h"

namespace tranche::agent {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {
std::string with_slash(std::string url) {
  if (url.empty() || url.back() != '/') url += '/';
  return url;
}
constexpr const char* kLatestTimeFile = "latest-known-time";
}  // namespace

Status http_status_error(const std::string& url, long status) {  // NOLINT(google-runtime-int)
  if (status / 100 == 2) return core::Ok{};
  if (status == 403 || status == 404) {
    return make_error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(status));
  }
  return make_error(ErrorCode::kInvalidArgument, url + ": HTTP " + std::to_string(status));
}

HttpFetcher::HttpFetcher(HttpClient& http, std::string metadata_url, std::string target_url,
                         std::function<void(const std::string&)> log)
    : http_(&http),
      metadata_url_(with_slash(std::move(metadata_url))),
      target_url_(with_slash(std::move(target_url))),
      log_(std::move(log)) {}

Result<std::string> HttpFetcher::fetch_metadata(const std::string& name, std::size_t max_bytes) {
  return get(metadata_url_ + name, max_bytes);
}

Result<std::string> HttpFetcher::fetch_target(const std::string& path, std::size_t max_bytes) {
  return get(target_url_ + path, max_bytes);
}

Result<std::string> HttpFetcher::get(const std::string& url, std::size_t max_bytes) {
  HttpRequest req;
  req.url = url;
  req.max_bytes = max_bytes;
  req.timeout_ms = timeout_ms;
  req.cancelled = cancelled;
  auto r = http_->send(req);
  if (!r) {
    if (log_) {
      std::string_view why = r.error().message;  // the transport's name the URL already
      if (why.rfind(url + ": ", 0) == 0) why.remove_prefix(url.size() + 2);
      log_("GET " + url + ": " + std::string(why));
    }
    if (r.error().code == ErrorCode::kTooLarge) {
      return make_error(ErrorCode::kTooLarge, url + ": longer than the " +
                                                  std::to_string(max_bytes) +
                                                  "-byte limit (endless-data attack?)");
    }
    return r.error();
  }
  if (log_) {
    log_("GET " + url + ": HTTP " + std::to_string(r->status) + ", " +
         std::to_string(r->body.size()) + " bytes");
  }
  if (auto st = http_status_error(url, r->status); !st) return st.error();
  return std::move(r->body);
}

Result<std::string> DirectoryMetadataStore::load(const std::string& name, std::size_t max_bytes) {
  return fs_->read(dir_ + "/" + name, max_bytes);
}

Status DirectoryMetadataStore::store(const std::string& name, std::string_view bytes) {
  return write_durably(*fs_, dir_ + "/" + name, bytes);
}

Status DirectoryMetadataStore::remove(const std::string& name) {
  if (auto st = fs_->remove(dir_ + "/" + name); !st) return st;
  return fs_->fsync(dir_);
}

Result<core::TimeMs> tuf_update_start_time(FileSystem& fs, const std::string& dir,
                                           core::TimeMs clock_now) {
  core::TimeMs now = clock_now;
  const std::string path = dir + "/" + kLatestTimeFile;
  auto recorded = fs.read(path, 64);
  if (recorded) {
    std::string text = *recorded;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    auto t = tuf::parse_utc_time(text);
    if (!t) return t.error().with_context(path + ": ");
    if (*t > now) now = *t;
  } else if (recorded.error().code != ErrorCode::kNotFound) {
    return recorded.error();
  }
  // Rewritten at every refresh (refreshes are rare: one per offered version).
  if (auto st = write_durably(fs, path, tuf::format_utc_time(now) + "\n"); !st) return st.error();
  return now;
}

}  // namespace tranche::agent
