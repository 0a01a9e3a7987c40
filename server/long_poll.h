// Long-polled check-ins. A device at rest may ask to be held (`wait_s`) instead
// of asking again later; its check-in is then answered, by a thread of its own,
// as soon as its answer changes — a snapshot change that gives it something to
// install or roll back (a start, a promotion into its stage, a halt and its
// rollback) — or when the wait is over, whichever comes first. A held device
// counts as connected (online) for the gate while it waits.
//
// An offer made in such an answer makes the device exposed (core/evidence.h),
// and that mark is written like any other (the write sink). Tested in process
// with a fake reply (tests/server/long_poll_test.cpp); the API renders the
// answer (`reply`).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/fleet.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/server.h"

namespace tranche::server {

// Whether every channel's answer is "keep" (nothing to install or roll back).
bool at_rest(const std::vector<ChannelAnswer>& answers);
// What a device would act on or show in an answer — per channel, what it runs,
// what it is to run, and the reason's code: a held check-in is answered when
// this changes (a pause, a promotion into its stage, a halt), not on every
// change of the reason's wording.
std::string answer_key(const std::vector<ChannelAnswer>& answers);

class LongPoll {
 public:
  // Renders and sends the answer of a held check-in.
  using Reply = std::function<void(Responder&, const std::vector<ChannelAnswer>&, const Snapshot&, TimeMs)>;
  struct Ports {
    Fleet& fleet;
    const Clock& clock;
    Metrics& metrics;
    std::function<void(DeviceWrite)> write;  // a device whose answer offered it a release
    Reply reply;
  };

  explicit LongPoll(Ports ports);
  ~LongPoll();  // stop()
  LongPoll(const LongPoll&) = delete;
  LongPoll& operator=(const LongPoll&) = delete;

  void start();  // the thread
  // Answers every held check-in now, with what it would get anyway, and joins.
  // A check-in held after this is answered at once.
  void stop();

  // Holds the check-in of `device`, whose answer at snapshot `generation` was
  // `answers` (at rest), for at most `wait`.
  void hold(const std::string& device, std::uint64_t generation, const std::vector<ChannelAnswer>& answers,
            std::chrono::seconds wait, Responder respond);
  std::size_t held();

  // One look at the held check-ins against `snapshot` (the thread's round;
  // tests call it): those whose answer changed or whose wait is over (at
  // `now_steady`) are answered. Returns how many were.
  std::size_t look(const Snapshot& snapshot, std::chrono::steady_clock::time_point now_steady);

 private:
  struct Waiter {
    std::string device;
    std::uint64_t generation = 0;
    std::string answer;  // answer_key of what it was told last
    std::chrono::steady_clock::time_point deadline;
    Responder respond;
  };
  void run();

  Ports ports_;
  std::mutex mu_;
  std::list<Waiter> waiters_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};  // the thread is gone
  std::thread thread_;
};

}  // namespace tranche::server
