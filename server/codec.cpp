#include "server/codec.h"

#include <array>
#include <cmath>
#include <string>

#include <boost/json.hpp>

#include "tuf/canonical_json.h"

namespace tranche::server {
namespace json = boost::json;
using core::ErrorCode;
using core::make_error;

namespace {

core::Error field_error(std::string_view field, std::string_view what) {
  return make_error(ErrorCode::kInvalidArgument, std::string(field) + ": " + std::string(what));
}


std::int64_t int_or(const json::object& o, std::string_view key, std::int64_t fallback) {
  auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_int64()) return fallback;
  return v->as_int64();
}

double double_or(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return 0;
}

core::Result<json::object> parse_object(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return make_error(ErrorCode::kParse, std::string(what) + ": stored JSON is not an object");
  }
  return std::move(v.as_object());
}

constexpr std::array<std::string_view, 7> kDays = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

core::Result<std::uint16_t> minute_of_day(const json::value& v, std::string_view field) {
  if (!v.is_string()) return field_error(field, "expected \"HH:MM\"");
  std::string_view s = v.as_string();
  if (s.size() != 5 || s[2] != ':') return field_error(field, "expected \"HH:MM\"");
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!digit(s[0]) || !digit(s[1]) || !digit(s[3]) || !digit(s[4])) {
    return field_error(field, "expected \"HH:MM\"");
  }
  int h = (s[0] - '0') * 10 + (s[1] - '0');
  int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 24 || m > 59 || (h == 24 && m != 0)) return field_error(field, "hour or minute out of range");
  return static_cast<std::uint16_t>(h * 60 + m);
}

std::string hhmm(std::uint16_t minutes) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02u:%02u", static_cast<unsigned>(minutes / 60),
                static_cast<unsigned>(minutes % 60));
  return buf;
}

}  // namespace

json::object status_to_json(const core::RolloutStatus& s) {
  return json::object{{"state", core::to_string(s.state)},
                      {"stage", s.stage},
                      {"stage_started_at", s.stage_started_at},
                      {"paused_from", core::to_string(s.paused_from)},
                      {"reason", s.reason},
                      {"recheck_at", s.recheck_at}};
}

core::Result<core::RolloutStatus> status_from_json(std::string_view text) {
  auto o = parse_object(text, "rollout status");
  if (!o) return o.error();
  core::RolloutStatus s;
  auto* state = o->if_contains("state");
  auto* paused = o->if_contains("paused_from");
  auto parsed = [](const json::value* v) {
    return v != nullptr && v->is_string() ? core::parse_rollout_state(v->as_string()) : std::nullopt;
  };
  const auto st = parsed(state);
  if (!st) return make_error(ErrorCode::kParse, "rollout status: unknown state");
  s.state = *st;
  s.paused_from = parsed(paused).value_or(s.paused_from);
  s.stage = static_cast<std::uint32_t>(std::max<std::int64_t>(0, int_or(*o, "stage", 0)));
  s.stage_started_at = int_or(*o, "stage_started_at", 0);
  s.recheck_at = int_or(*o, "recheck_at", 0);
  if (auto* r = o->if_contains("reason"); r != nullptr && r->is_string()) {
    s.reason = std::string(r->as_string());
  }
  return s;
}

json::object gate_to_json(const GateRecord& r) {
  json::array lr;
  for (double v : r.state.log_lr) lr.emplace_back(v);
  json::object out{
      {"seen_exposed_s", r.state.seen_exposed.exposure_s},
      {"seen_exposed_failures", r.state.seen_exposed.failures},
      {"seen_control_s", r.state.seen_control.exposure_s},
      {"seen_control_failures", r.state.seen_control.failures},
      {"log_lr", std::move(lr)},
      {"log_lr_harm", r.state.log_lr_harm},
      {"halted", r.state.halted},
      {"exposed_s", r.evidence.exposed.exposure_s},
      {"exposed_failures", r.evidence.exposed.failures},
      {"control_s", r.evidence.control.exposure_s},
      {"control_failures", r.evidence.control.failures},
      {"exposed_devices", r.evidence.exposed_devices},
      {"acknowledged", r.evidence.acknowledged},
      {"exposed_by_cause", failures_by_cause_json(r.evidence)},
  };
  if (!r.strata.empty()) {
    json::object strata;
    for (const auto& [key, n] : r.strata) strata[key] = n;
    out["strata"] = std::move(strata);
  }
  return out;
}

json::object failures_by_cause_json(const core::EvidenceTally& tally) {
  json::object by_cause;
  for (std::size_t i = 1; i < core::kFailureCauseCount; ++i) {
    const auto cause = static_cast<core::FailureCause>(i);
    by_cause[core::to_string(cause)] = tally.exposed_failures_of(cause);
  }
  return by_cause;
}

core::Result<GateRecord> gate_from_json(std::string_view text) {
  GateRecord r;
  if (text.empty() || text == "{}") return r;
  auto o = parse_object(text, "gate state");
  if (!o) return o.error();
  auto count = [&](std::string_view k) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, int_or(*o, k, 0)));
  };
  r.state.seen_exposed = {double_or(*o, "seen_exposed_s"), count("seen_exposed_failures")};
  r.state.seen_control = {double_or(*o, "seen_control_s"), count("seen_control_failures")};
  if (auto* lr = o->if_contains("log_lr"); lr != nullptr && lr->is_array()) {
    const auto& a = lr->as_array();
    for (std::size_t i = 0; i < r.state.log_lr.size() && i < a.size(); ++i) {
      r.state.log_lr[i] = a[i].is_double() ? a[i].as_double()
                          : a[i].is_int64() ? static_cast<double>(a[i].as_int64())
                                            : 0.0;
    }
  }
  // Sequential promotion's test, kept across a restart (a restart must not
  // start it from zero and spend its error allowance again).
  r.state.log_lr_harm = double_or(*o, "log_lr_harm");
  if (auto* h = o->if_contains("halted"); h != nullptr && h->is_bool()) r.state.halted = h->as_bool();
  r.evidence.exposed = {double_or(*o, "exposed_s"), count("exposed_failures")};
  r.evidence.control = {double_or(*o, "control_s"), count("control_failures")};
  r.evidence.exposed_devices = count("exposed_devices");
  r.evidence.acknowledged = count("acknowledged");
  if (auto* s = o->if_contains("strata"); s != nullptr && s->is_object()) {
    for (const auto& [key, n] : s->as_object()) {
      if (n.is_int64() && n.as_int64() > 0) r.strata[std::string(key)] = static_cast<std::uint64_t>(n.as_int64());
    }
  }
  if (auto* c = o->if_contains("exposed_by_cause"); c != nullptr && c->is_object()) {
    for (const auto& [name, n] : c->as_object()) {
      auto cause = core::parse_failure_cause(name);
      if (cause && n.is_int64() && n.as_int64() >= 0) {
        r.evidence.exposed_by_cause[static_cast<std::size_t>(*cause)] = static_cast<std::uint64_t>(n.as_int64());
      }
    }
  }
  return r;
}

core::Result<core::TenantPolicy> policy_from_json(const json::value& value) {
  if (!value.is_object()) return field_error("policy", "expected an object");
  const auto& o = value.as_object();
  core::TenantPolicy p;
  for (const auto& [key, v] : o) {
    if (key != "pins" && key != "windows" && key != "critical" && key != "ddi_auto_enroll") {
      return field_error("policy." + std::string(key), "unknown field (pins, windows, critical, ddi_auto_enroll)");
    }
  }
  if (auto* auto_enroll = o.if_contains("ddi_auto_enroll")) {
    if (!auto_enroll->is_bool()) return field_error("policy.ddi_auto_enroll", "expected true or false");
    p.ddi_auto_enroll = auto_enroll->as_bool();
  }
  if (auto* pins = o.if_contains("pins")) {
    if (!pins->is_object()) return field_error("policy.pins", "expected an object");
    for (const auto& [channel, pin] : pins->as_object()) {
      std::string field = "policy.pins." + std::string(channel);
      if (!core::Channel::parse(channel)) return field_error(field, "not a channel name");
      if (!pin.is_object()) return field_error(field, "expected {\"kind\": ...}");
      auto* kind = pin.as_object().if_contains("kind");
      if (kind == nullptr || !kind->is_string()) {
        return field_error(field + ".kind", "expected latest, previous or exact");
      }
      core::Pin out;
      std::string_view k = kind->as_string();
      if (k == "latest") {
        out.kind = core::Pin::Kind::kLatest;
      } else if (k == "previous") {
        out.kind = core::Pin::Kind::kPrevious;
      } else if (k == "exact") {
        out.kind = core::Pin::Kind::kExact;
        auto* ver = pin.as_object().if_contains("version");
        if (ver == nullptr || !ver->is_string()) {
          return field_error(field + ".version", "an exact pin needs a version");
        }
        auto parsed = core::Version::parse(ver->as_string());
        if (!parsed) return parsed.error().with_context(field + ".version: ");
        out.exact = *parsed;
      } else {
        return field_error(field + ".kind", "expected latest, previous or exact, got '" +
                                                std::string(k) + "'");
      }
      p.pins.emplace(std::string(channel), out);
    }
  }
  if (auto* windows = o.if_contains("windows")) {
    if (!windows->is_array()) return field_error("policy.windows", "expected a list");
    if (windows->as_array().size() > 32) return field_error("policy.windows", "at most 32 windows");
    std::size_t i = 0;
    for (const auto& w : windows->as_array()) {
      std::string field = "policy.windows[" + std::to_string(i++) + "]";
      if (!w.is_object()) return field_error(field, "expected an object");
      core::MaintenanceWindow mw;
      if (auto* days = w.as_object().if_contains("days")) {
        if (!days->is_array()) return field_error(field + ".days", "expected a list of mon..sun");
        mw.days = 0;
        for (const auto& d : days->as_array()) {
          auto it = d.is_string() ? std::find(kDays.begin(), kDays.end(), d.as_string())
                                  : kDays.end();
          if (it == kDays.end()) return field_error(field + ".days", "expected mon..sun");
          mw.days = static_cast<std::uint8_t>(mw.days | (1u << (it - kDays.begin())));
        }
      }
      auto* start = w.as_object().if_contains("start");
      auto* end = w.as_object().if_contains("end");
      if (start == nullptr || end == nullptr) return field_error(field, "needs start and end");
      auto s = minute_of_day(*start, field + ".start");
      if (!s) return s.error();
      auto e = minute_of_day(*end, field + ".end");
      if (!e) return e.error();
      mw.start_minute = *s;
      mw.end_minute = *e;
      p.windows.push_back(mw);
    }
  }
  if (auto* critical = o.if_contains("critical")) {
    if (!critical->is_object()) return field_error("policy.critical", "expected {tag: [values]}");
    for (const auto& [tag, values] : critical->as_object()) {
      std::string field = "policy.critical." + std::string(tag);
      if (!values.is_array()) return field_error(field, "expected a list of values");
      auto& list = p.critical.any_of[std::string(tag)];
      for (const auto& v : values.as_array()) {
        if (!v.is_string()) return field_error(field, "expected strings");
        list.emplace_back(v.as_string());
      }
    }
    p.critical_selector_set = true;
  }
  return p;
}

json::object policy_to_json(const core::TenantPolicy& p) {
  json::object pins;
  for (const auto& [channel, pin] : p.pins) {
    json::object o;
    switch (pin.kind) {
      case core::Pin::Kind::kLatest:
        o["kind"] = "latest";
        break;
      case core::Pin::Kind::kPrevious:
        o["kind"] = "previous";
        break;
      case core::Pin::Kind::kExact:
        o["kind"] = "exact";
        if (pin.exact) o["version"] = pin.exact->to_string();
        break;
    }
    pins[channel] = std::move(o);
  }
  json::array windows;
  for (const auto& w : p.windows) {
    json::array days;
    for (std::size_t d = 0; d < kDays.size(); ++d) {
      if ((w.days >> d) & 1u) days.emplace_back(kDays[d]);
    }
    windows.push_back(json::object{{"days", std::move(days)},
                                   {"start", hhmm(w.start_minute)},
                                   {"end", hhmm(w.end_minute)}});
  }
  json::object out{{"pins", std::move(pins)}, {"windows", std::move(windows)}};
  if (p.ddi_auto_enroll) out["ddi_auto_enroll"] = true;
  if (p.critical_selector_set) {
    json::object critical;
    for (const auto& [tag, values] : p.critical.any_of) {
      json::array a;
      for (const auto& v : values) a.emplace_back(v);
      critical[tag] = std::move(a);
    }
    out["critical"] = std::move(critical);
  }
  return out;
}

core::Result<core::Tags> tags_from_json(const json::value& value) {
  if (!value.is_object()) return field_error("tags", "expected an object of strings");
  if (value.as_object().size() > 32) return field_error("tags", "at most 32 tags");
  core::Tags tags;
  for (const auto& [k, v] : value.as_object()) {
    if (k.empty() || k.size() > 64) return field_error("tags", "tag names are 1..64 bytes");
    if (!v.is_string() || v.as_string().size() > 256) {
      return field_error("tags." + std::string(k), "expected a string of at most 256 bytes");
    }
    tags.emplace(std::string(k), std::string(v.as_string()));
  }
  return tags;
}

json::object tags_to_json(const core::Tags& tags) {
  json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return o;
}

core::Result<json::value> parse_json_body(std::string_view body, std::size_t max_bytes) {
  if (body.size() > max_bytes) {
    return make_error(ErrorCode::kTooLarge, "body of " + std::to_string(body.size()) +
                                                " bytes exceeds " + std::to_string(max_bytes));
  }
  // The strict reader TUF metadata goes through: a duplicate key is refused, not
  // resolved to its last value ({"role":"viewer","role":"admin"} made an admin).
  auto v = tuf::parse_document(body, max_bytes);
  if (!v) return v.error().with_context("malformed JSON: ");
  return std::move(*v);
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto part = q.substr(0, amp);
    auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) {
      // Percent-decoded (RFC 3986 2.1); a '%' not followed by two hex digits stays.
      std::string_view raw = part.substr(eq + 1);
      std::string value;
      auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      };
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size() && hex(raw[i + 1]) >= 0 && hex(raw[i + 2]) >= 0) {
          value += static_cast<char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
          i += 2;
        } else {
          value += raw[i];
        }
      }
      return value;
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace tranche::server
