#include "agent/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

#include "agent/server_durations.h"
#include "agent/tuf_io.h"
#include "config/content_files.h"
#include "core/contract.h"
#include "core/time_math.h"
#include "tuf/canonical_json.h"
#include "tuf/client.h"
#include "tuf/updater.h"

namespace tranche::agent {

namespace json = boost::json;
using core::AgentAction;
using core::AgentEvent;
using core::AgentPhase;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::Version;
using Act = AgentAction::Kind;
using Ev = AgentEvent::Kind;

namespace {

// The signal handlers' only state: a flag each and the pipe that wakes poll().
volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_child = 0;
int g_signal_fd = -1;  // write end of the running Agent's self-pipe
thread_local bool t_checkin_thread = false;

void poke_signal_fd() {
  if (g_signal_fd >= 0) {
    const char c = 's';
    [[maybe_unused]] const ssize_t n = ::write(g_signal_fd, &c, 1);
  }
}

std::string version_text(const std::optional<Version>& v) {
  return v ? v->to_string() : std::string("shipped");
}

AgentEvent make_event(Ev kind, std::optional<Version> v = std::nullopt, std::string detail = {},
                      bool permanent = false) {
  AgentEvent e;
  e.kind = kind;
  e.version = std::move(v);
  e.detail = std::move(detail);
  e.permanent = permanent;
  return e;
}

constexpr std::size_t kMaxMetadataAnswerBytes = 1 << 20;

}  // namespace

void Agent::request_stop_from_signal() {
  g_stop = 1;
  poke_signal_fd();
}

void Agent::child_exited_from_signal() {
  g_child = 1;
  poke_signal_fd();
}

Agent::Agent(AgentSettings settings, AgentPorts ports)
    : s_(std::move(settings)), p_(ports), data_(s_.data_dir), core_config_(s_.trial) {
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("tranche-agent: pipe2");
    std::abort();
  }
  g_signal_fd = wake_pipe_[1];
}

Agent::~Agent() {
  stopping_ = true;
  cv_.notify_all();
  cancel_download();
  if (checkin_thread_.joinable()) checkin_thread_.join();
  g_signal_fd = -1;
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

void Agent::log(const std::string& line) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::fprintf(stderr, "%s.%03lld tranche-agent[%s]: %s\n", stamp, static_cast<long long>(ms),  // NOLINT
               s_.device_id.c_str(), line.c_str());
  std::fflush(stderr);
}

void Agent::on_step(std::string_view op, const std::string& path) {
  // The check-in thread writes the token only: not a step of an update.
  if (t_checkin_thread) return;
  const std::uint64_t n = ++steps_;
  std::string rel = path;
  if (rel.rfind(data_ + "/", 0) == 0) rel = rel.substr(data_.size() + 1);
  if (s_.step_log || s_.pause_after_step != 0) {
    // The record is the main thread's; the download thread works in phase downloading.
    const std::string where = std::this_thread::get_id() == main_thread_
                                  ? "phase " + std::string(core::to_string(stored_.record.phase)) +
                                        (in_list_ ? ", in list" : "")
                                  : "phase downloading, download thread";
    log("step " + std::to_string(n) + ": " + std::string(op) + " " + rel + " (" + where + ")");
  }
  if (s_.pause_after_step != 0 && n == s_.pause_after_step) {
    log("paused after step " + std::to_string(n) + " (debug.pause_after_step)");
    while (true) ::pause();  // until SIGKILL: the crash-consistency test's kill point
  }
}

std::int64_t Agent::jittered(std::int64_t ms) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> d(1.0 - s_.checkin_jitter, 1.0 + s_.checkin_jitter);
  return std::max<std::int64_t>(1, core::scale_duration(ms, d(rng)));
}

// ---- start -----------------------------------------------------------------------

Status Agent::init() {
  for (const char* d : {"", "/slots", "/slots/a", "/slots/b", "/downloads", "/tuf"}) {
    if (auto st = p_.fs.make_dirs(data_ + d); !st) return st;
  }
  auto rec = load_record(p_.fs, data_ + "/record.json");
  if (rec) {
    stored_ = *rec;
  } else if (rec.error().code != ErrorCode::kNotFound) {
    return rec.error();
  }
  events_ = std::make_unique<EventQueue>(p_.fs, data_ + "/events.json");
  if (auto st = events_->load(); !st) return st;
  if (auto tok = p_.fs.read(data_ + "/token", 4096)) {
    std::string t = *tok;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    std::lock_guard lock(mu_);
    token_ = t;
  }
  // The trusted root: copied in at the first start only (afterwards the chain of
  // roots the updater verified is what counts).
  if (auto have = p_.fs.size(data_ + "/tuf/root.json"); !have && have.error().code == ErrorCode::kNotFound) {
    auto root = p_.fs.read(s_.tuf_root, 512'000);
    if (!root) return root.error().with_context("tuf.root: ");
    if (auto st = write_durably(p_.fs, data_ + "/tuf/root.json", *root); !st) return st;
  }
  if (s_.contract_check) {
    auto iface = config::load_consumer_interface_file(s_.interface_file);
    if (!iface) return iface.error();
    interface_ = *iface;
  }
  return core::Ok{};
}

bool Agent::boot_was_clean() {
  const bool busy = p_.fs.size(data_ + "/busy").ok();
  if (busy) {
    log("start: the last run stopped in the middle of an action list (unclean)");
    return false;
  }
  auto current = p_.fs.read(s_.boot_id_file, 256);
  auto last = p_.fs.read(data_ + "/boot_id", 256);
  const bool clean_stop = p_.fs.size(data_ + "/clean-stop").ok();
  if (current && last && *current != *last && !clean_stop) {
    log("start: the machine restarted since the last run without a clean stop (unclean)");
    return false;
  }
  return true;
}

Status Agent::mark_clean_boot() {
  auto current = p_.fs.read(s_.boot_id_file, 256);
  auto last = p_.fs.read(data_ + "/boot_id", 256);
  if (current && (!last || *last != *current)) {
    if (auto st = write_durably(p_.fs, data_ + "/boot_id", *current); !st) return st;
  }
  if (p_.fs.size(data_ + "/clean-stop").ok()) {
    if (auto st = p_.fs.remove(data_ + "/clean-stop"); !st) return st;
    return p_.fs.fsync(data_);
  }
  return core::Ok{};
}

// ---- the reducer loop ------------------------------------------------------------

void Agent::set_running_version() {
  const auto running = stored_.record.running();
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    const std::string now_running = running ? running->to_string() : "";
    changed = now_running != running_version_;
    running_version_ = now_running;
    health_phase_ = std::string(core::to_string(stored_.record.phase));
  }
  // The server hears at once what runs now (a held check-in is abandoned); a
  // trial that passes wakes the check-in too (the acknowledgement the gate
  // counts, core/evidence.h).
  if (changed) wake_checkin();
}

void Agent::apply(const AgentEvent& first) {
  std::deque<AgentEvent> queue{first};
  while (!queue.empty()) {
    const AgentEvent event = queue.front();
    queue.pop_front();
    const core::TimeMs now = p_.clock.now();
    auto step = core::agent_step(core_config_, stored_.record, event, now);
    if (!step) {
      log("event " + std::string(core::to_string(event.kind)) + " refused: " + step.error().to_string());
      continue;
    }
    log(step->reason);
    StoredRecord next = stored_;
    next.record = step->record;
    if (!next.record.candidate) next.candidate_targets.clear();
    if (next.record.phase == AgentPhase::kTrial || next.record.phase == AgentPhase::kActivating) {
      if (step->recheck_at) trial_deadline_ = *step->recheck_at;
    } else {
      trial_deadline_.reset();
    }
    if (next.record.phase == AgentPhase::kCommitted && next.record.unclean_boots > 0) {
      if (step->recheck_at) stayed_up_at_ = *step->recheck_at;
    } else {
      stayed_up_at_.reset();
    }
    const bool has_effects = !step->actions.empty();
    if (has_effects) {
      // The marker that makes a stop in the middle of this list unclean.
      if (auto st = p_.fs.write(data_ + "/busy", ""); st) {
        (void)p_.fs.fsync(data_);
      }
      in_list_ = true;
    }
    std::vector<AgentEvent> follow_ups;
    for (const AgentAction& a : step->actions) {
      if (auto e = execute(a, next)) follow_ups.push_back(std::move(*e));
    }
    stored_ = next;
    if (has_effects) {
      in_list_ = false;
      (void)p_.fs.remove(data_ + "/busy");
      (void)p_.fs.fsync(data_);
    }
    if (download_next_) {
      // Started once the list's steps are done, so the steps keep one order.
      auto [version, targets] = std::move(*download_next_);
      download_next_.reset();
      start_download(version, std::move(targets));
    }
    set_running_version();
    for (auto& e : follow_ups) queue.push_back(std::move(e));
  }
  if (!events_->pending().empty()) next_event_post_ = std::min(next_event_post_, p_.clock.now());
}

std::optional<AgentEvent> Agent::execute(const AgentAction& a, const StoredRecord& next) {
  switch (a.kind) {
    case Act::kPersist: {
      auto st = save_record(p_.fs, data_ + "/record.json", next);
      if (!st) {
        // Nothing after a persist may run without it: stop, and let the next
        // start (unclean: busy is set) sort it out.
        log("FATAL: cannot persist the record: " + st.error().to_string());
        std::_Exit(3);
      }
      stored_ = next;
      return std::nullopt;
    }
    case Act::kDownload:
      if (next.candidate_targets.empty()) {
        // After a restart: the files of the candidate come with the next answer.
        download_waiting_for_targets_ = true;
        wake_checkin();
        return std::nullopt;
      }
      stored_.candidate_targets = next.candidate_targets;
      download_next_.emplace(*a.version, next.candidate_targets);
      return std::nullopt;
    case Act::kVerify:
      return verify(*a.version);
    case Act::kWriteSlot: {
      auto st = write_slot(*a.version);
      if (!st) {
        log("writing the inactive slot failed: " + st.error().to_string() + "; retrying in 10 s");
        retry_slot_write_at_ = core::saturating_add(p_.clock.now(), 10 * core::kSecond);
        return std::nullopt;
      }
      return make_event(Ev::kSlotWritten);
    }
    case Act::kActivate: {
      auto st = point_active_at(a.version);
      if (!st) {
        log("FATAL: cannot switch the active slot: " + st.error().to_string());
        std::_Exit(3);
      }
      return make_event(Ev::kActivated);
    }
    case Act::kRevert: {
      auto st = point_active_at(a.version);
      if (!st) log("ERROR: cannot point the active slot at " + version_text(a.version) + ": " + st.error().to_string());
      return std::nullopt;
    }
    case Act::kStartService:
      start_service(a.version);
      return std::nullopt;
    case Act::kStopService:
      stop_service();
      return std::nullopt;
    case Act::kReport:
      report(a);
      return std::nullopt;
  }
  return std::nullopt;
}

// ---- downloading and verifying ---------------------------------------------------

void Agent::start_download(const Version& version, std::vector<TargetRef> targets) {
  cancel_download();
  log("downloading " + version.to_string() + " (download thread)");
  download_thread_ = std::thread([this, version, targets = std::move(targets)] {
    DownloadResult r = download(version, targets);
    {
      std::lock_guard lock(mu_);
      download_done_ = std::move(r);
    }
    notify_main();
  });
}

void Agent::cancel_download() {
  if (!download_thread_.joinable()) return;
  download_cancel_ = true;
  download_thread_.join();
  download_cancel_ = false;
  std::lock_guard lock(mu_);
  download_done_.reset();
}

void Agent::finish_download() {
  std::optional<DownloadResult> done;
  {
    std::lock_guard lock(mu_);
    done.swap(download_done_);
  }
  if (!done) return;
  if (download_thread_.joinable()) download_thread_.join();
  if (stored_.record.phase != AgentPhase::kDownloading || stored_.record.candidate != done->event.version) {
    log("the download of " + version_text(done->event.version) + " ended after the agent moved on: ignored");
    return;
  }
  target_info_ = std::move(done->target_info);
  apply(done->event);
}

// The download thread: reads only settings and its arguments, writes only
// DATA/tuf and DATA/downloads (the main thread touches neither meanwhile).
Agent::DownloadResult Agent::download(const Version& version, const std::vector<TargetRef>& targets) {
  DownloadResult result{make_event(Ev::kDownloaded, version), {}};
  auto fail = [&](const std::string& why) {
    log("download of " + version.to_string() + " failed: " + why);
    return DownloadResult{make_event(Ev::kDownloadFailed, version, why), {}};
  };
  auto cancelled = [this] { return download_cancel_.load(); };
  auto now = tuf_update_start_time(p_.fs, data_ + "/tuf", p_.clock.now());
  if (!now) return fail(now.error().to_string());
  HttpFetcher fetcher(p_.download_http, s_.tuf_url + "/metadata/", s_.tuf_url + "/targets/",
                      [this](const std::string& l) { log(l); });
  fetcher.timeout_ms = s_.http_timeout;
  fetcher.cancelled = cancelled;
  DirectoryMetadataStore store(p_.fs, data_ + "/tuf");
  auto updater = tuf::Updater::create(fetcher, store, *now);
  if (!updater) return fail("TUF: " + updater.error().to_string());
  if (auto st = updater->refresh(); !st) return fail("TUF refresh: " + st.error().to_string());
  const bool consistent = updater->trusted().root().body.consistent_snapshot;
  for (const TargetRef& t : targets) {
    auto path = tuf::TargetPath::parse(t.path);
    if (!path) return fail("target '" + t.path + "': " + path.error().to_string());
    auto info = updater->get_target_info(*path);
    if (!info) return fail("target '" + t.path + "' is not signed: " + info.error().to_string());
    if (static_cast<std::size_t>(info->length) > s_.max_target_bytes) {
      return fail("target '" + t.path + "': " + std::to_string(info->length) + " bytes, over download.max_bytes");
    }
    const auto sha = info->hashes.find("sha256");
    if (sha == info->hashes.end()) return fail("target '" + t.path + "': no sha256 in the signed metadata");
    if (sha->second != t.sha256 || info->length != t.length) {
      log("note: the server lists '" + t.path + "' with other length or hash than the signed metadata; the signed ones count");
    }
    result.target_info[t.path] = *info;
    const std::string part = data_ + "/downloads/" + sha->second + ".part";
    auto have = p_.fs.size(part);
    std::int64_t from = have ? *have : 0;
    if (from > info->length) {
      (void)p_.fs.remove(part);
      from = 0;
    }
    if (from == info->length) continue;  // complete from an earlier run; verified next
    HttpRequest req;
    req.url = s_.tuf_url + "/targets/" + tuf::target_remote_path(*path, *info, consistent);
    req.timeout_ms = s_.download_timeout;
    req.cancelled = cancelled;
    req.max_bytes = static_cast<std::size_t>(info->length - from);
    if (from > 0) req.range_from = from;
    bool first = true;
    // Appends go around the step observer: how many there are depends on the network.
    req.sink = [&, part](long status, std::string_view bytes) -> Status {  // NOLINT(google-runtime-int)
      if (first) {
        first = false;
        if (from > 0 && status == 200) {
          log("the server ignored the Range request: downloading '" + t.path + "' from the start");
          if (auto st = p_.fs.write(part, ""); !st) return st;
          from = 0;
        }
      }
      return p_.fs.append(part, bytes);
    };
    if (from > 0) log("resuming '" + t.path + "' at byte " + std::to_string(from));
    // A resumed answer of 200 may be the whole file: allow the full length then.
    if (from > 0) req.max_bytes = static_cast<std::size_t>(info->length);
    auto r = p_.download_http.send(req);
    if (!r) return fail(r.error().to_string());
    if (auto st = http_status_error(req.url, r->status); !st) return fail(st.error().to_string());
    auto got = p_.fs.size(part);
    if (!got || *got != info->length) {
      return fail("target '" + t.path + "': got " + std::to_string(got ? *got : 0) + " of " +
                  std::to_string(info->length) + " bytes (truncated; resumed at the next try)");
    }
    (void)p_.fs.fsync(part);
    log("downloaded '" + t.path + "' (" + std::to_string(info->length) + " bytes)");
  }
  return result;
}

AgentEvent Agent::verify(const Version& version) {
  auto fail = [&](const std::string& why, bool permanent) {
    log("verification of " + version.to_string() + " failed: " + why);
    return make_event(Ev::kVerifyFailed, version, why, permanent);
  };
  Verified v{version, {}};
  for (const TargetRef& t : stored_.candidate_targets) {
    const auto it = target_info_.find(t.path);
    if (it == target_info_.end()) return fail("no signed metadata for '" + t.path + "'", false);
    const tuf::TargetFile& info = it->second;
    const std::string part = data_ + "/downloads/" + info.hashes.at("sha256") + ".part";
    auto bytes = p_.fs.read(part, static_cast<std::size_t>(info.length));
    if (!bytes) {
      (void)p_.fs.remove(part);
      return fail(bytes.error().to_string(), false);
    }
    // TUF 5.7.3: length and every hash the targets role signed.
    if (auto st = tuf::verify_target(info, *bytes, "target '" + t.path + "'"); !st) {
      (void)p_.fs.remove(part);
      return fail(st.error().to_string(), false);
    }
    // The content contract against what the service really supplies.
    if (interface_) {
      auto bundle = config::parse_content_bundle(*bytes, t.path);
      if (!bundle) return fail("content: " + bundle.error().to_string(), true);
      const auto violations = core::check_contract(*interface_, *bundle);
      if (!violations.empty()) {
        return fail("content contract: " + violations.front().message +
                        (violations.size() > 1 ? " (and " + std::to_string(violations.size() - 1) + " more)" : ""),
                    true);
      }
    }
    auto path = tuf::TargetPath::parse(t.path);
    v.files.emplace_back(tuf::target_local_name(*path), std::move(*bytes));
  }
  verified_ = std::move(v);
  return make_event(Ev::kVerified, version);
}

// ---- slots -------------------------------------------------------------------------

std::string Agent::slot_dir(const std::string& name) const {
  return data_ + "/slots/" + name;
}

std::optional<std::string> Agent::slot_holding(const Version& v) {
  for (const char* name : {"a", "b"}) {
    auto text = p_.fs.read(slot_dir(name) + "/VERSION", 64);
    if (!text) continue;
    std::string t = *text;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    auto parsed = Version::parse(t);
    if (parsed && *parsed == v) return std::string(name);
  }
  return std::nullopt;
}

Status Agent::write_slot(const Version& version) {
  if (!verified_ || verified_->version != version) {
    return make_error(ErrorCode::kInvalidArgument, "no verified files of " + version.to_string());
  }
  // The slot that does not hold last-known-good (nor what is active).
  std::string target = "b";
  const auto good_slot = stored_.record.good ? slot_holding(*stored_.record.good) : std::nullopt;
  if (good_slot) {
    target = *good_slot == "a" ? "b" : "a";
  } else if (auto link = p_.fs.readlink(data_ + "/active"); link && *link == "slots/b") {
    target = "a";
  } else {
    target = "a";
  }
  const std::string dir = slot_dir(target);
  // VERSION goes first and comes back last: a half-written slot names no version.
  if (auto st = p_.fs.remove(dir + "/VERSION"); !st) return st;
  if (auto st = p_.fs.fsync(dir); !st) return st;
  if (auto names = p_.fs.list(dir)) {
    for (const auto& n : *names) {
      if (auto st = p_.fs.remove(dir + "/" + n); !st) return st;
    }
  }
  for (const auto& [name, bytes] : verified_->files) {
    if (auto st = p_.fs.write(dir + "/" + name, bytes); !st) return st;
    if (auto st = p_.fs.fsync(dir + "/" + name); !st) return st;
  }
  if (auto st = write_durably(p_.fs, dir + "/VERSION", version.to_string() + "\n"); !st) return st;
  // The download is in the slot now.
  for (const auto& [path, info] : target_info_) {
    (void)p_.fs.remove(data_ + "/downloads/" + info.hashes.at("sha256") + ".part");
  }
  log("wrote " + version.to_string() + " into slot " + target);
  return p_.fs.fsync(data_ + "/downloads");
}

Status Agent::point_active_at(const std::optional<Version>& version) {
  const std::string active = data_ + "/active";
  if (!version) {
    if (auto st = p_.fs.remove(active); !st) return st;
    return p_.fs.fsync(data_);
  }
  const auto slot = slot_holding(*version);
  if (!slot) return make_error(ErrorCode::kNotFound, "no slot holds " + version->to_string());
  const std::string target = "slots/" + *slot;
  if (auto link = p_.fs.readlink(active); link && *link == target) return core::Ok{};
  // A new symlink renamed over the old one: the pointer moves atomically.
  const std::string tmp = data_ + "/active.tmp";
  if (auto st = p_.fs.remove(tmp); !st) return st;
  if (auto st = p_.fs.symlink(target, tmp); !st) return st;
  if (auto st = p_.fs.rename(tmp, active); !st) return st;
  if (auto st = p_.fs.fsync(data_); !st) return st;
  log("active slot: " + target + " (" + version->to_string() + ")");
  return core::Ok{};
}

// ---- the service -------------------------------------------------------------------

std::string Agent::substitute(const std::string& arg, const std::string& slot,
                              const std::string& version) const {
  std::string out = arg;
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"{slot}", slot},
                                   {"{data}", data_},
                                   {"{version}", version}}) {
    for (auto pos = out.find(key); pos != std::string::npos; pos = out.find(key, pos + value.size())) {
      out.replace(pos, key.size(), value);
    }
  }
  return out;
}

void Agent::stop_service() {
  if (service_pid_ <= 0) return;
  p_.process.kill(service_pid_, SIGTERM);
  const core::TimeMs deadline = core::saturating_add(p_.clock.now(), s_.stop_timeout);
  while (!p_.process.try_wait(service_pid_)) {
    if (p_.clock.now() >= deadline) {
      p_.process.kill(service_pid_, SIGKILL);
      while (!p_.process.try_wait(service_pid_)) ::usleep(10'000);
      break;
    }
    ::usleep(10'000);
  }
  log("stopped the service (" + version_text(service_version_) + ")");
  service_pid_ = -1;
}

void Agent::start_service(const std::optional<Version>& version) {
  stop_service();
  std::string slot;
  if (version) {
    const auto name = slot_holding(*version);
    if (!name) {
      log("ERROR: no slot holds " + version->to_string() + ": not starting the service");
      return;
    }
    slot = slot_dir(*name);
  } else {
    slot = s_.shipped_slot;
    if (slot.empty()) {
      log("nothing installed and no service.shipped_slot: the service is not started");
      service_version_.reset();
      return;
    }
  }
  // A crash-looping stable version restarts at most once a second. Clamped: a
  // wall clock stepped back would otherwise make the wait hours long.
  const core::DurationMs since =
      std::clamp<core::DurationMs>(core::saturating_sub(p_.clock.now(), service_started_at_), 0, core::kSecond);
  if (service_started_at_ != 0 && since < core::kSecond) ::usleep(static_cast<useconds_t>((core::kSecond - since) * 1000));
  std::vector<std::string> argv;
  for (const auto& a : s_.service_command) argv.push_back(substitute(a, slot, version_text(version)));
  auto pid = p_.process.spawn(argv, data_ + "/service.log");
  if (!pid) {
    log("ERROR: cannot start the service: " + pid.error().to_string());
    return;
  }
  service_pid_ = *pid;
  service_version_ = version;
  service_started_at_ = p_.clock.now();
  next_health_at_ = core::saturating_add(service_started_at_, s_.health_interval);
  log("started the service on " + version_text(version) + " (pid " + std::to_string(*pid) + ")");
  on_step("start_service", slot);
}

// ---- reports -------------------------------------------------------------------------

void Agent::report_refusal(const std::string& reason, const core::Version& offered, const std::string& message) {
  if (refused_ && refused_->first == reason && refused_->second == offered) return;
  refused_.emplace(reason, offered);
  DeviceEvent e;
  e.channel = s_.channel;
  e.version = offered.to_string();
  e.kind = std::string(core::to_string(core::DeviceEventKind::kOfferRefused));
  e.reason = reason;
  e.message = message;
  log("report " + e.kind + " " + e.version + " (" + reason + "): " + message);
  if (auto st = events_->push(std::move(e)); !st) log("ERROR: cannot queue the event: " + st.error().to_string());
  if (!events_->pending().empty()) next_event_post_ = std::min(next_event_post_, p_.clock.now());
}

void Agent::report(const AgentAction& a) {
  DeviceEvent e;
  e.channel = s_.channel;
  e.version = version_text(a.version);
  e.message = a.detail;
  using R = AgentAction::Report;
  if (a.report == R::kRejected && a.version) {
    // A version that failed here before, offered again (rate-limited by rejected_).
    return report_refusal("known_bad", *a.version, a.detail);
  }
  const auto kind = core::device_event_of(a.report);
  if (!kind) {
    // The server learns a commit from the next check-in's versions, and has
    // marked a version failed here already when the agent rejects it.
    log("report " + std::string(core::to_string(a.report)) + " " + e.version + ": " + a.detail);
    return;
  }
  e.kind = std::string(core::to_string(*kind));
  if (a.report == R::kInstalled) retry_.reset();
  if (a.report == R::kDownloadFailed) {
    // Not before the backoff: a hostile or broken server gets no tight loop.
    const core::DurationMs backoff = core::next_backoff(
        retry_ && a.version && retry_->version == *a.version ? retry_->backoff : 0, s_.retry_backoff,
        s_.max_backoff);
    if (a.version) {
      retry_ = Retry{*a.version, core::saturating_add(p_.clock.now(), jittered(backoff)), backoff};
      log(a.version->to_string() + " is tried again in " + std::to_string(backoff / 1000) +
          " s at the earliest (download.retry_backoff)");
    }
  }
  if ((a.report == R::kCrash || a.report == R::kRolledBack) && last_exit_) {
    e.exit_code = last_exit_->exit_code;
    e.signal = last_exit_->signal;
  }
  if (a.version == std::nullopt) e.version.clear();
  log("report " + e.kind + " " + e.version + ": " + a.detail);
  if (auto st = events_->push(std::move(e)); !st) log("ERROR: cannot queue the event: " + st.error().to_string());
}

void Agent::post_events() {
  std::string token;
  {
    std::lock_guard lock(mu_);
    token = token_;
  }
  if (token.empty() || events_->pending().empty()) return;
  HttpRequest req;
  req.method = "POST";
  req.url = s_.server_url + "/v1/events";
  req.body = events_->upload_body(100);
  req.bearer_token = token;
  req.timeout_ms = std::min<std::int64_t>(s_.http_timeout, 10 * core::kSecond);
  req.max_bytes = 64 * 1024;
  const std::int64_t last_seq =
      events_->pending()[std::min<std::size_t>(100, events_->pending().size()) - 1].seq;
  auto r = p_.http.send(req);
  bool ok = false;
  const std::size_t before = events_->pending().size();
  if (r && r->status == 200) {
    ok = events_->acknowledge(last_seq).ok();
  } else if (r && r->status == 409 && r->body.find("replayed") != std::string::npos) {
    // "last accepted seq is N": those are in; send what follows. Only if that
    // takes some off the queue: a server that keeps naming a seq before them
    // would otherwise get the same post again at once, in a tight loop.
    const auto pos = r->body.find("last accepted seq is ");
    if (pos != std::string::npos) {
      const std::int64_t n = std::strtoll(r->body.c_str() + pos + 21, nullptr, 10);
      ok = events_->acknowledge(n).ok() && events_->pending().size() < before;
    }
  }
  if (ok) {
    event_backoff_ms_ = 0;
    next_event_post_ = events_->pending().empty() ? INT64_MAX : p_.clock.now();
  } else {
    log("posting events failed: " + (r ? "HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 200) : r.error().to_string()));
    event_backoff_ms_ = core::next_backoff(event_backoff_ms_, core::kSecond, s_.max_backoff);
    next_event_post_ = core::saturating_add(p_.clock.now(), jittered(event_backoff_ms_));
  }
}

// ---- the check-in thread -------------------------------------------------------------

void Agent::wake_checkin() {
  {
    std::lock_guard lock(mu_);
    checkin_now_ = true;
  }
  cv_.notify_all();
}

void Agent::notify_main() {
  const char c = 'c';
  [[maybe_unused]] const ssize_t n = ::write(wake_pipe_[1], &c, 1);
}

bool Agent::enroll() {
  json::object tags;
  for (const auto& [k, v] : s_.tags) tags[k] = v;
  HttpRequest req;
  req.method = "POST";
  req.url = s_.server_url + "/v1/enroll";
  req.body = json::serialize(json::object{{"tenant", s_.tenant},
                                          {"enrollment_key", s_.enrollment_key},
                                          {"device_id", s_.device_id},
                                          {"tags", tags},
                                          {"utc_offset_minutes", s_.utc_offset_minutes}});
  req.timeout_ms = s_.http_timeout;
  req.max_bytes = 64 * 1024;
  req.cancelled = [this] { return stopping_.load(); };
  auto r = p_.checkin_http.send(req);
  if (!r || r->status != 201) {
    log("enrollment failed: " + (r ? "HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 300) : r.error().to_string()));
    return false;
  }
  auto parsed = tuf::parse_document(r->body, kMaxMetadataAnswerBytes);
  const json::value v = parsed ? std::move(*parsed) : json::value();
  const json::value* tok = v.is_object() ? v.as_object().if_contains("device_token") : nullptr;
  if (tok == nullptr || !tok->is_string()) {
    log("enrollment: malformed answer");
    return false;
  }
  const std::string token(tok->as_string());
  // The check-in thread writes only this file, with the raw file system: a token
  // is not a step of an update.
  if (auto st = write_durably(p_.fs, data_ + "/token", token + "\n", true); !st) {
    log("cannot store the device token: " + st.error().to_string());
    return false;
  }
  std::lock_guard lock(mu_);
  token_ = token;
  log("enrolled as " + s_.device_id);
  return true;
}

std::optional<Agent::CheckinAnswer> Agent::checkin(std::int64_t* ask_again_ms) {
  std::string token, running, phase;
  {
    std::lock_guard lock(mu_);
    token = token_;
    running = running_version_;
    phase = health_phase_;
  }
  json::object versions;
  if (!running.empty()) versions[s_.channel] = running;
  json::object body{{"versions", versions}, {"health", json::object{{"phase", phase}}}};
  const std::int64_t wait_s = s_.long_poll / 1000;
  if (wait_s > 0) body["wait_s"] = wait_s;
  HttpRequest req;
  req.method = "POST";
  req.url = s_.server_url + "/v1/checkin";
  req.body = json::serialize(body);
  req.bearer_token = token;
  req.timeout_ms = core::saturating_add(s_.http_timeout, core::seconds_to_ms(wait_s));
  req.max_bytes = kMaxMetadataAnswerBytes;
  // A held check-in is abandoned when the agent has news (a new version runs).
  req.cancelled = [this] {
    std::lock_guard lock(mu_);
    return stopping_.load() || checkin_now_;
  };
  auto r = p_.checkin_http.send(req);
  if (!r) {
    if (r.error().code != ErrorCode::kCancelled) log("check-in failed: " + r.error().to_string());
    return std::nullopt;
  }
  if (r->status != 200) {
    log("check-in failed: HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 300));
    return std::nullopt;
  }
  auto parsed = tuf::parse_document(r->body, kMaxMetadataAnswerBytes);
  if (!parsed || !parsed->is_object()) {
    log("check-in: malformed JSON answer" + (parsed ? std::string() : ": " + parsed.error().message));
    return std::nullopt;
  }
  const json::value& v = *parsed;
  CheckinAnswer a;
  try {
    const json::object& o = v.as_object();
    if (const auto* ask = o.if_contains("ask_again_s")) {
      // Clamped before any arithmetic: a broken proxy's 2^62 must not overflow
      // into "at once" and make a fleet hammer the server (docs/agent.md).
      if (auto ms = clamp_ask_again_s(*ask)) *ask_again_ms = *ms;
    }
    const json::value* ch = o.at("channels").as_object().if_contains(s_.channel);
    if (ch == nullptr) return a;  // nothing for this channel: keep
    const json::object& c = ch->as_object();
    a.action = std::string(c.at("action").as_string());
    if (const auto* r2 = c.if_contains("reason"); r2 && r2->is_string()) a.reason = std::string(r2->as_string());
    if (const auto* d = c.if_contains("desired"); d && d->is_string()) {
      auto ver = Version::parse(d->as_string());
      if (!ver) {
        log("check-in: bad desired version: " + ver.error().to_string());
        return std::nullopt;
      }
      a.desired = *ver;
    }
    if (const auto* rv = c.if_contains("revoked"); rv && rv->is_string()) {
      auto ver = Version::parse(rv->as_string());
      if (!ver) {
        log("check-in: bad revoked version: " + ver.error().to_string());
        return std::nullopt;
      }
      a.revoked = *ver;
    }
    if (const auto* ts = c.if_contains("targets"); ts && ts->is_array()) {
      for (const auto& t : ts->as_array()) {
        const auto& to = t.as_object();
        a.targets.push_back(TargetRef{std::string(to.at("path").as_string()),
                                      to.at("length").to_number<std::int64_t>(),
                                      std::string(to.at("sha256").as_string())});
      }
    }
  } catch (const std::exception& e) {
    log(std::string("check-in: malformed answer: ") + e.what());
    return std::nullopt;
  }
  return a;
}

void Agent::checkin_loop() {
  t_checkin_thread = true;
  std::int64_t backoff = 0;
  while (!stopping_) {
    bool have_token = false;
    {
      std::lock_guard lock(mu_);
      have_token = !token_.empty();
    }
    std::int64_t wait_ms = s_.checkin_interval;
    bool ok = false;
    if (!have_token) {
      ok = enroll();
      if (ok) {
        notify_main();  // events may go now
        continue;
      }
    } else {
      {
        std::lock_guard lock(mu_);
        checkin_now_ = false;
      }
      std::int64_t ask = s_.checkin_interval;
      auto answer = checkin(&ask);
      ok = answer.has_value();
      if (answer) {
        {
          std::lock_guard lock(mu_);
          answers_.push_back(std::move(*answer));
        }
        notify_main();
        wait_ms = ask;
      }
    }
    if (ok) {
      backoff = 0;
      wait_ms = jittered(wait_ms);
    } else {
      // Capped exponential backoff with jitter: 1 s, 2 s, ... checkin.max_backoff.
      backoff = core::next_backoff(backoff, core::kSecond, s_.max_backoff);
      wait_ms = jittered(backoff);
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stopping_.load() || checkin_now_; });
  }
}

// ---- the main loop -------------------------------------------------------------------

void Agent::handle_answer(const CheckinAnswer& a) {
  if (a.revoked) {
    // Said at every check-in while the rollout is sent back: acted on once.
    const auto& rec = stored_.record;
    const bool news = !rec.is_bad(*a.revoked) || rec.running() == a.revoked || rec.candidate == a.revoked;
    if (news) {
      log("server: " + a.revoked->to_string() + " is revoked (" + a.reason + ")");
      apply(make_event(Ev::kRevoked, a.revoked));
    }
  }
  const bool offers = a.desired && (a.action == "install" || a.action == "rollback");
  // An offer waiting for the retry backoff stands only while the server makes it.
  if (deferred_ && (!offers || a.desired != deferred_->desired)) deferred_.reset();
  if (!offers) return;
  const auto running = stored_.record.running();
  if (stored_.record.is_bad(*a.desired)) {
    // Failed here before: refused (and said so) once, not at every check-in.
    if (rejected_ == a.desired) return;
    rejected_ = a.desired;
  }
  if (download_waiting_for_targets_ && stored_.record.candidate == a.desired) {
    download_waiting_for_targets_ = false;
    stored_.candidate_targets = a.targets;
    start_download(*a.desired, a.targets);
    return;
  }
  if (running == a.desired) return;
  const auto phase = stored_.record.phase;
  if ((phase == AgentPhase::kTrial || phase == AgentPhase::kActivating) && stored_.record.candidate != a.desired &&
      !stored_.record.is_bad(*a.desired)) {
    // Leaving a trial half-way would lose what it proves (core::agent_step
    // refuses it): the server hears why the device does not move, once.
    report_refusal("trial_pending", *a.desired,
                   "offered " + a.desired->to_string() + " while " + version_text(stored_.record.candidate) +
                       " is " + std::string(core::to_string(phase)) + ": finish the trial first");
    return;
  }
  if (retry_ && retry_->version == *a.desired && p_.clock.now() < retry_->at) {
    if (!deferred_) log("server: " + a.action + " " + a.desired->to_string() + ": waiting for the retry backoff");
    deferred_ = a;  // the latest offer is taken up when the backoff ends
    return;
  }
  // The offer's files go into the record with the persist the offer causes.
  const auto before = stored_.candidate_targets;
  if (stored_.record.candidate != a.desired) stored_.candidate_targets = a.targets;
  log("server: " + a.action + " " + a.desired->to_string() + " (" + a.reason + ")");
  apply(make_event(Ev::kOffer, a.desired));
  if (stored_.record.candidate != a.desired) {
    stored_.candidate_targets = stored_.record.candidate ? before : std::vector<TargetRef>{};
  }
}

int Agent::run() {
  if (auto st = init(); !st) {
    log("cannot start: " + st.error().to_string());
    return 1;
  }
  log("starting: " + encode_record(stored_).substr(0, 400));
  set_running_version();
  AgentEvent boot = make_event(Ev::kBoot);
  boot.clean = boot_was_clean();
  apply(boot);
  if (auto st = mark_clean_boot(); !st) log("ERROR: " + st.error().to_string());
  checkin_thread_ = std::thread([this] { checkin_loop(); });
  next_event_post_ = events_->pending().empty() ? INT64_MAX : 0;

  while (g_stop == 0) {
    // What the check-in thread brought.
    std::deque<CheckinAnswer> answers;
    {
      std::lock_guard lock(mu_);
      answers.swap(answers_);
    }
    if (deferred_ && (!retry_ || p_.clock.now() >= retry_->at)) {
      answers.push_front(std::move(*deferred_));
      deferred_.reset();
    }
    for (const CheckinAnswer& a : answers) handle_answer(a);
    // What the download thread brought.
    finish_download();
    // The service.
    if (g_child != 0 || service_pid_ > 0) {
      g_child = 0;
      if (service_pid_ > 0) {
        if (auto exit = p_.process.try_wait(service_pid_)) {
          service_pid_ = -1;
          last_exit_ = *exit;
          log("the service on " + version_text(service_version_) + " exited: " + exit->describe());
          apply(make_event(Ev::kServiceExited, std::nullopt, exit->describe()));
        }
      }
    }
    const core::TimeMs now = p_.clock.now();
    const bool on_trial = stored_.record.phase == AgentPhase::kTrial;
    if (on_trial && service_pid_ > 0 && !s_.health_command.empty() && now >= next_health_at_) {
      next_health_at_ = core::saturating_add(now, s_.health_interval);
      std::vector<std::string> argv;
      const auto slot = service_version_ ? slot_holding(*service_version_) : std::nullopt;
      for (const auto& a : s_.health_command) {
        argv.push_back(substitute(a, slot ? slot_dir(*slot) : "", version_text(service_version_)));
      }
      auto r = p_.process.run(argv, s_.health_timeout);
      if (!r || !r->success()) {
        const std::string why = "health command failed: " + (r ? r->describe() : r.error().message);
        log(why);
        last_exit_.reset();
        stop_service();
        apply(make_event(Ev::kHealthFailed, std::nullopt, why));
        continue;
      }
    }
    if (on_trial && service_pid_ > 0 && trial_deadline_ && now >= *trial_deadline_) {
      apply(make_event(Ev::kTrialPassed));
      wake_checkin();
    }
    if (stayed_up_at_ && now >= *stayed_up_at_ && stored_.record.phase == AgentPhase::kCommitted) {
      stayed_up_at_.reset();
      apply(make_event(Ev::kStayedUp));
    }
    if (retry_slot_write_at_ != 0 && now >= retry_slot_write_at_ && stored_.record.phase == AgentPhase::kStaged) {
      retry_slot_write_at_ = 0;
      if (auto st = write_slot(*stored_.record.candidate); st) apply(make_event(Ev::kSlotWritten));
      else retry_slot_write_at_ = core::saturating_add(now, 10 * core::kSecond);
    }
    if (now >= next_event_post_) post_events();

    // Sleep until something happens or a deadline comes.
    core::TimeMs wake_at = next_event_post_;
    if (on_trial && trial_deadline_) wake_at = std::min(wake_at, *trial_deadline_);
    if (on_trial && !s_.health_command.empty() && service_pid_ > 0) wake_at = std::min(wake_at, next_health_at_);
    if (retry_slot_write_at_ != 0) wake_at = std::min(wake_at, retry_slot_write_at_);
    if (stayed_up_at_) wake_at = std::min(wake_at, *stayed_up_at_);
    if (deferred_ && retry_) wake_at = std::min(wake_at, retry_->at);
    const std::int64_t timeout =
        std::clamp<std::int64_t>(core::saturating_sub(wake_at, p_.clock.now()), 0, 60'000);
    pollfd pfd{wake_pipe_[0], POLLIN, 0};
    ::poll(&pfd, 1, static_cast<int>(timeout));
    char buf[64];
    while (::read(wake_pipe_[0], buf, sizeof buf) > 0) {
    }
  }

  // A clean stop: the service stops, the server hears goodbye, the next start is clean.
  log("stopping (SIGTERM)");
  stopping_ = true;
  cv_.notify_all();
  cancel_download();
  stop_service();
  DeviceEvent bye;
  bye.kind = std::string(core::to_string(core::DeviceEventKind::kGoodbye));
  (void)events_->push(bye);
  post_events();
  if (checkin_thread_.joinable()) checkin_thread_.join();
  (void)p_.fs.write(data_ + "/clean-stop", "");
  (void)p_.fs.fsync(data_);
  log("stopped");
  return 0;
}

}  // namespace tranche::agent
