#include "agent/state_files.h"

#include <algorithm>
#include <limits>

#include <boost/json.hpp>

#include "tuf/canonical_json.h"

namespace tranche::agent {

namespace json = boost::json;
using core::AgentPhase;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::Version;

namespace {

constexpr std::size_t kMaxStateBytes = 4u << 20;

std::optional<AgentPhase> phase_from(std::string_view s) {
  for (std::size_t i = 0; i < core::kAgentPhaseCount; ++i) {
    const auto p = static_cast<AgentPhase>(i);
    if (core::to_string(p) == s) return p;
  }
  return std::nullopt;
}

json::value version_json(const std::optional<Version>& v) {
  return v ? json::value(v->to_string()) : json::value(nullptr);
}

Result<std::optional<Version>> version_from(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<Version>{};
  if (!v->is_string()) return make_error(ErrorCode::kParse, std::string(key) + ": expected a string");
  auto parsed = Version::parse(v->as_string());
  if (!parsed) return parsed.error().with_context(std::string(key) + ": ");
  return std::optional<Version>(*parsed);
}

}  // namespace

std::string encode_record(const StoredRecord& s) {
  const core::AgentRecord& r = s.record;
  json::array bad;
  for (const auto& v : r.bad) bad.emplace_back(v.to_string());
  json::array targets;
  for (const auto& t : s.candidate_targets) {
    targets.emplace_back(json::object{{"path", t.path}, {"length", t.length}, {"sha256", t.sha256}});
  }
  json::object o{{"format", "tranche-agent-record/1"},
                 {"phase", std::string(core::to_string(r.phase))},
                 {"good", version_json(r.good)},
                 {"candidate", version_json(r.candidate)},
                 {"starts_left", r.starts_left},
                 {"trial_started_at", r.trial_started_at},
                 {"bad", std::move(bad)},
                 {"previous", version_json(r.previous)},
                 {"previous_in_slot", r.previous_in_slot},
                 {"unclean_boots", r.unclean_boots},
                 {"candidate_targets", std::move(targets)}};
  return json::serialize(o) + "\n";
}

Result<StoredRecord> decode_record(const std::string& text) {
  auto parsed = tuf::parse_document(text, kMaxStateBytes);
  if (!parsed) return parsed.error().with_context("record: ");
  const json::value& v = *parsed;
  if (!v.is_object()) return make_error(ErrorCode::kParse, "record: not a JSON object");
  const json::object& o = v.as_object();
  try {
    StoredRecord s;
    auto phase = phase_from(o.at("phase").as_string());
    if (!phase) return make_error(ErrorCode::kParse, "record: unknown phase");
    s.record.phase = *phase;
    auto good = version_from(o, "good");
    if (!good) return good.error();
    s.record.good = *good;
    auto cand = version_from(o, "candidate");
    if (!cand) return cand.error();
    s.record.candidate = *cand;
    s.record.starts_left = static_cast<std::uint32_t>(o.at("starts_left").to_number<std::int64_t>());
    s.record.trial_started_at = o.at("trial_started_at").to_number<std::int64_t>();
    for (const auto& b : o.at("bad").as_array()) {
      auto bv = Version::parse(b.as_string());
      if (!bv) return bv.error().with_context("record: bad: ");
      s.record.bad.push_back(*bv);
    }
    // Absent in records written before the agent kept its other slot (issue 16):
    // nothing to fall back to, no unclean boots counted.
    if (o.contains("previous")) {
      auto prev = version_from(o, "previous");
      if (!prev) return prev.error();
      s.record.previous = *prev;
    }
    if (const auto* p = o.if_contains("previous_in_slot")) s.record.previous_in_slot = p->as_bool();
    if (const auto* u = o.if_contains("unclean_boots")) {
      s.record.unclean_boots = static_cast<std::uint32_t>(std::clamp<std::int64_t>(
          u->to_number<std::int64_t>(), 0, std::numeric_limits<std::uint32_t>::max()));
    }
    if (const auto* ts = o.if_contains("candidate_targets")) {
      for (const auto& t : ts->as_array()) {
        const auto& to = t.as_object();
        s.candidate_targets.push_back(TargetRef{std::string(to.at("path").as_string()),
                                                to.at("length").to_number<std::int64_t>(),
                                                std::string(to.at("sha256").as_string())});
      }
    }
    return s;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kParse, std::string("record: ") + e.what());
  }
}

Result<StoredRecord> load_record(FileSystem& fs, const std::string& path) {
  auto text = fs.read(path, kMaxStateBytes);
  if (!text) return text.error();
  auto r = decode_record(*text);
  if (!r) return r.error().with_context(path + ": ");
  return r;
}

Status save_record(FileSystem& fs, const std::string& path, const StoredRecord& r) {
  return write_durably(fs, path, encode_record(r));
}

namespace {

json::object event_json(const DeviceEvent& e) {
  json::object o{{"seq", e.seq}, {"kind", e.kind}};
  if (!e.channel.empty()) o["channel"] = e.channel;
  if (!e.version.empty()) o["version"] = e.version;
  if (e.exit_code) o["exit_code"] = *e.exit_code;
  if (e.signal) o["signal"] = *e.signal;
  if (!e.message.empty()) o["message"] = e.message.substr(0, 1000);
  if (!e.reason.empty()) o["reason"] = e.reason;
  return o;
}

}  // namespace

Status EventQueue::load() {
  auto text = fs_->read(path_, kMaxStateBytes);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) return core::Ok{};
    return text.error();
  }
  auto parsed = tuf::parse_document(*text, kMaxStateBytes);
  if (!parsed) return parsed.error().with_context(path_ + ": ");
  const json::value& v = *parsed;
  if (!v.is_object()) return make_error(ErrorCode::kParse, path_ + ": not a JSON object");
  try {
    const json::object& o = v.as_object();
    next_seq_ = o.at("next_seq").to_number<std::int64_t>();
    pending_.clear();
    for (const auto& item : o.at("pending").as_array()) {
      const json::object& e = item.as_object();
      DeviceEvent d;
      d.seq = e.at("seq").to_number<std::int64_t>();
      d.kind = std::string(e.at("kind").as_string());
      if (const auto* c = e.if_contains("channel")) d.channel = std::string(c->as_string());
      if (const auto* c = e.if_contains("version")) d.version = std::string(c->as_string());
      if (const auto* c = e.if_contains("exit_code")) d.exit_code = static_cast<int>(c->to_number<std::int64_t>());
      if (const auto* c = e.if_contains("signal")) d.signal = static_cast<int>(c->to_number<std::int64_t>());
      if (const auto* c = e.if_contains("message")) d.message = std::string(c->as_string());
      if (const auto* c = e.if_contains("reason")) d.reason = std::string(c->as_string());
      pending_.push_back(std::move(d));
    }
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kParse, path_ + ": " + e.what());
  }
  return core::Ok{};
}

Status EventQueue::save() {
  json::array pending;
  for (const auto& e : pending_) pending.emplace_back(event_json(e));
  json::object o{{"next_seq", next_seq_}, {"pending", std::move(pending)}};
  return write_durably(*fs_, path_, json::serialize(o) + "\n");
}

Status EventQueue::push(DeviceEvent e) {
  // A bounded queue: an agent cut off for a long time keeps the newest 1,000.
  const auto before = pending_;
  e.seq = next_seq_++;
  pending_.push_back(std::move(e));
  if (pending_.size() > 1000) pending_.erase(pending_.begin());
  auto st = save();
  if (!st) {
    // Not durable, so not handed out: the seq may be used again.
    pending_ = before;
    --next_seq_;
  }
  return st;
}

Status EventQueue::acknowledge(std::int64_t up_to) {
  const auto before = pending_.size();
  std::erase_if(pending_, [&](const DeviceEvent& e) { return e.seq <= up_to; });
  if (pending_.size() == before) return core::Ok{};
  return save();
}

std::string EventQueue::upload_body(std::size_t max) const {
  json::array events;
  for (std::size_t i = 0; i < pending_.size() && i < max; ++i) events.emplace_back(event_json(pending_[i]));
  return json::serialize(json::object{{"events", std::move(events)}});
}

}  // namespace tranche::agent
