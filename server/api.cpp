// The HTTP API, v1 (docs/api.md, docs/openapi.yaml). Every body from outside is
// size-limited (the listener) and validated here before anything changes; an
// error names what is wrong and carries a stable code.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <chrono>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "config/content_files.h"
#include "core/agent_machine.h"
#include "core/cohort.h"
#include "core/contract.h"
#include "server/codec.h"
#include "server/ddi.h"
#include "config/tuf_repo_dir.h"
#include "server/request_codec.h"
#include "server/server_impl.h"
#include "tuf/crypto.h"

namespace tranche::server {
namespace json = boost::json;
using core::ErrorCode;

std::string random_hex(std::size_t bytes);  // server.cpp

// SHA-256 of a token, hex: every authenticated request computes one. The
// digest is fetched once and each thread keeps its context (tuf::sha256_hex
// fetches and allocates per call, which showed in the check-in profile).
std::string token_hash(std::string_view token) {
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  TRANCHE_ASSERT(kSha256 != nullptr && ctx != nullptr, "OpenSSL has no SHA-256");
  TRANCHE_ASSERT(EVP_DigestInit_ex2(ctx.get(), kSha256, nullptr) == 1 &&
                     EVP_DigestUpdate(ctx.get(), token.data(), token.size()) == 1 &&
                     EVP_DigestFinal_ex(ctx.get(), digest, &n) == 1,
                 "SHA-256 failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

// Equal hashes, in constant time (server.cpp uses it too).
bool same_hash(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

// The HTTP status of an error value: bad input by its code (400, 404, 409, 413,
// 422, 401); the two other kinds as core::error_kind says — unavailable (store
// down, disk full, a deadline, a shutdown) 503 with Retry-After, internal 500.
unsigned status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kParse:
    case ErrorCode::kOutOfRange:
      return 400;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kInvalidTransition:
    case ErrorCode::kConflict:
    case ErrorCode::kVersionRejected:
      return 409;
    case ErrorCode::kContractViolation:
      return 422;
    case ErrorCode::kUnverified:
      return 401;
    default:
      break;
  }
  return core::error_kind(code) == core::ErrorKind::kUnavailable ? 503 : 500;
}

ApiError bad_request(std::string message) { return {400, "invalid_argument", std::move(message)}; }

// The token of "Authorization: Bearer TOKEN" (the scheme is case-insensitive,
// RFC 9110 section 11.1).
std::string bearer(const HttpRequest& req) {
  constexpr std::string_view kScheme = "bearer ";
  std::string_view a = req.authorization;
  if (a.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != kScheme[i]) return {};
  }
  return std::string(a.substr(kScheme.size()));
}


// Splits "/v1/rollouts/r-1/pause" into {"v1", "rollouts", "r-1", "pause"}.
std::vector<std::string> segments(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.emplace_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

json::value version_or_null(const std::optional<core::Version>& v) {
  if (!v) return nullptr;
  return json::value(v->to_string());
}

std::string_view reason_code(core::AssignmentReason::Code c) {
  using C = core::AssignmentReason::Code;
  switch (c) {
    case C::kInStage: return "in_stage";
    case C::kNotYetInStage: return "not_yet_in_stage";
    case C::kSelectorExcludes: return "selector_excludes";
    case C::kCriticalWaits: return "critical_waits";
    case C::kOutsideWindow: return "outside_window";
    case C::kPinned: return "pinned";
    case C::kRolledBack: return "rolled_back";
    case C::kFailedHere: return "failed_here";
    case C::kNoRollout: return "no_rollout";
    case C::kPaused: return "paused";
  }
  return "unknown";
}

}  // namespace

// --- plumbing -------------------------------------------------------------------------

void ServerImpl::reply_json(Responder& respond, unsigned status, const json::value& body) const {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(body);
  respond(std::move(r));
}

void ServerImpl::reply_error(Responder& respond, const ApiError& e) const {
  // Unavailable (the store is down or full): the client retries, not too soon.
  if (e.status == 503) return reply_error(respond, e, {{"Retry-After", "2"}});
  reply_error(respond, e, {});
}

void ServerImpl::reply_error(Responder& respond, const ApiError& e, Headers headers) const {
  if (e.status >= 400 && e.status < 500) {
    const_cast<Metrics&>(metrics_).requests_rejected.fetch_add(1);
  }
  HttpResponse r;
  r.status = e.status;
  r.body = json::serialize(json::object{{"error", json::object{{"code", e.code}, {"message", e.message}}}});
  r.headers = std::move(headers);
  respond(std::move(r));
}

void ServerImpl::reply_error(Responder& respond, const core::Error& e) const {
  reply_error(respond, ApiError{status_for(e.code), std::string(core::error_code_name(e.code)),
                                e.message});
}

std::optional<ApiError> ServerImpl::authorize_operator(const HttpRequest& req, store::Role needed,
                                                       Caller* caller) {
  std::string token = bearer(req);
  if (token.empty()) {
    return ApiError{401, "unauthorized",
                    "missing operator token: send 'Authorization: Bearer <token>'"};
  }
  const std::string hash = token_hash(token);
  std::optional<OperatorInfo> known;
  auto snap = fleet_.snapshot();
  if (auto it = snap->operators.find(hash); it != snap->operators.end()) known = it->second;
  // Several servers: a token revoked (or created) at another server is in the
  // store before this server's next sync; operator requests are few, so each
  // asks the store, and a store that cannot answer leaves the snapshot's word.
  if (shared_) {
    core::Result<std::vector<store::OperatorTokenRow>> rows = std::vector<store::OperatorTokenRow>{};
    {
      std::lock_guard lock(store_mu_);
      rows = store_->load_operator_tokens();
    }
    if (rows) {
      known.reset();
      for (const auto& row : *rows) {
        if (same_hash(row.token_hash, hash)) known = OperatorInfo{row.name, row.role, row.created_at};
      }
    }
  }
  if (!known) return ApiError{401, "unauthorized", "the operator token is not known to this server"};
  if (known->role < needed) {
    return ApiError{403, "forbidden",
                    "needs role " + std::string(role_name(needed)) + "; token '" + known->name + "' has role " +
                        std::string(role_name(known->role))};
  }
  caller->name = known->name;
  caller->role = known->role;
  return std::nullopt;
}

void ServerImpl::handle(HttpRequest&& request, Responder respond) {
  try {
    route(request, respond);
  } catch (const std::exception& e) {
    // A bug, not bad input: answer 500 and say so in the log.
    spdlog::error("{} {}: internal error: {}", request.method, request.path, e.what());
    reply_error(respond, ApiError{500, "internal", "internal error"});
  }
}

// The API's routes, in one table: what a request may do is read here, not in a
// chain of ifs. The first route whose pattern and method match handles it; a
// path that matches only with other methods is answered 405 with `Allow`.
const std::vector<ServerImpl::Route>& ServerImpl::routes() {
  using R = store::Role;
  using Args = std::vector<std::string>;
  static const std::vector<Route> table{
      // Devices (their token, checked by the handler).
      {"POST", {"enroll"}, std::nullopt,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args&) { s.api_enroll(q, r); }},
      {"POST", {"checkin"}, std::nullopt,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args&) { s.api_checkin(q, r); }},
      {"POST", {"events"}, std::nullopt,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args&) { s.api_events(q, r); }},
      // Operators.
      {"POST", {"devices", "bulk"}, R::kAdmin,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args&) {
         s.api_bulk_enroll(q, r, c);
       }},
      {"POST", {"tenants"}, R::kAdmin,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args&) {
         s.api_create_tenant(q, r, c);
       }},
      {"PUT", {"tenants", "{}", "policy"}, R::kOperator,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args& a) {
         s.api_put_policy(q, r, c, a[0]);
       }},
      {"POST", {"tokens"}, R::kAdmin,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args&) {
         s.api_create_token(q, r, c);
       }},
      {"GET", {"tokens"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args&) { s.api_list_tokens(r); }},
      {"DELETE", {"tokens", "{}"}, R::kAdmin,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller& c, const Args& a) {
         s.api_revoke_token(r, c, a[0]);
       }},
      {"GET", {"tenants"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args&) { s.api_list_tenants(r); }},
      {"GET", {"tenants", "{}", "policy"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args& a) { s.api_get_policy(r, a[0]); }},
      {"GET", {"releases"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args&) { s.api_list_releases(r); }},
      {"GET", {"releases", "{}", "{}"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args& a) {
         s.api_get_release(r, a[0], a[1]);
       }},
      {"POST", {"releases"}, R::kOperator,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args&) {
         s.api_register_release(q, r, c);
       }},
      {"GET", {"rollouts"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args&) { s.api_list_rollouts(r); }},
      {"POST", {"rollouts"}, R::kOperator,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args&) {
         s.api_create_rollout(q, r, c);
       }},
      {"GET", {"rollouts", "{}"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args& a) { s.api_get_rollout(r, a[0]); }},
      {"GET", {"rollouts", "{}", "history"}, R::kViewer,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args& a) {
         s.api_rollout_history(q, r, a[0]);
       }},
      {"GET", {"me"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller& c, const Args&) { s.api_me(r, c); }},
      // The role an action needs beyond operator depends on it and the stage
      // (api_rollout_action).
      {"POST", {"rollouts", "{}", "{}"}, R::kOperator,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller& c, const Args& a) {
         s.api_rollout_action(q, r, c, a[0], a[1]);
       }},
      {"GET", {"fleet"}, R::kViewer,
       [](ServerImpl& s, HttpRequest&, Responder& r, const Caller&, const Args&) { s.api_fleet(r); }},
      {"GET", {"devices"}, R::kViewer,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args&) { s.api_list_devices(q, r); }},
      {"GET", {"devices", "{}"}, R::kViewer,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args& a) { s.api_device(q, r, a[0]); }},
      {"GET", {"devices", "{}", "events"}, R::kViewer,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args& a) {
         s.api_device_events(q, r, a[0]);
       }},
      {"GET", {"rollouts", "{}", "devices"}, R::kViewer,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args& a) {
         s.api_rollout_devices(q, r, a[0]);
       }},
      {"GET", {"audit"}, R::kViewer,
       [](ServerImpl& s, HttpRequest& q, Responder& r, const Caller&, const Args&) { s.api_audit(q, r); }},
  };
  return table;
}

bool ServerImpl::matches_pattern(const std::vector<std::string_view>& pattern,
                                 const std::vector<std::string>& seg, std::size_t first,
                                 std::vector<std::string>& args) {
  if (first > seg.size() || pattern.size() != seg.size() - first) return false;
  args.clear();
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "{}") {
      args.push_back(seg[first + i]);
    } else if (pattern[i] != seg[first + i]) {
      return false;
    }
  }
  return true;
}

void ServerImpl::route(HttpRequest& req, Responder& respond) {
  auto seg = segments(req.path);
  const std::string& m = req.method;

  // Outside the API: the service endpoints and static files, GET only.
  // A path that exists with other methods: 405, and `Allow` names them.
  auto method_not_allowed = [&](const std::string& allow) {
    reply_error(respond,
                ApiError{405, "method_not_allowed", m + " is not allowed on " + req.path + " (allowed: " + allow + ")"},
                {{"Allow", allow}});
  };
  auto get_only = [&](const std::function<void()>& serve) {
    if (m != "GET") return method_not_allowed("GET");
    serve();
  };
  if (seg.size() == 1 && seg[0] == "healthz") {
    return get_only([&] { reply_json(respond, 200, json::object{{"status", "ok"}}); });
  }
  if (seg.size() == 1 && seg[0] == "metrics") return get_only([&] { api_metrics(respond); });
  // The path below "/tuf/" or "/ui/" ("" for "/tuf" itself, which names no file).
  auto below = [&](std::string_view prefix) {
    return req.path.size() > prefix.size() ? req.path.substr(prefix.size()) : std::string();
  };
  if (!seg.empty() && seg[0] == "tuf" && !options_.tuf_repo_dir.empty()) {
    return get_only([&] { serve_file(options_.tuf_repo_dir, below("/tuf/"), respond); });
  }
  if ((seg.empty() || seg[0] == "ui") && !options_.dashboard_dir.empty()) {
    return get_only([&] {
      const std::string file = below("/ui/");
      serve_file(options_.dashboard_dir, file.empty() ? std::string("index.html") : file, respond);
    });
  }
  // hawkBit's DDI API (server/ddi.cpp): /{tenant}/controller/v1/{controllerId}/...
  if (seg.size() >= 4 && seg[1] == "controller" && seg[2] == "v1") return route_ddi(req, respond, seg);
  if (seg.empty() || seg[0] != "v1") {
    return reply_error(respond, ApiError{404, "not_found", "no route " + req.path + " (API is under /v1)"});
  }

  std::string allow;
  std::vector<std::string> args;
  for (const Route& r : routes()) {
    if (!matches_pattern(r.pattern, seg, 1, args)) continue;
    if (r.method != m) {
      if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + std::string(r.method);
      continue;
    }
    Caller caller;
    if (r.role) {
      if (auto err = authorize_operator(req, *r.role, &caller)) return reply_error(respond, *err);
    }
    return r.handle(*this, req, respond, caller, args);
  }
  if (!allow.empty()) return method_not_allowed(allow);
  reply_error(respond, ApiError{404, "not_found", "no route " + m + " " + req.path});
}

// --- device endpoints -------------------------------------------------------------------

void ServerImpl::api_enroll(HttpRequest& req, Responder& respond) {
  auto body = decode_enroll(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::string& tenant = body->tenant;
  const TimeMs now = clock_->now();
  auto fresh = new_device(std::move(body->device), tenant, now);
  // Guessing enrollment keys: an address that guessed wrong too often waits
  // before its next guess is even checked (server/throttle.h).
  if (std::int64_t retry_s = 0; !enroll_guesses_.allowed(req.remote, now, &retry_s)) {
    return reply_error(respond,
                       ApiError{429, "too_many_requests",
                                "too many wrong enrollment keys from " + req.remote + "; try again in " +
                                    std::to_string(retry_s) + " s"},
                       {{"Retry-After", std::to_string(retry_s)}});
  }
  auto snap = fleet_.snapshot();
  auto t = snap->tenants.find(tenant);
  if (t == snap->tenants.end() || !same_hash(t->second.row.enrollment_key_hash, token_hash(body->enrollment_key))) {
    enroll_guesses_.failed(req.remote, now);
    return reply_error(respond, ApiError{401, "unauthorized",
                                         "unknown tenant or wrong enrollment key for tenant '" +
                                             tenant + "'"});
  }
  const std::string id(fresh.device.id());
  if (is_enrolled(fresh.device.key)) {
    return reply_error(respond, ApiError{409, "conflict", already_enrolled(tenant, id)});
  }
  {
    // Durable before the token is handed out: a device must never hold a token
    // the server forgets.
    std::lock_guard lock(store_mu_);
    if (auto st = store_->insert_device(fresh.row); !st) {
      if (st.error().code == ErrorCode::kConflict) {
        return reply_error(respond, ApiError{409, "conflict", already_enrolled(tenant, id)});
      }
      return reply_error(respond, st.error());
    }
  }
  if (auto st = fleet_.add_device(std::move(fresh.device)); !st) return reply_error(respond, st.error());
  metrics_.enrollments.fetch_add(1);
  reply_json(respond, 201, json::object{{"device_id", id}, {"device_token", fresh.token}});
}

bool ServerImpl::is_enrolled(const std::string& key) {
  bool exists = false;
  (void)fleet_.with_device(key, [&](Device&) { exists = true; });
  return exists;
}

std::string ServerImpl::already_enrolled(const std::string& tenant, const std::string& id) {
  return "device '" + id + "' is already enrolled in tenant '" + tenant + "'";
}

ServerImpl::NewDevice ServerImpl::new_device(DeviceFields fields, const std::string& tenant, TimeMs now) {
  NewDevice n;
  Device& d = n.device;
  d.key = core::device_key(tenant, fields.id);
  d.tenant = tenant;
  d.tags = std::move(fields.tags);
  d.utc_offset_minutes = fields.utc_offset_minutes;
  // "<tenant>/<id>.<secret>": the token names the device's key (key_of_token).
  n.token = d.key + "." + random_hex(24);
  d.token_hash = token_hash(n.token);
  d.enrolled_at = now;
  d.owner = server_id_;  // the enrolling server owns it until another claims it
  d.owner_since = now;
  n.row = store::DeviceRow{d.key, d.tenant, d.token_hash, json::serialize(tags_to_json(d.tags)),
                           d.utc_offset_minutes, now};
  return n;
}

void ServerImpl::api_bulk_enroll(HttpRequest& req, Responder& respond, const Caller& caller) {
  // Provisioning many devices at once (a factory line, a fleet import, a load
  // test): one transaction, all or none, tokens returned once.
  auto body = decode_bulk_enroll(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::string& tenant = body->tenant;
  auto snap = fleet_.snapshot();
  if (snap->tenants.count(tenant) == 0) {
    return reply_error(respond, ApiError{404, "not_found", "tenant: no such tenant"});
  }
  std::vector<Device> devices;
  std::vector<store::DeviceRow> rows;
  json::array tokens;
  TimeMs now = clock_->now();
  for (auto& fields : body->devices) {
    if (is_enrolled(core::device_key(tenant, fields.id))) {
      return reply_error(respond, ApiError{409, "conflict", already_enrolled(tenant, fields.id)});
    }
    auto fresh = new_device(std::move(fields), tenant, now);
    rows.push_back(std::move(fresh.row));
    tokens.push_back(json::object{{"device_id", fresh.device.id()}, {"device_token", fresh.token}});
    devices.push_back(std::move(fresh.device));
  }
  {
    store::AuditRow entry{0, now, caller.name, "device.bulk_enroll", "tenant " + tenant,
                          std::to_string(rows.size()) + " devices provisioned"};
    std::lock_guard lock(store_mu_);
    if (auto st = store_->insert_devices(rows, entry); !st) return reply_error(respond, st.error());
  }
  for (auto& d : devices) {
    if (auto st = fleet_.add_device(std::move(d)); !st) {
      spdlog::error("bulk enrollment: {}", st.error().to_string());  // raced a single enrollment
    }
  }
  metrics_.enrollments.fetch_add(rows.size());
  reply_json(respond, 201, json::object{{"tenant", tenant}, {"devices", std::move(tokens)}});
}

std::optional<std::string> ServerImpl::key_of_token(const std::string& token) {
  auto dot = token.rfind('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  std::string named = token.substr(0, dot);
  if (named.find('/') != std::string::npos || !core::DeviceId::parse(named)) return named;
  // From before device ids were scoped per tenant: the id alone. The hash
  // tells the tenant (ids were unique then; a later same id elsewhere holds
  // another token).
  const std::string hash = token_hash(token);
  auto snap = fleet_.snapshot();
  auto held_here = [&](const std::string& key) {
    bool match = false;
    (void)fleet_.with_device(key, [&](Device& d) { match = same_hash(d.token_hash, hash); });
    return match;
  };
  for (const auto& [tenant, info] : snap->tenants) {
    if (auto key = core::device_key(tenant, named); held_here(key)) return key;
  }
  if (shared_) {
    for (const auto& [tenant, info] : snap->tenants) {
      auto key = core::device_key(tenant, named);
      if (ensure_owned(key, hash) && held_here(key)) return key;
    }
  }
  return named;
}

json::object ServerImpl::answer_json(const std::vector<ChannelAnswer>& answers,
                                     const Snapshot& snapshot, TimeMs now) const {
  json::object channels;
  TimeMs ask_again = now + std::chrono::duration_cast<std::chrono::milliseconds>(options_.ask_again).count();
  for (const auto& a : answers) {
    json::object c;
    c["current"] = version_or_null(a.current);
    c["desired"] = version_or_null(a.assignment.desired);
    std::string_view action = "keep";
    if (a.assignment.desired && a.assignment.desired != a.current) {
      action = (a.current && *a.assignment.desired < *a.current) ? "rollback" : "install";
    }
    c["action"] = action;
    c["reason"] = a.assignment.reason.text;
    c["code"] = reason_code(a.assignment.reason.code);
    if (a.assignment.revoked) c["revoked"] = a.assignment.revoked->to_string();
    if (!a.rollout.empty()) {
      c["rollout"] = a.rollout;
      c["stage"] = a.stage;
    }
    if (a.assignment.desired) {
      auto ch = snapshot.channels.find(a.channel);
      if (ch != snapshot.channels.end()) {
        for (const auto& r : ch->second.releases) {
          // A mixed fleet's release also carries the .swu image of DDI
          // clients; an agent gets the TUF targets only.
          if (r.version == *a.assignment.desired) c["targets"] = ddi::tuf_targets_of(r);
        }
      }
    }
    if (a.assignment.ask_again_at) ask_again = std::min(ask_again, *a.assignment.ask_again_at);
    channels[a.channel] = std::move(c);
  }
  return json::object{{"channels", std::move(channels)},
                      {"ask_again_s", std::max<TimeMs>(1, (ask_again - now + 999) / 1000)},
                      {"server_time", now}};
}

void ServerImpl::api_checkin(HttpRequest& req, Responder& respond) {
  std::string token = bearer(req);
  auto key = key_of_token(token);
  if (!key) {
    return reply_error(respond, ApiError{401, "unauthorized",
                                         "missing device token: send 'Authorization: Bearer "
                                         "<device token>' from enrollment"});
  }
  auto body = decode_checkin(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::int64_t wait_s = std::min<std::int64_t>(body->wait_s, options_.long_poll_max.count());

  if (auto owned = ensure_owned(*key, token_hash(token)); !owned) {
    if (owned.error().code != ErrorCode::kNotFound) return reply_error(respond, owned.error());
  }
  auto snap = fleet_.snapshot();
  TimeMs now = clock_->now();
  std::vector<ChannelAnswer> answers;
  DeviceWrite write;
  bool token_ok = false;
  auto st = fleet_.with_device(*key, [&](Device& d) {
    if (!same_hash(d.token_hash, token_hash(token))) return;
    token_ok = true;
    write = fleet_.check_in(d, *snap, std::move(body->versions), std::move(body->health), body->healthy,
                            now, last_seen_every());
    answers = Fleet::answer(d, *snap, now);
    if (Fleet::note_offers(d, *snap, answers, now)) write.state = true;
  });
  if (!st || !token_ok) {
    return reply_error(respond, ApiError{401, "unauthorized",
                                         "the device token is not valid (unknown device or wrong secret)"});
  }
  writer_->enqueue(std::move(write));
  metrics_.checkins.fetch_add(1);
  bool rest = at_rest(answers);
  for (const auto& a : answers) {
    if (a.assignment.desired && a.assignment.desired != a.current) {
      metrics_.decisions_install.fetch_add(1);
    } else {
      metrics_.decisions_keep.fetch_add(1);
    }
  }
  if (wait_s > 0 && rest && !stopping_) {
    // Hold it: answered when the answer changes or the wait is over.
    long_poll_->hold(*key, snap->generation, answers, std::chrono::seconds(wait_s), std::move(respond));
    return;
  }
  reply_json(respond, 200, answer_json(answers, *snap, now));
}

void ServerImpl::api_events(HttpRequest& req, Responder& respond) {
  std::string token = bearer(req);
  auto key = key_of_token(token);
  if (!key) {
    return reply_error(respond, ApiError{401, "unauthorized", "missing device token"});
  }
  auto decoded = decode_events(req.body, options_.max_body_bytes);
  if (!decoded) return reply_error(respond, decoded.error());
  std::vector<DeviceEvent> events = std::move(*decoded);

  if (auto owned = ensure_owned(*key, token_hash(token)); !owned) {
    if (owned.error().code != ErrorCode::kNotFound) return reply_error(respond, owned.error());
  }
  if (writer_->pending_events() >= kMaxPendingEvents) {
    return reply_error(respond, ApiError{503, "unavailable",
                                         "the store is behind (" + std::to_string(kMaxPendingEvents) +
                                             " events not yet written); send again later"});
  }
  auto snap = fleet_.snapshot();
  TimeMs now = clock_->now();
  std::optional<ApiError> refused;
  DeviceWrite write;
  bool token_ok = false;
  auto st = fleet_.with_device(*key, [&](Device& d) {
    if (!same_hash(d.token_hash, token_hash(token))) return;
    token_ok = true;
    // All or nothing: a replayed event refuses the whole upload before any of
    // it counts.
    if (!events.empty() && events.front().seq <= d.last_event_seq) {
      refused = ApiError{409, "replayed",
                         "event seq " + std::to_string(events.front().seq) +
                             " was already accepted (last accepted seq is " +
                             std::to_string(d.last_event_seq) + ")"};
      return;
    }
    write = fleet_.record_events(d, *snap, events, now);
  });
  if (!st || !token_ok) {
    return reply_error(respond, ApiError{401, "unauthorized", "the device token is not valid"});
  }
  // Group commit: the answer — accepted, or "replayed" (which the device takes
  // as accepted too) — leaves only once the batch carrying these events, and
  // every event accepted before them, has committed.
  auto shared_respond = std::make_shared<Responder>(std::move(respond));
  if (refused) {
    writer_->enqueue(DeviceWrite{*key, {}, true, [this, shared_respond, refused = *refused](const core::Status& written) {
                          if (written) return reply_error(*shared_respond, refused);
                          reply_error(*shared_respond, written.error());
                        }});
    return;
  }
  metrics_.events.fetch_add(events.size());
  for (const auto& e : events) {
    if (e.kind != core::DeviceEventKind::kInstalled && e.kind != core::DeviceEventKind::kGoodbye) {
      spdlog::info("device {}: {} {} {}", *key, core::to_string(e.kind), e.channel,
                   e.version ? e.version->to_string() : "");
    }
  }
  write.committed = [this, shared_respond, n = events.size()](const core::Status& written) {
    if (written) return reply_json(*shared_respond, 200, json::object{{"accepted", n}});
    reply_error(*shared_respond, written.error());
  };
  writer_->enqueue(std::move(write));
}

// --- operator endpoints --------------------------------------------------------------------

void ServerImpl::api_create_tenant(HttpRequest& req, Responder& respond, const Caller& caller) {
  auto body = decode_tenant(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::string& id = body->id;
  const core::TenantPolicy& policy = body->policy;
  store::TenantRow row{id, token_hash(body->enrollment_key), json::serialize(policy_to_json(policy))};
  TimeMs now = clock_->now();
  auto write_lock = snapshot_write_lock();
  {
    store::AuditRow entry{0, now, caller.name, "tenant.put", "tenant " + id,
                          "created or replaced with a new enrollment key"};
    std::lock_guard lock(store_mu_);
    if (auto st = store_->put_tenant(row, entry); !st) return reply_error(respond, st.error());
  }
  fleet_.update([&](Snapshot& s) { s.tenants[id] = TenantInfo{row, policy}; });
  reply_json(respond, 201, json::object{{"id", id}, {"policy", policy_to_json(policy)}});
}

void ServerImpl::api_put_policy(HttpRequest& req, Responder& respond, const Caller& caller,
                                const std::string& tenant) {
  auto policy = decode_policy(req.body, options_.max_body_bytes);
  if (!policy) return reply_error(respond, policy.error());
  auto snap = fleet_.snapshot();
  auto t = snap->tenants.find(tenant);
  if (t == snap->tenants.end()) {
    return reply_error(respond, ApiError{404, "not_found", "tenant '" + tenant + "' does not exist"});
  }
  store::TenantRow row = t->second.row;
  row.policy_json = json::serialize(policy_to_json(*policy));
  auto write_lock = snapshot_write_lock();
  {
    store::AuditRow entry{0, clock_->now(), caller.name, "tenant.policy", "tenant " + tenant, row.policy_json};
    std::lock_guard lock(store_mu_);
    if (auto st = store_->put_tenant(row, entry); !st) return reply_error(respond, st.error());
  }
  fleet_.update([&](Snapshot& s) { s.tenants[tenant] = TenantInfo{row, *policy}; });
  reply_json(respond, 200, json::object{{"id", tenant}, {"policy", policy_to_json(*policy)}});
}

void ServerImpl::api_create_token(HttpRequest& req, Responder& respond, const Caller& caller) {
  auto body = decode_token(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::string& name = body->name;
  const store::Role role = body->role;
  std::string token = "tro_" + random_hex(24);
  store::OperatorTokenRow row{token_hash(token), name, role, clock_->now()};
  auto write_lock = snapshot_write_lock();
  {
    store::AuditRow entry{0, clock_->now(), caller.name, "token.create", "token " + name,
                          "role " + std::string(role_name(role))};
    std::lock_guard lock(store_mu_);
    if (auto st = store_->put_operator_token(row, entry); !st) return reply_error(respond, st.error());
  }
  fleet_.update([&](Snapshot& s) { s.operators[row.token_hash] = OperatorInfo{name, role, row.created_at}; },
                false);
  reply_json(respond, 201, json::object{{"name", name}, {"role", role_name(role)}, {"token", token}});
}

// Names, roles and when each was made (0: before the store kept it), never a
// token or its hash. One entry per token: the
// bootstrap token given again with another value leaves two named "admin".
void ServerImpl::api_list_tokens(Responder& respond) {
  auto snap = fleet_.snapshot();
  std::vector<const OperatorInfo*> list;
  for (const auto& [hash, info] : snap->operators) list.push_back(&info);
  std::stable_sort(list.begin(), list.end(),
                   [](const OperatorInfo* a, const OperatorInfo* b) { return a->name < b->name; });
  json::array out;
  for (const OperatorInfo* info : list) {
    out.push_back(json::object{{"name", info->name}, {"role", role_name(info->role)}, {"created_at", info->created_at}});
  }
  reply_json(respond, 200, json::object{{"tokens", std::move(out)}});
}

// Deletes every token of the name from the store (audited, one transaction)
// and from this server's snapshot: refused here from the next request on. The
// other servers of a cluster check every operator token against the store
// (authorize_operator): refused there at once too.
void ServerImpl::api_revoke_token(Responder& respond, const Caller& caller, const std::string& name) {
  auto write_lock = snapshot_write_lock();
  auto snap = fleet_.snapshot();
  bool known = false;
  bool another_admin = false;
  for (const auto& [hash, info] : snap->operators) {
    known = known || info.name == name;
    another_admin = another_admin || (info.name != name && info.role == store::Role::kAdmin);
  }
  if (!known) return reply_error(respond, ApiError{404, "not_found", "no operator token is named '" + name + "'"});
  if (!another_admin) {
    return reply_error(respond, ApiError{409, "conflict",
                                         "token '" + name + "' holds the last admin role: create another admin "
                                         "token first (POST /v1/tokens), or nobody could administer the server"});
  }
  {
    store::AuditRow entry{0, clock_->now(), caller.name, "token.revoke", "token " + name, "revoked"};
    std::lock_guard lock(store_mu_);
    if (auto st = store_->delete_operator_tokens(name, entry); !st) return reply_error(respond, st.error());
  }
  fleet_.update([&](Snapshot& s) { std::erase_if(s.operators, [&](const auto& kv) { return kv.second.name == name; }); },
                false);
  reply_json(respond, 200, json::object{{"name", name}, {"revoked", true}});
}

void ServerImpl::api_list_tenants(Responder& respond) {
  auto snap = fleet_.snapshot();
  json::array out;
  for (const auto& [id, info] : snap->tenants) {
    out.push_back(json::object{{"id", id}, {"policy", policy_to_json(info.policy)}});
  }
  reply_json(respond, 200, json::object{{"tenants", std::move(out)}});
}

void ServerImpl::api_get_policy(Responder& respond, const std::string& tenant) {
  auto snap = fleet_.snapshot();
  auto t = snap->tenants.find(tenant);
  if (t == snap->tenants.end()) {
    return reply_error(respond, ApiError{404, "not_found", "tenant '" + tenant + "' does not exist"});
  }
  reply_json(respond, 200, json::object{{"id", tenant}, {"policy", policy_to_json(t->second.policy)}});
}

// One release as GET /v1/releases lists it, and the rollouts of it.
void ServerImpl::api_get_release(Responder& respond, const std::string& channel, const std::string& version) {
  auto v = core::Version::parse(version);
  if (!v) return reply_error(respond, v.error().with_context("version: "));
  auto snap = fleet_.snapshot();
  const ReleaseInfo* found = nullptr;
  const ChannelInfo* info = nullptr;
  if (auto ch = snap->channels.find(channel); ch != snap->channels.end()) {
    info = &ch->second;
    for (const auto& r : ch->second.releases) {
      if (r.version == *v) found = &r;
    }
  }
  if (found == nullptr) {
    return reply_error(respond, ApiError{404, "not_found", "no release " + channel + " " + version});
  }
  boost::system::error_code ec;
  auto targets = json::parse(found->row.targets_json, ec);
  json::array rollouts;
  for (const auto& [id, r] : snap->rollouts) {
    if (r->channel == channel && r->version == *v) {
      rollouts.push_back(json::object{{"id", id}, {"state", core::to_string(r->status.state)}});
    }
  }
  reply_json(respond, 200,
             json::object{{"channel", channel},
                          {"version", found->row.version},
                          {"targets", ec ? json::value(json::array{}) : targets},
                          {"contract_bypassed", found->row.contract_bypassed},
                          {"registered_at", found->row.registered_at},
                          {"baseline", info->baseline && *info->baseline == *v},
                          {"rollouts", std::move(rollouts)}});
}

void ServerImpl::api_register_release(HttpRequest& req, Responder& respond, const Caller& caller) {
  auto body = decode_release(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::string& channel = body->channel;
  const core::Version& version = body->version;
  const bool skip = body->skip_contract_check;
  if (skip && caller.role < store::Role::kAdmin) {
    return reply_error(respond, ApiError{403, "forbidden",
                                         "skip_contract_check needs role admin; token '" + caller.name +
                                             "' has role " + std::string(role_name(caller.role))});
  }
  // The content contract (issue 4 section 4): a bundle is checked against what
  // the channel's consumer really supplies, and refused with every violation.
  const std::string& bundle_text = body->content_bundle;
  auto iface = interfaces_.find(channel);
  if (!skip && !bundle_text.empty() && iface != interfaces_.end()) {
    auto bundle = config::parse_content_bundle(bundle_text, "content_bundle");
    if (!bundle) return reply_error(respond, bundle.error());
    auto violations = core::check_contract(iface->second, *bundle);
    if (!violations.empty()) {
      json::array list;
      for (const auto& v : violations) list.emplace_back(v.message);
      metrics_.requests_rejected.fetch_add(1);
      return reply_json(
          respond, 422,
          json::object{{"error", json::object{{"code", "contract_violation"},
                                              {"message", std::to_string(violations.size()) +
                                                              " contract violation(s): " + violations.front().message},
                                              {"violations", std::move(list)}}}});
    }
  }
  // A release agents cannot download is refused now, not found out by every
  // agent's "not signed": with --tuf-repo, each target must be signed there,
  // under its path, with its length and sha256.
  std::optional<json::object> image;
  if (body->swu) {
    // An SWUpdate image: its target is computed from the file, so the hashes
    // DDI clients check are the server's own (server/ddi.h).
    if (options_.artifact_dir.empty()) {
      return reply_error(respond, ApiError{422, "no_artifact_dir",
                                           "kind swu needs the server started with --artifact-dir"});
    }
    auto target = ddi::swu_target(options_.artifact_dir, body->artifact);
    if (!target) {
      return reply_error(respond, ApiError{422, "artifact_not_found", target.error().message});
    }
    image = std::move(*target);
  }
  // A channel holds releases of one kind: DDI clients follow the swu channels,
  // tranche-agents the others.
  const auto before = fleet_.snapshot();
  if (auto known = before->channels.find(channel);
      known != before->channels.end() && !known->second.releases.empty() &&
      ddi::is_swu_channel(known->second) != body->swu) {
    return reply_error(respond, ApiError{409, "conflict",
                                         "channel " + channel + " holds releases of kind " +
                                             (body->swu ? "tuf" : "swu") + "; this release is of kind " +
                                             (body->swu ? "swu" : "tuf")});
  }
  if (!options_.tuf_repo_dir.empty() && body->targets.is_array()) {
    std::vector<config::ExpectedTarget> expected;
    for (const auto& t : body->targets.as_array()) {
      const auto& o = t.as_object();
      expected.push_back({std::string(o.at("path").as_string()), o.at("length").to_number<std::int64_t>(),
                          std::string(o.at("sha256").as_string())});
    }
    if (auto st = config::repo_check_targets(options_.tuf_repo_dir, expected); !st) {
      const unsigned status = st.error().code == ErrorCode::kConflict ? 409 : 422;
      return reply_error(respond, ApiError{status, status == 409 ? "conflict" : "not_signed", st.error().message});
    }
  }
  if (image) {
    // After the TUF targets (if any, for the agents of a mixed fleet): the
    // image's own, with the format that marks it (ddi::swu_target_of).
    if (!body->targets.is_array()) body->targets = json::array{};
    body->targets.as_array().push_back(std::move(*image));
  }
  store::ReleaseRow row{channel, version.to_string(), json::serialize(body->targets), skip, clock_->now()};
  auto write_lock = snapshot_write_lock();
  // Versions compare by value ("7.0" equals "7.0.0", docs/api.md): a second
  // spelling of a registered version is the same release, not a new one.
  const auto known = fleet_.snapshot();
  if (auto ch = known->channels.find(channel); ch != known->channels.end()) {
    for (const auto& r : ch->second.releases) {
      if (r.version == version) {
        return reply_error(respond, ApiError{409, "conflict",
                                             "release " + channel + " " + r.row.version + " already exists (" +
                                                 body->version_text + " is the same version)"});
      }
    }
  }
  {
    store::AuditRow entry{0, row.registered_at, caller.name, "release.register",
                          "release " + channel + " " + row.version,
                          skip ? "contract check explicitly skipped" : "registered"};
    std::lock_guard lock(store_mu_);
    if (auto st = store_->insert_release(row, entry); !st) {
      if (st.error().code == ErrorCode::kConflict) {
        return reply_error(respond, ApiError{409, "conflict",
                                             "release " + channel + " " + row.version + " already exists"});
      }
      return reply_error(respond, st.error());
    }
  }
  fleet_.update([&](Snapshot& s) {
    auto& list = s.channels[channel].releases;
    list.push_back(ReleaseInfo{version, row, nullptr});
    std::sort(list.begin(), list.end(),
              [](const ReleaseInfo& a, const ReleaseInfo& b) { return a.version < b.version; });
  });
  // Say what was checked: "passed" only when a bundle was checked against the
  // channel's consumer interface.
  const char* check = skip                          ? "skipped"
                      : bundle_text.empty()         ? "not checked: no bundle given"
                      : iface == interfaces_.end()  ? "not checked: no consumer interface configured for the channel"
                                                    : "passed";
  json::object created{{"channel", channel}, {"version", row.version}, {"contract_check", check}};
  if (body->swu) {
    created["kind"] = "swu";
    created["targets"] = body->targets;
  }
  reply_json(respond, 201, created);
}

void ServerImpl::api_list_releases(Responder& respond) {
  auto snap = fleet_.snapshot();
  json::array out;
  for (const auto& [channel, info] : snap->channels) {
    for (const auto& r : info.releases) {
      boost::system::error_code ec;
      auto targets = json::parse(r.row.targets_json, ec);
      out.push_back(json::object{{"channel", channel},
                                 {"version", r.row.version},
                                 {"targets", ec ? json::value(json::array{}) : targets},
                                 {"contract_bypassed", r.row.contract_bypassed},
                                 {"registered_at", r.row.registered_at},
                                 {"baseline", info.baseline && *info.baseline == r.version}});
    }
  }
  reply_json(respond, 200, json::object{{"releases", std::move(out)}});
}

namespace {

// The plan's strata keys and the devices counted in each at the start.
json::object strata_json(const RolloutInfo& r) {
  json::array keys;
  for (const auto& k : r.plan.strata) keys.emplace_back(k);
  json::object counts;
  for (const auto& [key, n] : r.strata) counts[key] = n;
  return json::object{{"keys", std::move(keys)}, {"counts", std::move(counts)}};
}

}  // namespace

json::object ServerImpl::rollout_json(const RolloutInfo& r, const Snapshot& snapshot) const {
  json::array stages;
  std::uint64_t eligible = eligible_devices(snapshot);
  for (std::size_t i = 0; i < r.plan.stages.size(); ++i) {
    const auto& st = r.plan.stages[i];
    core::Ppm share = core::effective_share(st.percent, st.min_devices, eligible);
    stages.push_back(json::object{
        {"name", st.name},
        {"percent", st.percent.to_string()},
        {"effective_share", share.to_string()},
        {"target_devices", core::stage_target(r.plan, i, eligible, r.strata)},
        {"min_per_stratum", st.min_per_stratum},
        {"bake_s", st.bake / 1000},
        {"admits_critical", st.admits_critical},
        {"state", i < r.status.stage || r.status.state == core::RolloutState::kCompleted ? "done"
                  : i == r.status.stage                                            ? "current"
                                                                                   : "waiting"}});
  }
  bool looked = !r.verdict.reason.empty();
  const core::EvidenceTally evidence = r.tally();
  const core::FailureLimits& limits = r.plan.limits_for(r.status.stage);
  json::object gate{
      {"exposed_failures", evidence.exposed.failures},
      {"exposed_device_s", evidence.exposed.exposure_s},
      {"control_failures", evidence.control.failures},
      {"control_device_s", evidence.control.exposure_s},
      {"exposed_devices", evidence.exposed_devices},
      {"acknowledged", evidence.acknowledged},
      {"exposed_silent", evidence.exposed_failures_of(core::FailureCause::kSilent)},
      {"exposed_failures_by_cause", failures_by_cause_json(evidence)},
      // The absolute limits in force in the current stage (docs/plan.md).
      {"limits", json::object{{"max_failure_rate", limits.max_failure_rate},
                              {"min_exposed", limits.min_exposed},
                              {"max_failures", limits.max_failures ? json::value(*limits.max_failures)
                                                                   : json::value(nullptr)}}},
      {"limit_crossed", r.verdict.limit_crossed},
      {"min_acknowledged", r.plan.gate.min_acknowledged},
      {"completion", json::object{{"share", r.plan.completion_share.to_string()},
                                  {"running", r.coverage.running},
                                  {"target", r.coverage.target}}},
      // Before the engine's first look at this rollout (and after a restart)
      // there is no verdict: null, not a bound of 0.
      {"log_lr", looked ? json::value(r.verdict.log_lr) : json::value(nullptr)},
      {"halt_threshold", looked ? json::value(r.verdict.threshold) : json::value(nullptr)},
      // Undefined (null) without control failures to compare against.
      {"ratio_estimate", looked && r.verdict.ratio_estimate > 0 ? json::value(r.verdict.ratio_estimate)
                                                                 : json::value(nullptr)},
      {"ratio_upper", looked && std::isfinite(r.verdict.ratio_upper) ? json::value(r.verdict.ratio_upper)
                                                                      : json::value(nullptr)},
      {"verdict_reason", r.verdict.reason},
      {"halted", r.gate.halted}};
  json::array actions;
  for (auto ev : {core::RolloutEvent::kPause, core::RolloutEvent::kResume, core::RolloutEvent::kPromote,
                  core::RolloutEvent::kAbort, core::RolloutEvent::kRollback}) {
    if (core::is_allowed(r.status.state, ev)) actions.emplace_back(core::to_string(ev));
  }
  return json::object{{"id", r.row.id},
                      {"channel", r.channel},
                      {"version", r.version.to_string()},
                      {"previous", version_or_null(r.previous)},
                      {"plan", r.plan.name},
                      {"on_failure", r.plan.on_failure == core::OnFailure::kRollback ? "rollback" : "halt"},
                      {"status", status_to_json(r.status)},
                      // core's one definition of each, for clients (dashboard, CLI)
                      {"final", core::is_final(r.status.state)},
                      {"live", core::is_live(r.status.state)},
                      {"stopped", core::is_stopped(r.status.state)},
                      {"stages", std::move(stages)},
                      {"strata", strata_json(r)},
                      {"gate", std::move(gate)},
                      {"allowed_actions", std::move(actions)},
                      {"generation", r.row.generation},
                      {"created_at", r.row.created_at},
                      {"updated_at", r.row.updated_at}};
}

// Devices per stratum of `keys`: from the store when several servers share it
// (each holds only its share of the devices), else from this server's fleet.
core::Result<core::StratumCounts> ServerImpl::count_strata(const std::vector<std::string>& keys) {
  core::StratumCounts counts;
  if (shared_) {
    core::Result<std::vector<std::pair<core::Tags, std::uint64_t>>> groups =
        std::vector<std::pair<core::Tags, std::uint64_t>>{};
    {
      std::lock_guard lock(store_mu_);
      groups = store_->count_devices_by_tags(keys);
    }
    if (!groups) return groups.error();
    for (const auto& [tags, n] : *groups) counts[core::stratum_of(tags, keys)] += n;
  } else {
    fleet_.for_each_device([&](const Device& d) { ++counts[core::stratum_of(d.tags, keys)]; });
  }
  return counts;
}

void ServerImpl::api_create_rollout(HttpRequest& req, Responder& respond, const Caller& caller) {
  auto body = decode_rollout(req.body, options_.max_body_bytes);
  if (!body) return reply_error(respond, body.error());
  const std::string& channel = body->channel;
  const core::Version& version = body->version;
  std::string id = body->id.value_or("r-" + random_hex(4));

  // A plan whose first stage admits critical devices reaches them at once: the
  // same rule as promotion into such a stage.
  if (body->plan.stages.front().admits_critical && caller.role < store::Role::kAdmin) {
    return reply_error(respond, ApiError{403, "forbidden",
                                         "a plan whose first stage '" + body->plan.stages.front().name +
                                             "' admits critical devices needs role admin; token '" +
                                             caller.name + "' has role " +
                                             std::string(role_name(caller.role))});
  }
  // min_per_stratum: the fleet's strata, counted now (outside the engine's lock:
  // a pass over every device) and kept with the rollout.
  core::StratumCounts strata;
  if (!body->plan.strata.empty()) {
    auto counted = count_strata(body->plan.strata);
    if (!counted) return reply_error(respond, counted.error());
    strata = std::move(*counted);
  }
  TimeMs now = clock_->now();
  std::lock_guard engine_lock(engine_->mutex());
  auto snap = fleet_.snapshot();
  auto ch = snap->channels.find(channel);
  bool known = ch != snap->channels.end() &&
               std::any_of(ch->second.releases.begin(), ch->second.releases.end(),
                           [&](const ReleaseInfo& r) { return r.version == version; });
  if (!known) {
    return reply_error(respond, ApiError{404, "not_found",
                                         "release " + channel + " " + version.to_string() +
                                             " is not registered (POST /v1/releases first)"});
  }
  if (const RolloutInfo* live = snap->live_rollout_for(channel)) {
    return reply_error(respond, ApiError{409, "conflict",
                                         "channel '" + channel + "' already has live rollout " +
                                             live->row.id + " (" +
                                             std::string(core::to_string(live->status.state)) +
                                             "); finish, abort or roll it back first"});
  }
  auto info = std::make_shared<RolloutInfo>();
  info->plan = std::move(body->plan);
  info->channel = channel;
  info->version = version;
  info->previous = ch->second.baseline;
  info->evidence = std::make_shared<RolloutEvidence>();
  info->row.id = id;
  info->row.channel = channel;
  info->row.version = version.to_string();
  info->row.previous = info->previous ? info->previous->to_string() : "";
  info->row.plan_yaml = body->plan_yaml;
  info->row.salt = core::rollout_salt(id);
  info->row.status_json = json::serialize(status_to_json(info->status));
  info->strata = std::move(strata);
  info->row.gate_json = info->strata.empty() ? "{}" : json::serialize(gate_to_json(GateRecord{{}, {}, info->strata}));
  info->row.generation = 0;
  info->row.created_at = now;
  info->row.updated_at = now;
  {
    std::lock_guard lock(store_mu_);
    store::AuditRow a{0, now, caller.name, "rollout.create", "rollout " + id,
                      "release " + channel + " " + version.to_string() + " with plan '" +
                          info->plan.name + "'"};
    if (auto st = store_->insert_rollout(info->row, a); !st) return reply_error(respond, st.error());
  }
  std::shared_ptr<const RolloutInfo> published = info;
  fleet_.update([&](Snapshot& s) { s.rollouts[id] = published; });
  auto started = engine_->transition(id, core::RolloutEvent::kStart, caller.name,
                            "started by " + caller.name, now);
  if (!started) return reply_error(respond, started.error());
  auto snap2 = fleet_.snapshot();
  reply_json(respond, 201, rollout_json(**started, *snap2));
}

void ServerImpl::api_rollout_action(HttpRequest& req, Responder& respond, const Caller& caller,
                                    const std::string& id, const std::string& action) {
  static const std::map<std::string, core::RolloutEvent> kActions = {
      {"pause", core::RolloutEvent::kPause},     {"resume", core::RolloutEvent::kResume},
      {"promote", core::RolloutEvent::kPromote}, {"abort", core::RolloutEvent::kAbort},
      {"rollback", core::RolloutEvent::kRollback}};
  auto a = kActions.find(action);
  if (a == kActions.end()) {
    return reply_error(respond, ApiError{404, "not_found",
                                         "no action '" + action +
                                             "' (pause, resume, promote, abort, rollback)"});
  }
  auto decoded = decode_rollout_action(req.body, options_.max_body_bytes);
  if (!decoded) return reply_error(respond, decoded.error());
  std::string reason = std::move(*decoded);
  auto snap = fleet_.snapshot();
  auto it = snap->rollouts.find(id);
  if (it == snap->rollouts.end()) {
    return reply_error(respond, ApiError{404, "not_found", "rollout '" + id + "' does not exist"});
  }
  const RolloutInfo& r = *it->second;
  // Abort, rollback, and promotion into a stage that admits critical devices
  // need an admin (issue 3 section 5).
  bool needs_admin = a->second == core::RolloutEvent::kAbort ||
                     a->second == core::RolloutEvent::kRollback;
  if (a->second == core::RolloutEvent::kPromote && r.status.stage + 1 < r.plan.stages.size() &&
      r.plan.stages[r.status.stage + 1].admits_critical) {
    needs_admin = true;
  }
  if (needs_admin && caller.role < store::Role::kAdmin) {
    std::string what = a->second == core::RolloutEvent::kPromote
                           ? "promotion into stage '" + r.plan.stages[r.status.stage + 1].name +
                                 "' (admits critical devices)"
                           : action;
    return reply_error(respond, ApiError{403, "forbidden",
                                         what + " needs role admin; token '" + caller.name +
                                             "' has role " + std::string(role_name(caller.role))});
  }
  if (reason.empty()) reason = action + " by " + caller.name;
  auto done = engine_->transition(id, a->second, caller.name, reason, clock_->now());
  if (!done) return reply_error(respond, done.error());
  auto snap2 = fleet_.snapshot();
  reply_json(respond, 200, rollout_json(**done, *snap2));
}

void ServerImpl::api_get_rollout(Responder& respond, const std::string& id) {
  auto snap = fleet_.snapshot();
  auto it = snap->rollouts.find(id);
  if (it == snap->rollouts.end()) {
    return reply_error(respond, ApiError{404, "not_found", "rollout '" + id + "' does not exist"});
  }
  auto out = rollout_json(*it->second, *snap);
  std::vector<store::TransitionRow> transitions;
  {
    std::lock_guard lock(store_mu_);
    if (auto t = store_->load_transitions(id)) transitions = std::move(*t);
  }
  json::array tr;
  for (const auto& t : transitions) {
    tr.push_back(json::object{{"generation", t.generation}, {"from", t.from_state}, {"to", t.to_state},
                              {"event", t.event}, {"reason", t.reason}, {"at", t.at}});
  }
  out["transitions"] = std::move(tr);
  reply_json(respond, 200, out);
}

void ServerImpl::sample_history(TimeMs now) {
  auto snap = fleet_.snapshot();
  std::set<std::string> known;
  for (const auto& [id, r] : snap->rollouts) {
    known.insert(id);
    const std::string state(core::to_string(r->status.state));
    // A live rollout every kHistoryEvery, and any rollout at once when its
    // state changed since its last sample (a halt is a point on the charts,
    // and a rollout that ended between two samples still has one).
    const auto last = history_.last(id);
    const bool changed = !last || last->state != state || last->stage != r->status.stage;
    const bool due = core::is_live(r->status.state) && last && now - last->at >= kHistoryEvery;
    if (!changed && !due) continue;
    const core::EvidenceTally evidence = r->tally();
    const bool looked = !r->verdict.reason.empty();
    const std::size_t stage = std::min<std::size_t>(r->status.stage, r->plan.stages.size() - 1);
    history_.add(id, RolloutSample{now, state, r->status.stage,
                                   looked ? std::optional<double>(r->verdict.log_lr) : std::nullopt,
                                   looked ? std::optional<double>(r->verdict.threshold) : std::nullopt,
                                   static_cast<std::int64_t>(evidence.exposed.failures),
                                   static_cast<std::int64_t>(evidence.control.failures),
                                   static_cast<double>(evidence.exposed.exposure_s),
                                   static_cast<double>(evidence.control.exposure_s),
                                   static_cast<std::int64_t>(evidence.exposed_devices),
                                   r->online_on_version,
                                   core::stage_target(r->plan, stage, eligible_devices(*snap), r->strata)});
  }
  history_.keep_only(known);
}

void ServerImpl::api_rollout_history(HttpRequest& req, Responder& respond, const std::string& id) {
  std::int64_t since = -1;
  if (std::string text = query_param(req.query, "since").value_or(""); !text.empty()) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), since);
    if (ec != std::errc() || p != text.data() + text.size() || since < 0) {
      return reply_error(respond, bad_request("since: expected a time in ms since the epoch (a non-negative integer)"));
    }
  }
  auto snap = fleet_.snapshot();
  if (snap->rollouts.count(id) == 0) {
    return reply_error(respond, ApiError{404, "not_found", "no rollout " + id});
  }
  json::array out;
  auto number_or_null = [](const std::optional<double>& v) { return v ? json::value(*v) : json::value(nullptr); };
  for (const auto& s : history_.samples(id)) {
    if (s.at <= since) continue;
    out.push_back(json::object{{"at", s.at},
                               {"state", s.state},
                               {"stage", s.stage},
                               {"log_lr", number_or_null(s.log_lr)},
                               {"halt_threshold", number_or_null(s.halt_threshold)},
                               {"exposed_failures", s.exposed_failures},
                               {"control_failures", s.control_failures},
                               {"exposed_device_s", s.exposed_device_s},
                               {"control_device_s", s.control_device_s},
                               {"exposed_devices", s.exposed_devices},
                               {"on_version", s.on_version},
                               {"target_devices", s.target_devices}});
  }
  reply_json(respond, 200,
             json::object{{"rollout", id},
                          {"every_s", kHistoryEvery / core::kSecond},
                          {"samples", std::move(out)}});
}

void ServerImpl::api_me(Responder& respond, const Caller& caller) {
  reply_json(respond, 200, json::object{{"name", caller.name}, {"role", role_name(caller.role)}});
}

void ServerImpl::api_list_rollouts(Responder& respond) {
  auto snap = fleet_.snapshot();
  json::array out;
  for (const auto& [id, r] : snap->rollouts) out.push_back(rollout_json(*r, *snap));
  reply_json(respond, 200, json::object{{"rollouts", std::move(out)}});
}

void ServerImpl::api_fleet(Responder& respond) {
  auto snap = fleet_.snapshot();
  TimeMs now = clock_->now();
  std::map<std::string, std::map<std::string, std::uint64_t>> by_version;  // channel -> version -> n
  std::map<std::string, std::uint64_t> by_tenant;
  std::map<std::string, std::map<std::string, std::uint64_t>> by_stage;  // rollout -> stage -> n
  std::uint64_t total = 0, online = 0;
  // Each live rollout's view, once: the count below runs for every device.
  std::vector<std::tuple<const std::string*, const RolloutInfo*, core::RolloutView>> live;
  for (const auto& [ch, id] : snap->live_rollout) {
    if (const RolloutInfo* r = snap->live_rollout_for(ch)) live.emplace_back(&id, r, rollout_view(*r, *snap));
  }
  auto count = [&](const Device& d) {
    ++total;
    if (d.held || (d.last_seen > 0 && now - d.last_seen <= 3 * 60 * 1000 && !d.said_goodbye)) ++online;
    ++by_tenant[d.tenant];
    for (const auto& [ch, v] : d.versions) ++by_version[ch][v.to_string()];
    for (const auto& [id, r, view] : live) {
      const auto k = core::first_admitting_stage(view, core::cohort_bucket(d.id(), r->row.salt), d.tags);
      ++by_stage[*id][k ? r->plan.stages[*k].name : std::string("not yet")];
    }
  };
  if (shared_) {
    // Several servers: each holds only its share, so the whole fleet is read
    // from the store (one pass; no marks needed).
    core::Result<std::vector<store::DeviceRow>> rows = std::vector<store::DeviceRow>{};
    core::Result<std::vector<store::DeviceStateRow>> states = std::vector<store::DeviceStateRow>{};
    {
      std::lock_guard lock(store_mu_);
      rows = store_->load_devices();
      if (rows) states = store_->load_device_states();
    }
    if (!rows) return reply_error(respond, rows.error());
    if (!states) return reply_error(respond, states.error());
    std::unordered_map<std::string, const store::DeviceStateRow*> state_of;
    state_of.reserve(states->size());
    for (const auto& st : *states) state_of.emplace(st.device, &st);
    static const std::vector<store::RolloutMarkRow> kNoMarks;
    for (const auto& row : *rows) {
      auto st = state_of.find(row.id);
      Device d = device_from_rows(row, st == state_of.end() ? nullptr : st->second, kNoMarks);
      // Online: may have been heard within the window (the store's last contact
      // is coarse, core::latest_contact).
      d.last_seen = core::latest_contact(d.last_seen, last_seen_every(), now);
      count(d);
    }
  } else {
    fleet_.for_each_device(count);
  }
  json::object versions;
  for (const auto& [ch, m] : by_version) {
    json::object o;
    for (const auto& [v, n] : m) o[v] = n;
    versions[ch] = std::move(o);
  }
  json::object tenants;
  for (const auto& [t, n] : by_tenant) tenants[t] = n;
  json::object stages;
  for (const auto& [id, m] : by_stage) {
    json::object o;
    for (const auto& [s, n] : m) o[s] = n;
    stages[id] = std::move(o);
  }
  reply_json(respond, 200, json::object{{"devices", total}, {"online", online},
                                        {"by_version", std::move(versions)},
                                        {"by_tenant", std::move(tenants)},
                                        {"by_stage", std::move(stages)}});
}

core::Result<std::string> ServerImpl::key_of_device(const std::string& id, const std::string& query) {
  if (!core::DeviceId::parse(id)) {
    return core::make_error(ErrorCode::kInvalidArgument, "device id: expected [A-Za-z0-9._:-]{1,128}");
  }
  if (auto tenant = query_param(query, "tenant")) {
    if (!core::TenantId::parse(*tenant)) {
      return core::make_error(ErrorCode::kInvalidArgument, "tenant: expected [A-Za-z0-9._:-]{1,64}");
    }
    return core::device_key(*tenant, id);
  }
  // No tenant named: the one that has such a device. Held in memory first; on
  // a shared store, each tenant's key is looked up (tenants are few).
  auto snap = fleet_.snapshot();
  std::vector<std::string> found;
  for (const auto& [tenant, info] : snap->tenants) {
    const std::string key = core::device_key(tenant, id);
    bool held = is_enrolled(key);
    if (!held && shared_) {
      std::lock_guard lock(store_mu_);
      auto record = store_->load_device(key);
      if (!record && record.error().code != ErrorCode::kNotFound) return record.error();
      held = record.ok();
    }
    if (held) found.push_back(tenant);
  }
  if (found.empty()) return core::make_error(ErrorCode::kNotFound, "device '" + id + "' is not enrolled");
  if (found.size() > 1) {
    std::string list;
    for (const auto& t : found) list += (list.empty() ? "" : ", ") + t;
    return core::make_error(ErrorCode::kConflict, "device id '" + id + "' is enrolled in several tenants (" + list +
                                                      "): name the tenant (?tenant=T; tranche device --tenant T)");
  }
  return core::device_key(found.front(), id);
}

void ServerImpl::api_device(HttpRequest& req, Responder& respond, const std::string& id) {
  auto key = key_of_device(id, req.query);
  if (!key) return reply_error(respond, key.error());
  auto snap = fleet_.snapshot();
  TimeMs now = clock_->now();
  json::object out;
  std::vector<ChannelAnswer> answers;
  std::optional<Device> seen;
  auto describe = [&](Device& d) {
    seen = d;
    answers = Fleet::answer(d, *snap, now);
    json::object failed;
    for (const auto& [ch, list] : d.failed) {
      json::array a;
      for (const auto& v : list) a.emplace_back(v.to_string());
      failed[ch] = std::move(a);
    }
    boost::system::error_code ec;
    auto health = json::parse(d.health_json, ec);
    out = json::object{{"id", d.id()},
                       {"tenant", d.tenant},
                       {"tags", tags_to_json(d.tags)},
                       {"utc_offset_minutes", d.utc_offset_minutes},
                       {"enrolled_at", d.enrolled_at},
                       {"last_seen", d.last_seen},
                       {"said_goodbye", d.said_goodbye},
                       {"failed", std::move(failed)},
                       {"health", ec ? json::value(json::object{}) : health}};
  };
  auto st = fleet_.with_device(*key, describe);
  if (!st && st.error().code == ErrorCode::kNotFound && shared_) {
    // Several servers: a device this server does not hold, as the store has it.
    core::Result<store::DeviceRecord> record = core::make_error(ErrorCode::kUnavailable, "no store");
    {
      std::lock_guard lock(store_mu_);
      record = store_->load_device(*key);
    }
    if (!record) return reply_error(respond, record.error());
    Device d = device_from_rows(record->device, &record->state, record->marks);
    describe(d);
    st = core::Ok{};
  }
  if (!st) return reply_error(respond, st.error());
  if (auto e = device_truth(*seen, *snap, now, out)) return reply_error(respond, *e);
  // "Why has (or hasn't) this device got version V?" — with ?version=V the answer
  // names V explicitly, and what the device last reported.
  std::string asked = query_param(req.query, "version").value_or("");
  json::object channels = answer_json(answers, *snap, now)["channels"].as_object();
  out["channels"] = std::move(channels);
  if (!asked.empty()) {
    auto v = core::Version::parse(asked);
    if (!v) return reply_error(respond, v.error().with_context("version: "));
    std::string why;
    for (const auto& a : answers) {
      bool has = a.current && *a.current == *v;
      bool gets = a.assignment.desired && *a.assignment.desired == *v;
      bool relevant = has || gets;
      if (!relevant) {
        if (auto ch = snap->channels.find(a.channel); ch != snap->channels.end()) {
          for (const auto& r : ch->second.releases) relevant = relevant || r.version == *v;
        }
      }
      if (!relevant) continue;
      why = std::string(has ? "runs " : "does not run ") + v->to_string() + " on " + a.channel + "; " +
            (gets ? "it is the desired version: " : "the desired version is " +
                                                        (a.assignment.desired ? a.assignment.desired->to_string()
                                                                              : std::string("unchanged")) +
                                                        ": ") +
            a.assignment.reason.text;
    }
    out["why"] = why.empty() ? "no channel has a release " + v->to_string() : why;
    if (const auto* last = out.if_contains("last_reported"); last && last->is_string()) {
      out["why"] = std::string(out["why"].as_string()) + "; the device last reported: " +
                   std::string(last->as_string());
    }
  }
  reply_json(respond, 200, out);
}

void ServerImpl::api_audit(HttpRequest& req, Responder& respond) {
  std::int64_t after = 0;
  std::size_t limit = 100;
  std::string a = query_param(req.query, "after").value_or("");
  std::string l = query_param(req.query, "limit").value_or("");
  if (!a.empty()) {
    auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), after);
    if (ec != std::errc() || p != a.data() + a.size() || after < 0) {
      return reply_error(respond, bad_request("after: expected a non-negative integer"));
    }
  }
  if (!l.empty()) {
    auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
    if (ec != std::errc() || p != l.data() + l.size() || limit == 0 || limit > 1000) {
      return reply_error(respond, bad_request("limit: expected an integer in 1..1000"));
    }
  }
  core::Result<std::vector<store::AuditRow>> rows = std::vector<store::AuditRow>{};
  {
    std::lock_guard lock(store_mu_);
    rows = store_->load_audit(after, limit);
  }
  if (!rows) return reply_error(respond, rows.error());
  json::array out;
  for (const auto& r : *rows) {
    out.push_back(json::object{{"seq", r.seq}, {"at", r.at}, {"actor", r.actor}, {"action", r.action},
                               {"target", r.target}, {"reason", r.reason}});
  }
  reply_json(respond, 200, json::object{{"entries", std::move(out)}});
}

namespace {

// root/parts[0]/.../parts[n-1] opened read-only without following a symbolic
// link at any component below `root`; -1 when any component is missing, a
// link, or (before the last) not a directory.
int open_beneath(const std::string& root, const std::vector<std::string>& parts) {
  if (parts.empty()) return -1;
  int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (std::size_t i = 0; dir >= 0 && i + 1 < parts.size(); ++i) {
    const int next = ::openat(dir, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(dir);
    dir = next;
  }
  if (dir < 0) return -1;
  const int fd = ::openat(dir, parts.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  ::close(dir);
  return fd;
}

}  // namespace

void ServerImpl::serve_file(const std::string& root, const std::string& relative, Responder& respond) {
  constexpr std::uintmax_t kMaxFile = 256ull << 20;
  // Only plain relative names: no "..", no empty or hidden components, no
  // backslash or control bytes, so nothing outside `root` can be named.
  bool ok = !relative.empty() && relative.size() <= 1024;
  for (const auto& part : segments(relative)) ok = ok && !part.empty() && part[0] != '.';
  for (char c : relative) {
    ok = ok && static_cast<unsigned char>(c) >= 0x20 && c != '\\' && c != '%';
  }
  ok = ok && relative.front() != '/' && relative.find("//") == std::string::npos;
  if (!ok) return reply_error(respond, ApiError{404, "not_found", "no such file"});
  const std::filesystem::path path = std::filesystem::path(root) / relative;
  // Opened component by component below `root` with O_NOFOLLOW: a symbolic link
  // in the tree is never followed, wherever it points (`root` itself may be one).
  const int fd = open_beneath(root, segments(relative));
  if (fd < 0) return reply_error(respond, ApiError{404, "not_found", "no such file: " + relative});
  struct stat st {};
  std::string data;
  bool read_ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::uintmax_t>(st.st_size) <= kMaxFile;
  if (read_ok) {
    data.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (read_ok && got < data.size()) {
      const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
      if (n < 0 && errno == EINTR) continue;
      read_ok = n > 0;
      if (read_ok) got += static_cast<std::size_t>(n);
    }
  }
  ::close(fd);
  if (!read_ok) return reply_error(respond, ApiError{404, "not_found", "no such file: " + relative});
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"}};
  auto type = kTypes.find(path.extension().string());
  HttpResponse r;
  r.content_type = type == kTypes.end() ? "application/octet-stream" : type->second;
  r.body = std::move(data);
  // TUF metadata and the dashboard change; versioned targets do not.
  r.headers.emplace_back("Cache-Control", "no-cache");
  respond(std::move(r));
}

void ServerImpl::api_metrics(Responder& respond) {
  std::string text = metrics_.render();
  auto snap = fleet_.snapshot();
  text += "# HELP tranche_devices Devices enrolled.\n# TYPE tranche_devices gauge\ntranche_devices " +
          std::to_string(std::max<std::uint64_t>(fleet_.device_count(), fleet_.store_count())) + "\n";
  text += "# HELP tranche_devices_held Devices this server holds in memory (its share of the fleet).\n"
          "# TYPE tranche_devices_held gauge\ntranche_devices_held " +
          std::to_string(fleet_.device_count()) + "\n";
  text +=
      "# HELP tranche_gate_log_lr Log likelihood ratio of the gate's test, per rollout and stage.\n"
      "# TYPE tranche_gate_log_lr gauge\n";
  std::string failures =
      "# HELP tranche_gate_failures Failing devices counted by the gate.\n"
      "# TYPE tranche_gate_failures gauge\n";
  std::string exposure =
      "# HELP tranche_gate_exposure_seconds Device-seconds of evidence.\n"
      "# TYPE tranche_gate_exposure_seconds gauge\n";
  for (const auto& [id, r] : snap->rollouts) {
    if (!r->live()) continue;
    std::string stage = r->status.stage < r->plan.stages.size() ? r->plan.stages[r->status.stage].name : "";
    std::string labels = "{rollout=\"" + id + "\",stage=\"" + stage + "\"";
    text += "tranche_gate_log_lr" + labels + "} " + std::to_string(r->verdict.log_lr) + "\n";
    const core::EvidenceTally ev = r->tally();
    failures += "tranche_gate_failures" + labels + ",group=\"exposed\"} " +
                std::to_string(ev.exposed.failures) + "\n";
    failures += "tranche_gate_failures" + labels + ",group=\"control\"} " +
                std::to_string(ev.control.failures) + "\n";
    exposure += "tranche_gate_exposure_seconds" + labels + ",group=\"exposed\"} " +
                std::to_string(ev.exposed.exposure_s) + "\n";
    exposure += "tranche_gate_exposure_seconds" + labels + ",group=\"control\"} " +
                std::to_string(ev.control.exposure_s) + "\n";
  }
  {
    std::lock_guard lock(ddi_mu_);
    text += "# HELP tranche_ddi_artifact_requests_total Artifact downloads by DDI clients, per release.\n"
            "# TYPE tranche_ddi_artifact_requests_total counter\n";
    for (const auto& [release, n] : ddi_downloads_) {
      const auto space = release.find(' ');
      text += "tranche_ddi_artifact_requests_total{channel=\"" + release.substr(0, space) + "\",version=\"" +
              release.substr(space + 1) + "\"} " + std::to_string(n) + "\n";
    }
  }
  HttpResponse res;
  res.content_type = "text/plain; version=0.0.4";
  res.body = text + failures + exposure;
  respond(std::move(res));
}

}  // namespace tranche::server
