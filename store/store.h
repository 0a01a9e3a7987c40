// Persistence for tranche-server: small per-aggregate ports (STYLE.md #5), each
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
// for a missing row, kInvalidArgument for a url or row the store refuses, and
// kParse wrapping any other database error with its text.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
};

struct DeviceRow {
  std::string id;          // core::DeviceId text
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

// --- ports --------------------------------------------------------------------

class TenantStore {
 public:
  virtual ~TenantStore() = default;
  virtual core::Status put_tenant(const TenantRow& row) = 0;  // insert or replace
  virtual core::Result<std::vector<TenantRow>> load_tenants() = 0;
  virtual core::Status put_operator_token(const OperatorTokenRow& row) = 0;  // insert or replace
  virtual core::Result<std::vector<OperatorTokenRow>> load_operator_tokens() = 0;
};

class DeviceStore {
 public:
  virtual ~DeviceStore() = default;
  // kConflict when the id exists.
  virtual core::Status insert_device(const DeviceRow& row) = 0;
  // Many at once (bulk provisioning), in one transaction: all or none. kConflict
  // names the first id that exists.
  virtual core::Status insert_devices(const std::vector<DeviceRow>& rows) = 0;
  virtual core::Result<std::vector<DeviceRow>> load_devices() = 0;
  virtual core::Result<std::vector<DeviceStateRow>> load_device_states() = 0;
  // One transaction: every state upserted, every event inserted. On error
  // nothing of the batch is written.
  virtual core::Status write_batch(const std::vector<DeviceStateRow>& states,
                                   const std::vector<DeviceEventRow>& events) = 0;
  // Events of one device, oldest first (the device view and tests): the newest
  // `limit` of them when there are more.
  virtual core::Result<std::vector<DeviceEventRow>> load_events(std::string_view device,
                                                                std::size_t limit) = 0;
};

class ReleaseStore {
 public:
  virtual ~ReleaseStore() = default;
  // kConflict when (channel, version) exists.
  virtual core::Status insert_release(const ReleaseRow& row) = 0;
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
