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
  row.device = key;
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
    rows.push_back(store::RolloutMarkRow{m.rollout, key, std::string(core::to_string(m.standing)),
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
  d.key = row.id;
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
                          eligible_devices(snapshot), &rollout.strata};
}

// --- Fleet ------------------------------------------------------------------------

Fleet::Fleet() : snapshot_(std::make_shared<Snapshot>()) {}

std::shared_ptr<const Snapshot> Fleet::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

void Fleet::update(const std::function<void(Snapshot&)>& change, bool answers_may_change) {
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
  if (answers_may_change) next->answers_generation = next->generation;
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

namespace {

// A device entering a fleet has no part in its counts yet (it may be a copy of
// one that had, in this fleet or another).
void clear_counted(Device& d) {
  d.counted.clear();
  d.counted_gen = 0;
  d.wheel_prev = d.wheel_next = nullptr;
  d.wheel_second = -1;
  d.settle_pending = false;
}

}  // namespace

core::Status Fleet::add_device(Device device) {
  clear_counted(device);
  auto& shard = shard_for(device.key);
  std::lock_guard lock(shard.mu);
  auto id = device.key;
  auto [it, inserted] = shard.devices.emplace(id, nullptr);
  if (!inserted) {
    return core::make_error(core::ErrorCode::kConflict, "device '" + id + "' is already enrolled");
  }
  it->second = std::make_unique<Device>(std::move(device));
  device_count_.fetch_add(1);
  settle(shard, *it->second, false, nullptr);
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
  settle(shard, *it->second, false, nullptr);
  return core::Ok{};
}

void Fleet::for_each_device(const std::function<void(const Device&)>& fn) const {
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [id, device] : shard.devices) fn(*device);
  }
}

void Fleet::install_claimed(Device device) {
  clear_counted(device);
  auto& shard = shard_for(device.key);
  std::lock_guard lock(shard.mu);
  auto [it, inserted] = shard.devices.emplace(device.key, nullptr);
  if (inserted) {
    device_count_.fetch_add(1);
  } else if (it->second->revision > device.revision) {
    return;  // a later claim of this server's got there first
  }
  device.owned = true;
  device.held = !inserted && it->second->held;
  if (!inserted) forget(shard, *it->second);
  it->second = std::make_unique<Device>(std::move(device));
  settle(shard, *it->second, false, nullptr);
}

bool Fleet::disown(const std::string& id, const std::string& owner, TimeMs since) {
  auto& shard = shard_for(id);
  std::lock_guard lock(shard.mu);
  auto it = shard.devices.find(id);
  if (it == shard.devices.end()) return false;
  Device& d = *it->second;
  if (!d.owned || d.owner == owner || d.owner_since > since) return false;
  d.owned = false;
  settle(shard, d, false, nullptr);
  return true;
}

std::size_t Fleet::evict_unneeded(TimeMs now, core::DurationMs idle_after,
                                  const std::function<bool(const std::string&)>& unwritten) {
  std::size_t evicted = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    const Tracking* t = shard.tracking.get();
    // Nothing left to judge: offline in every live rollout as of the last tick
    // (whose settling noted any silence), and no silence waiting to be noted.
    auto judged = [&](const Device& d) {
      if (d.settle_pending) return false;
      if (t == nullptr || t->slots.empty()) return true;
      if (d.counted_gen != t->generation) return false;
      return std::all_of(d.counted.begin(), d.counted.end(), [](char bits) { return bits == 0; });
    };
    for (auto it = shard.devices.begin(); it != shard.devices.end();) {
      const Device& d = *it->second;
      const bool idle = d.owned && d.last_seen > 0 && now - d.last_seen > idle_after && judged(d) &&
                        !unwritten(d.key);
      const bool unneeded = !d.held && (!d.owned || (d.last_seen == 0 && d.marks.empty()) || idle);
      if (unneeded) {
        forget(shard, *it->second);
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
  view.id = std::string(device.id());  // the cohort bucket hashes the id, not the key
  view.tags = device.tags;
  view.utc_offset_minutes = device.utc_offset_minutes;
  return view;
}

}  // namespace

// --- the tick's incremental counts ----------------------------------------------

namespace {

// What a device adds to one slot's counts: a byte of these bits.
enum CountedBit : std::uint8_t {
  kExposedOnline = 1,
  kControlOnline = 2,
  kOnVersion = 4,
  kCoverageTarget = 8,
  kCoverageRunning = 16,
};

TimeMs second_of(TimeMs t) { return t / core::kSecond; }  // t > 0 here

// Adds `delta` (+1 or -1) to each of `counts` that a bit of `bits` names.
void count_bits(Fleet::ScanResult& counts, std::uint8_t bits, int delta) {
  auto add = [&](std::uint64_t& n, CountedBit bit) {
    if (bits & bit) n += static_cast<std::uint64_t>(delta);  // modulo 2^64: -1 subtracts
  };
  add(counts.exposed_online, kExposedOnline);
  add(counts.control_online, kControlOnline);
  add(counts.online_on_version, kOnVersion);
  add(counts.coverage.target, kCoverageTarget);
  add(counts.coverage.running, kCoverageRunning);
}

}  // namespace

void Fleet::link(Shard& shard, Device& d) {
  d.wheel_second = second_of(d.last_seen);
  Device*& head = shard.wheel[d.wheel_second];
  d.wheel_prev = nullptr;
  d.wheel_next = head;
  if (head != nullptr) head->wheel_prev = &d;
  head = &d;
}

void Fleet::unlink(Shard& shard, Device& d) {
  if (d.wheel_second < 0) return;
  if (d.wheel_next != nullptr) d.wheel_next->wheel_prev = d.wheel_prev;
  if (d.wheel_prev != nullptr) {
    d.wheel_prev->wheel_next = d.wheel_next;
  } else if (d.wheel_next != nullptr) {
    shard.wheel[d.wheel_second] = d.wheel_next;
  } else {
    shard.wheel.erase(d.wheel_second);
  }
  d.wheel_prev = d.wheel_next = nullptr;
  d.wheel_second = -1;
}

void Fleet::forget(Shard& shard, Device& d) {
  unlink(shard, d);
  if (shard.tracking && d.counted_gen == shard.tracking->generation) {
    for (std::size_t i = 0; i < d.counted.size() && i < shard.counts.size(); ++i) {
      count_bits(shard.counts[i], static_cast<std::uint8_t>(d.counted[i]), -1);
    }
  }
  d.counted.clear();
}

void Fleet::settle(Shard& shard, Device& d, bool at_tick, std::vector<std::string>* changed) {
  const TimeMs second = d.last_seen > 0 ? second_of(d.last_seen) : -1;
  if (second != d.wheel_second) {
    unlink(shard, d);
    if (second >= 0) link(shard, d);
  }
  const Tracking* t = shard.tracking.get();
  if (t == nullptr) return;
  if (d.counted_gen != t->generation || d.counted.size() != t->slots.size()) {
    // Counted under other slots (or never): the shard's counts were reset since.
    d.counted.assign(t->slots.size(), '\0');
    d.counted_gen = t->generation;
  }
  const TimeMs now = shard.tick_now;
  bool marks_changed = false;
  for (std::size_t i = 0; i < t->slots.size(); ++i) {
    const Tracked& slot = t->slots[i];
    const RolloutInfo& r = *slot.rollout;
    std::uint8_t bits = 0;
    // Another server owns it: that one counts it (a device moving between
    // servers is never silent here, nor counted twice).
    if (d.owned) {
      const RolloutMark* m = d.find_mark(r.row.id);
      core::Standing standing = m ? m->standing : core::Standing::kControl;
      if (!is_online(d, r.plan.gate, now)) {
        // Silence: heard during this rollout, then quiet past the allowance
        // without a goodbye (a crashed machine cannot report its crash).
        if (!d.said_goodbye && d.last_seen >= r.row.created_at && d.last_seen > 0 &&
            !core::is_failed(standing)) {
          if (at_tick) {
            marks_changed |= note(d, r, core::Fact::kSilent, now);
          } else if (!d.settle_pending) {
            d.settle_pending = true;
            shard.pending.push_back(d.key);
          }
        }
      } else {
        switch (core::accrual_group(standing)) {
          case core::Group::kExposed: bits |= kExposedOnline; break;
          case core::Group::kControl: bits |= kControlOnline; break;
          case core::Group::kNone: break;
        }
        auto v = d.versions.find(r.channel);
        const bool runs = v != d.versions.end() && v->second == r.version;
        if (runs) bits |= kOnVersion;
        if (slot.coverage && !core::is_failed(standing)) {
          // Whether it is meant to run the version: an assignment, as of its
          // last change or the last full pass.
          const Snapshot& snap = *t->snapshot;
          core::DeviceView view = view_of(d);
          const ChannelAnswer a = answer_channel(d, snap, policy_of(d, snap), view, r.channel, now);
          if (runs || a.assignment.desired == r.version) {
            bits |= kCoverageTarget;
            if (runs && standing == core::Standing::kAcknowledged) bits |= kCoverageRunning;
          }
        }
      }
    }
    const auto before = static_cast<std::uint8_t>(d.counted[i]);
    if (before != bits) {
      count_bits(shard.counts[i], before, -1);
      count_bits(shard.counts[i], bits, +1);
      d.counted[i] = static_cast<char>(bits);
    }
  }
  if (marks_changed && changed != nullptr) changed->push_back(d.key);
}

std::shared_ptr<const Fleet::Tracking> Fleet::track(std::shared_ptr<const Snapshot> snap,
                                                    TimeMs now) const {
  const Snapshot& snapshot = *snap;
  auto t = std::make_shared<Tracking>();
  t->snapshot = std::move(snap);
  for (const auto& [channel, id] : snapshot.live_rollout) {
    auto it = snapshot.rollouts.find(id);
    if (it == snapshot.rollouts.end()) continue;
    const RolloutInfo& r = *it->second;
    // Coverage costs an assignment per online device: counted only when it
    // can matter — a running rollout's last stage, once its bake is over.
    const bool last = std::size_t{r.status.stage} + 1 >= r.plan.stages.size();
    const bool baked = last && now - r.status.stage_started_at >= r.plan.stages.back().bake;
    t->slots.push_back(Tracked{it->second, baked && r.status.state == core::RolloutState::kRunning});
  }
  // The same slots as before (the same rollouts, counted the same way): the
  // counts carry over. Anything else starts a new generation (a full pass).
  auto same = [](const Tracked& a, const Tracked& b) {
    const RolloutInfo& x = *a.rollout;
    const RolloutInfo& y = *b.rollout;
    return x.row.id == y.row.id && x.channel == y.channel && x.version == y.version &&
           x.row.created_at == y.row.created_at &&
           x.plan.gate.heartbeat_interval == y.plan.gate.heartbeat_interval &&
           x.plan.gate.silent_after_missed == y.plan.gate.silent_after_missed &&
           a.coverage == b.coverage;
  };
  const bool carry = tracking_ && tracking_->slots.size() == t->slots.size() &&
                     std::equal(t->slots.begin(), t->slots.end(), tracking_->slots.begin(), same);
  t->generation = !tracking_ ? 1 : carry ? tracking_->generation : tracking_->generation + 1;
  return t;
}

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
  return DeviceWrite{device.key, {}, state, nullptr};
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

std::map<std::string, Fleet::ScanResult> Fleet::scan(std::shared_ptr<const Snapshot> snapshot,
                                                     TimeMs now, core::DurationMs elapsed,
                                                     std::vector<std::string>& changed) {
  auto tracking = track(std::move(snapshot), now);
  const bool full_pass = !tracking_ || tracking->generation != tracking_->generation;
  tracking_ = tracking;
  const std::size_t slots = tracking->slots.size();
  std::vector<ScanResult> totals(slots);
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    shard.tracking = tracking;
    shard.tick_now = now;
    if (full_pass) {
      shard.counts.assign(slots, ScanResult{});
      shard.walked_below.assign(slots, 0);
      shard.pending.clear();
      if (slots > 0) {
        for (auto& [id, device] : shard.devices) {
          if (device->settle_pending) device->settle_pending = false;
          settle(shard, *device, true, &changed);
        }
      }
    } else {
      // Devices whose silence waits to be noted (they changed between ticks).
      std::vector<std::string> pending;
      pending.swap(shard.pending);
      for (const auto& id : pending) {
        auto it = shard.devices.find(id);
        if (it == shard.devices.end() || !it->second->settle_pending) continue;
        it->second->settle_pending = false;
        settle(shard, *it->second, true, &changed);
      }
    }
    for (std::size_t i = 0; i < slots; ++i) {
      // Devices last heard below the horizon are silent now: visit the buckets
      // that crossed it since the last tick (the one it cuts, again each tick).
      const TimeMs horizon = core::silence_horizon(tracking->slots[i].rollout->plan.gate, now);
      if (horizon <= 0) continue;
      if (!full_pass) {
        for (auto it = shard.wheel.lower_bound(shard.walked_below[i]);
             it != shard.wheel.end() && it->first * core::kSecond < horizon; ++it) {
          for (Device* d = it->second; d != nullptr;) {
            Device* next = d->wheel_next;  // settling at a tick never moves a device
            settle(shard, *d, true, &changed);
            d = next;
          }
        }
      }
      shard.walked_below[i] = std::max(shard.walked_below[i], second_of(horizon));
    }
    for (std::size_t i = 0; i < slots; ++i) {
      const ScanResult& c = shard.counts[i];
      totals[i].exposed_online += c.exposed_online;
      totals[i].control_online += c.control_online;
      totals[i].online_on_version += c.online_on_version;
      totals[i].coverage.target += c.coverage.target;
      totals[i].coverage.running += c.coverage.running;
    }
  }
  std::map<std::string, ScanResult> out;
  for (std::size_t i = 0; i < slots; ++i) {
    const RolloutInfo& r = *tracking->slots[i].rollout;
    r.evidence->accrue(totals[i].exposed_online, totals[i].control_online, elapsed);
    out.emplace(r.row.id, totals[i]);
  }
  return out;
}

DeviceWrite Fleet::record_events(Device& device, const Snapshot& snapshot,
                                 const std::vector<DeviceEvent>& events, TimeMs now) {
  DeviceWrite write{device.key, {}, true, nullptr};
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
      // An event about the release itself is exposure, even without our offer
      // (a refused offer is no evidence at all: the offer itself counted).
      if (e.version && *e.version == rollout->version && e.kind != K::kGoodbye &&
          e.kind != K::kOfferRefused) {
        note(device, *rollout, core::Fact::kOffered, now);
      }
      note(device, *rollout, core::fact_of(e.kind), now);
    }
    store::DeviceEventRow row;
    row.device = device.key;
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
