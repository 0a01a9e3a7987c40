#include "agent/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "config/content_files.h"
#include "core/contract.h"
#include "core/time_math.h"
#include "tuf/client.h"

namespace tranche::agent {

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

void poke_signal_fd() {
  if (g_signal_fd >= 0) {
    const char c = 's';
    [[maybe_unused]] const ssize_t n = ::write(g_signal_fd, &c, 1);
  }
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
    : settings_(std::move(settings)),
      ports_(ports),
      data_(settings_.data_dir),
      core_config_(settings_.trial),
      jitter_(settings_.checkin_jitter),
      service_(settings_, ports_.process, ports_.clock, [this](const std::string& l) { log(l); },
               [this](const std::string& slot) { on_step("start_service", slot); }),
      downloader_(settings_, ports_.clock, ports_.fs, ports_.download_http,
                  [this](const std::string& l) { log(l); }, [this] { notify_main(); }),
      checkin_(settings_, ports_.checkin_http, ports_.fs, [this](const std::string& l) { log(l); },
               [this] { notify_main(); }),
      outbox_(settings_, ports_.fs, ports_.http, ports_.clock, [this](const std::string& l) { log(l); }) {
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("tranche-agent: pipe2");
    std::abort();
  }
  g_signal_fd = wake_pipe_[1];
}

Agent::~Agent() {
  // The threads first: they may still notify through the pipe.
  checkin_.stop();
  downloader_.cancel();
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
               settings_.device_id.c_str(), line.c_str());
  std::fflush(stderr);
}

void Agent::on_step(std::string_view op, const std::string& path) {
  // The check-in thread writes the token only: not a step of an update.
  if (CheckinClient::on_checkin_thread()) return;
  const std::uint64_t n = ++steps_;
  std::string rel = path;
  if (rel.rfind(data_ + "/", 0) == 0) rel = rel.substr(data_.size() + 1);
  if (settings_.step_log || settings_.pause_after_step != 0) {
    // The record is the main thread's; the download thread works in phase downloading.
    const std::string where = std::this_thread::get_id() == main_thread_
                                  ? "phase " + std::string(core::to_string(stored_.record.phase)) +
                                        (in_list_ ? ", in list" : "")
                                  : "phase downloading, download thread";
    log("step " + std::to_string(n) + ": " + std::string(op) + " " + rel + " (" + where + ")");
  }
  if (settings_.pause_after_step != 0 && n == settings_.pause_after_step) {
    log("paused after step " + std::to_string(n) + " (debug.pause_after_step)");
    while (true) ::pause();  // until SIGKILL: the crash-consistency test's kill point
  }
}

// ---- start -----------------------------------------------------------------------

Status Agent::init() {
  for (const char* d : {"", "/slots", "/slots/a", "/slots/b", "/downloads", "/tuf"}) {
    if (auto st = ports_.fs.make_dirs(data_ + d); !st) return st;
  }
  auto rec = load_record(ports_.fs, data_ + "/record.json");
  if (rec) {
    stored_ = *rec;
  } else if (rec.error().code != ErrorCode::kNotFound) {
    return rec.error();
  }
  if (auto st = outbox_.load(); !st) return st;
  if (auto tok = ports_.fs.read(data_ + "/token", 4096)) {
    std::string t = *tok;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    checkin_.set_token(t);
  }
  // The trusted root: copied in at the first start only (afterwards the chain of
  // roots the updater verified is what counts).
  if (auto have = ports_.fs.size(data_ + "/tuf/root.json"); !have && have.error().code == ErrorCode::kNotFound) {
    auto root = ports_.fs.read(settings_.tuf_root, 512'000);
    if (!root) return root.error().with_context("tuf.root: ");
    if (auto st = write_durably(ports_.fs, data_ + "/tuf/root.json", *root); !st) return st;
  }
  if (settings_.contract_check) {
    auto iface = config::load_consumer_interface_file(settings_.interface_file);
    if (!iface) return iface.error();
    interface_ = *iface;
  }
  return core::Ok{};
}

bool Agent::boot_was_clean() {
  const bool busy = ports_.fs.size(data_ + "/busy").ok();
  if (busy) {
    log("start: the last run stopped in the middle of an action list (unclean)");
    return false;
  }
  auto current = ports_.fs.read(settings_.boot_id_file, 256);
  auto last = ports_.fs.read(data_ + "/boot_id", 256);
  const bool clean_stop = ports_.fs.size(data_ + "/clean-stop").ok();
  if (current && last && *current != *last && !clean_stop) {
    log("start: the machine restarted since the last run without a clean stop (unclean)");
    return false;
  }
  return true;
}

Status Agent::mark_clean_boot() {
  auto current = ports_.fs.read(settings_.boot_id_file, 256);
  auto last = ports_.fs.read(data_ + "/boot_id", 256);
  if (current && (!last || *last != *current)) {
    if (auto st = write_durably(ports_.fs, data_ + "/boot_id", *current); !st) return st;
  }
  if (ports_.fs.size(data_ + "/clean-stop").ok()) {
    if (auto st = ports_.fs.remove(data_ + "/clean-stop"); !st) return st;
    return ports_.fs.fsync(data_);
  }
  return core::Ok{};
}

// ---- the reducer loop ------------------------------------------------------------

void Agent::set_running_version() {
  const auto running = stored_.record.running();
  const std::string now_running = running ? running->to_string() : "";
  const bool changed = now_running != running_version_;
  running_version_ = now_running;
  checkin_.set_state(now_running, std::string(core::to_string(stored_.record.phase)));
  // The server hears at once what runs now (a held check-in is abandoned); a
  // trial that passes wakes the check-in too (the acknowledgement the gate
  // counts, core/evidence.h).
  if (changed) checkin_.wake();
}

void Agent::apply(const AgentEvent& first) {
  std::deque<AgentEvent> queue{first};
  while (!queue.empty()) {
    const AgentEvent event = queue.front();
    queue.pop_front();
    const core::TimeMs now = ports_.clock.now();
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
      if (auto st = ports_.fs.write(data_ + "/busy", ""); st) {
        (void)ports_.fs.fsync(data_);
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
      (void)ports_.fs.remove(data_ + "/busy");
      (void)ports_.fs.fsync(data_);
    }
    if (download_next_) {
      // Started once the list's steps are done, so the steps keep one order.
      auto [version, targets] = std::move(*download_next_);
      download_next_.reset();
      downloader_.start(version, std::move(targets));
    }
    set_running_version();
    for (auto& e : follow_ups) queue.push_back(std::move(e));
  }
}

std::optional<AgentEvent> Agent::execute(const AgentAction& a, const StoredRecord& next) {
  switch (a.kind) {
    case Act::kPersist: {
      auto st = save_record(ports_.fs, data_ + "/record.json", next);
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
        checkin_.wake();
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
        retry_slot_write_at_ = core::saturating_add(ports_.clock.now(), 10 * core::kSecond);
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
      service_.stop();
      return std::nullopt;
    case Act::kReport:
      report(a);
      return std::nullopt;
  }
  return std::nullopt;
}

// ---- downloading and verifying ---------------------------------------------------

void Agent::finish_download() {
  std::optional<DownloadResult> done = downloader_.take();
  if (!done) return;
  if (stored_.record.phase != AgentPhase::kDownloading || stored_.record.candidate != done->event.version) {
    log("the download of " + version_text(done->event.version) + " ended after the agent moved on: ignored");
    return;
  }
  target_info_ = std::move(done->target_info);
  apply(done->event);
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
    auto bytes = ports_.fs.read(part, static_cast<std::size_t>(info.length));
    if (!bytes) {
      (void)ports_.fs.remove(part);
      return fail(bytes.error().to_string(), false);
    }
    // TUF 5.7.3: length and every hash the targets role signed.
    if (auto st = tuf::verify_target(info, *bytes, "target '" + t.path + "'"); !st) {
      (void)ports_.fs.remove(part);
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
    auto text = ports_.fs.read(slot_dir(name) + "/VERSION", 64);
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
  } else if (auto link = ports_.fs.readlink(data_ + "/active"); link && *link == "slots/b") {
    target = "a";
  } else {
    target = "a";
  }
  const std::string dir = slot_dir(target);
  // VERSION goes first and comes back last: a half-written slot names no version.
  if (auto st = ports_.fs.remove(dir + "/VERSION"); !st) return st;
  if (auto st = ports_.fs.fsync(dir); !st) return st;
  if (auto names = ports_.fs.list(dir)) {
    for (const auto& n : *names) {
      if (auto st = ports_.fs.remove(dir + "/" + n); !st) return st;
    }
  }
  for (const auto& [name, bytes] : verified_->files) {
    if (auto st = ports_.fs.write(dir + "/" + name, bytes); !st) return st;
    if (auto st = ports_.fs.fsync(dir + "/" + name); !st) return st;
  }
  if (auto st = write_durably(ports_.fs, dir + "/VERSION", version.to_string() + "\n"); !st) return st;
  // The download is in the slot now.
  for (const auto& [path, info] : target_info_) {
    (void)ports_.fs.remove(data_ + "/downloads/" + info.hashes.at("sha256") + ".part");
  }
  log("wrote " + version.to_string() + " into slot " + target);
  return ports_.fs.fsync(data_ + "/downloads");
}

Status Agent::point_active_at(const std::optional<Version>& version) {
  const std::string active = data_ + "/active";
  if (!version) {
    if (auto st = ports_.fs.remove(active); !st) return st;
    return ports_.fs.fsync(data_);
  }
  const auto slot = slot_holding(*version);
  if (!slot) return make_error(ErrorCode::kNotFound, "no slot holds " + version->to_string());
  const std::string target = "slots/" + *slot;
  if (auto link = ports_.fs.readlink(active); link && *link == target) return core::Ok{};
  // A new symlink renamed over the old one: the pointer moves atomically.
  const std::string tmp = data_ + "/active.tmp";
  if (auto st = ports_.fs.remove(tmp); !st) return st;
  if (auto st = ports_.fs.symlink(target, tmp); !st) return st;
  if (auto st = ports_.fs.rename(tmp, active); !st) return st;
  if (auto st = ports_.fs.fsync(data_); !st) return st;
  log("active slot: " + target + " (" + version->to_string() + ")");
  return core::Ok{};
}

// ---- the service -------------------------------------------------------------------

void Agent::start_service(const std::optional<Version>& version) {
  service_.stop();
  std::string slot;
  if (version) {
    const auto name = slot_holding(*version);
    if (!name) {
      log("ERROR: no slot holds " + version->to_string() + ": not starting the service");
      return;
    }
    slot = slot_dir(*name);
  } else {
    slot = settings_.shipped_slot;
    if (slot.empty()) {
      log("nothing installed and no service.shipped_slot: the service is not started");
      return;
    }
  }
  service_.start(version, slot);
}

// ---- reports -------------------------------------------------------------------------

void Agent::report_refusal(const std::string& reason, const core::Version& offered, const std::string& message) {
  if (refused_ && refused_->first == reason && refused_->second == offered) return;
  refused_.emplace(reason, offered);
  DeviceEvent e;
  e.channel = settings_.channel;
  e.version = offered.to_string();
  e.kind = std::string(core::to_string(core::DeviceEventKind::kOfferRefused));
  e.reason = reason;
  e.message = message;
  log("report " + e.kind + " " + e.version + " (" + reason + "): " + message);
  push_event(std::move(e));
}

void Agent::push_event(DeviceEvent event) {
  if (auto st = outbox_.push(std::move(event)); !st) log("ERROR: cannot queue the event: " + st.error().to_string());
}

void Agent::report(const AgentAction& a) {
  DeviceEvent e;
  e.channel = settings_.channel;
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
    if (a.version) {
      if (!retry_ || retry_->version != *a.version) {
        retry_ = Retry{*a.version, 0, Backoff(settings_.retry_backoff, settings_.max_backoff)};
      }
      const core::DurationMs backoff = retry_->backoff.failed();
      retry_->at = core::saturating_add(ports_.clock.now(), jitter_(backoff));
      log(a.version->to_string() + " is tried again in " + std::to_string(backoff / 1000) +
          " s at the earliest (download.retry_backoff)");
    }
  }
  if ((a.report == R::kCrash || a.report == R::kRolledBack) && service_.last_exit()) {
    e.exit_code = service_.last_exit()->exit_code;
    e.signal = service_.last_exit()->signal;
  }
  if (a.version == std::nullopt) e.version.clear();
  log("report " + e.kind + " " + e.version + ": " + a.detail);
  push_event(std::move(e));
}

void Agent::notify_main() {
  const char c = 'c';
  [[maybe_unused]] const ssize_t n = ::write(wake_pipe_[1], &c, 1);
}

// ---- the main loop -------------------------------------------------------------------

void Agent::handle_answer(const CheckinAnswer& a) {
  if (a.revoked) {
    // Said at every check-in while the rollout is sent back: acted on once.
    const auto& rec = stored_.record;
    const bool news = rec.running() == a.revoked || rec.candidate == a.revoked;
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
    downloader_.start(*a.desired, a.targets);
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
  if (retry_ && retry_->version == *a.desired && ports_.clock.now() < retry_->at) {
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
  checkin_.start();

  while (g_stop == 0) {
    // What the check-in thread brought.
    std::deque<CheckinAnswer> answers = checkin_.take_answers();
    if (deferred_ && (!retry_ || ports_.clock.now() >= retry_->at)) {
      answers.push_front(std::move(*deferred_));
      deferred_.reset();
    }
    for (const CheckinAnswer& a : answers) handle_answer(a);
    // What the download thread brought.
    finish_download();
    // The service.
    if (g_child != 0 || service_.running()) {
      g_child = 0;
      if (auto exit = service_.reap()) {
        log("the service on " + version_text(service_.version()) + " exited: " + exit->describe());
        apply(make_event(Ev::kServiceExited, std::nullopt, exit->describe()));
      }
    }
    const core::TimeMs now = ports_.clock.now();
    const bool on_trial = stored_.record.phase == AgentPhase::kTrial;
    if (on_trial && service_.health_due(now)) {
      const auto& version = service_.version();
      const auto slot = version ? slot_holding(*version) : std::nullopt;
      if (auto st = service_.check_health(slot ? slot_dir(*slot) : ""); !st) {
        log(st.error().message);
        service_.forget_exit();
        service_.stop();
        apply(make_event(Ev::kHealthFailed, std::nullopt, st.error().message));
        continue;
      }
    }
    if (on_trial && service_.running() && trial_deadline_ && now >= *trial_deadline_) {
      apply(make_event(Ev::kTrialPassed));
      checkin_.wake();
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
    if (now >= outbox_.next_post_at()) outbox_.post(checkin_.token());

    // Sleep until something happens or a deadline comes.
    core::TimeMs wake_at = outbox_.next_post_at();
    if (on_trial && trial_deadline_) wake_at = std::min(wake_at, *trial_deadline_);
    if (on_trial && service_.running() && !settings_.health_command.empty()) {
      wake_at = std::min(wake_at, service_.next_health_at());
    }
    if (retry_slot_write_at_ != 0) wake_at = std::min(wake_at, retry_slot_write_at_);
    if (stayed_up_at_) wake_at = std::min(wake_at, *stayed_up_at_);
    if (deferred_ && retry_) wake_at = std::min(wake_at, retry_->at);
    const std::int64_t timeout =
        std::clamp<std::int64_t>(core::saturating_sub(wake_at, ports_.clock.now()), 0, 60'000);
    pollfd pfd{wake_pipe_[0], POLLIN, 0};
    ::poll(&pfd, 1, static_cast<int>(timeout));
    char buf[64];
    while (::read(wake_pipe_[0], buf, sizeof buf) > 0) {
    }
  }

  // A clean stop: the service stops, the server hears goodbye, the next start is clean.
  log("stopping (SIGTERM)");
  checkin_.stop();
  downloader_.cancel();
  service_.stop();
  DeviceEvent bye;
  bye.kind = std::string(core::to_string(core::DeviceEventKind::kGoodbye));
  push_event(std::move(bye));
  outbox_.post(checkin_.token());
  (void)ports_.fs.write(data_ + "/clean-stop", "");
  (void)ports_.fs.fsync(data_);
  log("stopped");
  return 0;
}

}  // namespace tranche::agent
