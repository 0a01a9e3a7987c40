// The API's request bodies (docs/api.md), from outside: bytes -> the values a
// handler acts on. Everything a body is checked for before the server looks at
// its state (the store, the fleet, the caller's role) is here, and nothing else:
// no Beast, no store, no clock, so fuzz/fuzz_server_request.cpp drives exactly
// the code api.cpp runs.
//
// Every decode_* reads the body with parse_json_body (size limit, duplicate keys
// refused), refuses unknown fields, and names the offending field. Errors are
// kParse, kInvalidArgument or kOutOfRange (400) or kTooLarge (413; a body, or a
// field, over its limit); api.cpp answers with them as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "core/plan.h"
#include "core/result.h"
#include "core/types.h"
#include "server/fleet.h"
#include "store/store.h"

namespace tranche::server {

inline constexpr std::size_t kMaxEventsPerUpload = 100;
inline constexpr std::size_t kMaxHealthBytes = 4096;
inline constexpr std::size_t kMaxBulkDevices = 10'000;

std::string_view role_name(store::Role role);
std::optional<store::Role> role_from(std::string_view name);

// One device to enroll: device_id, tags and utc_offset_minutes of `o` (the
// caller has refused other fields). `where` prefixes every message: "" or
// "devices[3].".
struct DeviceFields {
  std::string id;  // a valid core::DeviceId
  core::Tags tags;
  std::int32_t utc_offset_minutes = 0;  // -840..840
};
core::Result<DeviceFields> decode_device_fields(const boost::json::object& o, const std::string& where);

// POST /v1/enroll
struct EnrollRequest {
  std::string tenant;
  std::string enrollment_key;
  DeviceFields device;
};
core::Result<EnrollRequest> decode_enroll(std::string_view body, std::size_t max_bytes);

// POST /v1/devices/bulk: 1..kMaxBulkDevices devices, no device_id twice.
struct BulkEnrollRequest {
  std::string tenant;
  std::vector<DeviceFields> devices;
};
core::Result<BulkEnrollRequest> decode_bulk_enroll(std::string_view body, std::size_t max_bytes);

// POST /v1/checkin
struct CheckinRequest {
  std::map<std::string, core::Version> versions;  // channel -> version, at most 32
  std::string health = "{}";                      // serialized object, at most kMaxHealthBytes
  // False while the agent says it is in its trial (health.phase): running a
  // version past its trial acknowledges it (core/evidence.h).
  bool healthy = true;
  std::int64_t wait_s = 0;  // >= 0, not yet capped at --long-poll-max
};
core::Result<CheckinRequest> decode_checkin(std::string_view body, std::size_t max_bytes);

// POST /v1/events: at most kMaxEventsPerUpload, seq increasing.
core::Result<std::vector<DeviceEvent>> decode_events(std::string_view body, std::size_t max_bytes);

// POST /v1/tenants
struct TenantRequest {
  std::string id;              // a valid core::TenantId
  std::string enrollment_key;  // 16..256 bytes
  core::TenantPolicy policy;
};
core::Result<TenantRequest> decode_tenant(std::string_view body, std::size_t max_bytes);

// PUT /v1/tenants/{id}/policy
core::Result<core::TenantPolicy> decode_policy(std::string_view body, std::size_t max_bytes);

// POST /v1/tokens
struct TokenRequest {
  std::string name;  // 1..64 bytes
  store::Role role = store::Role::kViewer;
};
core::Result<TokenRequest> decode_token(std::string_view body, std::size_t max_bytes);

// POST /v1/releases (the content bundle is checked against the channel's
// consumer interface by the handler, which knows the interfaces).
struct ReleaseRequest {
  std::string channel;
  std::string version_text;  // as given (the conflict message quotes it)
  core::Version version;
  // The TUF targets tranche-agents download: 1..64 valid {path, length, sha256},
  // stored as given; null for kind swu without them.
  boost::json::value targets;
  std::string content_bundle;  // "" when absent
  bool skip_contract_check = false;
  // Kind "swu": an SWUpdate image for DDI clients (docs/ddi.md). `artifact` names
  // its file in the server's --artifact-dir; the server computes its target
  // (length and hashes, format "swu") from it and adds it to `targets`. With TUF
  // targets too, the release is for a mixed fleet: agents and DDI clients.
  bool swu = false;
  std::string artifact;
};
core::Result<ReleaseRequest> decode_release(std::string_view body, std::size_t max_bytes);

// POST /v1/rollouts
struct RolloutRequest {
  std::string channel;
  core::Version version;
  std::string plan_yaml;  // as given (stored)
  core::Plan plan;        // parsed from plan_yaml
  std::optional<std::string> id;  // a valid core::RolloutId when given
};
core::Result<RolloutRequest> decode_rollout(std::string_view body, std::size_t max_bytes);

// POST /v1/rollouts/{id}/{action}: the optional body's reason ("" without one;
// an empty body is no body).
core::Result<std::string> decode_rollout_action(std::string_view body, std::size_t max_bytes);

}  // namespace tranche::server
