// JSON forms of core values, as the API returns them and as the store keeps them
// (rollout status, gate state, tenant policy, tags). Readers validate and name
// the offending field; they never throw.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "core/cohort.h"
#include "core/evidence.h"
#include "core/gate.h"
#include "core/plan.h"
#include "core/result.h"
#include "core/rollout_machine.h"

namespace tranche::server {

boost::json::object status_to_json(const core::RolloutStatus& status);
core::Result<core::RolloutStatus> status_from_json(std::string_view text);

// The gate's state plus the evidence counts it has seen (the counters that
// check-ins feed), so a restarted server resumes the test where it stopped.
struct GateRecord {
  core::GateState state;
  core::EvidenceTally evidence;
  core::StratumCounts strata;  // the rollout's strata counted at its start ("strata"; absent when none)
};
boost::json::object gate_to_json(const GateRecord& record);
// {"install_failed": 3, "crashed": 0, "fell_back": 0, "silent": 1}: the exposed failures by cause.
boost::json::object failures_by_cause_json(const core::EvidenceTally& tally);
core::Result<GateRecord> gate_from_json(std::string_view text);

// Tenant policy, as PUT /v1/tenants/{id}/policy takes it:
//   {"pins": {"content": {"kind": "previous"}, "sensor": {"kind": "exact", "version": "7.1"}},
//    "windows": [{"days": ["mon", "tue"], "start": "22:00", "end": "04:00"}],
//    "critical": {"class": ["server"]}}
core::Result<core::TenantPolicy> policy_from_json(const boost::json::value& value);
boost::json::object policy_to_json(const core::TenantPolicy& policy);

// {"class": "laptop"}: string values only, at most 32 tags.
core::Result<core::Tags> tags_from_json(const boost::json::value& value);
boost::json::object tags_to_json(const core::Tags& tags);

// Parses at most `max_bytes` of JSON; errors are kParse / kTooLarge with the
// parser's message.
core::Result<boost::json::value> parse_json_body(std::string_view body, std::size_t max_bytes);

// Query parameter `name` of a URL's query string, percent-decoded (RFC 3986
// 2.1; a '%' not followed by two hex digits stays); nullopt when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

}  // namespace tranche::server
