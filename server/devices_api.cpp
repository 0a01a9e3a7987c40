// Per-device truth (issue 13): the device list, a device's events, and a
// rollout's devices at one standing, each row with why it stands there. Read
// from the store, so any of several servers on one PostgreSQL answers for the
// whole fleet; a device this server holds is described from memory (fresher
// than the store by at most a batch). Every answer is one bounded page: at
// most `limit` rows, from at most kScanBudget stored rows, and a `next` token
// to continue from.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "core/cohort.h"
#include "core/evidence.h"
#include "server/codec.h"
#include "server/server_impl.h"

namespace tranche::server {

namespace json = boost::json;
using core::ErrorCode;

namespace {

// A filtered list reads at most this many stored rows per answer: a page may
// hold fewer than `limit` rows (even none) and still have a `next`.
constexpr std::size_t kScanBudget = 10'000;
constexpr std::size_t kScanChunk = 1'000;
constexpr std::size_t kDeviceEventsShown = 50;

ApiError invalid(std::string message) { return {400, "invalid_argument", std::move(message)}; }

// Unknown parameters are refused, naming them: a typo never silently lists all.
std::optional<ApiError> only_params(const std::string& query, std::initializer_list<std::string_view> known) {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto part = q.substr(0, amp);
    auto name = part.substr(0, part.find('='));
    if (!name.empty() && std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return invalid("unknown query parameter '" + std::string(name.substr(0, 64)) + "' (known: " + list + ")");
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<ApiError> read_limit(const std::string& query, std::size_t fallback, std::size_t* out) {
  *out = fallback;
  auto l = query_param(query, "limit");
  if (!l) return std::nullopt;
  std::size_t v = 0;
  auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
  if (ec != std::errc() || p != l->data() + l->size() || v == 0 || v > 1000) {
    return invalid("limit: expected an integer in 1..1000");
  }
  *out = v;
  return std::nullopt;
}

// `after`: the device key ("tenant/id") the previous page ended at ("" = from
// the start).
std::optional<ApiError> read_after(const std::string& query, std::string* out) {
  auto a = query_param(query, "after");
  if (!a) return std::nullopt;
  if (!core::parse_device_key(*a)) return invalid("after: expected TENANT/DEVICE (the 'next' of a previous page)");
  *out = *a;
  return std::nullopt;
}

json::value parsed_or_empty(const std::string& text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? json::value(json::object{}) : v;
}

json::object event_json(const store::DeviceEventRow& e) {
  return json::object{{"seq", e.seq},         {"kind", e.kind}, {"channel", e.channel},
                      {"version", e.version}, {"at", e.at},     {"detail", parsed_or_empty(e.detail_json)}};
}

// An event's detail in words: "signal 11", "exit code 3", "known_bad", the message.
std::string detail_words(const store::DeviceEventRow& e) {
  auto v = parsed_or_empty(e.detail_json);
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (const auto* o = v.if_object()) {
    if (const auto* r = o->if_contains("reason"); r && r->is_string()) add(std::string(r->as_string()));
    if (const auto* s = o->if_contains("signal"); s && s->is_int64()) add("signal " + std::to_string(s->as_int64()));
    if (const auto* x = o->if_contains("exit_code"); x && x->is_int64()) {
      add("exit code " + std::to_string(x->as_int64()));
    }
    if (const auto* m = o->if_contains("message"); m && m->is_string() && !m->as_string().empty()) {
      add(std::string(m->as_string()));
    }
  }
  return out;
}

std::string event_words(const store::DeviceEventRow& e) {
  std::string words = e.kind + (e.version.empty() ? "" : " " + e.version);
  if (!e.channel.empty()) words += " on " + e.channel;
  const std::string detail = detail_words(e);
  return detail.empty() ? words : words + " (" + detail + ")";
}

// What the server knows of one device, and why it stands where it does.
struct Standing {
  std::string state;   // online, offline, silent, failed, refused, pending
  std::string reason;  // in words
};

constexpr std::string_view kStates[] = {"online", "offline", "silent", "failed", "refused", "pending"};

// The gate settings silence is judged by: the first live rollout's, else the defaults.
core::GateSettings silence_settings(const Snapshot& snap) {
  for (const auto& [channel, id] : snap.live_rollout) {
    if (const RolloutInfo* r = snap.live_rollout_for(channel)) return r->plan.gate;
  }
  return core::GateSettings{};
}

Standing judge(const Device& d, const std::optional<store::DeviceEventRow>& last, const Snapshot& snap,
               TimeMs now) {
  // 1. Failed in a live rollout: the counted failure, with the event that says more.
  for (const auto& m : d.marks) {
    if (!core::is_failed(m.standing)) continue;
    auto it = snap.rollouts.find(m.rollout);
    if (it == snap.rollouts.end()) continue;
    bool live = false;
    for (const auto& [ch, id] : snap.live_rollout) live = live || id == m.rollout;
    if (!live) continue;
    std::string reason = std::string(core::to_string(m.failure)) + " in rollout " + m.rollout + " (" +
                         it->second->version.to_string() + ")";
    if (last && last->version == it->second->version.to_string() && last->channel == it->second->channel &&
        m.failure != core::FailureCause::kSilent) {
      reason += ": " + event_words(*last);
    }
    return {"failed", reason};
  }
  // 2. The device said it refused an offer, of a version it does not run.
  if (last && last->kind == core::to_string(core::DeviceEventKind::kOfferRefused)) {
    auto v = core::Version::parse(last->version);
    auto cur = d.versions.find(last->channel);
    const bool runs = v && cur != d.versions.end() && cur->second == *v;
    if (!runs) return {"refused", "the device refused the offer: " + event_words(*last)};
  }
  // 3. Silent (heard before, no goodbye, missed its heartbeats), or never heard.
  if (d.last_seen == 0) return {"silent", "never heard since enrollment"};
  if (!d.held && core::is_silent(silence_settings(snap), d.last_seen, d.said_goodbye, now)) {
    return {"silent", "not heard for " + core::format_duration(now - d.last_seen)};
  }
  if (d.said_goodbye && !d.held) return {"offline", "said goodbye (clean shutdown)"};
  // 4. Pending: the server wants a version the device does not run yet.
  for (const auto& a : Fleet::answer(d, snap, now)) {
    if (!a.assignment.desired || (a.current && *a.current == *a.assignment.desired)) continue;
    std::string reason = "offered " + a.assignment.desired->to_string() + " on " + a.channel + ", runs " +
                         (a.current ? a.current->to_string() : std::string("nothing yet")) + " (" +
                         a.assignment.reason.text + ")";
    if (last && last->channel == a.channel && last->version == a.assignment.desired->to_string()) {
      reason += "; last reported: " + event_words(*last);
    }
    return {"pending", reason};
  }
  return {"online", "runs what the server wants"};
}

// The stage of each live rollout that first admits the device.
json::object stages_of(const Device& d, const Snapshot& snap) {
  json::object out;
  for (const auto& [ch, id] : snap.live_rollout) {
    const RolloutInfo* r = snap.live_rollout_for(ch);
    if (r == nullptr) continue;
    const auto k = core::first_admitting_stage(rollout_view(*r, snap), core::cohort_bucket(d.id(), r->row.salt), d.tags);
    out[id] = k ? json::value(r->plan.stages[*k].name) : json::value(nullptr);
  }
  return out;
}

}  // namespace

void ServerImpl::api_list_devices(HttpRequest& req, Responder& respond) {
  if (auto e = only_params(req.query, {"limit", "after", "tenant", "version", "state", "stage", "tag"})) {
    return reply_error(respond, *e);
  }
  std::size_t limit = 0;
  std::string after;
  if (auto e = read_limit(req.query, 100, &limit)) return reply_error(respond, *e);
  if (auto e = read_after(req.query, &after)) return reply_error(respond, *e);
  // version=CHANNEL:VERSION (runs it), state=NAME, stage=NAME (a live rollout's
  // stage that admits it), tag=KEY:VALUE.
  std::optional<std::pair<std::string, core::Version>> version;
  if (auto v = query_param(req.query, "version")) {
    auto colon = v->find(':');
    if (colon == std::string::npos) return reply_error(respond, invalid("version: expected CHANNEL:VERSION"));
    auto ch = core::Channel::parse(v->substr(0, colon));
    if (!ch) return reply_error(respond, invalid("version: '" + v->substr(0, 32) + "' names no channel"));
    auto ver = core::Version::parse(v->substr(colon + 1));
    if (!ver) return reply_error(respond, ver.error().with_context("version: "));
    version.emplace(ch->str(), *ver);
  }
  std::optional<std::string> state = query_param(req.query, "state");
  if (state && std::find(std::begin(kStates), std::end(kStates), *state) == std::end(kStates)) {
    return reply_error(respond,
                       invalid("state: expected one of online, offline, silent, failed, refused, pending"));
  }
  std::optional<std::string> stage = query_param(req.query, "stage");
  if (stage && (stage->empty() || stage->size() > 64)) {
    return reply_error(respond, invalid("stage: expected a stage name (1..64 bytes)"));
  }
  std::optional<std::pair<std::string, std::string>> tag;
  if (auto t = query_param(req.query, "tag")) {
    auto colon = t->find(':');
    if (colon == std::string::npos || colon == 0 || t->size() > 256) {
      return reply_error(respond, invalid("tag: expected KEY:VALUE (at most 256 bytes)"));
    }
    tag.emplace(t->substr(0, colon), t->substr(colon + 1));
  }
  // tenant=NAME: one tenant's devices, a range of keys ("NAME/" is below all of them).
  std::string prefix;
  if (auto t = query_param(req.query, "tenant")) {
    if (!core::TenantId::parse(*t)) return reply_error(respond, invalid("tenant: expected [A-Za-z0-9._:-]{1,64}"));
    prefix = *t + "/";
    if (after.empty()) after = prefix;
  }
  const bool filtered = version || state || stage || tag;

  auto snap = fleet_.snapshot();
  const TimeMs now = clock_->now();
  json::array rows;
  std::string cursor = after;
  bool end = false;
  std::size_t scanned = 0;
  while (rows.size() < limit && scanned < kScanBudget && !end) {
    const std::size_t chunk = filtered ? kScanChunk : limit - rows.size();
    core::Result<std::vector<store::DevicePageEntry>> page = std::vector<store::DevicePageEntry>{};
    {
      std::lock_guard lock(store_mu_);
      page = store_->list_devices(cursor, chunk);
    }
    if (!page) return reply_error(respond, page.error());
    if (page->size() < chunk) end = true;
    for (std::size_t i = 0; i < page->size(); ++i) {
      const auto& entry = (*page)[i];
      ++scanned;
      if (!entry.record.device.id.starts_with(prefix)) {  // past the tenant's keys
        end = true;
        break;
      }
      cursor = entry.record.device.id;
      Device d = device_from_rows(entry.record.device, &entry.record.state, entry.record.marks);
      d.last_seen = core::latest_contact(d.last_seen, last_seen_every(), now);
      // Held here: memory is fresher than the store.
      (void)fleet_.with_device(d.key, [&](Device& mine) { d = mine; });
      bool keep = true;
      if (version) {
        auto it = d.versions.find(version->first);
        keep = it != d.versions.end() && it->second == version->second;
      }
      if (keep && tag) {
        auto it = d.tags.find(tag->first);
        keep = it != d.tags.end() && it->second == tag->second;
      }
      json::object stages = stages_of(d, *snap);
      if (keep && stage) {
        bool any = false;
        for (const auto& [id, s] : stages) any = any || (s.is_string() && s.as_string() == *stage);
        keep = any;
      }
      Standing standing = judge(d, entry.last_event, *snap, now);
      if (keep && state) keep = standing.state == *state;
      if (keep) {
        json::object versions;
        for (const auto& [ch, v] : d.versions) versions[ch] = v.to_string();
        json::object row{{"id", d.id()},
                         {"tenant", d.tenant},
                         {"tags", tags_to_json(d.tags)},
                         {"versions", std::move(versions)},
                         {"last_seen", d.last_seen},
                         {"said_goodbye", d.said_goodbye},
                         {"state", standing.state},
                         {"reason", standing.reason},
                         {"stages", std::move(stages)},
                         {"last_event", entry.last_event ? json::value(event_json(*entry.last_event))
                                                         : json::value(nullptr)}};
        rows.push_back(std::move(row));
      }
      if (rows.size() >= limit) {
        end = end && i + 1 == page->size();  // more after this row: not the end
        break;
      }
    }
  }
  json::object out{{"devices", std::move(rows)}};
  out["next"] = end ? json::value(nullptr) : json::value(cursor);
  reply_json(respond, 200, out);
}

void ServerImpl::api_device_events(HttpRequest& req, Responder& respond, const std::string& id) {
  if (auto e = only_params(req.query, {"tenant", "limit", "before_seq"})) return reply_error(respond, *e);
  auto key = key_of_device(id, req.query);
  if (!key) return reply_error(respond, key.error());
  std::size_t limit = 0;
  if (auto e = read_limit(req.query, 100, &limit)) return reply_error(respond, *e);
  std::int64_t before = std::numeric_limits<std::int64_t>::max();
  if (auto b = query_param(req.query, "before_seq")) {
    auto [p, ec] = std::from_chars(b->data(), b->data() + b->size(), before);
    if (ec != std::errc() || p != b->data() + b->size() || before < 1) {
      return reply_error(respond, invalid("before_seq: expected an integer >= 1 (the 'next' of a previous page)"));
    }
  }
  core::Result<std::vector<store::DeviceEventRow>> events = std::vector<store::DeviceEventRow>{};
  {
    std::lock_guard lock(store_mu_);
    events = store_->load_events_before(*key, before, limit);
    if (events && events->empty()) {  // none, or no such device (404)
      auto record = store_->load_device(*key);
      if (!record) return reply_error(respond, record.error());
    }
  }
  if (!events) return reply_error(respond, events.error());
  json::array list;
  for (const auto& e : *events) list.push_back(event_json(e));
  json::object out{{"device", id}, {"tenant", core::device_tenant_of(*key)}, {"events", std::move(list)}};
  out["next"] = events->size() == limit ? json::value(events->back().seq) : json::value(nullptr);
  reply_json(respond, 200, out);
}

void ServerImpl::api_rollout_devices(HttpRequest& req, Responder& respond, const std::string& id) {
  if (auto e = only_params(req.query, {"state", "limit", "after"})) return reply_error(respond, *e);
  std::size_t limit = 0;
  std::string after;
  if (auto e = read_limit(req.query, 100, &limit)) return reply_error(respond, *e);
  if (auto e = read_after(req.query, &after)) return reply_error(respond, *e);
  const std::string state = query_param(req.query, "state").value_or("failed");
  if (state != "failed" && state != "refused" && state != "pending") {
    return reply_error(respond, invalid("state: expected failed, refused or pending"));
  }
  auto snap = fleet_.snapshot();
  auto it = snap->rollouts.find(id);
  if (it == snap->rollouts.end()) return reply_error(respond, ApiError{404, "not_found", "no rollout '" + id + "'"});
  const RolloutInfo& r = *it->second;
  const std::string version = r.version.to_string();
  // failed: rank 3; refused and pending are both exposed (rank 1), told apart by
  // what the device last said about the release.
  const int rank = core::standing_rank(state == "failed" ? core::Standing::kExposedFailed : core::Standing::kExposed);
  const std::string refused_kind(core::to_string(core::DeviceEventKind::kOfferRefused));
  json::array rows;
  std::string cursor = after;
  bool end = false;
  std::size_t scanned = 0;
  while (rows.size() < limit && scanned < kScanBudget && !end) {
    const std::size_t chunk = state == "failed" ? limit - rows.size() : kScanChunk;
    core::Result<std::vector<store::RolloutDeviceEntry>> page = std::vector<store::RolloutDeviceEntry>{};
    {
      std::lock_guard lock(store_mu_);
      page = store_->list_rollout_devices(id, rank, r.channel, version, cursor, chunk);
    }
    if (!page) return reply_error(respond, page.error());
    if (page->size() < chunk) end = true;
    for (std::size_t i = 0; i < page->size(); ++i) {
      const auto& entry = (*page)[i];
      ++scanned;
      cursor = entry.mark.device;
      const bool refused = entry.last_event && entry.last_event->kind == refused_kind;
      if ((state == "refused") != refused && state != "failed") continue;
      std::string cause;
      std::string reason;
      if (state == "failed") {
        cause = entry.mark.failure;
        reason = cause == "silent" ? "silent: missed its heartbeats without a goodbye"
                                   : cause + (entry.last_event ? ": " + event_words(*entry.last_event) : "");
      } else if (refused) {
        cause = refused_kind;
        reason = "refused the offer: " + event_words(*entry.last_event);
      } else {
        cause = "pending";
        reason = "offered " + version + ", no healthy report yet" +
                 (entry.last_event ? "; last reported: " + event_words(*entry.last_event) : "");
      }
      json::object row{{"device", core::device_id_of(entry.mark.device)},
                       {"tenant", core::device_tenant_of(entry.mark.device)},
                       {"standing", entry.mark.standing},
                       {"cause", cause},
                       {"reason", reason},
                       {"offered_at", entry.mark.offered_at},
                       {"failed_at", entry.mark.failed_at},
                       {"last_event", entry.last_event ? json::value(event_json(*entry.last_event))
                                                       : json::value(nullptr)}};
      rows.push_back(std::move(row));
      if (rows.size() >= limit) {
        end = end && i + 1 == page->size();
        break;
      }
    }
  }
  json::object out{{"rollout", id}, {"state", state}, {"devices", std::move(rows)}};
  out["next"] = end ? json::value(nullptr) : json::value(cursor);
  reply_json(respond, 200, out);
}

// The device view's part from the store: its newest events, newest first, and
// what it stands as (GET /v1/devices/{id}).
std::optional<ApiError> ServerImpl::device_truth(const Device& d, const Snapshot& snap, TimeMs now,
                                                 json::object& out) {
  core::Result<std::vector<store::DeviceEventRow>> events = std::vector<store::DeviceEventRow>{};
  {
    std::lock_guard lock(store_mu_);
    events = store_->load_events_before(d.key, std::numeric_limits<std::int64_t>::max(), kDeviceEventsShown);
  }
  if (!events) {
    return ApiError{503, "unavailable", "the device's events cannot be read now: " + events.error().message};
  }
  json::array list;
  for (const auto& e : *events) list.push_back(event_json(e));
  std::optional<store::DeviceEventRow> last;
  if (!events->empty()) last = events->front();
  Standing standing = judge(d, last, snap, now);
  out["state"] = standing.state;
  out["reason"] = standing.reason;
  out["stages"] = stages_of(d, snap);
  out["last_reported"] = last ? json::value(event_words(*last)) : json::value(nullptr);
  out["events"] = std::move(list);
  return std::nullopt;
}

}  // namespace tranche::server
