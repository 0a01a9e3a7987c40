// tranche-agent's imperative shell around core::agent_step (docs/agent.md).
//
// Every decision is the reducer's; this class samples the clock, turns what
// happens (a check-in answer, the service dying, the trial window ending) into
// core::AgentEvent, and runs the returned actions strictly in order. Whenever a
// list holds kPersist, the record is durable before the actions after it.
//
// The shell is in parts, each with one job and a fake beside each port it uses
// (fakes.h, fake_file_system.h), so each is tested in-process:
// - Supervisor (supervisor.h): the protected service, its exits and health;
// - Downloader (downloader.h): TUF refresh and target files, on its own thread;
// - CheckinClient (checkin_client.h): enrollment and check-ins, on its own thread;
// - EventOutbox (event_outbox.h): the durable event queue and its uploads.
// This class owns the record and the slots, feeds the reducer, and runs its
// actions through the parts. Threads hand results to the main thread through
// queues and a self-pipe; no thread blocks another for longer than a lock on a
// few strings.
//
// Clean and unclean starts (core::AgentEvent::clean): DATA/busy exists while an
// action list runs; DATA/boot_id holds the machine's boot id of the last run and
// DATA/clean-stop marks a stop by SIGTERM. A start is unclean when busy exists,
// or the machine rebooted since the last run without a clean stop.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/backoff.h"
#include "agent/checkin_client.h"
#include "agent/config.h"
#include "agent/downloader.h"
#include "agent/event_outbox.h"
#include "agent/ports.h"
#include "agent/state_files.h"
#include "agent/supervisor.h"
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
  struct Retry {  // a version whose download failed (transiently), and when to try again
    core::Version version;
    core::TimeMs at = 0;
    Backoff backoff;
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
  void finish_download();  // main loop: applies what the download thread brought
  void handle_answer(const CheckinAnswer& a);
  core::AgentEvent verify(const core::Version& version);
  core::Status write_slot(const core::Version& version);
  core::Status point_active_at(const std::optional<core::Version>& version);
  void start_service(const std::optional<core::Version>& version);
  void report(const core::AgentAction& action);
  void report_refusal(const std::string& reason, const core::Version& offered, const std::string& message);
  void push_event(DeviceEvent event);

  // Slots.
  std::string slot_dir(const std::string& name) const;
  std::optional<std::string> slot_holding(const core::Version& v);

  void notify_main();
  void log(const std::string& line);
  void set_running_version();

  AgentSettings settings_;
  AgentPorts ports_;
  std::string data_;
  core::AgentConfig core_config_;
  StoredRecord stored_;
  std::optional<core::ConsumerInterface> interface_;
  Jitter jitter_;

  // The parts.
  Supervisor service_;
  Downloader downloader_;
  CheckinClient checkin_;
  EventOutbox outbox_;

  // Deadlines of the reducer's rechecks.
  std::optional<core::TimeMs> trial_deadline_;
  // Committed after an unclean boot: when the stay that forgives it is over.
  std::optional<core::TimeMs> stayed_up_at_;

  // Install in progress (memory only: after a restart the reducer downloads again).
  std::map<std::string, tuf::TargetFile> target_info_;  // by target path
  std::optional<Verified> verified_;
  bool download_waiting_for_targets_ = false;
  core::TimeMs retry_slot_write_at_ = 0;
  std::optional<std::pair<core::Version, std::vector<TargetRef>>> download_next_;  // after the list
  std::optional<Retry> retry_;               // transient failure: not before retry_->at
  std::optional<CheckinAnswer> deferred_;    // the offer that waits for retry_->at
  std::optional<core::Version> rejected_;    // the bad version last refused (logged once)
  // The refusal last reported (offer_refused: reason, version): a device says
  // so once, not at every check-in, until the reason or the version changes.
  std::optional<std::pair<std::string, core::Version>> refused_;

  // Steps (the step log and debug.pause_after_step): the main and the download
  // thread's file-system changes (the check-in thread's token is not a step).
  std::atomic<std::uint64_t> steps_{0};
  std::thread::id main_thread_ = std::this_thread::get_id();
  bool in_list_ = false;

  std::string running_version_;  // what the check-in says runs
  int wake_pipe_[2] = {-1, -1};
};

}  // namespace tranche::agent
