// What the agent tells the server (POST /v1/events): a durable queue
// (EventQueue, DATA/events.json) and its uploads, at most 100 events a post,
// with backoff after a failure. The main thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "agent/backoff.h"
#include "agent/config.h"
#include "agent/ports.h"
#include "agent/state_files.h"

namespace tranche::agent {

class EventOutbox {
 public:
  EventOutbox(const AgentSettings& settings, FileSystem& fs, HttpClient& http, Clock& clock, Logger log);

  core::Status load();  // the queue a previous run left
  // Queued durably (a seq assigned), to be posted at once.
  core::Status push(DeviceEvent event);
  bool empty() const { return queue_.pending().empty(); }
  const EventQueue& queue() const { return queue_; }
  // When the next post is due (the largest TimeMs when nothing waits).
  core::TimeMs next_post_at() const { return next_post_at_; }
  // Posts the oldest events with the device `token` (nothing without one).
  // Accepted events leave the queue; a failure waits a backoff.
  void post(const std::string& token);

 private:
  const AgentSettings& settings_;
  HttpClient& http_;
  Clock& clock_;
  Logger log_;
  EventQueue queue_;
  Backoff backoff_;
  Jitter jitter_;
  core::TimeMs next_post_at_ = 0;
};

}  // namespace tranche::agent
