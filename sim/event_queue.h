// The simulator's event queue: ordered by (time, sequence), so equal times keep
// the order they were scheduled in and a run is reproducible byte for byte.
//
// A bucket queue, not one binary heap: events go into one-minute buckets (an
// append), and only the bucket being processed is a heap. With a million devices
// a heap over all pending events costs a cache miss per level; this costs about
// one per event.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/result.h"

namespace tranche::sim {

struct Event {
  std::uint32_t time_ms;  // since the scenario start (a uint32 covers 49 days)
  std::uint32_t seq;
  std::uint32_t device;
  std::uint8_t kind;
  std::uint8_t variant;
  std::uint8_t gen;       // the device's generation when scheduled: stale if it changed
  std::uint8_t pad = 0;
};
static_assert(sizeof(Event) == 16);

class EventQueue {
 public:
  EventQueue(std::uint32_t horizon_ms, std::uint32_t bucket_ms)
      : horizon_ms_(horizon_ms), bucket_ms_(bucket_ms), buckets_(horizon_ms / bucket_ms + 1) {}

  // Events after the horizon are dropped: nothing happens after it.
  void push(std::uint32_t time_ms, std::uint32_t device, std::uint8_t kind, std::uint8_t variant,
            std::uint8_t gen) {
    if (time_ms > horizon_ms_) return;
    TRANCHE_ASSERT(time_ms >= now_ms_, "event scheduled in the past");
    TRANCHE_ASSERT(seq_ != UINT32_MAX, "event sequence exhausted");
    const Event e{time_ms, seq_++, device, kind, variant, gen, 0};
    const std::size_t b = time_ms / bucket_ms_;
    if (b == current_ && active_) {
      heap_.push_back(e);
      std::push_heap(heap_.begin(), heap_.end(), Later{});
    } else {
      buckets_[b].push_back(e);
    }
    ++size_;
  }

  bool pop(Event& out) {
    while (heap_.empty()) {
      if (active_) ++current_;
      if (current_ >= buckets_.size()) return false;
      heap_.clear();
      heap_.swap(buckets_[current_]);
      std::vector<Event>().swap(buckets_[current_]);  // release the bucket's memory
      std::make_heap(heap_.begin(), heap_.end(), Later{});
      active_ = true;
    }
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    out = heap_.back();
    heap_.pop_back();
    now_ms_ = out.time_ms;
    --size_;
    return true;
  }

  std::uint32_t now_ms() const { return now_ms_; }
  std::size_t size() const { return size_; }

 private:
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : a.seq > b.seq;
    }
  };
  std::uint32_t horizon_ms_;
  std::uint32_t bucket_ms_;
  std::vector<std::vector<Event>> buckets_;
  std::vector<Event> heap_;
  std::size_t current_ = 0;
  bool active_ = false;
  std::uint32_t seq_ = 0;
  std::uint32_t now_ms_ = 0;
  std::size_t size_ = 0;
};

}  // namespace tranche::sim
