// hawkBit's Direct Device Integration (DDI) API, the controller side, as
// unmodified SWUpdate (suricatta) and other DDI clients use it (docs/ddi.md).
// This header is the wire's codec — pure functions, no I/O, no clock; the
// handlers (ServerImpl::ddi_*, server/ddi.cpp) map each request onto the same
// check-ins, assignments and events a tranche-agent's requests are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "core/result.h"
#include "core/types.h"

namespace tranche::server {
struct ReleaseInfo;
struct ChannelInfo;
}  // namespace tranche::server

namespace tranche::server::ddi {

// The largest body a DDI request may carry (feedback forwards SWUpdate's log
// lines, a few kB each).
inline constexpr std::size_t kMaxBody = 64 * 1024;
// The most of a feedback's details kept as an event's reason.
inline constexpr std::size_t kMaxReason = 2000;

// config.polling.sleep: "HH:MM:SS" (hours up to 99; at least one second).
std::string polling_sleep(core::DurationMs interval);

// The DDI action of installing `version` of `channel` in rollout `rollout` ("":
// outside any rollout): a decimal number below 2^30 (SWUpdate keeps it in a C int), the same at every server
// and after a restart, so feedback names the action without any stored state.
std::string action_id(std::string_view channel, std::string_view version, std::string_view rollout);

// "Authorization: TargetToken <device token>" or "GatewayToken <tenant token>"
// (schemes case-insensitive, RFC 9110 section 11.1).
struct Credential {
  enum class Kind { kTarget, kGateway };
  Kind kind = Kind::kTarget;
  std::string token;
};
std::optional<Credential> parse_authorization(std::string_view header);

// A Host header fit to build absolute links from: host[:port], 1..255 bytes of
// letters, digits and ".-:[]".
bool valid_host(std::string_view host);

// One byte range of a body of `size` bytes (RFC 9110 section 14.1.2): only the
// single-range forms "bytes=a-b", "bytes=a-" and "bytes=-n". nullopt: no Range
// header (the whole body); kOutOfRange: not satisfiable (416); kInvalidArgument:
// a form not understood (ignored, as RFC 9110 allows, by the caller).
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
};
core::Result<std::optional<ByteRange>> parse_range(std::string_view header, std::uint64_t size);

// POST .../deploymentBase/{actionId}/feedback and .../cancelAction/{id}/feedback.
struct Feedback {
  enum class Execution { kProceeding, kClosed, kCanceled, kScheduled, kRejected, kResumed, kDownload, kDownloaded };
  enum class Finished { kNone, kSuccess, kFailure };
  Execution execution = Execution::kProceeding;
  Finished finished = Finished::kNone;
  std::string details;  // the details joined with "; ", at most kMaxReason bytes
  // The details one by one (SWUpdate forwards several log lines in one
  // feedback): the first 64, each cut at 256 bytes.
  std::vector<std::string> lines;
};
core::Result<Feedback> decode_feedback(std::string_view body);

// PUT .../configData: {"data": {name: string}, "mode": "merge"|"replace"|"remove"}.
// The attributes, validated (at most 64, names and values at most 256 bytes).
core::Result<boost::json::object> decode_config_data(std::string_view body);

// Releases of kind swu: one of their targets, the image, carries "format": "swu";
// the others (a mixed fleet's release) are the TUF targets of tranche-agents.
bool is_swu(const ReleaseInfo& release);
const boost::json::object* swu_target_of(const ReleaseInfo& release);  // null: none
boost::json::value tuf_targets_of(const ReleaseInfo& release);         // the others
bool is_swu_channel(const ChannelInfo& channel);

// The target of an SWUpdate image: its file `name` under `dir`, read once to
// count its bytes and hash it — {"path", "length", "sha256", "sha1", "md5",
// "format": "swu"} (SWUpdate checks sha1; hawkBit's deploymentBase names all
// three). kNotFound when the file is absent or not a regular file.
core::Result<boost::json::object> swu_target(const std::string& dir, const std::string& name);

}  // namespace tranche::server::ddi
