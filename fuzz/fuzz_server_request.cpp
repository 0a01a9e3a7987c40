// The server's request bodies (server/request_codec.h): bytes from outside ->
// the values the API's handlers act on, through the same decode_* functions
// server/api.cpp calls. The first byte picks the request ('0'..'9': see kKinds;
// every other byte picks one too), the rest is the body.
//
// Properties, besides never crashing, throwing or leaking:
//   - a refusal is one of the codes server/request_codec.h names, which the API
//     answers with 400 or 413 (never 5xx), and a body over the size limit is
//     kTooLarge;
//   - what parse_json_body (the strict reader, duplicate keys refused) accepts,
//     Boost.JSON's own parser reads as the same value, and it reads back the
//     same once serialized (doubles within a few ulp);
//   - what a decoder accepts holds what the handler and the store rely on: ids,
//     channels and versions that parse again (versions unchanged through
//     to_string); the forms the server stores (tags, tenant policy, health,
//     event detail, release targets) read back by the readers that load them,
//     with tags and policy a fixed point; the documented bounds (at most 32
//     versions, 100 events with increasing seq, 1..64 targets, 4096 bytes of
//     health, ...); a rollout's plan validates and has a first stage.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "core/result.h"
#include "core/types.h"
#include "fuzz/fuzz_check.h"
#include "server/codec.h"
#include "server/request_codec.h"

namespace {

namespace json = boost::json;
namespace core = tranche::core;
namespace server = tranche::server;
using tranche::fuzz::check;
using tranche::fuzz::explain;

// The server's default --max-body-bytes.
constexpr std::size_t kMaxBody = 1 << 20;

constexpr const char* kKinds[] = {"enroll", "bulk_enroll", "checkin", "events", "tenant",
                                  "policy", "token",       "release", "rollout", "rollout_action"};
constexpr std::size_t kKindCount = sizeof kKinds / sizeof kKinds[0];

// Every input that reaches a check: the whole input, for the report.
std::string_view g_input;

// The codes a refused body may carry (server/request_codec.h): 400 or 413.
bool body_error(core::ErrorCode code) {
  return code == core::ErrorCode::kInvalidArgument || code == core::ErrorCode::kParse ||
         code == core::ErrorCode::kOutOfRange || code == core::ErrorCode::kTooLarge;
}

void refused_as_bad_input(const core::Error& e, const char* what) {
  explain(std::string(what) + " refused: " + e.to_string());
  check(body_error(e.code), "a request body was refused with a code that is not a 400 or 413", g_input);
}

// Equal, but for doubles within a few units in the last place: Boost.JSON 1.81
// reads numbers "imprecisely" by default, so a double written in its shortest
// form may come back one ulp off.
bool same_json(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double();
    const double y = b.get_double();
    return std::fabs(x - y) <= 1e-15 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto& p = a.get_array();
    const auto& q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (!same_json(p[i], q[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const auto& p = a.get_object();
    const auto& q = b.get_object();
    if (p.size() != q.size()) return false;
    for (const auto& [key, value] : p) {
      auto* other = q.if_contains(key);
      if (other == nullptr || !same_json(value, *other)) return false;
    }
    return true;
  }
  return a == b;
}

void check_version(const core::Version& v) {
  auto again = core::Version::parse(v.to_string());
  check(again.ok() && *again == v, "an accepted version does not survive to_string and parse", g_input);
}

void check_channel(std::string_view channel) {
  check(core::Channel::parse(channel).ok(), "an accepted channel name does not parse", g_input);
}

// The stored form (serialized, as the store keeps it) read back as the server
// loads it: json::parse, then the reader.
void check_tags(const core::Tags& tags) {
  check(tags.size() <= 32, "more than 32 tags accepted", g_input);
  const std::string stored = json::serialize(server::tags_to_json(tags));
  boost::system::error_code ec;
  auto value = json::parse(stored, ec);
  check(!ec, "stored tags are not JSON", g_input);
  auto again = server::tags_from_json(value);
  check(again.ok() && *again == tags, "stored tags do not read back as the same tags", g_input);
}

void check_policy(const core::TenantPolicy& policy) {
  const std::string stored = json::serialize(server::policy_to_json(policy));
  boost::system::error_code ec;
  auto value = json::parse(stored, ec);
  check(!ec, "a stored policy is not JSON", g_input);
  auto again = server::policy_from_json(value);
  check(again.ok(), "a stored policy is refused when it is read back", g_input);
  check(json::serialize(server::policy_to_json(*again)) == stored,
        "a stored policy read back and stored again is not the same", g_input);
}

void check_device(const server::DeviceFields& d) {
  auto id = core::DeviceId::parse(d.id);
  check(id.ok() && id->str() == d.id, "an accepted device_id does not parse as itself", g_input);
  check(d.utc_offset_minutes >= -840 && d.utc_offset_minutes <= 840, "utc_offset_minutes out of range",
        g_input);
  check_tags(d.tags);
}

json::object parse_object(const std::string& text, const char* what) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  check(!ec && value.is_object(), what, g_input);
  return std::move(value.as_object());
}

void decode(std::size_t kind, std::string_view body) {
  const char* name = kKinds[kind];
  switch (kind) {
    case 0: {
      auto r = server::decode_enroll(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check_device(r->device);
      break;
    }
    case 1: {
      auto r = server::decode_bulk_enroll(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check(!r->devices.empty() && r->devices.size() <= server::kMaxBulkDevices,
            "a bulk enrollment of no devices or too many accepted", g_input);
      std::set<std::string> ids;
      for (const auto& d : r->devices) {
        check_device(d);
        check(ids.insert(d.id).second, "a bulk enrollment with a device_id twice accepted", g_input);
      }
      break;
    }
    case 2: {
      auto r = server::decode_checkin(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check(r->versions.size() <= 32, "more than 32 versions accepted", g_input);
      for (const auto& [channel, version] : r->versions) {
        check_channel(channel);
        check_version(version);
      }
      check(r->health.size() <= server::kMaxHealthBytes, "health over 4096 bytes accepted", g_input);
      (void)parse_object(r->health, "accepted health does not read back as an object");
      check(r->wait_s >= 0, "a negative wait_s accepted", g_input);
      break;
    }
    case 3: {
      auto r = server::decode_events(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check(r->size() <= server::kMaxEventsPerUpload, "more than 100 events accepted", g_input);
      std::int64_t last = 0;
      for (const auto& e : *r) {
        check(e.seq > last, "event seq not >= 1 and increasing", g_input);
        last = e.seq;
        if (e.kind != core::DeviceEventKind::kGoodbye) {
          check_channel(e.channel);
          check(e.version.has_value(), "an event without a version accepted", g_input);
          check_version(*e.version);
        }
        auto detail = parse_object(e.detail_json, "an event's detail does not read back as an object");
        for (const auto& [key, value] : detail) {
          const bool reason_word =
              key == "reason" && value.is_string() && !value.as_string().empty() &&
              value.as_string().size() <= 64 &&
              std::all_of(value.as_string().begin(), value.as_string().end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
              });
          check(key == "exit_code" || key == "signal" || reason_word ||
                    (key == "message" && value.is_string() && value.as_string().size() <= 1024),
                "an event's detail holds an unexpected field", g_input);
        }
      }
      break;
    }
    case 4: {
      auto r = server::decode_tenant(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check(core::TenantId::parse(r->id).ok(), "an accepted tenant id does not parse", g_input);
      check(r->enrollment_key.size() >= 16 && r->enrollment_key.size() <= 256,
            "an enrollment key outside 16..256 bytes accepted", g_input);
      check_policy(r->policy);
      break;
    }
    case 5: {
      auto r = server::decode_policy(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check_policy(*r);
      break;
    }
    case 6: {
      auto r = server::decode_token(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check(!r->name.empty() && r->name.size() <= 64, "a token name outside 1..64 bytes accepted", g_input);
      check(server::role_from(server::role_name(r->role)) == r->role, "a role does not survive its name",
            g_input);
      break;
    }
    case 7: {
      auto r = server::decode_release(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check_channel(r->channel);
      auto given = core::Version::parse(r->version_text);
      check(given.ok() && *given == r->version, "the release version is not the one given", g_input);
      check_version(r->version);
      check(r->targets.is_array() && !r->targets.as_array().empty() && r->targets.as_array().size() <= 64,
            "release targets not a list of 1..64 accepted", g_input);
      // Stored serialized; the fleet reads it back with json::parse.
      boost::system::error_code ec;
      auto stored = json::parse(json::serialize(r->targets), ec);
      check(!ec && stored == r->targets, "stored release targets do not read back unchanged", g_input);
      break;
    }
    case 8: {
      auto r = server::decode_rollout(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check_version(r->version);
      // api_create_rollout reads plan.stages.front().
      check(!r->plan.stages.empty(), "a rollout plan without stages accepted", g_input);
      check(r->plan.validate().ok(), "a rollout plan that does not validate accepted", g_input);
      check(!r->id || core::RolloutId::parse(*r->id).ok(), "an accepted rollout id does not parse",
            g_input);
      break;
    }
    default: {
      auto r = server::decode_rollout_action(body, kMaxBody);
      if (!r) return refused_as_bad_input(r.error(), name);
      check(r->size() <= 512, "a reason over 512 bytes accepted", g_input);
      check(!body.empty() || r->empty(), "an empty body gave a reason", g_input);
      break;
    }
  }
  explain(std::string(name) + " accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  g_input = std::string_view(reinterpret_cast<const char*>(data), size);
  const std::size_t kind = static_cast<unsigned char>(data[0] - '0') % kKindCount;
  const std::string_view body = g_input.substr(1);

  // The strict reader against Boost.JSON's own: what it accepts is JSON, and the
  // same JSON (Boost resolves a repeated key to its last value; the strict reader
  // refuses it, so never disagrees on a value).
  auto strict = server::parse_json_body(body, kMaxBody);
  if (strict) {
    boost::system::error_code ec;
    auto boost_value = json::parse(body, ec);
    check(!ec, "parse_json_body accepted a body Boost.JSON refuses", g_input);
    check(boost_value == *strict, "parse_json_body and Boost.JSON read a body differently", g_input);
    // The server stores parts of a body serialized (health, targets) and reads
    // them back with json::parse.
    auto again = json::parse(json::serialize(*strict), ec);
    check(!ec && same_json(again, *strict), "an accepted body, serialized, does not read back the same",
          g_input);
  } else {
    check(body_error(strict.error().code), "parse_json_body refused with a code that is not a 400 or 413",
          g_input);
  }
  if (!body.empty()) {
    auto small = server::parse_json_body(body, body.size() - 1);
    check(!small && small.error().code == core::ErrorCode::kTooLarge,
          "a body over the size limit was not refused as too large", g_input);
  }

  decode(kind, body);
  return 0;
}
