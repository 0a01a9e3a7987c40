#include "server/request_codec.h"

#include <algorithm>
#include <initializer_list>
#include <set>

#include <boost/json.hpp>

#include "config/plan_yaml.h"
#include "core/agent_machine.h"
#include "server/codec.h"

namespace tranche::server {
namespace json = boost::json;
using core::ErrorCode;

namespace {

core::Error bad_request(std::string message) {
  return core::make_error(ErrorCode::kInvalidArgument, std::move(message));
}

const json::value* member(const json::object& o, std::string_view key) { return o.if_contains(key); }

std::optional<std::string> string_member(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

// Refuses keys not in `allowed`: a misspelt field must not be silently ignored.
std::optional<core::Error> check_fields(const json::object& o, std::initializer_list<std::string_view> allowed,
                                        std::string_view where) {
  for (const auto& [key, v] : o) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(key)) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return bad_request(std::string(where) + "." + std::string(key) + ": unknown field (expected " +
                         list + ")");
    }
  }
  return std::nullopt;
}

// The body as a JSON object with only `allowed` fields.
core::Result<json::object> body_object(std::string_view body, std::size_t max_bytes,
                                       std::initializer_list<std::string_view> allowed) {
  auto parsed = parse_json_body(body, max_bytes);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return bad_request("body: expected a JSON object");
  if (auto e = check_fields(parsed->as_object(), allowed, "body")) return *e;
  return std::move(parsed->as_object());
}

}  // namespace

std::string_view role_name(store::Role r) {
  switch (r) {
    case store::Role::kViewer:
      return "viewer";
    case store::Role::kOperator:
      return "operator";
    case store::Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

std::optional<store::Role> role_from(std::string_view s) {
  if (s == "viewer") return store::Role::kViewer;
  if (s == "operator") return store::Role::kOperator;
  if (s == "admin") return store::Role::kAdmin;
  return std::nullopt;
}

core::Result<DeviceFields> decode_device_fields(const json::object& o, const std::string& where) {
  auto id_text = string_member(o, "device_id");
  if (!id_text) return core::make_error(ErrorCode::kInvalidArgument, where + "device_id: required string");
  auto id = core::DeviceId::parse(*id_text);
  if (!id) return id.error().with_context(where + "device_id: ");
  DeviceFields d;
  d.id = id->str();
  if (auto* t = member(o, "tags")) {
    auto parsed = tags_from_json(*t);
    if (!parsed) return parsed.error().with_context(where);
    d.tags = std::move(*parsed);
  }
  if (auto* off = member(o, "utc_offset_minutes")) {
    if (!off->is_int64() || off->as_int64() < -14 * 60 || off->as_int64() > 14 * 60) {
      return core::make_error(ErrorCode::kInvalidArgument,
                              where + "utc_offset_minutes: expected an integer in -840..840");
    }
    d.utc_offset_minutes = static_cast<std::int32_t>(off->as_int64());
  }
  return d;
}

core::Result<EnrollRequest> decode_enroll(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"tenant", "enrollment_key", "device_id", "tags", "utc_offset_minutes"});
  if (!o) return o.error();
  auto tenant = string_member(*o, "tenant");
  auto key = string_member(*o, "enrollment_key");
  if (!tenant) return bad_request("tenant: required string");
  if (!key) return bad_request("enrollment_key: required string");
  auto device = decode_device_fields(*o, "");
  if (!device) return device.error();
  return EnrollRequest{std::move(*tenant), std::move(*key), std::move(*device)};
}

core::Result<BulkEnrollRequest> decode_bulk_enroll(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"tenant", "devices"});
  if (!o) return o.error();
  BulkEnrollRequest out;
  auto tenant = string_member(*o, "tenant");
  if (!tenant) return bad_request("tenant: required string");
  out.tenant = std::move(*tenant);
  auto* list = member(*o, "devices");
  if (list == nullptr || !list->is_array() || list->as_array().empty()) {
    return bad_request("devices: expected a non-empty list");
  }
  if (list->as_array().size() > kMaxBulkDevices) {
    return core::make_error(ErrorCode::kTooLarge, "devices: at most 10000 per request");
  }
  std::set<std::string> ids;
  std::size_t i = 0;
  for (const auto& item : list->as_array()) {
    std::string where = "devices[" + std::to_string(i++) + "]";
    if (!item.is_object()) return bad_request(where + ": expected an object");
    const auto& d = item.as_object();
    if (auto e = check_fields(d, {"device_id", "tags", "utc_offset_minutes"}, where)) return *e;
    auto device = decode_device_fields(d, where + ".");
    if (!device) return device.error();
    if (!ids.insert(device->id).second) {
      return bad_request(where + ".device_id: '" + device->id + "' is listed twice");
    }
    out.devices.push_back(std::move(*device));
  }
  return out;
}

core::Result<CheckinRequest> decode_checkin(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"versions", "health", "wait_s"});
  if (!o) return o.error();
  CheckinRequest out;
  if (auto* v = member(*o, "versions")) {
    if (!v->is_object()) return bad_request("versions: expected {channel: version}");
    if (v->as_object().size() > 32) return bad_request("versions: at most 32 channels");
    for (const auto& [ch, ver] : v->as_object()) {
      auto channel = core::Channel::parse(ch);
      if (!channel) return channel.error().with_context("versions: ");
      if (!ver.is_string()) return bad_request("versions." + std::string(ch) + ": expected a version string");
      auto parsed = core::Version::parse(ver.as_string());
      if (!parsed) return parsed.error().with_context("versions." + std::string(ch) + ": ");
      out.versions.emplace(std::string(ch), *parsed);
    }
  }
  if (auto* h = member(*o, "health")) {
    if (!h->is_object()) return bad_request("health: expected an object of counters");
    if (auto phase = string_member(h->as_object(), "phase")) {
      out.healthy = *phase != core::to_string(core::AgentPhase::kTrial) &&
                    *phase != core::to_string(core::AgentPhase::kActivating);
    }
    out.health = json::serialize(*h);
    if (out.health.size() > kMaxHealthBytes) {
      return core::make_error(ErrorCode::kTooLarge, "health: more than 4096 bytes");
    }
  }
  if (auto* w = member(*o, "wait_s")) {
    if (!w->is_int64() || w->as_int64() < 0) return bad_request("wait_s: expected a non-negative integer");
    out.wait_s = w->as_int64();
  }
  return out;
}

core::Result<std::vector<DeviceEvent>> decode_events(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"events"});
  if (!o) return o.error();
  auto* list = member(*o, "events");
  if (list == nullptr || !list->is_array()) return bad_request("events: required list");
  if (list->as_array().size() > kMaxEventsPerUpload) {
    return core::make_error(ErrorCode::kTooLarge, "events: at most 100 per upload");
  }
  std::vector<DeviceEvent> events;
  std::size_t i = 0;
  for (const auto& ev : list->as_array()) {
    std::string where = "events[" + std::to_string(i++) + "]";
    if (!ev.is_object()) return bad_request(where + ": expected an object");
    const auto& e = ev.as_object();
    if (auto err = check_fields(e, {"seq", "kind", "channel", "version", "exit_code", "signal", "message", "reason"},
                                where)) {
      return *err;
    }
    DeviceEvent out;
    auto* seq = member(e, "seq");
    if (seq == nullptr || !seq->is_int64() || seq->as_int64() < 1) {
      return bad_request(where + ".seq: expected an integer >= 1");
    }
    out.seq = seq->as_int64();
    auto kind_text = string_member(e, "kind");
    auto kind = kind_text ? core::parse_device_event_kind(*kind_text) : std::nullopt;
    if (!kind) {
      std::string known;
      for (std::size_t k = 0; k < core::kDeviceEventKindCount; ++k) {
        known += (k == 0 ? "" : ", ") + std::string(core::to_string(static_cast<core::DeviceEventKind>(k)));
      }
      return bad_request(where + ".kind: expected one of " + known);
    }
    out.kind = *kind;
    if (out.kind != core::DeviceEventKind::kGoodbye) {
      auto channel = string_member(e, "channel");
      if (!channel || !core::Channel::parse(*channel)) return bad_request(where + ".channel: expected a channel name");
      out.channel = *channel;
      auto version = string_member(e, "version");
      if (!version) return bad_request(where + ".version: required string");
      auto v = core::Version::parse(*version);
      if (!v) return v.error().with_context(where + ".version: ");
      out.version = *v;
    }
    json::object detail;
    if (auto* x = member(e, "exit_code")) {
      if (!x->is_int64()) return bad_request(where + ".exit_code: expected an integer");
      detail["exit_code"] = x->as_int64();
    }
    if (auto* x = member(e, "signal")) {
      if (!x->is_int64()) return bad_request(where + ".signal: expected an integer");
      detail["signal"] = x->as_int64();
    }
    if (auto msg = string_member(e, "message")) {
      if (msg->size() > 1024) return bad_request(where + ".message: at most 1024 bytes");
      detail["message"] = *msg;
    }
    if (member(e, "reason") != nullptr) {
      // Why an offer was refused (known_bad, trial_pending, ...): a word.
      auto reason = string_member(e, "reason");
      const bool word = reason && !reason->empty() && reason->size() <= 64 &&
                        std::all_of(reason->begin(), reason->end(), [](char c) {
                          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                        });
      if (!word) return bad_request(where + ".reason: expected 1..64 of [a-z0-9_]");
      detail["reason"] = *reason;
    }
    out.detail_json = json::serialize(detail);
    if (!events.empty() && out.seq <= events.back().seq) {
      return bad_request(where + ".seq: sequence numbers must increase");
    }
    events.push_back(std::move(out));
  }
  return events;
}

core::Result<TenantRequest> decode_tenant(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"id", "enrollment_key", "policy"});
  if (!o) return o.error();
  auto id = string_member(*o, "id");
  auto key = string_member(*o, "enrollment_key");
  if (!id || !core::TenantId::parse(*id)) return bad_request("id: expected a tenant name");
  if (!key || key->size() < 16 || key->size() > 256) {
    return bad_request("enrollment_key: expected a string of 16..256 bytes");
  }
  TenantRequest out{std::move(*id), std::move(*key), {}};
  if (auto* p = member(*o, "policy")) {
    auto parsed = policy_from_json(*p);
    if (!parsed) return parsed.error();
    out.policy = std::move(*parsed);
  }
  return out;
}

core::Result<core::TenantPolicy> decode_policy(std::string_view body, std::size_t max_bytes) {
  auto parsed = parse_json_body(body, max_bytes);
  if (!parsed) return parsed.error();
  return policy_from_json(*parsed);
}

core::Result<TokenRequest> decode_token(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"name", "role"});
  if (!o) return o.error();
  auto name = string_member(*o, "name");
  auto role_text = string_member(*o, "role");
  if (!name || name->empty() || name->size() > 64) return bad_request("name: 1..64 bytes");
  auto role = role_text ? role_from(*role_text) : std::nullopt;
  if (!role) return bad_request("role: expected viewer, operator or admin");
  return TokenRequest{std::move(*name), *role};
}

core::Result<ReleaseRequest> decode_release(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"channel", "version", "targets", "content_bundle", "skip_contract_check",
                                      "kind", "artifact"});
  if (!o) return o.error();
  auto channel = string_member(*o, "channel");
  if (!channel || !core::Channel::parse(*channel)) {
    return bad_request("channel: expected a channel name like 'content'");
  }
  auto version_text = string_member(*o, "version");
  if (!version_text) return bad_request("version: required string");
  auto version = core::Version::parse(*version_text);
  if (!version) return version.error().with_context("version: ");
  bool swu = false;
  if (auto* k = member(*o, "kind")) {
    if (!k->is_string() || (k->as_string() != "tuf" && k->as_string() != "swu")) {
      return bad_request("kind: expected tuf (the default) or swu");
    }
    swu = k->as_string() == "swu";
  }
  ReleaseRequest out{std::move(*channel), std::move(*version_text), *version, nullptr, "", false, swu, ""};
  if (swu) {
    // The server hashes the image itself: the caller names only its file.
    auto artifact = string_member(*o, "artifact");
    if (!artifact || artifact->empty() || artifact->size() > 255 || artifact->find('/') != std::string::npos ||
        artifact->front() == '.' || !artifact->ends_with(".swu")) {
      return bad_request("artifact: expected the file name of a .swu image in the server's --artifact-dir");
    }
    for (char c : *artifact) {
      if (static_cast<unsigned char>(c) < 0x21 || c == '\\' || c == '%' || c == '?' || c == '#' || c == 0x7f) {
        return bad_request("artifact: expected a plain file name (no spaces, control characters, '\\', '%', '?', '#')");
      }
    }
    out.artifact = std::move(*artifact);
  } else if (member(*o, "artifact") != nullptr) {
    return bad_request("artifact: only for kind swu");
  }
  // TUF targets, for tranche-agents: required for kind tuf; for kind swu they
  // make the release one for a mixed fleet (agents and DDI clients on one channel).
  auto* targets = member(*o, "targets");
  if (targets != nullptr || !swu) {
    if (targets == nullptr || !targets->is_array() || targets->as_array().empty() ||
        targets->as_array().size() > 64) {
      return bad_request("targets: expected a list of 1..64 {path, length, sha256}");
    }
    std::size_t i = 0;
    for (const auto& t : targets->as_array()) {
      std::string where = "targets[" + std::to_string(i++) + "]";
      if (!t.is_object()) return bad_request(where + ": expected an object");
      if (auto e = check_fields(t.as_object(), {"path", "length", "sha256"}, where)) return *e;
      auto path = string_member(t.as_object(), "path");
      if (!path || path->empty() || path->size() > 1024 || path->find("..") != std::string::npos ||
          path->front() == '/') {
        return bad_request(where + ".path: expected a relative path without '..'");
      }
      auto* len = member(t.as_object(), "length");
      if (len == nullptr || !len->is_int64() || len->as_int64() < 0) {
        return bad_request(where + ".length: expected a non-negative integer");
      }
      auto sha = string_member(t.as_object(), "sha256");
      if (!sha || !core::Sha256::parse(*sha)) return bad_request(where + ".sha256: expected 64 hex characters");
    }
    out.targets = *targets;
  }
  if (auto* s = member(*o, "skip_contract_check")) {
    if (!s->is_bool()) return bad_request("skip_contract_check: expected a boolean");
    out.skip_contract_check = s->as_bool();
  }
  if (member(*o, "content_bundle") != nullptr && targets == nullptr) {
    return bad_request("content_bundle: not given for kind swu without targets");
  }
  if (auto b = string_member(*o, "content_bundle")) out.content_bundle = std::move(*b);
  return out;
}

core::Result<RolloutRequest> decode_rollout(std::string_view body, std::size_t max_bytes) {
  auto o = body_object(body, max_bytes, {"channel", "version", "plan_yaml", "id"});
  if (!o) return o.error();
  auto channel = string_member(*o, "channel");
  auto version_text = string_member(*o, "version");
  auto plan_yaml = string_member(*o, "plan_yaml");
  if (!channel) return bad_request("channel: required string");
  if (!version_text) return bad_request("version: required string");
  if (!plan_yaml) return bad_request("plan_yaml: required string (the plan file's text)");
  auto version = core::Version::parse(*version_text);
  if (!version) return version.error().with_context("version: ");
  auto plan = config::parse_plan(*plan_yaml, "plan_yaml");
  if (!plan) return plan.error();
  RolloutRequest out{std::move(*channel), *version, std::move(*plan_yaml), std::move(*plan), std::nullopt};
  if (auto given = string_member(*o, "id")) {
    if (!core::RolloutId::parse(*given)) return bad_request("id: expected a rollout name");
    out.id = std::move(*given);
  }
  return out;
}

core::Result<std::string> decode_rollout_action(std::string_view body, std::size_t max_bytes) {
  if (body.empty()) return std::string();
  auto o = body_object(body, max_bytes, {"reason"});
  if (!o) return o.error();
  if (auto* r = member(*o, "reason")) {
    if (!r->is_string() || r->as_string().size() > 512) {
      return bad_request("reason: expected a string of at most 512 bytes");
    }
    return std::string(r->as_string());
  }
  return std::string();
}

}  // namespace tranche::server
