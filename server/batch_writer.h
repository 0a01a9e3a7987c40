// The batch writer: what check-ins, events and the engine's ticks change on
// devices reaches the store in batches, on a thread of its own (group commit).
// A request whose write carries a `committed` callback is answered only once
// the batch carrying it has committed — so `{"accepted": N}` means durable — or,
// when the store does not take it within `commit_wait`, told to send again later
// while its events stay queued. Each device's state row is built when its batch
// is written, from the device as it is then: a device that checked in ten times
// since the last batch is written once.
//
// After a failed batch the writer waits 100 ms, doubling to 5 s: a store that is
// down or full is not hammered, and the log gets a line per attempt.
//
// Its port to the store is a `Sink` (the writer's own connection, or the shared
// Store under its mutex), so it is tested in process with a fake one
// (tests/server/batch_writer_test.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/result.h"
#include "server/fleet.h"
#include "server/metrics.h"
#include "store/store.h"

namespace tranche::server {

class BatchWriter {
 public:
  // Writes one batch, all or nothing.
  using Sink = std::function<core::Status(const store::DeviceBatch&)>;
  struct Settings {
    std::chrono::milliseconds interval{250};  // the longest a write waits for its batch
    std::size_t max_records = 2000;          // a batch is written at once when this full
    std::chrono::seconds commit_wait{5};     // then a waiting request is told to retry
  };

  BatchWriter(Fleet& fleet, Metrics& metrics, Sink sink, Settings settings);
  ~BatchWriter();  // stop()
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  void start();  // the writer's thread
  // Writes what is pending (a few attempts), tells whoever still waits to send
  // again, and joins the thread. Call once nothing new is enqueued.
  void stop();

  void enqueue(DeviceWrite write);
  // Events queued and not yet written (uploads are refused past a bound, so
  // memory stays bounded while the store is down).
  std::size_t pending_events();
  // Whether a state write of `device` waits or is being written: a device
  // must not be forgotten (Fleet::evict_unneeded) before it is in the store.
  bool unwritten(const std::string& device);

  // One batch of everything pending. false: the sink refused it, and it is
  // back in the queue (the writer's thread calls this; tests may too).
  bool flush();

 private:
  void run();

  struct PendingCallback {
    std::function<void(const core::Status&)> done;
    std::chrono::steady_clock::time_point since;
  };

  Fleet& fleet_;
  Metrics& metrics_;
  Sink sink_;
  Settings settings_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_set<std::string> pending_states_;  // devices whose state changed
  std::unordered_set<std::string> in_flight_;       // taken by flush(), rows not built yet
  std::vector<store::DeviceEventRow> pending_events_;
  std::vector<PendingCallback> pending_callbacks_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tranche::server
