// The server's working set, in memory: devices (sharded, each shard with its own
// mutex) and an immutable snapshot of everything operators and the engine change
// (tenants, tokens, releases, rollouts), replaced whole on each change. A
// check-in reads one snapshot and locks one shard: no store access, no global
// lock (issue 3, "Hot path").
//
// Gate evidence is counted through core/evidence.h, the one definition the
// simulator uses too: check-ins, offers and events move a device's standing in
// each live rollout (and the rollout's tally, under its own mutex); the engine's
// tick (Fleet::scan) accrues exposure for the online devices, finds silence,
// and counts what the last stage's completion and a rollback's end need.
//
// The tick's cost follows change, not fleet size (issue 12): each shard keeps,
// per live rollout, the counts of its online devices by group, and each device
// remembers what it adds to them. Whatever changes a device (a check-in, an
// event, a hold, a claim) settles it at once under its shard's lock. Time alone
// changes a device only by making it silent; the shard orders its devices by
// last contact (a wheel of one-second buckets), so a tick visits only those
// whose contact fell below the silence horizon (core::silence_horizon) since
// the previous tick. One full pass remains where every device's part changes
// at once: when the set of live rollouts changes (a start, an end) and when a
// running rollout's last stage has baked (completion counting starts).
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
#include "core/evidence.h"
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
  TimeMs created_at = 0;  // 0: made before the store kept it
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

// The evidence of one rollout: shared by every snapshot of it, updated by
// check-ins, events and the engine's scan.
class RolloutEvidence {
 public:
  RolloutEvidence() = default;
  explicit RolloutEvidence(const core::EvidenceTally& tally) : tally_(tally) {}

  core::EvidenceTally tally() const {
    std::lock_guard lock(mu_);
    return tally_;
  }
  // core::record on a device's standing, under this rollout's lock.
  bool record(core::Standing& standing, core::Fact fact) {
    std::lock_guard lock(mu_);
    return core::record(standing, fact, tally_);
  }
  void accrue(std::uint64_t exposed_online, std::uint64_t control_online, core::DurationMs elapsed) {
    std::lock_guard lock(mu_);
    core::accrue(tally_, exposed_online, control_online, elapsed);
  }

 private:
  mutable std::mutex mu_;
  core::EvidenceTally tally_;  // guarded by mu_
};

struct RolloutInfo {
  store::RolloutRow row;  // as persisted (generation included)
  core::Plan plan;
  std::string channel;
  core::Version version = core::Version::parse("0").value();  // set on load or create
  std::optional<core::Version> previous;
  core::RolloutStatus status;
  // Eligible devices per stratum of plan.strata, counted when the rollout was
  // created (for min_per_stratum); stored with the gate's record (codec.h).
  core::StratumCounts strata;
  core::GateState gate;
  core::GateVerdict verdict;  // the gate's last verdict (not persisted: recomputed each tick)
  core::Coverage coverage;    // the last stage's, at the engine's last scan (not persisted)
  std::uint64_t online_on_version = 0;  // online devices running it, at that scan (not persisted)
  // What this server counted. Alone on its store: the whole evidence. One of
  // several: its own share, from zero at its start (its exposure row).
  std::shared_ptr<RolloutEvidence> evidence;
  // One of several servers: the evidence of all, summed from the store's rows
  // (the leader's, each tick; a follower's, as the leader last saved it).
  std::optional<core::EvidenceTally> summed;

  // The evidence the gate decides on and the API shows.
  core::EvidenceTally tally() const { return summed ? *summed : evidence->tally(); }

  // Dispatching, watching or rolling back: the states in which check-ins count.
  bool live() const;
};

struct Snapshot {
  std::uint64_t generation = 0;  // increases with every publish
  // The generation of the last publish that may change a device's answer (not
  // a gate's look that holds, not an operator token): held check-ins are looked
  // at again only when this moves.
  std::uint64_t answers_generation = 0;
  std::map<std::string, TenantInfo> tenants;
  std::map<std::string, OperatorInfo> operators;  // by token hash
  std::map<std::string, ChannelInfo> channels;
  std::map<std::string, std::shared_ptr<const RolloutInfo>> rollouts;  // by id, every rollout
  std::map<std::string, std::string> live_rollout;  // channel -> rollout id
  std::uint64_t device_count = 0;                   // enrolled, for min_devices

  const RolloutInfo* live_rollout_for(const std::string& channel) const;
};

// --- devices --------------------------------------------------------------------

// One device's standing in one rollout (core/evidence.h), with the times it
// moved, so each device counts once as exposed, acknowledged and failing.
struct RolloutMark {
  std::string rollout;
  core::Standing standing = core::Standing::kControl;
  core::FailureCause failure = core::FailureCause::kNone;
  TimeMs offered_at = 0;       // exposed from (0: control)
  TimeMs acknowledged_at = 0;  // ran it healthily past its trial (0: not yet)
  TimeMs failed_at = 0;        // its one counted failure (0: none)
};

struct Device {
  // "<tenant>/<device id>" (core::device_key): what finds, stores and locks the
  // device. Its id alone (id()) is what the device and operators call it, and
  // what its cohort bucket hashes.
  std::string key;
  std::string tenant;
  std::string token_hash;
  core::Tags tags;
  std::int32_t utc_offset_minutes = 0;
  TimeMs enrolled_at = 0;

  std::map<std::string, core::Version> versions;  // channel -> current
  std::map<std::string, std::vector<core::Version>> failed;
  std::string health_json = "{}";
  TimeMs last_seen = 0;
  // last_seen as the store has it: a check-in that changes nothing else writes
  // it only every --last-seen-every-s (core::last_seen_write_due).
  TimeMs stored_last_seen = 0;
  bool said_goodbye = false;
  std::int64_t last_event_seq = 0;
  std::vector<RolloutMark> marks;
  bool held = false;  // a long-polled check-in of this device is being held (not stored)

  // The tick's incremental counts (Fleet; not stored, not copied between
  // fleets): what this device adds to each tracked live rollout's online counts
  // (a byte of bits per slot, valid for tracking generation `counted_gen`), and
  // its place in its shard's wheel of last contacts (second -1: not in it).
  std::string counted;
  std::uint32_t counted_gen = 0;
  Device* wheel_prev = nullptr;
  Device* wheel_next = nullptr;
  TimeMs wheel_second = -1;
  bool settle_pending = false;  // its silence is for the next tick to note

  // Several servers on one store (store/store.h): the server that last claimed
  // the device owns it — accrues its exposure and judges its silence. A server
  // alone on its store owns every device.
  bool owned = true;
  std::string owner;         // as stored (this server's id once it claimed it)
  TimeMs owner_since = 0;
  std::int64_t revision = 0;  // of the state row last read or written (only goes up)

  std::string_view id() const { return core::device_id_of(key); }
  const RolloutMark* find_mark(const std::string& rollout) const;
  RolloutMark& mark(const std::string& rollout);  // created when missing
  store::DeviceStateRow state_row() const;
  std::vector<store::RolloutMarkRow> mark_rows() const;
};

// A device as the store has it (load at start, or a claim); kInvalidArgument
// when a stored field does not parse.
Device device_from_rows(const store::DeviceRow& row, const store::DeviceStateRow* state,
                        const std::vector<store::RolloutMarkRow>& marks);

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
  core::DeviceEventKind kind = core::DeviceEventKind::kInstalled;
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
  // Whether the device's state row (and marks) must be written; a check-in
  // that changed nothing and whose last contact the store has recently enough
  // needs no write.
  bool state = true;
  // Called by the batch writer once the batch carrying this write committed
  // (Ok), or with the error when it could not within a few seconds (group
  // commit: an event is acknowledged only once durable).
  std::function<void(const core::Status&)> committed;
};

class Fleet {
 public:
  static constexpr std::size_t kShards = 64;

  Fleet();

  // --- snapshot ---
  std::shared_ptr<const Snapshot> snapshot() const;
  // Applies `change` to a copy of the current snapshot and publishes it, under
  // one writer lock (changes are serialised). Wakes long-polled check-ins;
  // `answers_may_change` false says no device's answer can differ (the held
  // ones are not looked at again).
  void update(const std::function<void(Snapshot&)>& change, bool answers_may_change = true);
  // Blocks until the generation exceeds `seen` or `deadline` passes; returns the
  // snapshot then current.
  std::shared_ptr<const Snapshot> wait_for_change(std::uint64_t seen,
                                                  std::chrono::steady_clock::time_point deadline);
  // Wakes every waiter (shutdown).
  void wake_all();

  // --- devices ---
  core::Status add_device(Device device);  // kConflict if the key exists
  std::size_t device_count() const { return device_count_.load(); }
  // Several servers: the devices enrolled at all of them, as the store counts
  // them (the snapshot's device_count is the larger of the two).
  void set_store_count(std::uint64_t n) { store_count_.store(n); }
  std::uint64_t store_count() const { return store_count_.load(); }
  // Runs `fn` with the device locked; kNotFound when absent.
  core::Status with_device(const std::string& id, const std::function<void(Device&)>& fn);
  // Every device, shard by shard (each shard locked while it is visited).
  void for_each_device(const std::function<void(const Device&)>& fn) const;
  // A device this server has just claimed from the store: replaces what it
  // knew of it, unless that is newer (a higher revision).
  void install_claimed(Device device);
  // Another server claimed `id` at `since`: this one stops counting it (unless
  // it claimed it again after that). Returns whether it owned it.
  bool disown(const std::string& id, const std::string& owner, TimeMs since);
  // Whether this server owns `id` now (false when unknown).
  bool owns(const std::string& id) const;
  // Several servers: forgets the devices this server need not hold, as long as
  // no check-in of theirs is held here — those another server claimed, those
  // never seen that have no rollout mark, and those it owns that have been
  // quiet for longer than `idle_after` with nothing left for it to judge
  // (offline in every live rollout, any silence of theirs already noted) and no
  // write of theirs waiting (`unwritten`, the batch writer's). The store has
  // them; a device's next request here claims it again, and its silence is then
  // judged from the latest it may have been heard (core::latest_contact).
  // Returns how many were forgotten.
  std::size_t evict_unneeded(TimeMs now, core::DurationMs idle_after,
                             const std::function<bool(const std::string&)>& unwritten);

  // The check-in of an authenticated device: records what it runs (running a
  // live rollout's version past its trial — `healthy` — acknowledges it; in its
  // trial it is exposed). Returns the write to batch: its state only when
  // something changed or the stored last contact is `last_seen_every` behind.
  DeviceWrite check_in(Device& device, const Snapshot& snapshot,
                       std::map<std::string, core::Version> versions, std::string health_json,
                       bool healthy, TimeMs now, core::DurationMs last_seen_every);
  // The answer alone (long poll, device view), no accounting.
  static std::vector<ChannelAnswer> answer(const Device& device, const Snapshot& snapshot,
                                           TimeMs now);
  // Remembers which devices were told to install a live rollout's version: they
  // are exposed from then on (accrue_exposure).
  // Returns whether a mark changed (the device's state must be written).
  static bool note_offers(Device& device, const Snapshot& snapshot,
                          const std::vector<ChannelAnswer>& answers, TimeMs now);
  // What the engine's tick learns of one live rollout from the scan.
  struct ScanResult {
    std::uint64_t exposed_online = 0;   // accrued to the exposed group
    std::uint64_t control_online = 0;   // accrued to the control group
    std::uint64_t online_on_version = 0;  // online devices that run the version
    core::Coverage coverage;            // counted in a running rollout's last stage, once baked
  };
  // The engine's tick. For each live rollout: a device online now (a check-in
  // held, or heard within heartbeat_interval x silent_after_missed without a
  // goodbye) accrues `elapsed` to its group (core::accrue); a device heard
  // since the rollout started that has gone silent (core::is_silent) fails
  // (core::Fact::kSilent). Devices whose marks changed are appended to
  // `changed`. Visits only the devices that went quiet since the previous tick
  // or wait for their silence to be noted, except for the full passes named at
  // the top of this file. Called from one thread (the engine's).
  std::map<std::string, ScanResult> scan(std::shared_ptr<const Snapshot> snapshot, TimeMs now,
                                         core::DurationMs elapsed, std::vector<std::string>& changed);
  // Applies accepted events (sequence numbers already checked) to the device and
  // the evidence of the live rollout on each event's channel.
  DeviceWrite record_events(Device& device, const Snapshot& snapshot,
                            const std::vector<DeviceEvent>& events, TimeMs now);

 private:
  // The live rollouts the tick counts: slot i of every device's `counted`.
  struct Tracked {
    std::shared_ptr<const RolloutInfo> rollout;
    bool coverage = false;  // running, its last stage baked: completion is counted
  };
  struct Tracking {
    std::vector<Tracked> slots;
    std::shared_ptr<const Snapshot> snapshot;  // for the assignments coverage needs
    std::uint32_t generation = 0;  // changes when the slots do (a full pass)
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::unique_ptr<Device>> devices;
    // The incremental counts, guarded by mu like the devices.
    std::shared_ptr<const Tracking> tracking;
    std::vector<ScanResult> counts;             // per slot: this shard's part
    std::vector<TimeMs> walked_below;           // per slot: buckets below this second are walked
    std::map<TimeMs, Device*> wheel;            // second of last contact -> its devices (a list)
    std::vector<std::string> pending;           // settle_pending devices
    TimeMs tick_now = 0;                        // the last tick's time: online is judged then
  };
  Shard& shard_for(const std::string& id);
  const Shard& shard_for(const std::string& id) const;

  // Brings `d`'s part of its shard's counts up to date (and its wheel place).
  // At a tick, a device that has gone silent is noted so (its id appended to
  // `changed`); otherwise it waits in `pending` for the next tick.
  static void settle(Shard& shard, Device& d, bool at_tick, std::vector<std::string>* changed);
  // Takes `d`'s part out of its shard's counts and wheel (before it leaves).
  static void forget(Shard& shard, Device& d);
  static void link(Shard& shard, Device& d);
  static void unlink(Shard& shard, Device& d);
  // The tick's view of the snapshot's live rollouts at `now`.
  std::shared_ptr<const Tracking> track(std::shared_ptr<const Snapshot> snapshot, TimeMs now) const;

  std::shared_ptr<const Tracking> tracking_;  // the engine thread's (scan)

  std::array<Shard, kShards> shards_;
  std::atomic<std::size_t> device_count_{0};
  std::atomic<std::uint64_t> store_count_{0};

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
