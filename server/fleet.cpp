#include "server/fleet.h"

#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include <boost/json.hpp>

#include "server/codec.h"

namespace tranche::server {


bool RolloutInfo::live() const { return core::is_live(status.state); }

const RolloutInfo* Snapshot::live_rollout_for(const std::string& channel) const {
  auto it = live_rollout.find(channel);
  if (it == live_rollout.end()) return nullptr;
  auto r = rollouts.find(it->second);
  return r == rollouts.end() ? nullptr : r->second.get();
}

const RolloutMark* Device::find_mark(const std::string& rollout) const {
  for (const auto& m : marks) {
    if (m.rollout == rollout) return &m;
  }
  return nullptr;
}

RolloutMark& Device::mark(const std::string& rollout) {
  for (auto& m : marks) {
    if (m.rollout == rollout) return m;
  }
  marks.push_back(RolloutMark{});
  marks.back().rollout = rollout;
  return marks.back();
}

store::DeviceStateRow Device::state_row() const {
  store::DeviceStateRow row;
  row.device = id;
  boost::json::object v;
  for (const auto& [ch, ver] : versions) v[ch] = ver.to_string();
  row.versions_json = boost::json::serialize(v);
  boost::json::object f;
  for (const auto& [ch, list] : failed) {
    boost::json::array a;
    for (const auto& ver : list) a.emplace_back(ver.to_string());
    f[ch] = std::move(a);
  }
  row.failed_json = boost::json::serialize(f);
  // The marks are rows of their own (mark_rows), written in the same batch.
  row.health_json = health_json;
  row.last_seen = last_seen;
  row.said_goodbye = said_goodbye;
  row.last_event_seq = last_event_seq;
  row.owner = owner;
  row.owner_since = owner_since;
  row.revision = revision;
  return row;
}

std::vector<store::RolloutMarkRow> Device::mark_rows() const {
  std::vector<store::RolloutMarkRow> rows;
  rows.reserve(marks.size());
  for (const auto& m : marks) {
    rows.push_back(store::RolloutMarkRow{m.rollout, id, std::string(core::to_string(m.standing)),
                                         std::string(core::to_string(m.failure)), m.offered_at,
                                         m.acknowledged_at, m.failed_at});
  }
  return rows;
}

namespace {

RolloutMark mark_from_json(const boost::json::object& mo) {
  RolloutMark mark;
  auto text_of = [&](std::string_view key) -> std::string_view {
    auto* v = mo.if_contains(key);
    return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view{};
  };
  auto time_of = [&](std::string_view key) -> TimeMs {
    auto* v = mo.if_contains(key);
    return v != nullptr && v->is_int64() ? v->as_int64() : 0;
  };
  mark.rollout = std::string(text_of("rollout"));
  mark.failure = core::parse_failure_cause(text_of("failure")).value_or(core::FailureCause::kNone);
  mark.offered_at = time_of("offered_at");
  mark.acknowledged_at = time_of("acknowledged_at");
  mark.failed_at = time_of("failed_at");
  if (auto standing = core::parse_standing(text_of("standing"))) {
    mark.standing = *standing;
  } else {
    // A mark written before standings (acknowledged_at, failure_counted, offered_at).
    auto* fc = mo.if_contains("failure_counted");
    const bool failed = fc != nullptr && fc->is_bool() && fc->as_bool();
    const bool exposed = mark.offered_at > 0 || mark.acknowledged_at > 0;
    mark.standing = failed ? (exposed ? core::Standing::kExposedFailed : core::Standing::kControlFailed)
                    : mark.acknowledged_at > 0 ? core::Standing::kAcknowledged
                    : exposed                  ? core::Standing::kExposed
                                               : core::Standing::kControl;
  }
  return mark;
}

}  // namespace

Device device_from_rows(const store::DeviceRow& row, const store::DeviceStateRow* s,
                        const std::vector<store::RolloutMarkRow>& marks) {
  namespace json = boost::json;
  Device d;
  d.id = row.id;
  d.tenant = row.tenant;
  d.token_hash = row.token_hash;
  d.utc_offset_minutes = row.utc_offset_minutes;
  d.enrolled_at = row.enrolled_at;
  boost::system::error_code ec;
  if (auto tags = json::parse(row.tags_json, ec); !ec) {
    if (auto t = tags_from_json(tags)) d.tags = std::move(*t);
  }
  if (s != nullptr) {
    d.last_seen = s->last_seen;
    d.stored_last_seen = s->last_seen;
    d.said_goodbye = s->said_goodbye;
    d.last_event_seq = s->last_event_seq;
    d.owner = s->owner;
    d.owner_since = s->owner_since;
    d.revision = s->revision;
    if (auto v = json::parse(s->versions_json, ec); !ec && v.is_object()) {
      for (const auto& [ch, ver] : v.as_object()) {
        if (ver.is_string()) {
          if (auto p = core::Version::parse(ver.as_string())) d.versions.emplace(ch, *p);
        }
      }
    }
    if (auto f = json::parse(s->failed_json, ec); !ec && f.is_object()) {
      for (const auto& [ch, list] : f.as_object()) {
        if (!list.is_array()) continue;
        for (const auto& ver : list.as_array()) {
          if (!ver.is_string()) continue;
          if (auto p = core::Version::parse(ver.as_string())) d.failed[ch].push_back(*p);
        }
      }
    }
    if (auto h = json::parse(s->health_json, ec); !ec && h.is_object()) {
      auto& o = h.as_object();
      // Before schema version 3 the marks rode along in health_json's "_marks".
      if (auto* old = o.if_contains("_marks"); old != nullptr && old->is_array()) {
        for (const auto& m : old->as_array()) {
          if (m.is_object()) d.marks.push_back(mark_from_json(m.as_object()));
        }
        o.erase("_marks");
      }
      d.health_json = json::serialize(o);
    }
  }
  // The rows: the truth from schema version 3 on.
  for (const auto& m : marks) {
    auto standing = core::parse_standing(m.standing);
    if (!standing) continue;
    RolloutMark& mark = d.mark(m.rollout);
    mark.standing = *standing;
    mark.failure = core::parse_failure_cause(m.failure).value_or(core::FailureCause::kNone);
    mark.offered_at = m.offered_at;
    mark.acknowledged_at = m.acknowledged_at;
    mark.failed_at = m.failed_at;
  }
  return d;
}

std::uint64_t eligible_devices(const Snapshot& snapshot) { return snapshot.device_count; }

core::RolloutView rollout_view(const RolloutInfo& rollout, const Snapshot& snapshot) {
  return core::RolloutView{rollout.row.id,     rollout.row.salt, rollout.version,
                          rollout.previous,   &rollout.plan,    rollout.status,
                          eligible_devices(snapshot)};
}

// --- Fleet ------------------------------------------------------------------------

Fleet::Fleet() : snapshot_(std::make_shared<Snapshot>()) {}

std::shared_ptr<const Snapshot> Fleet::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

void Fleet::update(const std::function<void(Snapshot&)>& change) {
  std::lock_guard writer(writer_mu_);
  auto next = std::make_shared<Snapshot>(*snapshot());
  change(*next);
  // What every check-in would otherwise recompute: each channel's version list
  // and each release's parsed targets.
  for (auto& [name, channel] : next->channels) {
    channel.versions_cache.versions.clear();
    for (auto& r : channel.releases) {
      channel.versions_cache.versions.push_back(r.version);
      if (r.targets.is_null()) {
        boost::system::error_code ec;
        r.targets = boost::json::parse(r.row.targets_json, ec);
        if (ec) r.targets = boost::json::array{};
      }
    }
  }
  next->generation += 1;
  next->device_count = std::max<std::uint64_t>(device_count_.load(), store_count_.load());
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = std::move(next);
  }
  changed_.notify_all();
}

std::shared_ptr<const Snapshot> Fleet::wait_for_change(
    std::uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(snapshot_mu_);
  changed_.wait_until(lock, deadline, [&] { return snapshot_->generation > seen; });
  return snapshot_;
}

void Fleet::wake_all() { changed_.notify_all(); }

Fleet::Shard& Fleet::shard_for(const std::string& id) {
  return shards_[std::hash<std::string>{}(id) % kShards];
}
const Fleet::Shard& Fleet::shard_for(const std::string& id) const {
  return shards_[std::hash<std::string>{}(id) % kShards];
}

core::Status Fleet::add_device(Device device) {
  auto& shard = shard_for(device.id);
  std::lock_guard lock(shard.mu);
  auto id = device.id;
  auto [it, inserted] = shard.devices.emplace(id, nullptr);
  if (!inserted) {
    return core::make_error(core::ErrorCode::kConflict, "device '" + id + "' is already enrolled");
  }
  it->second = std::make_unique<Device>(std::move(device));
  device_count_.fetch_add(1);
  return core::Ok{};
}

core::Status Fleet::with_device(const std::string& id, const std::function<void(Device&)>& fn) {
  auto& shard = shard_for(id);
  std::lock_guard lock(shard.mu);
  auto it = shard.devices.find(id);
  if (it == shard.devices.end()) {
    return core::make_error(core::ErrorCode::kNotFound, "device '" + id + "' is not enrolled");
  }
  fn(*it->second);
  return core::Ok{};
}

void Fleet::for_each_device(const std::function<void(const Device&)>& fn) const {
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [id, device] : shard.devices) fn(*device);
  }
}

void Fleet::install_claimed(Device device) {
  auto& shard = shard_for(device.id);
  std::lock_guard lock(shard.mu);
  auto [it, inserted] = shard.devices.emplace(device.id, nullptr);
  if (inserted) {
    device_count_.fetch_add(1);
  } else if (it->second->revision > device.revision) {
    return;  // a later claim of this server's got there first
  }
  device.owned = true;
  device.held = !inserted && it->second->held;
  it->second = std::make_unique<Device>(std::move(device));
}

bool Fleet::disown(const std::string& id, const std::string& owner, TimeMs since) {
  auto& shard = shard_for(id);
  std::lock_guard lock(shard.mu);
  auto it = shard.devices.find(id);
  if (it == shard.devices.end()) return false;
  Device& d = *it->second;
  if (!d.owned || d.owner == owner || d.owner_since > since) return false;
  d.owned = false;
  return true;
}

std::size_t Fleet::evict_unneeded() {
  std::size_t evicted = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (auto it = shard.devices.begin(); it != shard.devices.end();) {
      const Device& d = *it->second;
      const bool unneeded = !d.held && (!d.owned || (d.last_seen == 0 && d.marks.empty()));
      if (unneeded) {
        it = shard.devices.erase(it);
        ++evicted;
      } else {
        ++it;
      }
    }
  }
  device_count_.fetch_sub(evicted);
  return evicted;
}

bool Fleet::owns(const std::string& id) const {
  auto& shard = shard_for(id);
  std::lock_guard lock(shard.mu);
  auto it = shard.devices.find(id);
  return it != shard.devices.end() && it->second->owned;
}

namespace {


// One fact about `device` in `rollout`, through core's evidence model; the
// mark keeps the times. Returns whether the standing changed.
bool note(Device& device, const RolloutInfo& rollout, core::Fact fact, TimeMs now) {
  const RolloutMark* seen = device.find_mark(rollout.row.id);
  core::Standing standing = seen ? seen->standing : core::Standing::kControl;
  // Most facts change nothing (every check-in of an acknowledged device says it
  // runs the release): find that out on a scratch tally, without the lock.
  core::Standing probe = standing;
  core::EvidenceTally scratch;
  if (!core::record(probe, fact, scratch)) return false;
  if (!rollout.evidence->record(standing, fact)) return false;
  RolloutMark& mark = device.mark(rollout.row.id);
  const core::Standing before = mark.standing;
  mark.standing = standing;
  if (core::is_failed(standing)) {
    mark.failed_at = now;
    mark.failure = core::failure_cause_of(fact);
  } else if (standing == core::Standing::kAcknowledged) {
    mark.acknowledged_at = now;
  }
  if (!core::is_exposed(before) && core::is_exposed(standing) && mark.offered_at == 0) {
    mark.offered_at = now;
  }
  return true;
}

// Online as the gate sees it: a check-in held, or heard within the silence
// window without a goodbye.
bool is_online(const Device& d, const core::GateSettings& gate, TimeMs now) {
  if (d.held) return true;
  if (d.last_seen <= 0 || d.said_goodbye) return false;
  return !core::is_silent(gate, d.last_seen, false, now);
}

core::TenantPolicy const& policy_of(const Device& device, const Snapshot& snapshot) {
  static const core::TenantPolicy kDefaultPolicy;
  auto tenant = snapshot.tenants.find(device.tenant);
  return tenant == snapshot.tenants.end() ? kDefaultPolicy : tenant->second.policy;
}

ChannelAnswer answer_channel(const Device& device, const Snapshot& snapshot,
                             const core::TenantPolicy& policy, core::DeviceView& view,
                             const std::string& channel, TimeMs now) {
  ChannelAnswer a;
  a.channel = channel;
  auto cur = device.versions.find(channel);
  view.current =
      cur == device.versions.end() ? std::nullopt : std::optional<core::Version>(cur->second);
  auto failed = device.failed.find(channel);
  view.failed = failed == device.failed.end() ? std::vector<core::Version>{} : failed->second;
  a.current = view.current;
  static const core::ChannelReleases kNoReleases;
  const core::ChannelReleases* releases = &kNoReleases;
  std::optional<core::Version> baseline;
  if (auto ci = snapshot.channels.find(channel); ci != snapshot.channels.end()) {
    releases = &ci->second.versions();
    baseline = ci->second.baseline;
  }
  const RolloutInfo* rollout = snapshot.live_rollout_for(channel);
  std::optional<core::RolloutView> rv;
  if (rollout != nullptr) {
    rv = rollout_view(*rollout, snapshot);
    a.rollout = rollout->row.id;
    if (rollout->status.stage < rollout->plan.stages.size()) {
      a.stage = rollout->plan.stages[rollout->status.stage].name;
    }
  }
  a.assignment = core::assign(view, policy, *releases, baseline, rv ? &*rv : nullptr, channel, now);
  return a;
}

core::DeviceView view_of(const Device& device) {
  core::DeviceView view;
  view.id = device.id;
  view.tags = device.tags;
  view.utc_offset_minutes = device.utc_offset_minutes;
  return view;
}

}  // namespace

DeviceWrite Fleet::check_in(Device& device, const Snapshot& snapshot,
                            std::map<std::string, core::Version> versions, std::string health_json,
                            bool healthy, TimeMs now, core::DurationMs last_seen_every) {
  bool changed = false;
  // What it runs is evidence: past its trial it acknowledges the release; in its
  // trial it is exposed (it may have got the version without our offer).
  for (const auto& [channel, rollout_id] : snapshot.live_rollout) {
    const RolloutInfo* rollout = snapshot.live_rollout_for(channel);
    if (rollout == nullptr) continue;
    auto runs = versions.find(channel);
    if (runs == versions.end() || runs->second != rollout->version) continue;
    changed |= note(device, *rollout, healthy ? core::Fact::kRunsHealthy : core::Fact::kOffered, now);
  }
  for (auto& [channel, version] : versions) {
    auto [it, added] = device.versions.try_emplace(channel, version);
    if (!added && it->second != version) {
      it->second = version;
      changed = true;
    }
    changed |= added;
  }
  if (device.health_json != health_json) {
    device.health_json = std::move(health_json);
    changed = true;
  }
  changed |= device.said_goodbye;
  device.last_seen = now;
  device.said_goodbye = false;
  const bool state = changed || core::last_seen_write_due(device.stored_last_seen, now, last_seen_every);
  return DeviceWrite{device.id, {}, state, nullptr};
}

std::vector<ChannelAnswer> Fleet::answer(const Device& device, const Snapshot& snapshot,
                                         TimeMs now) {
  std::set<std::string> channels;
  for (const auto& [ch, v] : device.versions) channels.insert(ch);
  for (const auto& [ch, info] : snapshot.channels) channels.insert(ch);
  core::DeviceView view = view_of(device);
  const core::TenantPolicy& policy = policy_of(device, snapshot);
  std::vector<ChannelAnswer> out;
  for (const auto& channel : channels) {
    out.push_back(answer_channel(device, snapshot, policy, view, channel, now));
  }
  return out;
}

bool Fleet::note_offers(Device& device, const Snapshot& snapshot, const std::vector<ChannelAnswer>& answers,
                        TimeMs now) {
  bool changed = false;
  for (const auto& a : answers) {
    if (a.rollout.empty() || !a.assignment.desired || a.assignment.desired == a.current) continue;
    const RolloutInfo* rollout = snapshot.live_rollout_for(a.channel);
    if (rollout == nullptr || *a.assignment.desired != rollout->version) continue;
    changed |= note(device, *rollout, core::Fact::kOffered, now);
  }
  return changed;
}

std::map<std::string, Fleet::ScanResult> Fleet::scan(const Snapshot& snapshot, TimeMs now,
                                                     core::DurationMs elapsed,
                                                     std::vector<std::string>& changed) {
  struct Live {
    const RolloutInfo* rollout;
    bool count_coverage;  // running, in its last stage
    ScanResult result;
  };
  std::vector<Live> live;
  for (const auto& [channel, id] : snapshot.live_rollout) {
    if (const RolloutInfo* r = snapshot.live_rollout_for(channel)) {
      // Coverage costs an assignment per online device: counted only when it
      // can matter — a running rollout's last stage, once its bake is over.
      const bool last = std::size_t{r->status.stage} + 1 >= r->plan.stages.size();
      const bool baked = last && now - r->status.stage_started_at >= r->plan.stages.back().bake;
      live.push_back(Live{r, baked && r->status.state == core::RolloutState::kRunning, {}});
    }
  }
  std::map<std::string, ScanResult> out;
  if (live.empty()) return out;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (auto& [id, device] : shard.devices) {
      Device& d = *device;
      // Another server owns it: that one counts it (a device moving between
      // servers is never silent here, nor counted twice).
      if (!d.owned) continue;
      // A device whose check-in the server holds is connected now.
      if (d.held) d.last_seen = now;
      bool marks_changed = false;
      for (auto& l : live) {
        const RolloutInfo& r = *l.rollout;
        const bool online = is_online(d, r.plan.gate, now);
        const RolloutMark* m = d.find_mark(r.row.id);
        core::Standing standing = m ? m->standing : core::Standing::kControl;
        // Silence: heard during this rollout, then quiet past the allowance
        // without a goodbye (a crashed machine cannot report its crash).
        if (!online && !d.said_goodbye && d.last_seen >= r.row.created_at && d.last_seen > 0 &&
            !core::is_failed(standing)) {
          if (note(d, r, core::Fact::kSilent, now)) marks_changed = true;
          continue;
        }
        if (!online) continue;
        switch (core::accrual_group(standing)) {
          case core::Group::kExposed: ++l.result.exposed_online; break;
          case core::Group::kControl: ++l.result.control_online; break;
          case core::Group::kNone: break;
        }
        auto v = d.versions.find(r.channel);
        const bool runs = v != d.versions.end() && v->second == r.version;
        if (runs) ++l.result.online_on_version;
        if (l.count_coverage && !core::is_failed(standing)) {
          core::DeviceView view = view_of(d);
          const ChannelAnswer a =
              answer_channel(d, snapshot, policy_of(d, snapshot), view, r.channel, now);
          if (runs || a.assignment.desired == r.version) {
            ++l.result.coverage.target;
            if (runs && standing == core::Standing::kAcknowledged) ++l.result.coverage.running;
          }
        }
      }
      if (marks_changed) changed.push_back(d.id);
    }
  }
  for (auto& l : live) {
    l.rollout->evidence->accrue(l.result.exposed_online, l.result.control_online, elapsed);
    out.emplace(l.rollout->row.id, l.result);
  }
  return out;
}

DeviceWrite Fleet::record_events(Device& device, const Snapshot& snapshot,
                                 const std::vector<DeviceEvent>& events, TimeMs now) {
  DeviceWrite write{device.id, {}, true, nullptr};
  for (const auto& e : events) {
    device.last_event_seq = std::max(device.last_event_seq, e.seq);
    using K = core::DeviceEventKind;
    if (e.kind == K::kGoodbye) {
      device.said_goodbye = true;
    } else if (e.kind == K::kInstalled && e.version) {
      device.versions.insert_or_assign(e.channel, *e.version);
    }
    if (e.version && core::bans_version(e.kind)) {
      // A version that failed here is remembered, so assignment never offers it
      // again (core::assign rule 2). A crash alone may be retried within the budget.
      auto& list = device.failed[e.channel];
      if (std::find(list.begin(), list.end(), *e.version) == list.end()) list.push_back(*e.version);
    }
    if (const RolloutInfo* rollout = snapshot.live_rollout_for(e.channel)) {
      // An event about the release itself is exposure, even without our offer.
      if (e.version && *e.version == rollout->version && e.kind != K::kGoodbye) {
        note(device, *rollout, core::Fact::kOffered, now);
      }
      note(device, *rollout, core::fact_of(e.kind), now);
    }
    store::DeviceEventRow row;
    row.device = device.id;
    row.seq = e.seq;
    row.kind = std::string(core::to_string(e.kind));
    row.channel = e.channel;
    row.version = e.version ? e.version->to_string() : "";
    row.detail_json = e.detail_json;
    row.at = now;
    write.events.push_back(std::move(row));
  }
  device.last_seen = now;
  return write;
}

}  // namespace tranche::server
