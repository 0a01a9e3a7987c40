// The simulator's event queue: ordered by (time, sequence), so equal times keep
// the order they were scheduled in and a run is reproducible byte for byte.
//
// A bucket queue, not one binary heap: events go into one-minute buckets (an
// append); a bucket is sorted when its minute comes, and events scheduled into
// that minute meanwhile merge in from a small heap. With a million devices a heap
// over all pending events costs a cache miss per level; this costs about one per
// event, and the sorted run lets the simulator prefetch what comes next.
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
      // Into the bucket being drained: a small heap merged with the sorted run.
      late_.push_back(e);
      std::push_heap(late_.begin(), late_.end(), Later{});
    } else {
      buckets_[b].push_back(e);
    }
  }

  bool pop(Event& out) {
    while (next_ == sorted_.size() && late_.empty()) {
      if (active_) ++current_;
      if (current_ >= buckets_.size()) return false;
      sorted_.clear();
      sorted_.swap(buckets_[current_]);
      std::vector<Event>().swap(buckets_[current_]);  // release the bucket's memory
      std::sort(sorted_.begin(), sorted_.end(), Earlier{});
      next_ = 0;
      active_ = true;
    }
    if (late_.empty() || (next_ < sorted_.size() && Earlier{}(sorted_[next_], late_.front()))) {
      out = sorted_[next_++];
    } else {
      std::pop_heap(late_.begin(), late_.end(), Later{});
      out = late_.back();
      late_.pop_back();
    }
    now_ms_ = out.time_ms;
    return true;
  }

  // An event likely to come `k` pops from now (nullptr near a bucket's end): for
  // prefetching the state it will touch. Only a hint: late pushes may come first.
  const Event* peek_ahead(std::size_t k) const {
    return next_ + k < sorted_.size() ? &sorted_[next_ + k] : nullptr;
  }


 private:
  struct Earlier {
    bool operator()(const Event& a, const Event& b) const {
      return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.seq < b.seq;
    }
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const { return Earlier{}(b, a); }
  };
  std::uint32_t horizon_ms_;
  std::uint32_t bucket_ms_;
  std::vector<std::vector<Event>> buckets_;
  std::vector<Event> sorted_;  // the current bucket, in order
  std::size_t next_ = 0;
  std::vector<Event> late_;    // pushed into the current bucket while draining it
  std::size_t current_ = 0;
  bool active_ = false;
  std::uint32_t seq_ = 0;
  std::uint32_t now_ms_ = 0;
};

}  // namespace tranche::sim
