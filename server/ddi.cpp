// hawkBit's DDI API on tranche-server (server/ddi.h, docs/ddi.md). A DDI
// device is an enrolled device like any other: its base poll is a check-in,
// the deploymentBase it is offered is the assignment's answer on its channel
// of kind swu, and its feedback becomes the events a tranche-agent would send.
// So rings, pins, windows, the gate's evidence and silence are the same code.
#include "server/ddi.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <memory>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "server/codec.h"
#include "server/server_impl.h"

namespace tranche::server {
namespace json = boost::json;
using core::ErrorCode;

std::string token_hash(std::string_view token);                  // api.cpp
bool same_hash(const std::string& a, const std::string& b);      // api.cpp

namespace ddi {
namespace {

core::Error bad_request(std::string message) { return core::make_error(ErrorCode::kInvalidArgument, std::move(message)); }

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

std::string hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string polling_sleep(core::DurationMs interval) {
  std::int64_t s = std::clamp<std::int64_t>((interval + 999) / 1000, 1, 99 * 3600 + 59 * 60 + 59);
  char out[16];
  std::snprintf(out, sizeof out, "%02d:%02d:%02d", static_cast<int>(s / 3600), static_cast<int>(s / 60 % 60),
                static_cast<int>(s % 60));
  return out;
}

std::string action_id(std::string_view channel, std::string_view version, std::string_view rollout) {
  std::string text = "tranche-ddi-action";
  for (auto part : {channel, version, rollout}) {
    text.push_back('\0');
    text.append(part);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  TRANCHE_ASSERT(EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr) == 1, "SHA-256 failed");
  std::uint64_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | digest[i];
  v &= 0x3fffffff;  // SWUpdate keeps the id in a C int
  return std::to_string(v == 0 ? 1 : v);  // never 0: some clients take 0 for "no action"
}

std::optional<Credential> parse_authorization(std::string_view header) {
  constexpr std::string_view kTarget = "targettoken ";
  constexpr std::string_view kGateway = "gatewaytoken ";
  Credential c;
  if (iequals_prefix(header, kTarget)) {
    c.kind = Credential::Kind::kTarget;
    c.token = std::string(header.substr(kTarget.size()));
  } else if (iequals_prefix(header, kGateway)) {
    c.kind = Credential::Kind::kGateway;
    c.token = std::string(header.substr(kGateway.size()));
  } else {
    return std::nullopt;
  }
  if (c.token.empty() || c.token.size() > 512) return std::nullopt;
  return c;
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  return std::all_of(host.begin(), host.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']';
  });
}

core::Result<std::optional<ByteRange>> parse_range(std::string_view header, std::uint64_t size) {
  if (header.empty()) return std::optional<ByteRange>{};
  constexpr std::string_view kUnit = "bytes=";
  if (!iequals_prefix(header, kUnit)) return bad_request("Range: only bytes ranges are understood");
  std::string_view spec = header.substr(kUnit.size());
  if (spec.find(',') != std::string_view::npos) return bad_request("Range: only one range is served");
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return bad_request("Range: expected first-last");
  std::string_view a = spec.substr(0, dash);
  std::string_view b = spec.substr(dash + 1);
  ByteRange r;
  if (a.empty()) {
    auto n = parse_u64(b);
    if (!n) return bad_request("Range: expected -suffix-length");
    if (*n == 0 || size == 0) return core::make_error(ErrorCode::kOutOfRange, "empty range");
    r.first = size - std::min(*n, size);
    r.last = size - 1;
    return std::optional<ByteRange>(r);
  }
  auto first = parse_u64(a);
  if (!first) return bad_request("Range: expected first-last");
  if (*first >= size) return core::make_error(ErrorCode::kOutOfRange, "range starts past the end");
  r.first = *first;
  r.last = size - 1;
  if (!b.empty()) {
    auto last = parse_u64(b);
    if (!last || *last < *first) return bad_request("Range: expected first <= last");
    r.last = std::min(*last, size - 1);
  }
  return std::optional<ByteRange>(r);
}

core::Result<Feedback> decode_feedback(std::string_view body) {
  auto parsed = parse_json_body(body, kMaxBody);
  if (!parsed) return parsed.error();
  const json::object* o = parsed->if_object();
  if (o == nullptr) return bad_request("body: expected a JSON object");
  const json::value* status = o->if_contains("status");
  if (status == nullptr || !status->is_object()) return bad_request("status: required object");
  const json::object& st = status->as_object();
  const json::value* execution = st.if_contains("execution");
  if (execution == nullptr || !execution->is_string()) {
    return bad_request("status.execution: required string (proceeding, closed, canceled, ...)");
  }
  static const std::pair<std::string_view, Feedback::Execution> kExecutions[] = {
      {"proceeding", Feedback::Execution::kProceeding}, {"closed", Feedback::Execution::kClosed},
      {"canceled", Feedback::Execution::kCanceled},     {"scheduled", Feedback::Execution::kScheduled},
      {"rejected", Feedback::Execution::kRejected},     {"resumed", Feedback::Execution::kResumed},
      {"download", Feedback::Execution::kDownload},     {"downloaded", Feedback::Execution::kDownloaded}};
  Feedback out;
  bool known = false;
  for (const auto& [name, value] : kExecutions) {
    if (execution->as_string() == name) {
      out.execution = value;
      known = true;
    }
  }
  if (!known) {
    return bad_request("status.execution: expected proceeding, closed, canceled, scheduled, rejected, resumed, "
                       "download or downloaded");
  }
  if (const json::value* result = st.if_contains("result")) {
    if (!result->is_object()) return bad_request("status.result: expected an object");
    if (const json::value* finished = result->as_object().if_contains("finished")) {
      if (!finished->is_string()) return bad_request("status.result.finished: expected success, failure or none");
      const std::string_view f = finished->as_string();
      if (f == "success") {
        out.finished = Feedback::Finished::kSuccess;
      } else if (f == "failure") {
        out.finished = Feedback::Finished::kFailure;
      } else if (f != "none") {
        return bad_request("status.result.finished: expected success, failure or none");
      }
    }
  }
  if (out.execution == Feedback::Execution::kClosed && out.finished == Feedback::Finished::kNone) {
    return bad_request("status.result.finished: a closed action finished with success or failure");
  }
  if (const json::value* details = st.if_contains("details")) {
    if (!details->is_array()) return bad_request("status.details: expected a list of strings");
    for (const auto& d : details->as_array()) {
      if (!d.is_string()) return bad_request("status.details: expected a list of strings");
      if (out.lines.size() < 64) out.lines.emplace_back(d.as_string().data(), std::min<std::size_t>(d.as_string().size(), 256));
      if (out.details.size() >= kMaxReason) continue;
      if (!out.details.empty()) out.details += "; ";
      out.details.append(d.as_string().data(), std::min(d.as_string().size(), kMaxReason - out.details.size()));
    }
  }
  return out;
}

core::Result<json::object> decode_config_data(std::string_view body) {
  auto parsed = parse_json_body(body, kMaxBody);
  if (!parsed) return parsed.error();
  const json::object* o = parsed->if_object();
  if (o == nullptr) return bad_request("body: expected a JSON object");
  for (const auto& [key, v] : *o) {
    if (key != "data" && key != "mode" && key != "id" && key != "time" && key != "status") {
      return bad_request("body." + std::string(key) + ": unknown field (expected data, mode)");
    }
  }
  const json::value* data = o->if_contains("data");
  if (data == nullptr || !data->is_object()) return bad_request("data: required object of attribute names to strings");
  if (data->as_object().size() > 64) return bad_request("data: at most 64 attributes");
  for (const auto& [key, v] : data->as_object()) {
    if (key.empty() || key.size() > 256) return bad_request("data: attribute names of 1..256 bytes");
    if (!v.is_string() || v.as_string().size() > 256) {
      return bad_request("data." + std::string(key) + ": expected a string of at most 256 bytes");
    }
  }
  if (const json::value* mode = o->if_contains("mode")) {
    if (!mode->is_string() || (mode->as_string() != "merge" && mode->as_string() != "replace" &&
                               mode->as_string() != "remove")) {
      return bad_request("mode: expected merge, replace or remove");
    }
  }
  return data->as_object();
}

namespace {
bool is_swu_target(const json::value& target) {
  if (!target.is_object()) return false;
  const json::value* format = target.as_object().if_contains("format");
  return format != nullptr && format->is_string() && format->as_string() == "swu";
}
}  // namespace

const json::object* swu_target_of(const ReleaseInfo& release) {
  const json::array* targets = release.targets.if_array();
  if (targets == nullptr) return nullptr;
  for (const auto& t : *targets) {
    if (is_swu_target(t)) return &t.as_object();
  }
  return nullptr;
}

bool is_swu(const ReleaseInfo& release) { return swu_target_of(release) != nullptr; }

json::value tuf_targets_of(const ReleaseInfo& release) {
  const json::array* targets = release.targets.if_array();
  if (targets == nullptr) return release.targets;
  json::array out;
  for (const auto& t : *targets) {
    if (!is_swu_target(t)) out.push_back(t);
  }
  return out;
}

bool is_swu_channel(const ChannelInfo& channel) {
  return !channel.releases.empty() && is_swu(channel.releases.front());
}

core::Result<json::object> swu_target(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return core::make_error(ErrorCode::kNotFound, "artifact: no file '" + name + "' in the artifact directory");
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return core::make_error(ErrorCode::kNotFound, "artifact: '" + name + "' is not a regular file");
  }
  using Ctx = std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)>;
  Ctx sha256(EVP_MD_CTX_new(), EVP_MD_CTX_free), sha1(EVP_MD_CTX_new(), EVP_MD_CTX_free),
      md5(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  TRANCHE_ASSERT(sha256 && sha1 && md5 && EVP_DigestInit_ex(sha256.get(), EVP_sha256(), nullptr) == 1 &&
                     EVP_DigestInit_ex(sha1.get(), EVP_sha1(), nullptr) == 1 &&
                     EVP_DigestInit_ex(md5.get(), EVP_md5(), nullptr) == 1,
                 "OpenSSL has no SHA-256, SHA-1 or MD5");
  std::vector<unsigned char> buf(1 << 16);
  std::uint64_t length = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return core::make_error(ErrorCode::kIo, "artifact: reading '" + name + "' failed");
    if (n == 0) break;
    length += static_cast<std::uint64_t>(n);
    for (auto* ctx : {sha256.get(), sha1.get(), md5.get()}) {
      TRANCHE_ASSERT(EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(n)) == 1, "digest failed");
    }
  }
  auto final_hex = [](EVP_MD_CTX* ctx) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    TRANCHE_ASSERT(EVP_DigestFinal_ex(ctx, digest, &n) == 1, "digest failed");
    return hex(digest, n);
  };
  return json::object{{"path", name},
                      {"length", length},
                      {"sha256", final_hex(sha256.get())},
                      {"sha1", final_hex(sha1.get())},
                      {"md5", final_hex(md5.get())},
                      {"format", "swu"}};
}

}  // namespace ddi

// --- routes -----------------------------------------------------------------------------

const std::vector<ServerImpl::DdiRoute>& ServerImpl::ddi_routes() {
  using Args = std::vector<std::string>;
  // GET and HEAD of an artifact: one handler (HEAD sends the length, no body).
  const auto artifact = [](ServerImpl& s, HttpRequest& q, Responder& r, const DdiTarget& t, const Args& a) {
    s.ddi_artifact(q, r, t, a[0], a[1]);
  };
  static const std::vector<DdiRoute> table{
      {"GET", {},
       [](ServerImpl& s, HttpRequest& q, Responder& r, const DdiTarget& t, const Args&) { s.ddi_base(q, r, t); }},
      {"PUT", {"configData"},
       [](ServerImpl& s, HttpRequest& q, Responder& r, const DdiTarget& t, const Args&) {
         s.ddi_config_data(q, r, t);
       }},
      {"GET", {"deploymentBase", "{}"},
       [](ServerImpl& s, HttpRequest& q, Responder& r, const DdiTarget& t, const Args& a) {
         s.ddi_deployment(q, r, t, a[0]);
       }},
      {"POST", {"deploymentBase", "{}", "feedback"},
       [](ServerImpl& s, HttpRequest& q, Responder& r, const DdiTarget& t, const Args& a) {
         s.ddi_feedback(q, r, t, a[0]);
       }},
      {"GET", {"softwaremodules", "{}", "artifacts", "{}"}, artifact},
      {"GET", {"cancelAction", "{}"},
       [](ServerImpl& s, HttpRequest&, Responder& r, const DdiTarget&, const Args& a) { s.ddi_cancel_action(r, a[0]); }},
      {"POST", {"cancelAction", "{}", "feedback"},
       [](ServerImpl& s, HttpRequest& q, Responder& r, const DdiTarget& t, const Args& a) {
         s.ddi_cancel_feedback(q, r, t, a[0]);
       }},
      {"HEAD", {"softwaremodules", "{}", "artifacts", "{}"}, artifact},
  };
  return table;
}

void ServerImpl::route_ddi(HttpRequest& req, Responder& respond, const std::vector<std::string>& seg) {
  // seg: {tenant}, "controller", "v1", {controllerId}, rest...
  const std::string& tenant = seg[0];
  const std::string& controller = seg[3];
  std::string allow;
  std::vector<std::string> args;
  for (const DdiRoute& r : ddi_routes()) {
    if (!matches_pattern(r.pattern, seg, 4, args)) continue;
    if (r.method != req.method) {
      if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + std::string(r.method);
      continue;
    }
    if (req.body.size() > ddi::kMaxBody) {
      return reply_error(respond, ApiError{413, "too_large",
                                           "a DDI request body is at most " + std::to_string(ddi::kMaxBody) + " bytes"});
    }
    DdiTarget target;
    if (auto err = authorize_ddi(req, tenant, controller, &target)) return reply_error(respond, *err);
    return r.handle(*this, req, respond, target, args);
  }
  if (!allow.empty()) {
    return reply_error(respond,
                       ApiError{405, "method_not_allowed",
                                req.method + " is not allowed on " + req.path + " (allowed: " + allow + ")"},
                       {{"Allow", allow}});
  }
  reply_error(respond, ApiError{404, "not_found", "no DDI route " + req.method + " " + req.path});
}

std::optional<ApiError> ServerImpl::authorize_ddi(const HttpRequest& req, const std::string& tenant,
                                                  const std::string& controller, DdiTarget* target) {
  if (!core::TenantId::parse(tenant)) return ApiError{404, "not_found", "tenant: not a tenant name"};
  if (!core::DeviceId::parse(controller)) return ApiError{404, "not_found", "controllerId: not a device name"};
  auto credential = ddi::parse_authorization(req.authorization);
  if (!credential) {
    return ApiError{401, "unauthorized",
                    "send 'Authorization: TargetToken <device token>' or 'GatewayToken <tenant enrollment key>'"};
  }
  const TimeMs now = clock_->now();
  if (std::int64_t retry_s = 0; !enroll_guesses_.allowed(req.remote, now, &retry_s)) {
    return ApiError{429, "too_many_requests", "too many wrong tokens from " + req.remote};
  }
  const std::string hash = token_hash(credential->token);
  auto snap = fleet_.snapshot();
  auto t = snap->tenants.find(tenant);
  bool ok = false;
  if (credential->kind == ddi::Credential::Kind::kGateway) {
    // The gateway token is the tenant's enrollment key: one secret per tenant,
    // hashed at rest, that may act for any of the tenant's devices.
    ok = t != snap->tenants.end() && same_hash(t->second.row.enrollment_key_hash, hash);
  }
  const bool gateway_ok = ok;
  // The controller of this tenant: another tenant's device of the same id is
  // another device (core::device_key).
  const std::string key = core::device_key(tenant, controller);
  if (auto owned = ensure_owned(key, hash); !owned && owned.error().code != ErrorCode::kNotFound) {
    return ApiError{503, "unavailable", owned.error().message};
  }
  bool known = false;  // enrolled in this tenant
  (void)fleet_.with_device(key, [&](Device& d) {
    known = true;
    if (credential->kind == ddi::Credential::Kind::kTarget) ok = same_hash(d.token_hash, hash);
  });
  if (!ok) {
    enroll_guesses_.failed(req.remote, now);
    return ApiError{401, "unauthorized", "the token is not valid for controller '" + controller + "' of tenant '" +
                                             tenant + "'"};
  }
  if (gateway_ok && !known) {
    const bool auto_enroll = t->second.policy.ddi_auto_enroll;
    if (!auto_enroll) {
      return ApiError{404, "not_found", "controller '" + controller + "' is not enrolled in tenant '" + tenant +
                                            "' (enroll it: POST /v1/devices/bulk, or let the gateway enroll "
                                            "devices: policy ddi_auto_enroll)"};
    }
    // The tenant lets its gateway enroll devices: durable before it is answered,
    // as any enrollment. Its own token is never handed out (the gateway speaks
    // for it).
    auto fresh = new_device(DeviceFields{controller, {}, 0}, tenant, now);
    {
      std::lock_guard lock(store_mu_);
      if (auto st = store_->insert_device(fresh.row); !st) {
        // Enrolled meanwhile (another request, another server): its tenant is
        // checked at the next request.
        if (st.error().code == ErrorCode::kConflict) return ApiError{409, "conflict", st.error().message};
        return ApiError{503, "unavailable", st.error().message};
      }
    }
    if (auto st = fleet_.add_device(std::move(fresh.device)); !st) {
      return ApiError{409, "conflict", st.error().message};
    }
    metrics_.enrollments.fetch_add(1);
    spdlog::info("ddi: device {} enrolled in tenant {} by its gateway", controller, tenant);
  }
  std::string host = ddi::valid_host(req.host) ? req.host : "127.0.0.1:" + std::to_string(port());
  target->tenant = tenant;
  target->device = key;
  target->base_url = std::string(options_.tls ? "https://" : "http://") + host + "/" + tenant + "/controller/v1/" +
                     controller;
  return std::nullopt;
}

// --- actions ----------------------------------------------------------------------------

std::optional<ServerImpl::DdiAction> ServerImpl::ddi_offer(const std::vector<ChannelAnswer>& answers,
                                                           const Snapshot& snapshot) {
  for (const auto& a : answers) {
    if (!a.assignment.desired || a.assignment.desired == a.current) continue;
    auto ch = snapshot.channels.find(a.channel);
    if (ch == snapshot.channels.end() || !ddi::is_swu_channel(ch->second)) continue;
    for (const auto& r : ch->second.releases) {
      if (r.version != *a.assignment.desired) continue;
      // The rollout's own action only for its version (a rollback's previous
      // version is an action of the rollout too: a new forced deployment).
      return DdiAction{ddi::action_id(a.channel, r.row.version, a.rollout), a.channel, r.version, a.rollout, &r};
    }
  }
  return std::nullopt;
}

std::optional<ServerImpl::DdiAction> ServerImpl::ddi_resolve(const Snapshot& snapshot, const std::string& id) {
  if (id.empty() || id.size() > 20) return std::nullopt;
  for (const auto& [name, ch] : snapshot.channels) {
    if (!ddi::is_swu_channel(ch)) continue;
    for (const auto& r : ch.releases) {
      if (ddi::action_id(name, r.row.version, "") == id) return DdiAction{id, name, r.version, "", &r};
      for (const auto& [rid, rollout] : snapshot.rollouts) {
        // A rollout's actions: its version, and its rollback to the previous one.
        if (rollout->channel != name || (rollout->version != r.version && rollout->previous != r.version)) continue;
        if (ddi::action_id(name, r.row.version, rid) == id) return DdiAction{id, name, r.version, rid, &r};
      }
    }
  }
  return std::nullopt;
}

namespace {

// How often a DDI device should poll: the heartbeat of the live rollout on its
// channel (silence is judged against it), else of any live rollout on a swu
// channel, else the server's ask-again; sooner when the assignment says so (a
// maintenance window opens).
core::DurationMs poll_interval(const Snapshot& snap, const std::vector<ChannelAnswer>& answers,
                               core::DurationMs ask_again, TimeMs now) {
  std::optional<core::DurationMs> heartbeat;
  for (const auto& a : answers) {
    auto ch = snap.channels.find(a.channel);
    if (ch == snap.channels.end() || !ddi::is_swu_channel(ch->second)) continue;
    if (const RolloutInfo* r = snap.live_rollout_for(a.channel)) {
      heartbeat = std::min(heartbeat.value_or(r->plan.gate.heartbeat_interval), r->plan.gate.heartbeat_interval);
    }
    if (a.assignment.ask_again_at && *a.assignment.ask_again_at > now) {
      ask_again = std::min(ask_again, *a.assignment.ask_again_at - now);
    }
  }
  return heartbeat ? std::min(*heartbeat, ask_again) : ask_again;
}

}  // namespace

// --- handlers ---------------------------------------------------------------------------

void ServerImpl::ddi_base(HttpRequest&, Responder& respond, const DdiTarget& target) {
  auto snap = fleet_.snapshot();
  const TimeMs now = clock_->now();
  std::vector<ChannelAnswer> answers;
  DeviceWrite write;
  std::optional<DdiAction> offer;
  std::optional<DdiAction> cancel;
  auto st = fleet_.with_device(target.device, [&](Device& d) {
    // A poll is a check-in: it runs what its closed actions installed, healthy
    // (its health step closed them).
    write = fleet_.check_in(d, *snap, d.versions, d.health_json, true, now, last_seen_every());
    answers = Fleet::answer(d, *snap, now);
    // Only its swu channels' offers expose it: it cannot install anything else.
    std::erase_if(answers, [&](const ChannelAnswer& a) {
      auto ch = snap->channels.find(a.channel);
      return ch == snap->channels.end() || !ddi::is_swu_channel(ch->second);
    });
    offer = ddi_offer(answers, *snap);
    if (offer && Fleet::note_offers(d, *snap, answers, now)) write.state = true;
    if (!offer) cancel = ddi_cancel(d, *snap);
  });
  if (!st) return reply_error(respond, st.error());
  writer_->enqueue(std::move(write));
  metrics_.checkins.fetch_add(1);
  (offer ? metrics_.decisions_install : metrics_.decisions_keep).fetch_add(1);
  const core::DurationMs ask =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.ask_again).count();
  json::object links;
  if (offer) {
    links["deploymentBase"] = json::object{{"href", target.base_url + "/deploymentBase/" + offer->id}};
  } else if (cancel) {
    links["cancelAction"] = json::object{{"href", target.base_url + "/cancelAction/" + cancel->id}};
  }
  reply_json(respond, 200,
             json::object{{"config", json::object{{"polling", json::object{{"sleep", ddi::polling_sleep(
                                                                                  poll_interval(*snap, answers, ask, now))}}}}},
                          {"_links", std::move(links)}});
}

void ServerImpl::ddi_deployment(HttpRequest&, Responder& respond, const DdiTarget& target, const std::string& id) {
  auto snap = fleet_.snapshot();
  auto action = ddi_resolve(*snap, id);
  if (!action) return reply_error(respond, ApiError{404, "action_not_found", "no DDI action " + id});
  const json::object& t = *ddi::swu_target_of(*action->release);
  const std::string file(t.at("path").as_string());
  const std::string href = target.base_url + "/softwaremodules/" + id + "/artifacts/" + file;
  json::object artifact{
      {"filename", file},
      {"size", t.at("length")},
      {"hashes", json::object{{"sha1", t.at("sha1")}, {"md5", t.at("md5")}, {"sha256", t.at("sha256")}}},
      {"_links", json::object{{"download-http", json::object{{"href", href}}},
                              {"md5sum-http", json::object{{"href", href + ".MD5SUM"}}}}}};
  json::object chunk{{"part", "os"},
                     {"version", action->release->row.version},
                     {"name", action->channel},
                     {"artifacts", json::array{std::move(artifact)}}};
  // "forced": tranche's assignment has already decided (rings, pins, windows);
  // "attempt" would let the client wait, which the gate would count as silence.
  reply_json(respond, 200,
             json::object{{"id", id},
                          {"deployment", json::object{{"download", "forced"},
                                                      {"update", "forced"},
                                                      {"chunks", json::array{std::move(chunk)}}}}});
}

void ServerImpl::ddi_artifact(HttpRequest& req, Responder& respond, const DdiTarget& target, const std::string& id,
                              const std::string& file) {
  auto snap = fleet_.snapshot();
  auto action = ddi_resolve(*snap, id);
  if (!action) return reply_error(respond, ApiError{404, "action_not_found", "no DDI action " + id});
  const json::object& t = *ddi::swu_target_of(*action->release);
  if (file != t.at("path").as_string()) {
    return reply_error(respond, ApiError{404, "not_found", "action " + id + " has no artifact '" + file + "'"});
  }
  if (options_.artifact_dir.empty()) {
    return reply_error(respond, ApiError{503, "unavailable", "this server has no --artifact-dir"});
  }
  const std::uint64_t length = t.at("length").to_number<std::uint64_t>();
  auto range = ddi::parse_range(req.range, length);
  std::optional<ddi::ByteRange> part;
  if (!range && range.error().code == ErrorCode::kOutOfRange) {
    return reply_error(respond, ApiError{416, "range_not_satisfiable", range.error().message},
                       {{"Content-Range", "bytes */" + std::to_string(length)}});
  }
  if (range) part = *range;  // a form not understood: the whole body (RFC 9110 section 14.2)
  const std::uint64_t first = part ? part->first : 0;
  const std::uint64_t count = part ? part->last - part->first + 1 : length;
  HttpResponse r;
  r.status = part ? 206 : 200;
  r.content_type = "application/octet-stream";
  r.headers.emplace_back("Accept-Ranges", "bytes");
  if (part) {
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(part->first) + "-" +
                                                std::to_string(part->last) + "/" + std::to_string(length));
  }
  // The file is streamed from disk (server/http_server.h, FileBody): an image of
  // any size costs a connection 64 KiB, never its length. HEAD opens it too, so
  // that it answers what the GET would.
  const std::string path = options_.artifact_dir + "/" + file;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != length) {
    if (fd >= 0) ::close(fd);
    spdlog::error("ddi: artifact {} is missing or changed since release {} {} was registered", path,
                  action->channel, action->release->row.version);
    return reply_error(respond, ApiError{500, "artifact_changed",
                                         "the artifact is missing or not the one registered"});
  }
  r.file = std::make_shared<FileBody>(fd, first, count);
  if (req.method == "GET") {
    {
      std::lock_guard lock(ddi_mu_);
      ++ddi_downloads_[action->channel + " " + action->release->row.version];
      ddi_started_.insert(target.device + "/" + id);
    }
    spdlog::info("ddi: device {} downloads {} {} ({} bytes from {})", target.device, action->channel,
                 action->release->row.version, count, first);
  }
  respond(std::move(r));
}

void ServerImpl::ddi_feedback(HttpRequest& req, Responder& respond, const DdiTarget& target, const std::string& id) {
  auto feedback = ddi::decode_feedback(req.body);
  if (!feedback) return reply_error(respond, feedback.error());
  auto snap = fleet_.snapshot();
  auto action = ddi_resolve(*snap, id);
  if (!action) return reply_error(respond, ApiError{404, "action_not_found", "no DDI action " + id});
  if (writer_->pending_events() >= kMaxPendingEvents) {
    return reply_error(respond, ApiError{503, "unavailable", "the store is behind; send again later"});
  }
  using Execution = ddi::Feedback::Execution;
  using Finished = ddi::Feedback::Finished;
  const bool closed = feedback->execution == Execution::kClosed;
  const bool success = closed && feedback->finished == Finished::kSuccess;
  const bool failure = (closed && feedback->finished == Finished::kFailure) || feedback->execution == Execution::kRejected;
  const TimeMs now = clock_->now();
  std::string reason = feedback->details;
  // Progress (docs/ddi.md): download, downloaded -> downloading; proceeding ->
  // installing; each once per action.
  std::optional<core::DeviceEventKind> progress;
  if (feedback->execution == Execution::kDownload || feedback->execution == Execution::kDownloaded) {
    progress = core::DeviceEventKind::kDownloading;
  } else if (feedback->execution == Execution::kProceeding) {
    progress = core::DeviceEventKind::kInstalling;
  }
  {
    std::lock_guard lock(ddi_mu_);
    const std::string action_key = target.device + "/" + id;
    const std::string key = action_key + "/";
    if (progress && !ddi_progress_.insert(key + std::string(core::to_string(*progress))).second) progress.reset();
    // A closed action is never cancelled (installed: the device runs the
    // version; failed: its standing is no longer exposed), so it leaves the
    // sets: they hold the actions in flight, not the fleet's history.
    if (closed || failure) {
      ddi_started_.erase(action_key);
      for (auto kind : {core::DeviceEventKind::kDownloading, core::DeviceEventKind::kInstalling}) {
        ddi_progress_.erase(key + std::string(core::to_string(kind)));
      }
    } else {
      ddi_started_.insert(action_key);
    }
    if (!closed && !failure) {
      // Keep the lines that say an error (SWUpdate forwards its log), the newest few.
      for (const auto& line : feedback->lines) {
        std::string lower = line;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (lower.find("error") == std::string::npos) continue;
        auto& lines = ddi_errors_[target.device];
        if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
        if (lines.size() > 4) lines.erase(lines.begin());
      }
    } else if (auto it = ddi_errors_.find(target.device); it != ddi_errors_.end()) {
      for (const auto& line : it->second) {
        if (failure && reason.size() < ddi::kMaxReason) reason += "; " + line;
      }
      ddi_errors_.erase(it);
    }
  }
  DeviceWrite write;
  auto st = fleet_.with_device(target.device, [&](Device& d) {
    std::vector<DeviceEvent> events;
    json::object detail{{"message", reason}, {"ddi_action", id}};
    auto current = d.versions.find(action->channel);
    const bool runs = current != d.versions.end() && current->second == action->version;
    auto failed = d.failed.find(action->channel);
    const bool failed_before = failed != d.failed.end() &&
                               std::find(failed->second.begin(), failed->second.end(), action->version) !=
                                   failed->second.end();
    // Closing twice (a retry, a restart with -c 2) reports nothing new: each
    // installation and each failure is one event.
    if (success && !runs) {
      events.push_back(DeviceEvent{d.last_event_seq + 1, core::DeviceEventKind::kInstalled, action->channel,
                                   action->version, json::serialize(detail)});
    } else if (failure && !failed_before && !runs) {
      events.push_back(DeviceEvent{d.last_event_seq + 1, core::DeviceEventKind::kInstallFailed, action->channel,
                                   action->version, json::serialize(detail)});
    } else if (progress && !runs && !failed_before) {
      events.push_back(DeviceEvent{d.last_event_seq + 1, *progress, action->channel, action->version,
                                   json::serialize(json::object{{"message", feedback->details}, {"ddi_action", id}})});
    }
    if (!events.empty()) {
      write = fleet_.record_events(d, *snap, events, now);
    }
    // Closed with success: its health step passed, so it runs the version
    // healthily — acknowledged, as a tranche-agent past its trial is.
    DeviceWrite seen = fleet_.check_in(d, *snap, success ? std::map<std::string, core::Version>{{action->channel, action->version}}
                                                         : std::map<std::string, core::Version>{},
                                       d.health_json, true, now, last_seen_every());
    if (events.empty()) write = std::move(seen);
    write.state = write.state || seen.state || !events.empty();
  });
  if (!st) return reply_error(respond, st.error());
  if (closed || failure) {
    spdlog::info("ddi: device {}: action {} ({} {}) {}: {}", target.device, id, action->channel,
                 action->release->row.version, success ? "closed/success" : "closed/failure", reason);
  }
  metrics_.events.fetch_add(write.events.size());
  // Answered once durable, as /v1/events is (group commit). 200, never 204:
  // SWUpdate takes 204 as a failure and repeats the feedback forever.
  auto shared_respond = std::make_shared<Responder>(std::move(respond));
  write.committed = [this, shared_respond](const core::Status& written) {
    if (written) return reply_json(*shared_respond, 200, json::object{});
    reply_error(*shared_respond, written.error());
  };
  writer_->enqueue(std::move(write));
}

std::optional<ServerImpl::DdiAction> ServerImpl::ddi_cancel(const Device& d, const Snapshot& snap) {
  for (const auto& mark : d.marks) {
    if (mark.standing != core::Standing::kExposed) continue;
    auto r = snap.rollouts.find(mark.rollout);
    if (r == snap.rollouts.end()) continue;
    const RolloutInfo& rollout = *r->second;
    using S = core::RolloutState;
    const S state = rollout.status.state;
    if (state != S::kHalted && state != S::kRollingBack && state != S::kRolledBack && state != S::kAborted) continue;
    auto ch = snap.channels.find(rollout.channel);
    if (ch == snap.channels.end() || !ddi::is_swu_channel(ch->second)) continue;
    auto current = d.versions.find(rollout.channel);
    if (current != d.versions.end() && current->second == rollout.version) continue;
    const std::string id = ddi::action_id(rollout.channel, rollout.version.to_string(), rollout.row.id);
    auto action = ddi_resolve(snap, id);
    if (!action) continue;
    std::lock_guard lock(ddi_mu_);
    const std::string action_key = d.key + "/" + id;
    if (ddi_started_.count(action_key) == 0 && ddi_cancelled_.count(action_key) == 0) return action;
  }
  return std::nullopt;
}

void ServerImpl::ddi_cancel_action(Responder& respond, const std::string& id) {
  auto snap = fleet_.snapshot();
  if (!ddi_resolve(*snap, id)) return reply_error(respond, ApiError{404, "action_not_found", "no DDI action " + id});
  // The cancellation names the action it stops; tranche gives it the same id.
  reply_json(respond, 200, json::object{{"id", id}, {"cancelAction", json::object{{"stopId", id}}}});
}

void ServerImpl::ddi_cancel_feedback(HttpRequest& req, Responder& respond, const DdiTarget& target,
                                     const std::string& id) {
  auto feedback = ddi::decode_feedback(req.body);
  if (!feedback) return reply_error(respond, feedback.error());
  auto snap = fleet_.snapshot();
  if (!ddi_resolve(*snap, id)) return reply_error(respond, ApiError{404, "action_not_found", "no DDI action " + id});
  using Execution = ddi::Feedback::Execution;
  const bool done = feedback->execution == Execution::kClosed || feedback->execution == Execution::kCanceled ||
                    feedback->execution == Execution::kRejected;
  if (done) {
    std::lock_guard lock(ddi_mu_);
    ddi_cancelled_.insert(target.device + "/" + id);
  }
  spdlog::info("ddi: device {}: cancellation of action {}: {}", target.device, id,
               feedback->details.empty() ? "acknowledged" : feedback->details);
  // Contact, as any request of the device.
  const TimeMs now = clock_->now();
  DeviceWrite write;
  auto st = fleet_.with_device(target.device, [&](Device& d) {
    write = fleet_.check_in(d, *snap, {}, d.health_json, true, now, last_seen_every());
  });
  if (!st) return reply_error(respond, st.error());
  writer_->enqueue(std::move(write));
  reply_json(respond, 200, json::object{});
}

void ServerImpl::ddi_config_data(HttpRequest& req, Responder& respond, const DdiTarget&) {
  // The attributes are validated and acknowledged; tranche selects devices by
  // the tags given at enrollment, not by these (docs/ddi.md).
  auto data = ddi::decode_config_data(req.body);
  if (!data) return reply_error(respond, data.error());
  reply_json(respond, 200, json::object{});
}

}  // namespace tranche::server
