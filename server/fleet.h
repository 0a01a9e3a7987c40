// The server's working set, in memory: devices (sharded, each shard with its own
// mutex) and an immutable snapshot of everything operators and the engine change
// (tenants, tokens, releases, rollouts), replaced whole on each change. A
// check-in reads one snapshot and locks one shard: no store access, no global
// lock (issue 3, "Hot path").
//
// Gate evidence is counted as check-ins and events arrive, per live rollout:
// exposure (device-seconds online) and failing devices of the exposed group
// (devices that acknowledged the rollout's version) and of the control group
// (devices of the channel that have not), so an engine tick costs O(rollouts),
// plus a scan of the acknowledged devices for silence.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/value.hpp>

#include "core/assignment.h"
#include "core/gate.h"
#include "core/plan.h"
#include "core/result.h"
#include "core/rollout_machine.h"
#include "core/types.h"
#include "store/store.h"

namespace tranche::server {

using core::TimeMs;

// --- the snapshot ---------------------------------------------------------------

struct TenantInfo {
  store::TenantRow row;
  core::TenantPolicy policy;
};

struct OperatorInfo {
  std::string name;
  store::Role role = store::Role::kViewer;
};

struct ReleaseInfo {
  core::Version version;
  store::ReleaseRow row;
  boost::json::value targets;  // row.targets_json parsed (Fleet::update fills it)
};

struct ChannelInfo {
  std::vector<ReleaseInfo> releases;  // oldest first
  std::optional<core::Version> baseline;  // newest version whose rollout completed
  core::ChannelReleases versions_cache;   // the releases' versions (Fleet::update fills it)
  const core::ChannelReleases& versions() const { return versions_cache; }
};

// Evidence counters of one rollout: shared by every snapshot of it, updated by
// check-ins without a lock.
struct RolloutCounters {
  std::atomic<double> exposed_s{0};
  std::atomic<double> control_s{0};
  std::atomic<std::uint64_t> exposed_failures{0};
  std::atomic<std::uint64_t> control_failures{0};
  std::atomic<std::uint64_t> acknowledged{0};
  std::atomic<std::uint64_t> exposed_silent{0};  // of exposed_failures: silence, not a report
  std::mutex acknowledged_mu;
  std::vector<std::string> acknowledged_devices;  // guarded by acknowledged_mu
};

struct RolloutInfo {
  store::RolloutRow row;  // as persisted (generation included)
  core::Plan plan;
  std::string channel;
  core::Version version = core::Version::parse("0").value();  // set on load or create
  std::optional<core::Version> previous;
  core::RolloutStatus status;
  core::GateState gate;
  core::GateVerdict verdict;  // the gate's last verdict (not persisted: recomputed each tick)
  std::shared_ptr<RolloutCounters> counters;

  // Dispatching, watching or rolling back: the states in which check-ins count.
  bool live() const;
};

struct Snapshot {
  std::uint64_t generation = 0;  // increases with every publish
  std::map<std::string, TenantInfo> tenants;
  std::map<std::string, OperatorInfo> operators;  // by token hash
  std::map<std::string, ChannelInfo> channels;
  std::map<std::string, std::shared_ptr<const RolloutInfo>> rollouts;  // by id, every rollout
  std::map<std::string, std::string> live_rollout;  // channel -> rollout id
  std::uint64_t device_count = 0;                   // enrolled, for min_devices

  const RolloutInfo* live_rollout_for(const std::string& channel) const;
};

// --- devices --------------------------------------------------------------------

// What one device's participation in one rollout has counted so far, so each
// device counts once as acknowledged and once as failing.
struct RolloutMark {
  std::string rollout;
  TimeMs acknowledged_at = 0;  // 0: not (yet) reported running it
  bool failure_counted = false;
  TimeMs offered_at = 0;       // when a check-in answer first told it to install the version
};

struct Device {
  std::string id;
  std::string tenant;
  std::string token_hash;
  core::Tags tags;
  std::int32_t utc_offset_minutes = 0;
  TimeMs enrolled_at = 0;

  std::map<std::string, core::Version> versions;  // channel -> current
  std::map<std::string, std::vector<core::Version>> failed;
  std::string health_json = "{}";
  TimeMs last_seen = 0;
  bool said_goodbye = false;
  std::int64_t last_event_seq = 0;
  std::vector<RolloutMark> marks;
  bool held = false;  // a long-polled check-in of this device is being held (not stored)

  const RolloutMark* find_mark(const std::string& rollout) const;
  RolloutMark& mark(const std::string& rollout);  // created when missing
  store::DeviceStateRow state_row() const;
};

// The answer for one channel.
struct ChannelAnswer {
  std::string channel;
  std::optional<core::Version> current;
  core::Assignment assignment;
  std::string rollout;  // the live rollout on the channel, if any
  std::string stage;    // its current stage's name
};

struct DeviceEvent {
  std::int64_t seq = 0;
  // installed, install_failed, download_failed (transient: recorded, neither a
  // failure of the release nor a ban), crashed, rolled_back, goodbye
  std::string kind;
  std::string channel;
  std::optional<core::Version> version;
  std::string detail_json = "{}";
};

// Reported by check-in and event handling: what the request changed, for the
// batch writer. The device's state row is built when the batch is written (from
// the device as it is then), not per request.
struct DeviceWrite {
  std::string device;
  std::vector<store::DeviceEventRow> events;
};

class Fleet {
 public:
  static constexpr std::size_t kShards = 64;

  Fleet();

  // --- snapshot ---
  std::shared_ptr<const Snapshot> snapshot() const;
  // Applies `change` to a copy of the current snapshot and publishes it, under
  // one writer lock (changes are serialised). Wakes long-polled check-ins.
  void update(const std::function<void(Snapshot&)>& change);
  // Blocks until the generation exceeds `seen` or `deadline` passes; returns the
  // snapshot then current.
  std::shared_ptr<const Snapshot> wait_for_change(std::uint64_t seen,
                                                  std::chrono::steady_clock::time_point deadline);
  // Wakes every waiter (shutdown).
  void wake_all();

  // --- devices ---
  core::Status add_device(Device device);  // kConflict if the id exists
  std::size_t device_count() const { return device_count_.load(); }
  // Runs `fn` with the device locked; kNotFound when absent.
  core::Status with_device(const std::string& id, const std::function<void(Device&)>& fn);
  // Every device, shard by shard (each shard locked while it is visited).
  void for_each_device(const std::function<void(const Device&)>& fn) const;

  // The check-in of an authenticated device: records what it runs, counts
  // exposure for live rollouts, and answers every channel it runs or that has
  // releases. Returns the write to batch.
  DeviceWrite check_in(Device& device, const Snapshot& snapshot,
                       std::map<std::string, core::Version> versions, std::string health_json,
                       TimeMs now);
  // The answer alone (long poll, device view), no accounting.
  static std::vector<ChannelAnswer> answer(const Device& device, const Snapshot& snapshot,
                                           TimeMs now);
  // Remembers which devices were told to install a live rollout's version: they
  // are exposed from then on (accrue_exposure).
  static void note_offers(Device& device, const Snapshot& snapshot,
                          const std::vector<ChannelAnswer>& answers, TimeMs now);
  // The engine's tick: `elapsed` of device-time for every online device, to the
  // exposed group (offered or running the version, not failed) or the control
  // group (no mark) of each live rollout. Online: a check-in is held, or heard
  // within heartbeat_interval x silent_after_missed without a goodbye. One pass
  // over the devices, shard by shard.
  void accrue_exposure(const Snapshot& snapshot, TimeMs now, core::DurationMs elapsed);
  // Applies accepted events (sequence numbers already checked) to the device and
  // the live rollouts' failure counts.
  DeviceWrite record_events(Device& device, const Snapshot& snapshot,
                            const std::vector<DeviceEvent>& events, TimeMs now);

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::unique_ptr<Device>> devices;
  };
  Shard& shard_for(const std::string& id);
  const Shard& shard_for(const std::string& id) const;

  std::array<Shard, kShards> shards_;
  std::atomic<std::size_t> device_count_{0};
  std::atomic<TimeMs> last_accrual_{0};  // accrue_exposure's last `now`

  mutable std::mutex snapshot_mu_;  // guards snapshot_ (the pointer)
  std::shared_ptr<const Snapshot> snapshot_;
  std::mutex writer_mu_;  // serialises update()
  std::condition_variable changed_;
};

// The device count a rollout's stages size themselves against.
std::uint64_t eligible_devices(const Snapshot& snapshot);

// core::RolloutView over a rollout of the snapshot.
core::RolloutView rollout_view(const RolloutInfo& rollout, const Snapshot& snapshot);

}  // namespace tranche::server
