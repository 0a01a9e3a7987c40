#include "agent/event_outbox.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

namespace tranche::agent {

namespace {
constexpr std::size_t kEventsPerPost = 100;
}

EventOutbox::EventOutbox(const AgentSettings& settings, FileSystem& fs, HttpClient& http, Clock& clock,
                         Logger log)
    : settings_(settings),
      http_(http),
      clock_(clock),
      log_(std::move(log)),
      queue_(fs, settings.data_dir + "/events.json"),
      backoff_(core::kSecond, settings.max_backoff),
      jitter_(settings.checkin_jitter) {}

core::Status EventOutbox::load() {
  TRANCHE_RETURN_IF_ERROR(queue_.load());
  next_post_at_ = empty() ? std::numeric_limits<core::TimeMs>::max() : 0;
  return core::Ok{};
}

core::Status EventOutbox::push(DeviceEvent event) {
  TRANCHE_RETURN_IF_ERROR(queue_.push(std::move(event)));
  next_post_at_ = std::min(next_post_at_, clock_.now());
  return core::Ok{};
}

void EventOutbox::post(const std::string& token) {
  if (token.empty() || empty()) return;
  HttpRequest req;
  req.method = "POST";
  req.url = settings_.server_url + "/v1/events";
  req.body = queue_.upload_body(kEventsPerPost);
  req.bearer_token = token;
  req.timeout_ms = std::min<std::int64_t>(settings_.http_timeout, 10 * core::kSecond);
  req.max_bytes = 64 * 1024;
  const std::int64_t last_seq = queue_.pending()[std::min(kEventsPerPost, queue_.pending().size()) - 1].seq;
  auto r = http_.send(req);
  bool ok = false;
  const std::size_t before = queue_.pending().size();
  if (r && r->status == 200) {
    ok = queue_.acknowledge(last_seq).ok();
  } else if (r && r->status == 409 && r->body.find("replayed") != std::string::npos) {
    // "last accepted seq is N": those are in; send what follows. Only if that
    // takes some off the queue: a server that keeps naming a seq before them
    // would otherwise get the same post again at once, in a tight loop.
    const auto pos = r->body.find("last accepted seq is ");
    if (pos != std::string::npos) {
      const std::int64_t n = std::strtoll(r->body.c_str() + pos + 21, nullptr, 10);
      ok = queue_.acknowledge(n).ok() && queue_.pending().size() < before;
    }
  }
  if (ok) {
    backoff_.succeeded();
    next_post_at_ = empty() ? std::numeric_limits<core::TimeMs>::max() : clock_.now();
  } else {
    log_("posting events failed: " +
         (r ? "HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 200) : r.error().to_string()));
    next_post_at_ = core::saturating_add(clock_.now(), jitter_(backoff_.failed()));
  }
}

}  // namespace tranche::agent
