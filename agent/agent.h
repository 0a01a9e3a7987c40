// tranche-agent's imperative shell around core::agent_step (docs/agent.md).
//
// Every decision is the reducer's; this class samples the clock, turns what
// happens (a check-in answer, the service dying, the trial window ending) into
// core::AgentEvent, and runs the returned actions strictly in order. Whenever a
// list holds kPersist, the record is durable before the actions after it.
//
// Threads: the main thread owns the record, the slots, the service and the event
// queue. A check-in thread does enrollment and check-ins (long poll) only, and
// hands answers over through a queue and a self-pipe. A download thread runs one
// download at a time (TUF refresh and the target files into DATA/downloads/) and
// hands its result back the same way, so the service stays supervised while a
// slow or hostile server takes its time. No thread ever blocks another for
// longer than a lock on a few strings.
//
// Clean and unclean starts (core::AgentEvent::clean): DATA/busy exists while an
// action list runs; DATA/boot_id holds the machine's boot id of the last run and
// DATA/clean-stop marks a stop by SIGTERM. A start is unclean when busy exists,
// or the machine rebooted since the last run without a clean stop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/config.h"
#include "agent/ports.h"
#include "agent/state_files.h"
#include "core/contract.h"
#include "tuf/metadata.h"

namespace tranche::agent {

struct AgentPorts {
  Clock& clock;
  FileSystem& fs;          // every write the agent makes (observed: the step log)
  HttpClient& http;           // main thread: events
  HttpClient& checkin_http;   // check-in thread
  HttpClient& download_http;  // download thread: TUF metadata and targets
  Process& process;
};

class Agent {
 public:
  Agent(AgentSettings settings, AgentPorts ports);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs until request_stop(); returns the exit code (0 after a clean stop).
  int run();
  // Async-signal-safe: SIGTERM/SIGINT handlers call it.
  static void request_stop_from_signal();
  static void child_exited_from_signal();

  // Called by the file-system observer after each step.
  void on_step(std::string_view op, const std::string& path);

 private:
  struct CheckinAnswer {
    std::string action;  // install, rollback, keep
    std::optional<core::Version> desired;
    std::vector<TargetRef> targets;
    std::string reason;
    std::optional<core::Version> revoked;  // the server marks it bad
  };
  struct DownloadResult {
    core::AgentEvent event;                               // kDownloaded or kDownloadFailed
    std::map<std::string, tuf::TargetFile> target_info;  // by target path
  };
  struct Retry {  // a version whose download failed (transiently), and when to try again
    core::Version version;
    core::TimeMs at = 0;
    core::DurationMs backoff = 0;
  };
  struct Verified {
    core::Version version;
    std::vector<std::pair<std::string, std::string>> files;  // local name, bytes
  };

  core::Status init();
  bool boot_was_clean();
  core::Status mark_clean_boot();
  void apply(const core::AgentEvent& event);
  std::optional<core::AgentEvent> execute(const core::AgentAction& action,
                                          const StoredRecord& next);

  // Actions.
  void start_download(const core::Version& version, std::vector<TargetRef> targets);
  void finish_download();  // main loop: applies what the download thread brought
  void cancel_download();  // stops the download thread (if any) and forgets its result
  DownloadResult download(const core::Version& version, const std::vector<TargetRef>& targets);
  void handle_answer(const CheckinAnswer& a);
  core::AgentEvent verify(const core::Version& version);
  core::Status write_slot(const core::Version& version);
  core::Status point_active_at(const std::optional<core::Version>& version);
  void start_service(const std::optional<core::Version>& version);
  void stop_service();
  void report(const core::AgentAction& action);

  // Slots.
  std::string slot_dir(const std::string& name) const;
  std::optional<std::string> slot_holding(const core::Version& v);
  std::string substitute(const std::string& arg, const std::string& slot,
                         const std::string& version) const;

  // Events to the server.
  void post_events();

  // The check-in thread.
  void checkin_loop();
  bool enroll();
  std::optional<CheckinAnswer> checkin(std::int64_t* ask_again_ms);
  void wake_checkin();
  void notify_main();

  void log(const std::string& line);
  void set_running_version();
  std::int64_t jittered(std::int64_t ms);

  AgentSettings s_;
  AgentPorts p_;
  std::string data_;
  core::AgentConfig core_config_;
  StoredRecord stored_;
  std::unique_ptr<EventQueue> events_;
  std::optional<core::ConsumerInterface> interface_;

  // The service.
  pid_t service_pid_ = -1;
  std::optional<core::Version> service_version_;
  core::TimeMs service_started_at_ = 0;
  std::optional<ExitStatus> last_exit_;
  std::optional<core::TimeMs> trial_deadline_;
  // Committed after an unclean boot: when the stay that forgives it is over.
  std::optional<core::TimeMs> stayed_up_at_;
  core::TimeMs next_health_at_ = 0;

  // Install in progress (memory only: after a restart the reducer downloads again).
  std::map<std::string, tuf::TargetFile> target_info_;  // by target path
  std::optional<Verified> verified_;
  bool download_waiting_for_targets_ = false;
  core::TimeMs retry_slot_write_at_ = 0;
  std::optional<std::pair<core::Version, std::vector<TargetRef>>> download_next_;  // after the list
  std::thread download_thread_;
  std::atomic<bool> download_cancel_{false};
  std::optional<DownloadResult> download_done_;  // mu_
  std::optional<Retry> retry_;               // transient failure: not before retry_->at
  std::optional<CheckinAnswer> deferred_;    // the offer that waits for retry_->at
  std::optional<core::Version> rejected_;    // the bad version last refused (logged once)
  // The refusal last reported (offer_refused: reason, version): a device says
  // so once, not at every check-in, until the reason or the version changes.
  std::optional<std::pair<std::string, core::Version>> refused_;
  void report_refusal(const std::string& reason, const core::Version& offered, const std::string& message);

  // Events.
  core::TimeMs next_event_post_ = 0;
  std::int64_t event_backoff_ms_ = 0;

  // Steps (the step log and debug.pause_after_step): the main and the download
  // thread's file-system changes (the check-in thread's token is not a step).
  std::atomic<std::uint64_t> steps_{0};
  std::thread::id main_thread_ = std::this_thread::get_id();
  bool in_list_ = false;

  // Shared with the check-in thread (mu_).
  std::mutex mu_;
  std::condition_variable cv_;
  std::string token_;
  std::string running_version_;
  std::string health_phase_;
  std::deque<CheckinAnswer> answers_;
  bool checkin_now_ = false;
  std::atomic<bool> stopping_{false};
  std::thread checkin_thread_;
  int wake_pipe_[2] = {-1, -1};
};

}  // namespace tranche::agent
