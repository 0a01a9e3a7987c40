// Enrollment and check-ins (POST /v1/enroll, POST /v1/checkin with a long
// poll), on a thread of their own. The client tells the server what runs, and
// hands each answer to the main thread (take_answers, after `notify`); it
// decides nothing about them. After a failure it waits a backoff; after an
// answer, the server's ask_again_s (clamped, server_durations.h) or
// checkin.interval, jittered either way.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/backoff.h"
#include "agent/config.h"
#include "agent/ports.h"
#include "agent/state_files.h"
#include "core/types.h"

namespace tranche::agent {

// The server's answer for the agent's channel.
struct CheckinAnswer {
  std::string action;  // install, rollback, keep
  std::optional<core::Version> desired;
  std::vector<TargetRef> targets;
  std::string reason;
  std::optional<core::Version> revoked;  // the server marks it bad
};

// Reads a check-in answer (strict JSON, at most 1 MiB). A channel the answer
// does not name is "keep". `ask_again_ms` is set when the answer has a usable
// ask_again_s. The error says what is malformed.
core::Result<CheckinAnswer> parse_checkin_answer(std::string_view body, const std::string& channel,
                                                 std::optional<std::int64_t>* ask_again_ms);

class CheckinClient {
 public:
  // `notify` is called on the client's thread after each answer and enrollment.
  CheckinClient(const AgentSettings& settings, HttpClient& http, FileSystem& fs, Logger log,
                std::function<void()> notify);
  ~CheckinClient();
  CheckinClient(const CheckinClient&) = delete;
  CheckinClient& operator=(const CheckinClient&) = delete;

  void set_token(std::string token);  // read from DATA/token at start
  std::string token() const;
  // What the next check-in says runs (empty: nothing) and the phase of health.
  void set_state(std::string running_version, std::string phase);

  void start();  // the thread
  void stop();   // answers a held check-in at once and joins
  // Checks in at once, abandoning a held check-in (the agent has news).
  void wake();
  std::deque<CheckinAnswer> take_answers();

  // One round on the calling thread: enroll when there is no token, else one
  // check-in. Returns how long to wait before the next round (jittered).
  std::int64_t run_once();
  // Whether the calling thread is a check-in thread (its token write is not a
  // step of an update).
  static bool on_checkin_thread();

 private:
  bool enroll();
  std::optional<CheckinAnswer> checkin(std::int64_t* ask_again_ms);
  void loop();

  const AgentSettings& settings_;
  HttpClient& http_;
  FileSystem& fs_;
  Logger log_;
  std::function<void()> notify_;
  Backoff backoff_;
  Jitter jitter_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string token_;
  std::string running_version_;
  std::string phase_;
  std::deque<CheckinAnswer> answers_;
  bool now_ = false;  // check in at once
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tranche::agent
