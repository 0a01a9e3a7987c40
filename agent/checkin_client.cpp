#include "agent/checkin_client.h"

#include <boost/json.hpp>
#include <chrono>

#include "agent/server_durations.h"
#include "core/time_math.h"
#include "tuf/canonical_json.h"

namespace tranche::agent {

namespace json = boost::json;

namespace {
constexpr std::size_t kMaxAnswerBytes = 1 << 20;
thread_local bool t_checkin_thread = false;
}  // namespace

core::Result<CheckinAnswer> parse_checkin_answer(std::string_view body, const std::string& channel,
                                                 std::optional<std::int64_t>* ask_again_ms) {
  auto parsed = tuf::parse_document(body, kMaxAnswerBytes);
  if (!parsed) return parsed.error().with_context("malformed JSON answer: ");
  if (!parsed->is_object()) return core::make_error(core::ErrorCode::kParse, "malformed JSON answer: not an object");
  const json::value& v = *parsed;
  CheckinAnswer a;
  try {
    const json::object& o = v.as_object();
    if (const auto* ask = o.if_contains("ask_again_s")) {
      // Clamped before any arithmetic: a broken proxy's 2^62 must not overflow
      // into "at once" and make a fleet hammer the server (docs/agent.md).
      if (auto ms = clamp_ask_again_s(*ask)) *ask_again_ms = *ms;
    }
    const json::value* ch = o.at("channels").as_object().if_contains(channel);
    if (ch == nullptr) return a;  // nothing for this channel: keep
    const json::object& c = ch->as_object();
    a.action = std::string(c.at("action").as_string());
    if (const auto* r = c.if_contains("reason"); r && r->is_string()) a.reason = std::string(r->as_string());
    for (const auto& [key, out] : {std::pair<const char*, std::optional<core::Version>*>{"desired", &a.desired},
                                   {"revoked", &a.revoked}}) {
      const auto* d = c.if_contains(key);
      if (d == nullptr || !d->is_string()) continue;
      auto ver = core::Version::parse(d->as_string());
      if (!ver) return ver.error().with_context(std::string("bad ") + key + " version: ");
      *out = *ver;
    }
    if (const auto* ts = c.if_contains("targets"); ts && ts->is_array()) {
      for (const auto& t : ts->as_array()) {
        const auto& to = t.as_object();
        a.targets.push_back(TargetRef{std::string(to.at("path").as_string()),
                                      to.at("length").to_number<std::int64_t>(),
                                      std::string(to.at("sha256").as_string())});
      }
    }
  } catch (const std::exception& e) {
    return core::make_error(core::ErrorCode::kParse, std::string("malformed answer: ") + e.what());
  }
  return a;
}

CheckinClient::CheckinClient(const AgentSettings& settings, HttpClient& http, FileSystem& fs, Logger log,
                             std::function<void()> notify)
    : settings_(settings),
      http_(http),
      fs_(fs),
      log_(std::move(log)),
      notify_(std::move(notify)),
      backoff_(core::kSecond, settings.max_backoff),
      jitter_(settings.checkin_jitter) {}

CheckinClient::~CheckinClient() { stop(); }

bool CheckinClient::on_checkin_thread() { return t_checkin_thread; }

void CheckinClient::set_token(std::string token) {
  std::lock_guard lock(mu_);
  token_ = std::move(token);
}

std::string CheckinClient::token() const {
  std::lock_guard lock(mu_);
  return token_;
}

void CheckinClient::set_state(std::string running_version, std::string phase) {
  std::lock_guard lock(mu_);
  running_version_ = std::move(running_version);
  phase_ = std::move(phase);
}

void CheckinClient::start() {
  thread_ = std::thread([this] {
    t_checkin_thread = true;
    loop();
  });
}

void CheckinClient::stop() {
  stopping_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckinClient::wake() {
  {
    std::lock_guard lock(mu_);
    now_ = true;
  }
  cv_.notify_all();
}

std::deque<CheckinAnswer> CheckinClient::take_answers() {
  std::deque<CheckinAnswer> out;
  std::lock_guard lock(mu_);
  out.swap(answers_);
  return out;
}

bool CheckinClient::enroll() {
  json::object tags;
  for (const auto& [k, v] : settings_.tags) tags[k] = v;
  HttpRequest req;
  req.method = "POST";
  req.url = settings_.server_url + "/v1/enroll";
  req.body = json::serialize(json::object{{"tenant", settings_.tenant},
                                          {"enrollment_key", settings_.enrollment_key},
                                          {"device_id", settings_.device_id},
                                          {"tags", tags},
                                          {"utc_offset_minutes", settings_.utc_offset_minutes}});
  req.timeout_ms = settings_.http_timeout;
  req.max_bytes = 64 * 1024;
  req.cancelled = [this] { return stopping_.load(); };
  auto r = http_.send(req);
  if (!r || r->status != 201) {
    log_("enrollment failed: " +
         (r ? "HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 300) : r.error().to_string()));
    return false;
  }
  auto parsed = tuf::parse_document(r->body, kMaxAnswerBytes);
  const json::value v = parsed ? std::move(*parsed) : json::value();
  const json::value* tok = v.is_object() ? v.as_object().if_contains("device_token") : nullptr;
  if (tok == nullptr || !tok->is_string()) {
    log_("enrollment: malformed answer");
    return false;
  }
  const std::string token(tok->as_string());
  if (auto st = write_durably(fs_, settings_.data_dir + "/token", token + "\n", true); !st) {
    log_("cannot store the device token: " + st.error().to_string());
    return false;
  }
  set_token(token);
  log_("enrolled as " + settings_.device_id);
  return true;
}

std::optional<CheckinAnswer> CheckinClient::checkin(std::int64_t* ask_again_ms) {
  std::string token, running, phase;
  {
    std::lock_guard lock(mu_);
    token = token_;
    running = running_version_;
    phase = phase_;
    now_ = false;
  }
  json::object versions;
  if (!running.empty()) versions[settings_.channel] = running;
  json::object body{{"versions", versions}, {"health", json::object{{"phase", phase}}}};
  const std::int64_t wait_s = settings_.long_poll / 1000;
  if (wait_s > 0) body["wait_s"] = wait_s;
  HttpRequest req;
  req.method = "POST";
  req.url = settings_.server_url + "/v1/checkin";
  req.body = json::serialize(body);
  req.bearer_token = token;
  req.timeout_ms = core::saturating_add(settings_.http_timeout, core::seconds_to_ms(wait_s));
  req.max_bytes = kMaxAnswerBytes;
  // A held check-in is abandoned when the agent has news (a new version runs).
  req.cancelled = [this] {
    std::lock_guard lock(mu_);
    return stopping_.load() || now_;
  };
  auto r = http_.send(req);
  if (!r) {
    if (r.error().code != core::ErrorCode::kCancelled) log_("check-in failed: " + r.error().to_string());
    return std::nullopt;
  }
  if (r->status != 200) {
    log_("check-in failed: HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 300));
    return std::nullopt;
  }
  std::optional<std::int64_t> ask;
  auto a = parse_checkin_answer(r->body, settings_.channel, &ask);
  if (!a) {
    log_("check-in: " + a.error().message);
    return std::nullopt;
  }
  if (ask) *ask_again_ms = *ask;
  return std::move(*a);
}

std::int64_t CheckinClient::run_once() {
  bool ok = false;
  std::int64_t wait_ms = settings_.checkin_interval;
  if (token().empty()) {
    ok = enroll();
    if (ok) {
      notify_();  // events may go now
      backoff_.succeeded();
      return 0;
    }
  } else {
    auto answer = checkin(&wait_ms);
    ok = answer.has_value();
    if (answer) {
      {
        std::lock_guard lock(mu_);
        answers_.push_back(std::move(*answer));
      }
      notify_();
    }
  }
  if (ok) {
    backoff_.succeeded();
    return jitter_(wait_ms);
  }
  // Capped exponential backoff with jitter: 1 s, 2 s, ... checkin.max_backoff.
  return jitter_(backoff_.failed());
}

void CheckinClient::loop() {
  while (!stopping_) {
    const std::int64_t wait_ms = run_once();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stopping_.load() || now_; });
  }
}

}  // namespace tranche::agent
