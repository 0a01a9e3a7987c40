#include "server/long_poll.h"

#include <iterator>
#include <utility>

namespace tranche::server {

bool at_rest(const std::vector<ChannelAnswer>& answers) {
  for (const auto& a : answers) {
    if (a.assignment.desired && a.assignment.desired != a.current) return false;
  }
  return true;
}

std::string answer_key(const std::vector<ChannelAnswer>& answers) {
  std::string key;
  for (const auto& a : answers) {
    key += a.channel;
    key += '=';
    key += a.current ? a.current->to_string() : "-";
    key += '>';
    key += a.assignment.desired ? a.assignment.desired->to_string() : "-";
    key += ':';
    key += std::to_string(static_cast<int>(a.assignment.reason.code));
    key += ';';
  }
  return key;
}

LongPoll::LongPoll(Ports ports) : ports_(std::move(ports)) {}

LongPoll::~LongPoll() { stop(); }

void LongPoll::start() {
  thread_ = std::thread([this] { run(); });
}

void LongPoll::stop() {
  stopping_ = true;
  ports_.fleet.wake_all();
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
  // Without a thread (never started, or gone): answer whoever is left here.
  (void)look(*ports_.fleet.snapshot(), std::chrono::steady_clock::now());
}

void LongPoll::hold(const std::string& device, std::uint64_t generation,
                    const std::vector<ChannelAnswer>& answers, std::chrono::seconds wait, Responder respond) {
  Waiter w{device, generation, answer_key(answers), std::chrono::steady_clock::now() + wait, std::move(respond)};
  ports_.metrics.checkins_held.fetch_add(1);
  (void)ports_.fleet.with_device(device, [](Device& d) { d.held = true; });
  {
    std::lock_guard lock(mu_);
    waiters_.push_back(std::move(w));
  }
  // Stopped: nobody waits any more (the look below answers it at once).
  if (stopped_) (void)look(*ports_.fleet.snapshot(), std::chrono::steady_clock::now());
}

std::size_t LongPoll::held() {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

std::size_t LongPoll::look(const Snapshot& snap, std::chrono::steady_clock::time_point now_steady) {
  const TimeMs now = ports_.clock.now();
  // Take out the waiters to look at, answer them without the lock (the first
  // answer leaves before the thousandth is computed), put back the rest.
  std::list<Waiter> due;
  {
    std::lock_guard lock(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      const bool look = stopping_ || now_steady >= it->deadline || it->generation < snap.answers_generation;
      auto next = std::next(it);
      if (look) due.splice(due.end(), waiters_, it);
      it = next;
    }
  }
  std::size_t answered = 0;
  std::list<Waiter> still_waiting;
  for (auto it = due.begin(); it != due.end();) {
    auto next = std::next(it);
    bool answer_now = stopping_ || now_steady >= it->deadline;
    std::vector<ChannelAnswer> answers;
    bool offered = false;
    (void)ports_.fleet.with_device(it->device, [&](Device& d) {
      answers = Fleet::answer(d, snap, now);
      answer_now = answer_now || !at_rest(answers) || answer_key(answers) != it->answer;
      if (answer_now) {
        offered = Fleet::note_offers(d, snap, answers, now);
        d.held = false;
        d.last_seen = now;  // it was connected until this answer
      }
    });
    it->generation = snap.generation;
    if (answer_now) {
      // The offer made it exposed: its mark is written like any other.
      if (offered) ports_.write(DeviceWrite{it->device, {}, true, nullptr});
      ports_.reply(it->respond, answers, snap, now);
      ports_.metrics.checkins_held.fetch_sub(1);
      ++answered;
    } else {
      still_waiting.splice(still_waiting.end(), due, it);
    }
    it = next;
  }
  if (!still_waiting.empty()) {
    std::lock_guard lock(mu_);
    waiters_.splice(waiters_.end(), still_waiting);
  }
  return answered;
}

void LongPoll::run() {
  std::uint64_t seen = 0;
  while (true) {
    // A snapshot change wakes it at once; otherwise it looks every 100 ms for
    // waits that are over.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    auto snap = stopping_ ? ports_.fleet.snapshot() : ports_.fleet.wait_for_change(seen, deadline);
    seen = snap->generation;
    (void)look(*snap, std::chrono::steady_clock::now());
    if (stopping_ && held() == 0) return;
  }
}

}  // namespace tranche::server
