#include "server/fleet.h"

#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include <boost/json.hpp>

namespace tranche::server {


bool RolloutInfo::live() const {
  using S = core::RolloutState;
  switch (status.state) {
    case S::kRunning:
    case S::kPaused:
    case S::kHalted:
    case S::kRollingBack:
      return true;
    case S::kPending:
    case S::kRolledBack:
    case S::kCompleted:
    case S::kAborted:
      return false;
  }
  return false;
}

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
  marks.push_back(RolloutMark{rollout, 0, false});
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
  // The marks ride along in health_json's "_marks", so a restart neither counts
  // a device twice nor forgets that it acknowledged.
  boost::json::value health;
  boost::system::error_code ec;
  health = boost::json::parse(health_json, ec);
  if (ec || !health.is_object()) health = boost::json::object{};
  boost::json::array m;
  for (const auto& mark : marks) {
    m.push_back(boost::json::object{{"rollout", mark.rollout},
                                    {"acknowledged_at", mark.acknowledged_at},
                                    {"failure_counted", mark.failure_counted},
                                    {"offered_at", mark.offered_at}});
  }
  health.as_object()["_marks"] = std::move(m);
  row.health_json = boost::json::serialize(health);
  row.last_seen = last_seen;
  row.said_goodbye = said_goodbye;
  row.last_event_seq = last_event_seq;
  return row;
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
  next->device_count = device_count_.load();
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

namespace {

void add_atomic(std::atomic<double>& a, double d) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

bool is_failure_kind(std::string_view kind) {
  return kind == "install_failed" || kind == "crashed" || kind == "rolled_back";
}

}  // namespace

DeviceWrite Fleet::check_in(Device& device, const Snapshot& snapshot,
                            std::map<std::string, core::Version> versions, std::string health_json,
                            TimeMs now) {
  // Acknowledgements; exposure is counted by the engine's tick (accrue_exposure).
  for (const auto& [channel, rollout_id] : snapshot.live_rollout) {
    const RolloutInfo* rollout = snapshot.live_rollout_for(channel);
    if (rollout == nullptr) continue;
    auto& counters = *rollout->counters;
    const RolloutMark* seen = device.find_mark(rollout_id);
    bool acknowledged = seen != nullptr && seen->acknowledged_at > 0;
    auto now_runs = versions.find(channel);
    if (now_runs != versions.end() && now_runs->second == rollout->version && !acknowledged) {
      device.mark(rollout_id).acknowledged_at = now;
      counters.acknowledged.fetch_add(1);
      std::lock_guard lock(counters.acknowledged_mu);
      counters.acknowledged_devices.push_back(device.id);
    }
  }
  for (auto& [channel, version] : versions) device.versions.insert_or_assign(channel, version);
  device.health_json = std::move(health_json);
  device.last_seen = now;
  device.said_goodbye = false;
  return DeviceWrite{device.id, {}};
}

std::vector<ChannelAnswer> Fleet::answer(const Device& device, const Snapshot& snapshot,
                                         TimeMs now) {
  std::set<std::string> channels;
  for (const auto& [ch, v] : device.versions) channels.insert(ch);
  for (const auto& [ch, info] : snapshot.channels) channels.insert(ch);

  core::DeviceView view;
  view.id = device.id;
  view.tags = device.tags;
  view.utc_offset_minutes = device.utc_offset_minutes;
  static const core::TenantPolicy kDefaultPolicy;
  auto tenant = snapshot.tenants.find(device.tenant);
  const core::TenantPolicy& policy =
      tenant == snapshot.tenants.end() ? kDefaultPolicy : tenant->second.policy;

  std::vector<ChannelAnswer> out;
  for (const auto& channel : channels) {
    ChannelAnswer a;
    a.channel = channel;
    auto cur = device.versions.find(channel);
    view.current = cur == device.versions.end() ? std::nullopt
                                                : std::optional<core::Version>(cur->second);
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
    a.assignment =
        core::assign(view, policy, *releases, baseline, rv ? &*rv : nullptr, channel, now);
    out.push_back(std::move(a));
  }
  return out;
}

void Fleet::note_offers(Device& device, const Snapshot& snapshot, const std::vector<ChannelAnswer>& answers,
                        TimeMs now) {
  for (const auto& a : answers) {
    if (a.rollout.empty() || !a.assignment.desired || a.assignment.desired == a.current) continue;
    const RolloutInfo* rollout = snapshot.live_rollout_for(a.channel);
    if (rollout == nullptr || *a.assignment.desired != rollout->version) continue;
    RolloutMark& mark = device.mark(rollout->row.id);
    if (mark.offered_at == 0) mark.offered_at = now;
  }
}

void Fleet::accrue_exposure(const Snapshot& snapshot, TimeMs now, core::DurationMs elapsed) {
  struct Live {
    const RolloutInfo* rollout;
    TimeMs window;  // heard within this: online
    std::uint64_t exposed = 0;
    std::uint64_t control = 0;
  };
  std::vector<Live> live;
  for (const auto& [channel, id] : snapshot.live_rollout) {
    if (const RolloutInfo* r = snapshot.live_rollout_for(channel)) {
      live.push_back(Live{r, r->plan.gate.heartbeat_interval * static_cast<TimeMs>(r->plan.gate.silent_after_missed)});
    }
  }
  if (live.empty() || elapsed <= 0) {
    last_accrual_.store(now);
    return;
  }
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (auto& [id, device] : shard.devices) {
      Device& d = *device;
      // A device whose check-in the server holds is connected now.
      if (d.held) d.last_seen = now;
      for (auto& l : live) {
        bool online = d.held || (d.last_seen > 0 && now - d.last_seen <= l.window && !d.said_goodbye);
        if (!online) continue;
        const RolloutMark* m = d.find_mark(l.rollout->row.id);
        if (m == nullptr) {
          ++l.control;
          continue;
        }
        if (m->failure_counted) continue;
        auto v = d.versions.find(l.rollout->channel);
        bool runs = v != d.versions.end() && v->second == l.rollout->version;
        // Exposed from the moment the server offers the version: a release that
        // kills its device at first start fails between two check-ins, and that
        // time at risk must count (else its failures arrive with no exposure and
        // the gate holds them back).
        if ((m->acknowledged_at > 0 && runs) || (m->acknowledged_at == 0 && m->offered_at > 0)) ++l.exposed;
      }
    }
  }
  last_accrual_.store(now);
  double seconds = static_cast<double>(elapsed) / 1000.0;
  for (const auto& l : live) {
    add_atomic(l.rollout->counters->exposed_s, static_cast<double>(l.exposed) * seconds);
    add_atomic(l.rollout->counters->control_s, static_cast<double>(l.control) * seconds);
  }
}

DeviceWrite Fleet::record_events(Device& device, const Snapshot& snapshot,
                                 const std::vector<DeviceEvent>& events, TimeMs now) {
  DeviceWrite write{device.id, {}};
  for (const auto& e : events) {
    device.last_event_seq = std::max(device.last_event_seq, e.seq);
    if (e.kind == "goodbye") {
      device.said_goodbye = true;
    } else if (e.kind == "installed" && e.version) {
      device.versions.insert_or_assign(e.channel, *e.version);
    } else if (is_failure_kind(e.kind) && e.version) {
      // A version that failed here is remembered, so assignment never offers it
      // again (core::assign rule 2), and counted once against the rollout.
      if (e.kind != "crashed") {  // a crash alone may be retried within the budget
        auto& list = device.failed[e.channel];
        if (std::find(list.begin(), list.end(), *e.version) == list.end()) {
          list.push_back(*e.version);
        }
      }
      const RolloutInfo* rollout = snapshot.live_rollout_for(e.channel);
      if (rollout != nullptr) {
        auto& counters = *rollout->counters;
        RolloutMark& mark = device.mark(rollout->row.id);
        // Device-time since the engine last accrued exposure (or since the
        // offer, if later) ends in this failure. Ticks count it for devices that
        // live; a release that kills its device within a tick would otherwise
        // bring a failure with no exposure, which the gate holds back.
        TimeMs since = std::max(last_accrual_.load(), mark.offered_at);
        double credit = static_cast<double>(std::max<TimeMs>(1, now - since)) / 1000.0;
        if (!mark.failure_counted) {
          mark.failure_counted = true;
          if (*e.version == rollout->version) {
            add_atomic(counters.exposed_s, credit);
            if (mark.acknowledged_at == 0) {
              // Failing a version is having received it: the 2024 sensor never
              // lived to report that it runs the new content.
              mark.acknowledged_at = now;
              counters.acknowledged.fetch_add(1);
              std::lock_guard lock(counters.acknowledged_mu);
              counters.acknowledged_devices.push_back(device.id);
            }
            counters.exposed_failures.fetch_add(1);
          } else if (mark.acknowledged_at == 0 && mark.offered_at == 0) {
            add_atomic(counters.control_s, credit);
            counters.control_failures.fetch_add(1);
          }
        }
      }
    }
    store::DeviceEventRow row;
    row.device = device.id;
    row.seq = e.seq;
    row.kind = e.kind;
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
