#include "server/batch_writer.h"

#include <algorithm>
#include <iterator>

#include <spdlog/spdlog.h>

namespace tranche::server {
using core::ErrorCode;

BatchWriter::BatchWriter(Fleet& fleet, Metrics& metrics, Sink sink, Settings settings)
    : fleet_(fleet), metrics_(metrics), sink_(std::move(sink)), settings_(settings) {}

BatchWriter::~BatchWriter() { stop(); }

void BatchWriter::start() {
  thread_ = std::thread([this] { run(); });
}

void BatchWriter::stop() {
  stopping_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // its last round flushes everything
}

void BatchWriter::enqueue(DeviceWrite write) {
  std::size_t pending = 0;
  {
    std::lock_guard lock(mu_);
    if (write.state) pending_states_.insert(std::move(write.device));
    for (auto& e : write.events) pending_events_.push_back(std::move(e));
    if (write.committed) {
      pending_callbacks_.push_back(PendingCallback{std::move(write.committed), std::chrono::steady_clock::now()});
    }
    pending = pending_states_.size() + pending_events_.size();
  }
  if (pending >= settings_.max_records) cv_.notify_one();
}

std::size_t BatchWriter::pending_events() {
  std::lock_guard lock(mu_);
  return pending_events_.size();
}

bool BatchWriter::unwritten(const std::string& device) {
  std::lock_guard lock(mu_);
  return pending_states_.count(device) > 0 || in_flight_.count(device) > 0;
}

bool BatchWriter::flush() {
  std::unordered_set<std::string> devices;
  std::vector<store::DeviceEventRow> events;
  std::vector<PendingCallback> callbacks;
  {
    std::lock_guard lock(mu_);
    devices.swap(pending_states_);
    events.swap(pending_events_);
    callbacks.swap(pending_callbacks_);
    in_flight_ = devices;
  }
  // Each device's state as it is now: a device that checked in ten times since
  // the last batch is written once, at its next revision, with its marks.
  store::DeviceBatch batch;
  batch.states.reserve(devices.size());
  for (const auto& id : devices) {
    (void)fleet_.with_device(id, [&](Device& d) {
      if (!d.owned) return;  // another server owns it now: its rows are that one's to write
      ++d.revision;
      d.stored_last_seen = d.last_seen;
      batch.states.push_back(d.state_row());
      auto marks = d.mark_rows();
      batch.marks.insert(batch.marks.end(), std::make_move_iterator(marks.begin()),
                         std::make_move_iterator(marks.end()));
    });
  }
  batch.events = std::move(events);
  core::Status st = core::Ok{};
  auto t0 = std::chrono::steady_clock::now();
  if (!batch.states.empty() || !batch.events.empty() || !batch.marks.empty()) st = sink_(batch);
  const auto now = std::chrono::steady_clock::now();
  metrics_.store_flush_seconds.observe(std::chrono::duration<double>(now - t0).count());
  if (st) {
    {
      std::lock_guard lock(mu_);
      in_flight_.clear();  // in the store now
    }
    metrics_.store_flushes.fetch_add(1);
    metrics_.store_flush_records.fetch_add(batch.states.size() + batch.events.size());
    // Group commit: what the batch carried is durable, so the requests that
    // brought it are answered now.
    for (auto& c : callbacks) c.done(core::Ok{});
    return true;
  }
  metrics_.store_flush_errors.fetch_add(1);
  spdlog::error("store: batch of {} states, {} events and {} marks not written, retrying: {}",
                batch.states.size(), batch.events.size(), batch.marks.size(), st.error().to_string());
  // Requests waiting longer than settings_.commit_wait are told to retry later (their
  // events stay queued here and are written when the store is back).
  std::vector<PendingCallback> keep;
  const core::Error unavailable = core::make_error(
      ErrorCode::kUnavailable, "the store did not take the write (" + st.error().message + "); send again later");
  for (auto& c : callbacks) {
    if (now - c.since >= settings_.commit_wait) {
      c.done(unavailable);
    } else {
      keep.push_back(std::move(c));
    }
  }
  // Put the batch back (the states are rebuilt from the devices next time).
  std::lock_guard lock(mu_);
  for (auto& row : batch.states) pending_states_.insert(row.device);
  in_flight_.clear();  // queued again
  pending_events_.insert(pending_events_.begin(), std::make_move_iterator(batch.events.begin()),
                         std::make_move_iterator(batch.events.end()));
  pending_callbacks_.insert(pending_callbacks_.begin(), std::make_move_iterator(keep.begin()),
                            std::make_move_iterator(keep.end()));
  return false;
}

void BatchWriter::run() {
  // After a failed batch the writer waits 100 ms, doubling to 5 s, whatever is
  // pending: a store that is down or full is not hammered, and the log gets a
  // line per attempt, not thousands a second.
  std::chrono::milliseconds backoff{0};
  while (!stopping_) {
    {
      std::unique_lock lock(mu_);
      if (backoff.count() > 0) {
        cv_.wait_for(lock, backoff, [this] { return stopping_.load(); });
      } else {
        cv_.wait_for(lock, settings_.interval, [this] {
          return stopping_.load() ||
                 pending_states_.size() + pending_events_.size() >= settings_.max_records;
        });
      }
    }
    if (flush()) {
      backoff = std::chrono::milliseconds{0};
    } else {
      backoff = std::clamp(backoff * 2, std::chrono::milliseconds{100}, std::chrono::milliseconds{5000});
    }
  }
  // Shutdown: the listener has stopped, so nothing new arrives; write the rest.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (flush()) {
      std::lock_guard lock(mu_);
      if (pending_states_.empty() && pending_events_.empty()) break;
    }
  }
  // Whoever still waits is told to retry (at another server, or after a restart).
  std::vector<PendingCallback> left;
  {
    std::lock_guard lock(mu_);
    left.swap(pending_callbacks_);
  }
  for (auto& c : left) {
    c.done(core::make_error(ErrorCode::kUnavailable, "the server is stopping; send again"));
  }
}

}  // namespace tranche::server
