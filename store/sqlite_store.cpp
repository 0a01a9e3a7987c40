// store::Store over embedded SQLite: one connection, every statement prepared
// once and kept, WAL journal with synchronous=FULL (see open_sqlite_store for
// why FULL), and an flock'd PATH.lock so that one process owns the database.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/backends.h"
#include "store/migrations.h"

namespace tranche::store {
namespace {

using core::Error;
using core::ErrorCode;
using core::make_error;
using core::Ok;
using core::Result;
using core::Status;

// How long a statement waits for a lock held by another connection before it
// fails with SQLITE_BUSY. Only this process writes (PATH.lock), so the wait is
// for a checkpoint or an outside reader such as the sqlite3 shell.
constexpr int kBusyTimeoutMs = 5000;

// Every statement the store runs, prepared at open and kept for the life of
// the connection. Indexes into kSql.
enum class Q : std::size_t {
  kBegin,
  kCommit,
  kRollback,
  kSchemaVersion,
  kPutTenant,
  kLoadTenants,
  kPutToken,
  kLoadTokens,
  kDeleteTokens,
  kInsertDevice,
  kLoadDevices,
  kLoadStates,
  kUpsertState,
  kInsertEvent,
  kLoadEvents,
  kInsertRelease,
  kLoadReleases,
  kInsertRollout,
  kUpdateRollout,
  kSaveGate,
  kRolloutExists,
  kLoadRollouts,
  kInsertTransition,
  kLoadTransitions,
  kInsertAudit,
  kLoadAudit,
  kLoadMarks,
  kCountDevices,
  kSelectDevice,
  kSelectState,
  kClaimState,
  kLoadDeviceMarks,
  kLoadClaims,
  kBeatServer,
  kForgetServers,
  kFindOrphans,
  kSaveExposure,
  kCountStandings,
  kSumExposure,
  kEventsBefore,
  kPageDevices,
  kPageStates,
  kPageMarks,
  kPageLastEvents,
  kRolloutDevices,
  kCount,
};

constexpr std::array<std::string_view, static_cast<std::size_t>(Q::kCount)> kSql = {
    // IMMEDIATE: take the write lock at BEGIN, not at the first write, so a
    // transaction never fails half-way for a lock it could not upgrade.
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    "INSERT INTO tenants (id, enrollment_key_hash, policy_json) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET enrollment_key_hash = excluded.enrollment_key_hash, "
    "policy_json = excluded.policy_json",
    "SELECT id, enrollment_key_hash, policy_json FROM tenants ORDER BY id",
    "INSERT INTO operator_tokens (token_hash, name, role, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (token_hash) DO UPDATE SET name = excluded.name, role = excluded.role",
    "SELECT token_hash, name, role, created_at FROM operator_tokens ORDER BY name, token_hash",
    "DELETE FROM operator_tokens WHERE name = ?",
    "INSERT INTO devices (id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at) "
    "VALUES (?, ?, ?, ?, ?, ?)",
    // Table order (no ORDER BY): a million rows at start, read as they lie.
    "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices",
    "SELECT device, versions_json, failed_json, health_json, last_seen, said_goodbye, "
    "last_event_seq, owner, owner_since, revision FROM device_states",
    // A row at the same or a higher revision stays: it is newer than ours.
    "INSERT INTO device_states (device, versions_json, failed_json, health_json, last_seen, "
    "said_goodbye, last_event_seq, owner, owner_since, revision) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (device) DO UPDATE SET versions_json = excluded.versions_json, "
    "failed_json = excluded.failed_json, health_json = excluded.health_json, "
    "last_seen = excluded.last_seen, said_goodbye = excluded.said_goodbye, "
    "last_event_seq = excluded.last_event_seq, owner = excluded.owner, "
    "owner_since = excluded.owner_since, revision = excluded.revision "
    "WHERE excluded.revision > device_states.revision",
    // (device, seq) stored already: the same event, sent again after an answer
    // was lost.
    "INSERT INTO device_events (device, seq, kind, channel, version, detail_json, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device, seq) DO NOTHING",
    // The newest `limit`, returned oldest first.
    "SELECT device, seq, kind, channel, version, detail_json, at FROM "
    "(SELECT * FROM device_events WHERE device = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
    "INSERT INTO releases (channel, version, targets_json, contract_bypassed, registered_at) "
    "VALUES (?, ?, ?, ?, ?)",
    "SELECT channel, version, targets_json, contract_bypassed, registered_at FROM releases "
    "ORDER BY registered_at, channel, version",
    "INSERT INTO rollouts (id, channel, version, previous, plan_yaml, salt, status_json, "
    "gate_json, generation, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "UPDATE rollouts SET channel = ?, version = ?, previous = ?, plan_yaml = ?, salt = ?, "
    "status_json = ?, gate_json = ?, generation = ?, created_at = ?, updated_at = ? "
    "WHERE id = ? AND generation = ?",
    "UPDATE rollouts SET gate_json = ?, updated_at = ? WHERE id = ? AND generation = ?",
    "SELECT 1 FROM rollouts WHERE id = ?",
    "SELECT id, channel, version, previous, plan_yaml, salt, status_json, gate_json, "
    "generation, created_at, updated_at FROM rollouts ORDER BY created_at, id",
    "INSERT INTO rollout_transitions (rollout, generation, from_state, to_state, event, "
    "reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "SELECT rollout, generation, from_state, to_state, event, reason, at "
    "FROM rollout_transitions WHERE rollout = ? ORDER BY generation",
    "INSERT INTO audit (at, actor, action, target, reason) VALUES (?, ?, ?, ?, ?)",
    "SELECT seq, at, actor, action, target, reason FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
    "SELECT rollout, device, standing, failure, offered_at, acknowledged_at, failed_at "
    "FROM rollout_marks",
    "SELECT count(*) FROM devices",
    "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices "
    "WHERE id = ?",
    "SELECT device, versions_json, failed_json, health_json, last_seen, said_goodbye, "
    "last_event_seq, owner, owner_since, revision FROM device_states WHERE device = ?",
    // The next claim count, low bits zero (DeviceStateRow::revision).
    "INSERT INTO device_states (device, versions_json, failed_json, health_json, last_seen, "
    "said_goodbye, last_event_seq, owner, owner_since, revision) "
    "VALUES (?, '{}', '{}', '{}', 0, 0, 0, ?, ?, 4294967296) "
    "ON CONFLICT (device) DO UPDATE SET owner = excluded.owner, owner_since = excluded.owner_since, "
    "revision = ((device_states.revision >> 32) + 1) << 32 "
    "RETURNING device, versions_json, failed_json, health_json, last_seen, said_goodbye, "
    "last_event_seq, owner, owner_since, revision",
    "SELECT rollout, device, standing, failure, offered_at, acknowledged_at, failed_at "
    "FROM rollout_marks WHERE device = ?",
    "SELECT device, owner, owner_since FROM device_states WHERE owner_since > ? "
    "ORDER BY owner_since LIMIT ?",
    "INSERT INTO servers (id, seen_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET "
    "seen_at = max(servers.seen_at, excluded.seen_at)",
    "DELETE FROM servers WHERE seen_at < ? AND id <> ? AND NOT EXISTS "
    "(SELECT 1 FROM device_states WHERE device_states.owner = servers.id)",
    "SELECT device FROM device_states WHERE owner = '' OR owner IN "
    "(SELECT id FROM servers WHERE seen_at < ?2 AND id <> ?1) LIMIT ?3",
    "INSERT INTO rollout_exposure (rollout, server, exposed_ms, control_ms, coverage_target, "
    "coverage_running, online_on_version, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rollout, server) DO UPDATE SET "
    "exposed_ms = max(rollout_exposure.exposed_ms, excluded.exposed_ms), "
    "control_ms = max(rollout_exposure.control_ms, excluded.control_ms), "
    "coverage_target = excluded.coverage_target, coverage_running = excluded.coverage_running, "
    "online_on_version = excluded.online_on_version, updated_at = excluded.updated_at "
    "WHERE excluded.updated_at >= rollout_exposure.updated_at",
    "SELECT standing, failure, count(*) FROM rollout_marks WHERE rollout = ? "
    "GROUP BY standing, failure ORDER BY standing, failure",
    "SELECT COALESCE(sum(exposed_ms), 0), COALESCE(sum(control_ms), 0), "
    "COALESCE(sum(coverage_target) FILTER (WHERE updated_at >= ?2), 0), "
    "COALESCE(sum(coverage_running) FILTER (WHERE updated_at >= ?2), 0), "
    "COALESCE(sum(online_on_version) FILTER (WHERE updated_at >= ?2), 0) "
    "FROM rollout_exposure WHERE rollout = ?1",
    "SELECT device, seq, kind, channel, version, detail_json, at FROM device_events "
    "WHERE device = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
    // A page of the device list, then the rows of the devices in its id range.
    "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices "
    "WHERE id > ? ORDER BY id LIMIT ?",
    "SELECT device, versions_json, failed_json, health_json, last_seen, said_goodbye, "
    "last_event_seq, owner, owner_since, revision FROM device_states WHERE device > ? AND device <= ?",
    "SELECT rollout, device, standing, failure, offered_at, acknowledged_at, failed_at "
    "FROM rollout_marks WHERE device > ? AND device <= ?",
    "SELECT e.device, e.seq, e.kind, e.channel, e.version, e.detail_json, e.at "
    "FROM devices d JOIN device_events e ON e.device = d.id "
    "WHERE d.id > ? AND d.id <= ? AND "
    "e.seq = (SELECT max(x.seq) FROM device_events x WHERE x.device = d.id)",
    // channel, version, rollout, rank, after, limit
    "SELECT m.rollout, m.device, m.standing, m.failure, m.offered_at, m.acknowledged_at, "
    "m.failed_at, COALESCE(e.device, ''), COALESCE(e.seq, 0), COALESCE(e.kind, ''), "
    "COALESCE(e.channel, ''), COALESCE(e.version, ''), COALESCE(e.detail_json, ''), "
    "COALESCE(e.at, 0) FROM rollout_marks m LEFT JOIN device_events e ON e.device = m.device "
    "AND e.seq = (SELECT max(x.seq) FROM device_events x WHERE x.device = m.device "
    "AND x.channel = ?1 AND x.version = ?2) "
    "WHERE m.rollout = ?3 AND m.rank = ?4 AND m.device > ?5 ORDER BY m.device LIMIT ?6",
};

// A database error as a value: uniqueness → kConflict (the header's contract),
// any other constraint → kInvalidArgument (a row the store refuses), a full or
// failing disk or a lock held past the busy timeout → kUnavailable (retry
// later), the rest → kInternal with SQLite's text (SQL this program got wrong).
Error sqlite_error(int code, std::string message) {
  if (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE) {
    return make_error(ErrorCode::kConflict, std::move(message));
  }
  switch (code & 0xff) {
    case SQLITE_CONSTRAINT:
      return make_error(ErrorCode::kInvalidArgument, std::move(message));
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
      return make_error(ErrorCode::kUnavailable, std::move(message));
    default:
      break;
  }
  return make_error(ErrorCode::kInternal, std::move(message));
}

Error db_error(sqlite3* db, std::string_view what) {
  return sqlite_error(sqlite3_extended_errcode(db),
                      "sqlite: " + std::string(what) + ": " + sqlite3_errmsg(db));
}

std::int64_t clamp_limit(std::size_t limit) {
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return static_cast<std::int64_t>(limit < kMax ? limit : kMax);
}

// One use of a cached statement: bind in order, step, read columns. Resets the
// statement when it goes out of scope, so the next use starts clean and a
// reader never holds its snapshot open longer than the call.
class Use {
 public:
  Use(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  Use& bind(std::string_view text) {
    // A null data pointer would bind SQL NULL; an empty string_view may have one.
    const char* data = text.data() != nullptr ? text.data() : "";
    // A null destructor is SQLITE_STATIC (whose macro is an old-style cast):
    // the bound text outlives the step, which happens within this Use.
    if (rc_ == SQLITE_OK)
      rc_ = sqlite3_bind_text64(stmt_, ++index_, data, text.size(), nullptr, SQLITE_UTF8);
    return *this;
  }
  Use& bind(std::int64_t value) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, ++index_, value);
    return *this;
  }
  Use& bind(std::int32_t value) { return bind(static_cast<std::int64_t>(value)); }
  Use& bind(bool value) { return bind(static_cast<std::int64_t>(value ? 1 : 0)); }
  Use& bind(double value) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_double(stmt_, ++index_, value);
    return *this;
  }

  // true: a row is ready to read; false: done.
  Result<bool> step() {
    if (rc_ != SQLITE_OK) return db_error(db_, "bind");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_error(db_, sqlite3_sql(stmt_));
  }
  // Runs a statement that returns no rows.
  Status run() {
    auto stepped = step();
    if (!stepped) return stepped.error();
    return Ok{};
  }

  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    const int size = sqlite3_column_bytes(stmt_, column);
    return data == nullptr ? std::string() : std::string(data, static_cast<std::size_t>(size));
  }
  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int index_ = 0;
  int rc_ = SQLITE_OK;
};

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct FinalizeStmt {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};

// PATH.lock, flock'd exclusively for as long as the Store lives. flock and not
// SQLite's own locking: SQLite lets any number of processes share a WAL
// database, and two servers on one data directory would each run an engine.
// The kernel drops the lock when the process dies, so kill -9 leaves nothing
// stale behind.
class LockFile {
 public:
  static Result<LockFile> take(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "cannot open lock file " + path + ": " + std::strerror(errno));
    }
    LockFile lock(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return make_error(ErrorCode::kConflict,
                          "database in use: " + path +
                              " is locked by another tranche-server on this data directory");
      }
      return make_error(ErrorCode::kIo, "cannot lock " + path + ": " + std::strerror(errno));
    }
    return lock;
  }
  LockFile(LockFile&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  LockFile& operator=(LockFile&&) = delete;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
  }

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(LockFile lock, sqlite3* db) : lock_(std::move(lock)), db_(db) {}

  Status configure();
  Status migrate(int target);
  // Every statement of kSql, so that one that cannot be prepared fails the open.
  Status prepare_all() {
    for (std::size_t q = 0; q < kSql.size(); ++q) {
      if (auto s = prepare(static_cast<Q>(q)); !s) return s;
    }
    return Ok{};
  }

  // --- TenantStore ---
  Status put_tenant(const TenantRow& row, const AuditRow& audit) override {
    return audited(audit, [&] {
      return use(Q::kPutTenant)
          .bind(row.id)
          .bind(row.enrollment_key_hash)
          .bind(row.policy_json)
          .run();
    });
  }
  Result<std::vector<TenantRow>> load_tenants() override {
    return load<TenantRow>(Q::kLoadTenants, [](const Use& u) {
      return TenantRow{u.text(0), u.text(1), u.text(2)};
    });
  }
  Status put_operator_token(const OperatorTokenRow& row, const AuditRow& audit) override {
    return audited(audit, [&] {
      return use(Q::kPutToken)
          .bind(row.token_hash)
          .bind(row.name)
          .bind(static_cast<std::int64_t>(row.role))
          .bind(row.created_at)
          .run();
    });
  }
  Result<std::vector<OperatorTokenRow>> load_operator_tokens() override {
    // The role column's CHECK keeps it in 0..2.
    return load<OperatorTokenRow>(Q::kLoadTokens, [](const Use& u) {
      return OperatorTokenRow{u.text(0), u.text(1), static_cast<Role>(u.integer(2)), u.integer(3)};
    });
  }
  Status delete_operator_tokens(std::string_view name, const AuditRow& audit) override {
    return audited(audit, [&]() -> Status {
      if (auto s = use(Q::kDeleteTokens).bind(name).run(); !s) return s;
      if (sqlite3_changes(db_.get()) == 0) {
        return make_error(ErrorCode::kNotFound, "no operator token is named '" + std::string(name) + "'");
      }
      return Ok{};
    });
  }

  // --- DeviceStore ---
  Status insert_device(const DeviceRow& row) override {
    return use(Q::kInsertDevice)
        .bind(row.id)
        .bind(row.tenant)
        .bind(row.token_hash)
        .bind(row.tags_json)
        .bind(row.utc_offset_minutes)
        .bind(row.enrolled_at)
        .run();
  }
  Status insert_devices(const std::vector<DeviceRow>& rows, const AuditRow& audit) override {
    return audited(audit, [&]() -> Status {
      for (const DeviceRow& row : rows) {
        if (auto s = insert_device(row); !s) return s.error().with_context("device " + row.id + ": ");
      }
      return Ok{};
    });
  }
  Result<std::vector<DeviceRow>> load_devices() override {
    return load<DeviceRow>(Q::kLoadDevices, [](const Use& u) {
      return DeviceRow{
          u.text(0),   u.text(1), u.text(2), u.text(3), static_cast<std::int32_t>(u.integer(4)),
          u.integer(5)};
    });
  }
  Result<std::vector<DeviceStateRow>> load_device_states() override {
    return load<DeviceStateRow>(Q::kLoadStates, &state_of);
  }
  Result<std::vector<RolloutMarkRow>> load_marks() override {
    return load<RolloutMarkRow>(Q::kLoadMarks, &mark_of);
  }
  Result<std::int64_t> count_devices() override {
    Use u = use(Q::kCountDevices);
    auto row = u.step();
    if (!row) return row.error();
    return u.integer(0);
  }
  Result<std::vector<std::pair<core::Tags, std::uint64_t>>> count_devices_by_tags(
      const std::vector<std::string>& keys) override {
    // Per key its value and whether the device has it (json_each: any key,
    // bound as a parameter); built for this call, as the keys vary.
    std::string columns;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string p = "?" + std::to_string(i + 1);
      columns += "(SELECT value FROM json_each(devices.tags_json) WHERE key = " + p +
                 "), EXISTS (SELECT 1 FROM json_each(devices.tags_json) WHERE key = " + p + "), ";
    }
    std::string groups;
    for (std::size_t i = 1; i <= 2 * keys.size(); ++i) groups += (i > 1 ? ", " : "") + std::to_string(i);
    const std::string sql = "SELECT " + columns + "count(*) FROM devices GROUP BY " + groups;
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr) != SQLITE_OK) {
      return db_error(db_.get(), "prepare count by tags");
    }
    std::unique_ptr<sqlite3_stmt, FinalizeStmt> stmt(raw);
    Use u(db_.get(), stmt.get());
    for (const auto& k : keys) u.bind(k);
    const std::size_t n = keys.size();
    return load<std::pair<core::Tags, std::uint64_t>>(u, [&keys, n](const Use& row) {
      std::pair<core::Tags, std::uint64_t> group;
      for (std::size_t i = 0; i < n; ++i) {
        if (row.integer(static_cast<int>(2 * i + 1)) != 0) group.first[keys[i]] = row.text(static_cast<int>(2 * i));
      }
      group.second = static_cast<std::uint64_t>(row.integer(static_cast<int>(2 * n)));
      return group;
    });
  }
  Status write_device_batch(const DeviceBatch& batch) override;
  Result<DeviceRecord> load_device(std::string_view id) override;
  Result<DeviceRecord> claim_device(std::string_view id, std::string_view owner, TimeMs now,
                                    const ClaimCheck& check) override;
  Result<std::vector<ClaimRow>> load_claims(TimeMs since, std::size_t limit) override {
    Use q = use(Q::kLoadClaims);
    q.bind(since).bind(clamp_limit(limit));
    return load<ClaimRow>(q, [](const Use& u) { return ClaimRow{u.text(0), u.text(1), u.integer(2)}; });
  }
  Status beat_server(std::string_view id, TimeMs now) override {
    return use(Q::kBeatServer).bind(id).bind(now).run();
  }
  Result<std::vector<std::string>> find_orphans(std::string_view self, TimeMs alive_since,
                                                std::size_t limit) override {
    if (auto s = use(Q::kForgetServers).bind(alive_since).bind(self).run(); !s) return s.error();
    Use q = use(Q::kFindOrphans);
    q.bind(self).bind(alive_since).bind(clamp_limit(limit));
    return load<std::string>(q, [](const Use& u) { return u.text(0); });
  }
  Result<std::vector<DeviceEventRow>> load_events(std::string_view device,
                                                  std::size_t limit) override {
    Use q = use(Q::kLoadEvents);
    q.bind(device).bind(clamp_limit(limit));
    return load<DeviceEventRow>(q, [](const Use& u) {
      return DeviceEventRow{u.text(0), u.integer(1), u.text(2),   u.text(3),
                            u.text(4), u.text(5),    u.integer(6)};
    });
  }

  Result<std::vector<DeviceEventRow>> load_events_before(std::string_view device,
                                                         std::int64_t before_seq,
                                                         std::size_t limit) override {
    Use q = use(Q::kEventsBefore);
    q.bind(device).bind(before_seq).bind(clamp_limit(limit));
    return load<DeviceEventRow>(q, &event_of);
  }
  Result<std::vector<DevicePageEntry>> list_devices(std::string_view after,
                                                    std::size_t limit) override;
  Result<std::vector<RolloutDeviceEntry>> list_rollout_devices(std::string_view rollout, int rank,
                                                               std::string_view channel,
                                                               std::string_view version,
                                                               std::string_view after,
                                                               std::size_t limit) override {
    Use q = use(Q::kRolloutDevices);
    q.bind(channel).bind(version).bind(rollout).bind(static_cast<std::int64_t>(rank)).bind(after).bind(
        clamp_limit(limit));
    return load<RolloutDeviceEntry>(q, [](const Use& u) {
      RolloutDeviceEntry entry{mark_of(u), std::nullopt};
      if (!u.text(7).empty()) {
        entry.last_event = DeviceEventRow{u.text(7),  u.integer(8), u.text(9),    u.text(10),
                                          u.text(11), u.text(12),   u.integer(13)};
      }
      return entry;
    });
  }

  // --- ReleaseStore ---
  Status insert_release(const ReleaseRow& row, const AuditRow& audit) override {
    return audited(audit, [&] {
      return use(Q::kInsertRelease)
          .bind(row.channel)
          .bind(row.version)
          .bind(row.targets_json)
          .bind(row.contract_bypassed)
          .bind(row.registered_at)
          .run();
    });
  }
  Result<std::vector<ReleaseRow>> load_releases() override {
    return load<ReleaseRow>(Q::kLoadReleases, [](const Use& u) {
      return ReleaseRow{u.text(0), u.text(1), u.text(2), u.integer(3) != 0, u.integer(4)};
    });
  }

  // --- RolloutStore ---
  Status insert_rollout(const RolloutRow& row, const AuditRow& audit) override;
  Status update_rollout(const RolloutRow& row, std::int64_t expected_generation,
                        const TransitionRow& transition, const AuditRow& audit) override;
  Status save_gate(std::string_view id, std::int64_t expected_generation,
                   std::string_view gate_json, TimeMs updated_at) override;
  Result<std::vector<RolloutRow>> load_rollouts() override {
    return load<RolloutRow>(Q::kLoadRollouts, [](const Use& u) {
      return RolloutRow{u.text(0),    u.text(1),    u.text(2),
                        u.text(3),    u.text(4),    static_cast<std::uint64_t>(u.integer(5)),
                        u.text(6),    u.text(7),    u.integer(8),
                        u.integer(9), u.integer(10)};
    });
  }
  Result<std::vector<TransitionRow>> load_transitions(std::string_view rollout) override {
    Use q = use(Q::kLoadTransitions);
    q.bind(rollout);
    return load<TransitionRow>(q, [](const Use& u) {
      return TransitionRow{u.text(0), u.integer(1), u.text(2),   u.text(3),
                           u.text(4), u.text(5),    u.integer(6)};
    });
  }

  // --- EvidenceStore ---
  Status save_exposure(const ExposureRow& row) override {
    return use(Q::kSaveExposure)
        .bind(row.rollout)
        .bind(row.server)
        .bind(row.exposed_ms)
        .bind(row.control_ms)
        .bind(row.coverage_target)
        .bind(row.coverage_running)
        .bind(row.online_on_version)
        .bind(row.updated_at)
        .run();
  }
  Result<EvidenceSums> load_evidence(std::string_view rollout, TimeMs fresh_since) override {
    EvidenceSums sums;
    {
      Use q = use(Q::kCountStandings);
      q.bind(rollout);
      auto counts = load<StandingCount>(
          q, [](const Use& u) { return StandingCount{u.text(0), u.text(1), u.integer(2)}; });
      if (!counts) return counts.error();
      sums.counts = std::move(*counts);
    }
    Use q = use(Q::kSumExposure);
    q.bind(rollout).bind(fresh_since);
    auto row = q.step();
    if (!row) return row.error();
    sums.exposed_ms = q.integer(0);
    sums.control_ms = q.integer(1);
    sums.coverage_target = q.integer(2);
    sums.coverage_running = q.integer(3);
    sums.online_on_version = q.integer(4);
    return sums;
  }

  // --- AuditStore ---
  Status append_audit(const AuditRow& row) override { return insert_audit(row); }
  Result<std::vector<AuditRow>> load_audit(std::int64_t after_seq, std::size_t limit) override {
    Use q = use(Q::kLoadAudit);
    q.bind(after_seq).bind(clamp_limit(limit));
    return load<AuditRow>(q, [](const Use& u) {
      return AuditRow{u.integer(0), u.integer(1), u.text(2), u.text(3), u.text(4), u.text(5)};
    });
  }

  // --- EngineLock ---
  // PATH.lock makes this process the database's only user, so its engine runs.
  Result<bool> try_acquire_engine_lock() override { return true; }

  // --- Store ---
  Result<int> schema_version() override {
    Use u = use(Q::kSchemaVersion);
    auto row = u.step();
    if (!row) return row.error();
    return static_cast<int>(u.integer(0));
  }
  std::string_view backend() const override { return "sqlite"; }

 private:
  // A transaction that rolls back unless committed.
  class Tx {
   public:
    explicit Tx(SqliteStore& store) : store_(store) {}
    ~Tx() {
      if (open_)
        (void)store_.use(Q::kRollback).run();  // nothing to do if it fails: the
                                               // connection rolls back on its own
    }
    Tx(const Tx&) = delete;
    Tx& operator=(const Tx&) = delete;
    Status begin() {
      auto begun = store_.use(Q::kBegin).run();
      open_ = begun.ok();
      return begun;
    }
    Status commit() {
      auto committed = store_.use(Q::kCommit).run();
      if (committed) open_ = false;
      return committed;
    }

   private:
    SqliteStore& store_;
    bool open_ = false;
  };

  Status prepare(Q q) {
    auto& slot = stmts_[static_cast<std::size_t>(q)];
    if (slot) return Ok{};
    const std::string_view sql = kSql[static_cast<std::size_t>(q)];
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                           SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      return db_error(db_.get(), "prepare");
    }
    slot.reset(stmt);
    return Ok{};
  }

  // The cached statement for `q`. open_sqlite_store prepares every statement
  // (prepare_all), so after open a statement that does not prepare is a bug,
  // hence the assertion; before it, migrate uses only statements on
  // schema_migrations, which exists by then.
  Use use(Q q) {
    const auto prepared = prepare(q);
    TRANCHE_ASSERT(prepared.ok(), "a store statement does not prepare");
    return Use(db_.get(), stmts_[static_cast<std::size_t>(q)].get());
  }

  // Every row of a bound statement, read by `read`.
  template <typename Row, typename Read>
  static Result<std::vector<Row>> load(Use& u, Read read) {
    std::vector<Row> rows;
    for (;;) {
      auto row = u.step();
      if (!row) return row.error();
      if (!*row) return rows;
      rows.push_back(read(u));
    }
  }
  template <typename Row, typename Read>
  Result<std::vector<Row>> load(Q q, Read read) {
    Use u = use(q);
    return load<Row>(u, read);
  }

  Status insert_audit(const AuditRow& row) {
    return use(Q::kInsertAudit)
        .bind(row.at)
        .bind(row.actor)
        .bind(row.action)
        .bind(row.target)
        .bind(row.reason)
        .run();
  }
  // `action` and the audit row in one transaction: both or neither.
  template <typename Action>
  Status audited(const AuditRow& audit, Action action) {
    Tx tx(*this);
    if (auto s = tx.begin(); !s) return s;
    if (auto s = action(); !s) return s;
    if (auto s = insert_audit(audit); !s) return s;
    return tx.commit();
  }
  static DeviceStateRow state_of(const Use& u) {
    return DeviceStateRow{u.text(0),    u.text(1),         u.text(2),    u.text(3),
                          u.integer(4), u.integer(5) != 0, u.integer(6), u.text(7),
                          u.integer(8), u.integer(9)};
  }
  static DeviceEventRow event_of(const Use& u) {
    return DeviceEventRow{u.text(0), u.integer(1), u.text(2),   u.text(3),
                          u.text(4), u.text(5),    u.integer(6)};
  }
  static RolloutMarkRow mark_of(const Use& u) {
    return RolloutMarkRow{u.text(0),    u.text(1),    u.text(2),   u.text(3),
                          u.integer(4), u.integer(5), u.integer(6)};
  }
  // The mark upsert: its SET clause is built at run time (merge_mark_set_sql).
  Use use_mark_upsert() {
    if (!mark_upsert_) {
      const std::string sql =
          "INSERT INTO rollout_marks (rollout, device, standing, rank, failure, offered_at, "
          "acknowledged_at, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (rollout, device) DO UPDATE SET " +
          merge_mark_set_sql() + " WHERE excluded.rank > rollout_marks.rank";
      sqlite3_stmt* stmt = nullptr;
      const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                        SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      TRANCHE_ASSERT(rc == SQLITE_OK, "the mark upsert does not prepare");
      mark_upsert_.reset(stmt);
    }
    return Use(db_.get(), mark_upsert_.get());
  }
  // After a guarded update changed no row: kNotFound or kConflict.
  Status guard_failed(std::string_view id, std::int64_t expected_generation);
  Status exec(std::string_view sql, std::string_view what);

  // Destroyed in reverse order: statements before the connection, the
  // connection before the lock.
  LockFile lock_;
  std::unique_ptr<sqlite3, CloseDb> db_;
  std::array<std::unique_ptr<sqlite3_stmt, FinalizeStmt>, static_cast<std::size_t>(Q::kCount)>
      stmts_;
  std::unique_ptr<sqlite3_stmt, FinalizeStmt> mark_upsert_;
};

Status SqliteStore::exec(std::string_view sql, std::string_view what) {
  // sqlite3_exec needs a terminated string; every caller passes a literal or
  // migration text, which are.
  char* message = nullptr;
  const int rc = sqlite3_exec(db_.get(), std::string(sql).c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return Ok{};
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return sqlite_error(sqlite3_extended_errcode(db_.get()),
                      "sqlite: " + std::string(what) + ": " + text);
}

// Durability. WAL with synchronous=NORMAL survives a crash of the process (a
// kill -9) but not of the machine: the WAL is fsynced only at checkpoints, so a
// power cut can lose the last commits. The server acknowledges operator actions
// and enrollments after they commit, and acknowledged must mean durable, so
// FULL: an fsync of the WAL at every commit. The cost is one fsync per
// transaction — per operator action, and per batch of device states (at most
// four a second), never per check-in.
Status SqliteStore::configure() {
  if (sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs) != SQLITE_OK) {
    return db_error(db_.get(), "busy_timeout");
  }
  // journal_mode answers with the mode it ended in; anything but "wal" (say, a
  // file system without shared memory) is refused rather than run slower and
  // differently from what was tested.
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_.get(), "PRAGMA journal_mode=WAL", -1, &raw, nullptr) != SQLITE_OK) {
    return db_error(db_.get(), "journal_mode");
  }
  std::unique_ptr<sqlite3_stmt, FinalizeStmt> stmt(raw);
  if (sqlite3_step(raw) != SQLITE_ROW) return db_error(db_.get(), "journal_mode");
  const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
  if (mode == nullptr || std::string_view(mode) != "wal") {
    return make_error(ErrorCode::kInvalidArgument, "sqlite: cannot use WAL journal mode (got '" +
                                                       std::string(mode != nullptr ? mode : "") +
                                                       "')");
  }
  stmt.reset();
  if (auto s = exec("PRAGMA synchronous=FULL", "synchronous"); !s) return s;
  // rollout_transitions.rollout references rollouts; SQLite checks that only
  // when asked, per connection.
  return exec("PRAGMA foreign_keys=ON", "foreign_keys");
}

// Each migration in its own transaction with its row in schema_migrations, so a
// failure leaves the database at the previous version, never between two.
Status SqliteStore::migrate(int target) {
  if (auto s = exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at TEXT NOT NULL DEFAULT (datetime('now')))",
                    "schema_migrations");
      !s) {
    return s;
  }
  auto current = schema_version();
  if (!current) return current.error();
  if (*current > latest_schema_version()) return schema_too_new(*current);
  for (const Migration& m : sqlite_migrations()) {
    if (m.version <= *current || m.version > target) continue;
    if (auto s = exec("BEGIN IMMEDIATE", "begin"); !s) return s;
    auto applied = exec(m.sql, m.name);
    if (applied) {
      // The name is spliced in, not bound: CMake admits only [a-z0-9_] names.
      applied = exec("INSERT INTO schema_migrations (version, name) VALUES (" +
                         std::to_string(m.version) + ", '" + std::string(m.name) + "')",
                     m.name);
    }
    if (applied) applied = exec("COMMIT", m.name);
    if (!applied) {
      (void)exec("ROLLBACK", "rollback");
      return applied.error().with_context("migration " + std::string(m.name) + ": ");
    }
  }
  return Ok{};
}

Status SqliteStore::write_device_batch(const DeviceBatch& batch) {
  if (batch.states.empty() && batch.events.empty() && batch.marks.empty()) return Ok{};
  auto marks = merge_marks(batch.marks);
  if (!marks) return marks.error();
  Tx tx(*this);
  if (auto s = tx.begin(); !s) return s;
  for (const DeviceStateRow& row : batch.states) {
    auto s = use(Q::kUpsertState)
                 .bind(row.device)
                 .bind(row.versions_json)
                 .bind(row.failed_json)
                 .bind(row.health_json)
                 .bind(row.last_seen)
                 .bind(row.said_goodbye)
                 .bind(row.last_event_seq)
                 .bind(row.owner)
                 .bind(row.owner_since)
                 .bind(row.revision)
                 .run();
    if (!s) return s;
  }
  for (const DeviceEventRow& row : batch.events) {
    auto s = use(Q::kInsertEvent)
                 .bind(row.device)
                 .bind(row.seq)
                 .bind(row.kind)
                 .bind(row.channel)
                 .bind(row.version)
                 .bind(row.detail_json)
                 .bind(row.at)
                 .run();
    if (!s) {
      return s.error().with_context("event " + row.device + "#" + std::to_string(row.seq) + ": ");
    }
  }
  for (const RolloutMarkRow& row : *marks) {
    auto s = use_mark_upsert()
                 .bind(row.rollout)
                 .bind(row.device)
                 .bind(row.standing)
                 .bind(static_cast<std::int64_t>(mark_rank(row)))
                 .bind(row.failure)
                 .bind(row.offered_at)
                 .bind(row.acknowledged_at)
                 .bind(row.failed_at)
                 .run();
    if (!s) return s.error().with_context("mark " + row.rollout + "/" + row.device + ": ");
  }
  return tx.commit();
}

Result<DeviceRecord> SqliteStore::load_device(std::string_view id) {
  Tx tx(*this);  // one snapshot of the three reads
  if (auto s = tx.begin(); !s) return s.error();
  DeviceRecord record;
  {
    Use q = use(Q::kSelectDevice);
    q.bind(id);
    auto row = q.step();
    if (!row) return row.error();
    if (!*row) return make_error(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
    record.device = DeviceRow{q.text(0), q.text(1), q.text(2), q.text(3),
                              static_cast<std::int32_t>(q.integer(4)), q.integer(5)};
  }
  {
    Use q = use(Q::kSelectState);
    q.bind(id);
    auto row = q.step();
    if (!row) return row.error();
    record.state = *row ? state_of(q) : blank_state(id);
  }
  {
    Use q = use(Q::kLoadDeviceMarks);
    q.bind(id);
    auto marks = load<RolloutMarkRow>(q, &mark_of);
    if (!marks) return marks.error();
    record.marks = std::move(*marks);
  }
  if (auto s = tx.commit(); !s) return s.error();
  return record;
}

Result<std::vector<DevicePageEntry>> SqliteStore::list_devices(std::string_view after,
                                                               std::size_t limit) {
  Tx tx(*this);  // one snapshot of the four reads
  if (auto s = tx.begin(); !s) return s.error();
  std::vector<DevicePageEntry> page;
  {
    Use q = use(Q::kPageDevices);
    q.bind(after).bind(clamp_limit(limit));
    auto devices = load<DeviceRow>(q, [](const Use& u) {
      return DeviceRow{u.text(0), u.text(1), u.text(2), u.text(3),
                       static_cast<std::int32_t>(u.integer(4)), u.integer(5)};
    });
    if (!devices) return devices.error();
    for (auto& d : *devices) {
      DevicePageEntry entry;
      entry.record.state = blank_state(d.id);
      entry.record.device = std::move(d);
      page.push_back(std::move(entry));
    }
  }
  if (page.empty()) {
    if (auto s = tx.commit(); !s) return s.error();
    return page;
  }
  const std::string last = page.back().record.device.id;
  std::map<std::string, std::size_t, std::less<>> at;
  for (std::size_t i = 0; i < page.size(); ++i) at.emplace(page[i].record.device.id, i);
  {
    Use q = use(Q::kPageStates);
    q.bind(after).bind(last);
    auto states = load<DeviceStateRow>(q, &state_of);
    if (!states) return states.error();
    for (auto& st : *states) {
      if (auto it = at.find(st.device); it != at.end()) page[it->second].record.state = std::move(st);
    }
  }
  {
    Use q = use(Q::kPageMarks);
    q.bind(after).bind(last);
    auto marks = load<RolloutMarkRow>(q, &mark_of);
    if (!marks) return marks.error();
    for (auto& m : *marks) {
      if (auto it = at.find(m.device); it != at.end()) page[it->second].record.marks.push_back(std::move(m));
    }
  }
  {
    Use q = use(Q::kPageLastEvents);
    q.bind(after).bind(last);
    auto events = load<DeviceEventRow>(q, &event_of);
    if (!events) return events.error();
    for (auto& e : *events) {
      if (auto it = at.find(e.device); it != at.end()) page[it->second].last_event = std::move(e);
    }
  }
  if (auto s = tx.commit(); !s) return s.error();
  return page;
}

Result<DeviceRecord> SqliteStore::claim_device(std::string_view id, std::string_view owner,
                                               TimeMs now, const ClaimCheck& check) {
  Tx tx(*this);
  if (auto s = tx.begin(); !s) return s.error();
  DeviceRecord record;
  {
    Use q = use(Q::kSelectDevice);
    q.bind(id);
    auto row = q.step();
    if (!row) return row.error();
    if (!*row) return make_error(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
    record.device = DeviceRow{q.text(0), q.text(1), q.text(2), q.text(3),
                              static_cast<std::int32_t>(q.integer(4)), q.integer(5)};
  }
  if (check && !check(record.device)) {
    return make_error(ErrorCode::kNotFound, "device " + std::string(id) + ": the claim was refused");
  }
  {
    Use q = use(Q::kClaimState);
    q.bind(id).bind(owner).bind(now);
    auto row = q.step();
    if (!row) return row.error();
    TRANCHE_ASSERT(*row, "an upsert ... RETURNING returns its row");
    record.state = state_of(q);
  }
  {
    Use q = use(Q::kLoadDeviceMarks);
    q.bind(id);
    auto marks = load<RolloutMarkRow>(q, &mark_of);
    if (!marks) return marks.error();
    record.marks = std::move(*marks);
  }
  if (auto s = tx.commit(); !s) return s.error();
  return record;
}

Status SqliteStore::insert_rollout(const RolloutRow& row, const AuditRow& audit) {
  Tx tx(*this);
  if (auto s = tx.begin(); !s) return s;
  auto s = use(Q::kInsertRollout)
               .bind(row.id)
               .bind(row.channel)
               .bind(row.version)
               .bind(row.previous)
               .bind(row.plan_yaml)
               .bind(static_cast<std::int64_t>(row.salt))  // the bits, see 0001_init.sql
               .bind(row.status_json)
               .bind(row.gate_json)
               .bind(row.generation)
               .bind(row.created_at)
               .bind(row.updated_at)
               .run();
  if (!s) return s.error().with_context("rollout " + row.id + ": ");
  if (auto a = insert_audit(audit); !a) return a;
  return tx.commit();
}

Status SqliteStore::guard_failed(std::string_view id, std::int64_t expected_generation) {
  Use u = use(Q::kRolloutExists);
  auto exists = u.bind(id).step();
  if (!exists) return exists.error();
  if (!*exists)
    return make_error(ErrorCode::kNotFound, "rollout " + std::string(id) + " not found");
  return make_error(ErrorCode::kConflict, "rollout " + std::string(id) +
                                              ": generation is no longer " +
                                              std::to_string(expected_generation));
}

Status SqliteStore::update_rollout(const RolloutRow& row, std::int64_t expected_generation,
                                   const TransitionRow& transition, const AuditRow& audit) {
  if (auto s = check_rollout_update(row, expected_generation, transition); !s) return s;
  Tx tx(*this);
  if (auto s = tx.begin(); !s) return s;
  {
    auto s = use(Q::kUpdateRollout)
                 .bind(row.channel)
                 .bind(row.version)
                 .bind(row.previous)
                 .bind(row.plan_yaml)
                 .bind(static_cast<std::int64_t>(row.salt))
                 .bind(row.status_json)
                 .bind(row.gate_json)
                 .bind(row.generation)
                 .bind(row.created_at)
                 .bind(row.updated_at)
                 .bind(row.id)
                 .bind(expected_generation)
                 .run();
    if (!s) return s;
  }
  if (sqlite3_changes(db_.get()) == 0) return guard_failed(row.id, expected_generation);
  auto t = use(Q::kInsertTransition)
               .bind(transition.rollout)
               .bind(transition.generation)
               .bind(transition.from_state)
               .bind(transition.to_state)
               .bind(transition.event)
               .bind(transition.reason)
               .bind(transition.at)
               .run();
  if (!t) return t;
  if (auto a = insert_audit(audit); !a) return a;
  return tx.commit();
}

Status SqliteStore::save_gate(std::string_view id, std::int64_t expected_generation,
                              std::string_view gate_json, TimeMs updated_at) {
  auto s =
      use(Q::kSaveGate).bind(gate_json).bind(updated_at).bind(id).bind(expected_generation).run();
  if (!s) return s;
  if (sqlite3_changes(db_.get()) == 0) return guard_failed(id, expected_generation);
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, int migrate_to) {
  // The lock first: a second server must fail before it touches the database.
  auto lock = LockFile::take(path + ".lock");
  if (!lock) return lock.error();
  sqlite3* raw = nullptr;
  // NOMUTEX: the header's contract is one caller at a time per Store, so
  // SQLite's own per-call mutex would be pure cost.
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close_v2(raw);
    return make_error(ErrorCode::kInvalidArgument, "sqlite: cannot open " + path + ": " + message);
  }
  auto store = std::make_unique<SqliteStore>(std::move(*lock), raw);
  if (auto s = store->configure(); !s) return s.error().with_context(path + ": ");
  if (auto s = store->migrate(migrate_to); !s) return s.error().with_context(path + ": ");
  // At an older version (tests of the migration walk) the newest statements
  // name columns that are not there yet: they are prepared when first used.
  if (migrate_to == latest_schema_version()) {
    if (auto s = store->prepare_all(); !s) return s.error().with_context(path + ": ");
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tranche::store
