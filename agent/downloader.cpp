#include "agent/downloader.h"

#include "agent/tuf_io.h"
#include "tuf/client.h"
#include "tuf/updater.h"

namespace tranche::agent {

namespace {

core::AgentEvent event_of(core::AgentEvent::Kind kind, const core::Version& v, std::string detail = {}) {
  core::AgentEvent e;
  e.kind = kind;
  e.version = v;
  e.detail = std::move(detail);
  return e;
}

}  // namespace

Downloader::Downloader(const AgentSettings& settings, Clock& clock, FileSystem& fs, HttpClient& http,
                       Logger log, std::function<void()> done)
    : settings_(settings), clock_(clock), fs_(fs), http_(http), log_(std::move(log)), done_(std::move(done)) {}

Downloader::~Downloader() { cancel(); }

void Downloader::start(const core::Version& version, std::vector<TargetRef> targets) {
  cancel();
  log_("downloading " + version.to_string() + " (download thread)");
  thread_ = std::thread([this, version, targets = std::move(targets)] {
    DownloadResult r = run(version, targets);
    {
      std::lock_guard lock(mu_);
      result_ = std::move(r);
    }
    done_();
  });
}

void Downloader::cancel() {
  if (!thread_.joinable()) return;
  cancel_ = true;
  thread_.join();
  cancel_ = false;
  std::lock_guard lock(mu_);
  result_.reset();
}

std::optional<DownloadResult> Downloader::take() {
  std::optional<DownloadResult> done;
  {
    std::lock_guard lock(mu_);
    done.swap(result_);
  }
  if (done && thread_.joinable()) thread_.join();
  return done;
}

DownloadResult Downloader::run(const core::Version& version, const std::vector<TargetRef>& targets) {
  using Ev = core::AgentEvent::Kind;
  DownloadResult result{event_of(Ev::kDownloaded, version), {}};
  auto fail = [&](const std::string& why) {
    log_("download of " + version.to_string() + " failed: " + why);
    return DownloadResult{event_of(Ev::kDownloadFailed, version, why), {}};
  };
  auto cancelled = [this] { return cancel_.load(); };
  const std::string data = settings_.data_dir;
  auto now = tuf_update_start_time(fs_, data + "/tuf", clock_.now());
  if (!now) return fail(now.error().to_string());
  HttpFetcher fetcher(http_, settings_.tuf_url + "/metadata/", settings_.tuf_url + "/targets/", log_);
  fetcher.timeout_ms = settings_.http_timeout;
  fetcher.cancelled = cancelled;
  DirectoryMetadataStore store(fs_, data + "/tuf");
  auto updater = tuf::Updater::create(fetcher, store, *now);
  if (!updater) return fail("TUF: " + updater.error().to_string());
  if (auto st = updater->refresh(); !st) return fail("TUF refresh: " + st.error().to_string());
  const bool consistent = updater->trusted().root().body.consistent_snapshot;
  for (const TargetRef& t : targets) {
    auto path = tuf::TargetPath::parse(t.path);
    if (!path) return fail("target '" + t.path + "': " + path.error().to_string());
    auto info = updater->get_target_info(*path);
    if (!info) return fail("target '" + t.path + "' is not signed: " + info.error().to_string());
    if (static_cast<std::size_t>(info->length) > settings_.max_target_bytes) {
      return fail("target '" + t.path + "': " + std::to_string(info->length) + " bytes, over download.max_bytes");
    }
    const auto sha = info->hashes.find("sha256");
    if (sha == info->hashes.end()) return fail("target '" + t.path + "': no sha256 in the signed metadata");
    if (sha->second != t.sha256 || info->length != t.length) {
      log_("note: the server lists '" + t.path + "' with other length or hash than the signed metadata; the signed ones count");
    }
    result.target_info[t.path] = *info;
    const std::string part = data + "/downloads/" + sha->second + ".part";
    auto have = fs_.size(part);
    std::int64_t from = have ? *have : 0;
    if (from > info->length) {
      (void)fs_.remove(part);
      from = 0;
    }
    if (from == info->length) continue;  // complete from an earlier run; verified next
    HttpRequest req;
    req.url = settings_.tuf_url + "/targets/" + tuf::target_remote_path(*path, *info, consistent);
    req.timeout_ms = settings_.download_timeout;
    req.cancelled = cancelled;
    req.max_bytes = static_cast<std::size_t>(info->length - from);
    if (from > 0) req.range_from = from;
    bool first = true;
    // Appends go around the step observer: how many there are depends on the network.
    req.sink = [&, part](long status, std::string_view bytes) -> core::Status {  // NOLINT(google-runtime-int)
      if (first) {
        first = false;
        if (from > 0 && status == 200) {
          log_("the server ignored the Range request: downloading '" + t.path + "' from the start");
          if (auto st = fs_.write(part, ""); !st) return st;
          from = 0;
        }
      }
      return fs_.append(part, bytes);
    };
    if (from > 0) log_("resuming '" + t.path + "' at byte " + std::to_string(from));
    // A resumed answer of 200 may be the whole file: allow the full length then.
    if (from > 0) req.max_bytes = static_cast<std::size_t>(info->length);
    auto r = http_.send(req);
    if (!r) return fail(r.error().to_string());
    if (auto st = http_status_error(req.url, r->status); !st) return fail(st.error().to_string());
    auto got = fs_.size(part);
    if (!got || *got != info->length) {
      return fail("target '" + t.path + "': got " + std::to_string(got ? *got : 0) + " of " +
                  std::to_string(info->length) + " bytes (truncated; resumed at the next try)");
    }
    (void)fs_.fsync(part);
    log_("downloaded '" + t.path + "' (" + std::to_string(info->length) + " bytes)");
  }
  return result;
}

}  // namespace tranche::agent
