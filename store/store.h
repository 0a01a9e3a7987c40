// Persistence for tranche-server: small per-aggregate ports, each
// a handful of methods over plain rows, implemented twice — embedded SQLite (WAL,
// the default) and PostgreSQL (libpq) — behind `open_store(url)`. No sqlite3* or
// PGconn* crosses this header.
//
// The server keeps its working set in memory and answers check-ins from it; the
// store is where that set comes from at start (`load_*`) and where changes go:
//   - operator actions, enrollments and rollout transitions are written
//     synchronously, before the server acknowledges or acts on them;
//   - device state and device events are written in batches (DeviceStore::
//     write_batch), at most every 250 ms, one transaction per batch.
//
// Every method is safe to call from one thread at a time per Store object; the
// server serialises calls (one writer thread for batches, a mutex for the rest).
// Errors are values: kConflict for a uniqueness or generation clash, kNotFound
// for a missing row, kInvalidArgument for a url or row the store refuses,
// kUnavailable when the database cannot be reached (retry later: a PostgreSQL
// Store reconnects by itself, with backoff) or the disk is full, and kInternal
// wrapping any other database error with its text. Never kParse: a store error
// is not the caller's bad input.
//
// Several servers on one PostgreSQL (docs/scale.md): every server answers any
// device. The server that last took a device (claim_device) is its owner: it
// accrues the device's exposure and judges its silence; the others learn of the
// claim through load_claims. A device's standing in a rollout is a row of its
// own, written only forward (core::standing_rank), and each server's exposure
// is a row of its own, so the engine's leader sums exact evidence from them
// (load_evidence) whichever server heard what.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/plan.h"
#include "core/result.h"
#include "core/types.h"

namespace tranche::store {

using core::TimeMs;

// --- rows ---------------------------------------------------------------------

struct TenantRow {
  std::string id;                   // core::TenantId text
  std::string enrollment_key_hash;  // hex SHA-256 of the tenant's enrollment key
  std::string policy_json;          // core::TenantPolicy as the API writes it ("{}" = defaults)
};

enum class Role : std::uint8_t { kViewer = 0, kOperator = 1, kAdmin = 2 };

struct OperatorTokenRow {
  std::string token_hash;  // hex SHA-256 of the bearer token; the token itself is never stored
  std::string name;        // who ("alice", "ci"), written into audit entries
  Role role = Role::kViewer;
  TimeMs created_at = 0;   // 0: made before schema version 4; kept when the row is replaced
};

struct DeviceRow {
  std::string id;          // the device key, "<tenant>/<device id>" (core::device_key; schema 5)
  std::string tenant;      // TenantRow::id
  std::string token_hash;  // hex SHA-256 of the device token
  std::string tags_json;   // {"class": "laptop", ...}
  std::int32_t utc_offset_minutes = 0;
  TimeMs enrolled_at = 0;
};

// What the server last knew of a device; replaced whole by each batch write.
struct DeviceStateRow {
  std::string device;           // DeviceRow::id
  std::string versions_json;    // {"content": "291.1", "sensor": "7.11"}: current per channel
  std::string failed_json;      // {"content": ["291.2"]}: versions that failed here
  std::string health_json;      // last reported health counters (free-form object)
  TimeMs last_seen = 0;         // last check-in or heartbeat
  bool said_goodbye = false;    // last word was a clean-shutdown goodbye
  std::int64_t last_event_seq = 0;  // highest event sequence number accepted
  std::string owner;            // the server that last claimed the device ("" = none)
  TimeMs owner_since = 0;       // when it claimed it
  // Only goes up: write_batch replaces a stored row only with a higher revision,
  // so a stale row never overwrites a newer one. The high 32 bits count claims
  // (claim_device moves them on and zeroes the low bits), the low 32 bits the
  // owner's writes since its claim: whatever a former owner still had queued is
  // below the new owner's first revision.
  std::int64_t revision = 0;
};

// An event a device uploaded (install result, crash, local rollback, goodbye).
// (device, seq) is unique: a replayed event is refused by the server before it
// gets here, and by the store's key if it does.
struct DeviceEventRow {
  std::string device;
  std::int64_t seq = 0;     // the device's own counter, strictly increasing
  std::string kind;         // core::to_string(core::DeviceEventKind): "installed", "crashed", ...
  std::string channel;
  std::string version;      // may be empty (goodbye)
  std::string detail_json;  // exit code, signal, message
  TimeMs at = 0;            // server receive time
};

struct ReleaseRow {
  std::string channel;
  std::string version;
  std::string targets_json;   // [{"path", "length", "sha256"}]
  bool contract_bypassed = false;  // registered with the contract check explicitly off
  TimeMs registered_at = 0;
};

// A rollout as the engine last persisted it. `generation` counts transitions:
// RolloutStore::update succeeds only when the stored generation is the one the
// caller read, so two engines can never both apply a transition (section 6 of
// issue 3: no transition lost or doubled).
struct RolloutRow {
  std::string id;
  std::string channel;
  std::string version;
  std::string previous;       // version exposed devices go back to; may be empty
  std::string plan_yaml;      // the plan as submitted (re-parsed on load)
  std::uint64_t salt = 0;     // cohort salt
  std::string status_json;    // core::RolloutStatus
  std::string gate_json;      // core::GateState plus the gate's cumulative counts
  std::int64_t generation = 0;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
};

// One applied transition, written in the same transaction as the rollout update.
struct TransitionRow {
  std::string rollout;
  std::int64_t generation = 0;  // the rollout's generation after this transition
  std::string from_state;
  std::string to_state;
  std::string event;
  std::string reason;
  TimeMs at = 0;
};

struct AuditRow {
  std::int64_t seq = 0;    // assigned by the store, increasing
  TimeMs at = 0;
  std::string actor;       // operator name, "engine", or "device:<id>"
  std::string action;      // "rollout.pause", "rollout.halt", "release.register", ...
  std::string target;      // what it acted on ("rollout r-12", "tenant acme")
  std::string reason;      // why, in words
};

// A device's standing in one rollout (core/evidence.h). (rollout, device) is
// unique; write_batch moves a stored row only forward — to a higher
// core::standing_rank — so a replayed or stale mark changes nothing, and each
// device counts once whichever server saw it.
struct RolloutMarkRow {
  std::string rollout;
  std::string device;
  std::string standing;       // core::to_string(core::Standing)
  std::string failure;        // core::to_string(core::FailureCause)
  TimeMs offered_at = 0;
  TimeMs acknowledged_at = 0;
  TimeMs failed_at = 0;
};

// What one batch write carries: device states, device events, rollout marks.
struct DeviceBatch {
  std::vector<DeviceStateRow> states;
  std::vector<DeviceEventRow> events;
  std::vector<RolloutMarkRow> marks;
};

// Everything the store knows of one device, for the server that takes it.
struct DeviceRecord {
  DeviceRow device;
  DeviceStateRow state;  // a fresh one (device, owner, revision) when none was written yet
  std::vector<RolloutMarkRow> marks;
};

// One device of a page of the device list (DeviceStore::list_devices).
struct DevicePageEntry {
  DeviceRecord record;                       // the device, its state (blank if none), its marks
  std::optional<DeviceEventRow> last_event;  // the newest event it uploaded, if any
};

// One device of a rollout at some standing (DeviceStore::list_rollout_devices).
struct RolloutDeviceEntry {
  RolloutMarkRow mark;
  // The newest event the device uploaded about the rollout's channel and
  // version (its install failure, crash, refusal), if any.
  std::optional<DeviceEventRow> last_event;
};

// The state of a device no server has written yet.
inline DeviceStateRow blank_state(std::string_view device) {
  DeviceStateRow row;
  row.device = std::string(device);
  row.versions_json = "{}";
  row.failed_json = "{}";
  row.health_json = "{}";
  return row;
}

// A claim another server may need to know of (load_claims).
struct ClaimRow {
  std::string device;
  std::string owner;
  TimeMs owner_since = 0;
};

// The device-time one server accrued in one rollout (cumulative, since that
// server started: a server id is new at each start), and what it counted at
// `updated_at` among the devices it owns. (rollout, server) unique; the
// device-time never goes down, the counts are the newest.
struct ExposureRow {
  std::string rollout;
  std::string server;
  std::int64_t exposed_ms = 0;  // device-milliseconds: sums are exact, in any order
  std::int64_t control_ms = 0;
  std::int64_t coverage_target = 0;    // core::Coverage, last stage
  std::int64_t coverage_running = 0;
  std::int64_t online_on_version = 0;  // online devices that run the version
  TimeMs updated_at = 0;
};

// How many devices stand where in one rollout, and the exposure of all servers.
struct StandingCount {
  std::string standing;
  std::string failure;
  std::int64_t devices = 0;
};
struct EvidenceSums {
  std::vector<StandingCount> counts;
  std::int64_t exposed_ms = 0;  // device-milliseconds: sums are exact, in any order
  std::int64_t control_ms = 0;
  // Over the servers whose row is at least as new as load_evidence's `fresh_since`.
  std::int64_t coverage_target = 0;
  std::int64_t coverage_running = 0;
  std::int64_t online_on_version = 0;
};

// --- ports --------------------------------------------------------------------

class TenantStore {
 public:
  virtual ~TenantStore() = default;
  // Insert or replace, with `audit` in the same transaction (both or neither).
  virtual core::Status put_tenant(const TenantRow& row, const AuditRow& audit) = 0;
  virtual core::Result<std::vector<TenantRow>> load_tenants() = 0;
  // Insert or replace, with `audit` in the same transaction (both or neither).
  virtual core::Status put_operator_token(const OperatorTokenRow& row, const AuditRow& audit) = 0;
  virtual core::Result<std::vector<OperatorTokenRow>> load_operator_tokens() = 0;
  // Revokes: deletes every token named `name`, with `audit` in the same
  // transaction. kNotFound (and nothing written) when no token has the name.
  virtual core::Status delete_operator_tokens(std::string_view name, const AuditRow& audit) = 0;
};

class DeviceStore {
 public:
  virtual ~DeviceStore() = default;
  // kConflict when the id exists.
  virtual core::Status insert_device(const DeviceRow& row) = 0;
  // Many at once (bulk provisioning), with `audit`, in one transaction: all or
  // none. kConflict names the first id that exists.
  virtual core::Status insert_devices(const std::vector<DeviceRow>& rows, const AuditRow& audit) = 0;
  virtual core::Result<std::vector<DeviceRow>> load_devices() = 0;
  virtual core::Result<std::vector<DeviceStateRow>> load_device_states() = 0;
  // Every rollout mark (a server's start).
  virtual core::Result<std::vector<RolloutMarkRow>> load_marks() = 0;
  virtual core::Result<std::int64_t> count_devices() = 0;
  // Devices grouped by their values of the tag keys `keys` (1 to 4): each group
  // as its tags (only the keys a device has) and its count. Counted in the
  // database, never every row in memory (core::stratum_of makes the strata).
  virtual core::Result<std::vector<std::pair<core::Tags, std::uint64_t>>> count_devices_by_tags(
      const std::vector<std::string>& keys) = 0;
  // One transaction, idempotent: each state upserted unless the stored one has
  // the same or a higher revision; each event inserted unless (device, seq) is
  // stored already (a batch retried here or at another server); each mark moved
  // forward only. On error nothing of the batch is written.
  virtual core::Status write_device_batch(const DeviceBatch& batch) = 0;
  core::Status write_batch(std::vector<DeviceStateRow> states, std::vector<DeviceEventRow> events) {
    return write_device_batch(DeviceBatch{std::move(states), std::move(events), {}});
  }
  // Whether a claim may go ahead, given the device as stored: the server checks
  // the request's token against it, so a wrong secret moves nothing. Empty:
  // always.
  using ClaimCheck = std::function<bool(const DeviceRow&)>;
  // Makes `owner` the device's owner from `now`: its state row's claim count
  // moves on (DeviceStateRow::revision), in one transaction with reading the
  // device, its state and its marks. kNotFound when no such device is
  // enrolled, or when `check` refuses it (then nothing is written).
  virtual core::Result<DeviceRecord> claim_device(std::string_view id, std::string_view owner,
                                                  TimeMs now, const ClaimCheck& check) = 0;
  // One device as stored, without claiming it (the device view at a server that
  // does not hold it): a blank state (no versions, revision 0) when none was
  // written yet. kNotFound when no such device is enrolled.
  virtual core::Result<DeviceRecord> load_device(std::string_view id) = 0;
  // Claims made after `since`, oldest first, at most `limit`.
  virtual core::Result<std::vector<ClaimRow>> load_claims(TimeMs since, std::size_t limit) = 0;
  // Server `id` is alive at `now` (each server says so every engine tick).
  virtual core::Status beat_server(std::string_view id, TimeMs now) = 0;
  // Devices whose owner is no server ("") or a server other than `self` that
  // last beat before `alive_since`, at most `limit`: the leader claims them, so
  // a device that went quiet with its server is still judged. Forgets the
  // servers that stopped and own no device any more.
  virtual core::Result<std::vector<std::string>> find_orphans(std::string_view self,
                                                              TimeMs alive_since,
                                                              std::size_t limit) = 0;
  // Events of one device, oldest first (the device view and tests): the newest
  // `limit` of them when there are more.
  virtual core::Result<std::vector<DeviceEventRow>> load_events(std::string_view device,
                                                                std::size_t limit) = 0;
  // Events of one device with seq < before_seq, newest first, at most `limit`
  // (paging back through all of them: the next page is before the last seq).
  virtual core::Result<std::vector<DeviceEventRow>> load_events_before(std::string_view device,
                                                                       std::int64_t before_seq,
                                                                       std::size_t limit) = 0;
  // Devices with id > `after`, by id, at most `limit`, each with its state,
  // marks and newest event, read in one snapshot (GET /v1/devices pages the
  // fleet with the last id it saw; nothing is skipped or repeated).
  virtual core::Result<std::vector<DevicePageEntry>> list_devices(std::string_view after,
                                                                  std::size_t limit) = 0;
  // The devices of `rollout` whose mark is at core::standing_rank `rank` (1:
  // exposed, 3: failed), device > `after`, by device, at most `limit`, each
  // with its newest event about `channel` `version`.
  virtual core::Result<std::vector<RolloutDeviceEntry>> list_rollout_devices(
      std::string_view rollout, int rank, std::string_view channel, std::string_view version,
      std::string_view after, std::size_t limit) = 0;
};

class ReleaseStore {
 public:
  virtual ~ReleaseStore() = default;
  // kConflict when (channel, version) exists. Writes `audit` in the same transaction.
  virtual core::Status insert_release(const ReleaseRow& row, const AuditRow& audit) = 0;
  virtual core::Result<std::vector<ReleaseRow>> load_releases() = 0;
};

class RolloutStore {
 public:
  virtual ~RolloutStore() = default;
  // kConflict when the id exists. Writes `audit` in the same transaction.
  virtual core::Status insert_rollout(const RolloutRow& row, const AuditRow& audit) = 0;
  // Replaces the row if its stored generation equals `expected_generation`, and
  // appends `transition` and `audit` — all in one transaction. kConflict (and
  // nothing written) when the generation moved; kNotFound when there is no such
  // rollout; kInvalidArgument unless row.generation > expected_generation and
  // transition.{rollout, generation} == row.{id, generation}.
  virtual core::Status update_rollout(const RolloutRow& row, std::int64_t expected_generation,
                                      const TransitionRow& transition, const AuditRow& audit) = 0;
  // Replaces the gate and status columns without a transition (the engine saves
  // the gate's evidence each tick), guarded by the generation like update_rollout.
  virtual core::Status save_gate(std::string_view id, std::int64_t expected_generation,
                                 std::string_view gate_json, TimeMs updated_at) = 0;
  virtual core::Result<std::vector<RolloutRow>> load_rollouts() = 0;
  virtual core::Result<std::vector<TransitionRow>> load_transitions(std::string_view rollout) = 0;
};

// The evidence of a rollout as rows: marks (DeviceStore::write_device_batch)
// and each server's exposure.
class EvidenceStore {
 public:
  virtual ~EvidenceStore() = default;
  // Upsert; a stored value never goes down.
  virtual core::Status save_exposure(const ExposureRow& row) = 0;
  // Devices per (standing, failure), the exposure summed over servers, and the
  // counts of servers that wrote at `fresh_since` or later (a dead server's
  // devices are counted by whichever server took them).
  virtual core::Result<EvidenceSums> load_evidence(std::string_view rollout, TimeMs fresh_since) = 0;
};

class AuditStore {
 public:
  virtual ~AuditStore() = default;
  virtual core::Status append_audit(const AuditRow& row) = 0;
  // Entries with seq > after_seq, oldest first, at most `limit`. append_audit
  // ignores row.seq; seqs are assigned in commit order, so paging by the last
  // seq seen never skips an entry.
  virtual core::Result<std::vector<AuditRow>> load_audit(std::int64_t after_seq,
                                                         std::size_t limit) = 0;
};

// Which server runs the rollout engine. SQLite: the store's own process holds
// the data directory exclusively, so the answer is always yes. PostgreSQL: a
// session-level advisory lock, held for as long as this Store's connection
// lives — a killed server's lock goes with its connection.
class EngineLock {
 public:
  virtual ~EngineLock() = default;
  virtual core::Result<bool> try_acquire_engine_lock() = 0;
};

// One open database: every port over one connection (SQLite) or one connection
// per Store object (PostgreSQL; the server opens one Store for the batch writer,
// one for everything else).
class Store : public TenantStore,
              public DeviceStore,
              public ReleaseStore,
              public RolloutStore,
              public EvidenceStore,
              public AuditStore,
              public EngineLock {
 public:
  // The schema version the database is at (numbered migrations, store/migrations/).
  virtual core::Result<int> schema_version() = 0;
  virtual std::string_view backend() const = 0;  // "sqlite" or "postgres"
};

// The newest schema version this build knows.
int latest_schema_version();

// Opens and migrates to the latest version:
//   "sqlite:PATH" (PATH is the database file; created, WAL mode)
//   "postgres://..." or "postgresql://..." (a libpq connection URI)
// `migrate_to` (tests) stops the migration at that version instead.
core::Result<std::unique_ptr<Store>> open_store(std::string_view url,
                                                std::optional<int> migrate_to = std::nullopt);

}  // namespace tranche::store
