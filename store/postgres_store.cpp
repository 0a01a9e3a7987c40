// store::Store over PostgreSQL (libpq): one connection per Store, every value
// sent as a parameter of PQexecParams (text format), one transaction per write
// that touches more than one row, and a session advisory lock for the engine.
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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

// Advisory lock keys, fixed so that every tranche-server on one database agrees
// on them: "tranche" in ASCII and a number.
constexpr std::int64_t kEngineLockKey = 0x7472'616e'6368'6501;  // the rollout engine (session)
constexpr std::int64_t kAuditLockKey = 0x7472'616e'6368'6502;   // audit seq order (transaction)
constexpr std::int64_t kMigrationLockKey =
    0x7472'616e'6368'6503;  // schema migrations (transaction)

// Rows per multi-row INSERT in write_batch: 7 parameters a row stays far below
// the protocol's 65,535 parameters a statement.
constexpr std::size_t kRowsPerInsert = 1000;
// Rows per FETCH when loading devices and their states at start: a million rows
// never sit in one PGresult beside the vector they are copied into.
constexpr std::string_view kFetchRows = "10000";

struct ClearResult {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, ClearResult>;

struct FinishConn {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

// Text-format parameters for PQexecParams, $1 onwards in the order added.
class Params {
 public:
  Params& add(std::string_view text) {
    values_.emplace_back(text);
    return *this;
  }
  Params& add(std::int64_t value) {
    values_.push_back(std::to_string(value));
    return *this;
  }
  Params& add(std::int32_t value) { return add(static_cast<std::int64_t>(value)); }
  Params& add(bool value) { return add(std::string_view(value ? "true" : "false")); }
  std::size_t size() const { return values_.size(); }
  // Pointers into values_, valid until the next add.
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const std::string& v : values_) out.push_back(v.c_str());
    return out;
  }

 private:
  std::vector<std::string> values_;
};

// One row of a result, read by column.
class Cells {
 public:
  Cells(const PGresult* result, int row) : result_(result), row_(row) {}
  std::string text(int column) const {
    return std::string(PQgetvalue(result_, row_, column),
                       static_cast<std::size_t>(PQgetlength(result_, row_, column)));
  }
  // Integer columns are ours (BIGINT, INTEGER, SMALLINT), so text that does
  // not parse is a broken invariant, not bad input.
  std::int64_t integer(int column) const {
    const char* begin = PQgetvalue(result_, row_, column);
    const char* end = begin + PQgetlength(result_, row_, column);
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, value);
    TRANCHE_ASSERT(ec == std::errc() && ptr == end, "integer column holds no integer");
    return value;
  }
  bool boolean(int column) const { return PQgetvalue(result_, row_, column)[0] == 't'; }

 private:
  const PGresult* result_;
  int row_;
};

std::int64_t clamp_limit(std::size_t limit) {
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return static_cast<std::int64_t>(limit < kMax ? limit : kMax);
}

// "($1, $2, $3), ($4, $5, $6)" for rows × columns, numbered from `first`.
std::string value_rows(std::size_t rows, std::size_t columns) {
  std::string out;
  std::size_t n = 1;
  for (std::size_t r = 0; r < rows; ++r) {
    out.append(r == 0 ? "(" : ", (");
    for (std::size_t c = 0; c < columns; ++c) {
      if (c != 0) out.append(", ");
      // append, not "$" + to_string(): GCC 12 at -O3 reports a false -Wrestrict
      // on the temporary concatenation.
      out.push_back('$');
      out.append(std::to_string(n++));
    }
    out += ")";
  }
  return out;
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(PGconn* conn) : conn_(conn) {}

  Status configure();
  Status migrate(int target);

  // --- TenantStore ---
  Status put_tenant(const TenantRow& row, const AuditRow& audit) override {
    return audited(audit, [&] {
      return run(
          "INSERT INTO tenants (id, enrollment_key_hash, policy_json) VALUES ($1, $2, $3) "
          "ON CONFLICT (id) DO UPDATE SET enrollment_key_hash = EXCLUDED.enrollment_key_hash, "
          "policy_json = EXCLUDED.policy_json",
          Params().add(row.id).add(row.enrollment_key_hash).add(row.policy_json));
    });
  }
  Result<std::vector<TenantRow>> load_tenants() override {
    return load<TenantRow>("SELECT id, enrollment_key_hash, policy_json FROM tenants ORDER BY id",
                           Params(), [](const Cells& c) {
                             return TenantRow{c.text(0), c.text(1), c.text(2)};
                           });
  }
  Status put_operator_token(const OperatorTokenRow& row, const AuditRow& audit) override {
    return audited(audit, [&] {
      return run(
          "INSERT INTO operator_tokens (token_hash, name, role, created_at) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT (token_hash) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role",
          Params().add(row.token_hash).add(row.name).add(static_cast<std::int64_t>(row.role)).add(row.created_at));
    });
  }
  Result<std::vector<OperatorTokenRow>> load_operator_tokens() override {
    // The role column's CHECK keeps it in 0..2.
    return load<OperatorTokenRow>(
        "SELECT token_hash, name, role, created_at FROM operator_tokens ORDER BY name, token_hash", Params(),
        [](const Cells& c) {
          return OperatorTokenRow{c.text(0), c.text(1), static_cast<Role>(c.integer(2)), c.integer(3)};
        });
  }
  Status delete_operator_tokens(std::string_view name, const AuditRow& audit) override {
    return audited(audit, [&]() -> Status {
      auto r = exec("DELETE FROM operator_tokens WHERE name = $1", Params().add(name), "operator token");
      if (!r) return r.error();
      if (affected(r->get()) == 0) {
        return make_error(ErrorCode::kNotFound, "no operator token is named '" + std::string(name) + "'");
      }
      return Ok{};
    });
  }

  // --- DeviceStore ---
  Status insert_device(const DeviceRow& row) override {
    return run(
        "INSERT INTO devices (id, tenant, token_hash, tags_json, utc_offset_minutes, "
        "enrolled_at) VALUES ($1, $2, $3, $4, $5, $6)",
        Params()
            .add(row.id)
            .add(row.tenant)
            .add(row.token_hash)
            .add(row.tags_json)
            .add(row.utc_offset_minutes)
            .add(row.enrolled_at));
  }
  Status insert_devices(const std::vector<DeviceRow>& rows, const AuditRow& audit) override {
    return audited(audit, [&]() -> Status {
      for (const DeviceRow& row : rows) {
        if (auto s = insert_device(row); !s) {
          return core::Status(s.error().with_context("device " + row.id + ": "));
        }
      }
      return Ok{};
    });
  }
  Result<std::vector<DeviceRow>> load_devices() override {
    return load_by_cursor<DeviceRow>(
        "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices",
        [](const Cells& c) {
          return DeviceRow{
              c.text(0),   c.text(1), c.text(2), c.text(3), static_cast<std::int32_t>(c.integer(4)),
              c.integer(5)};
        });
  }
  Result<std::vector<DeviceStateRow>> load_device_states() override {
    return load_by_cursor<DeviceStateRow>(
        "SELECT " + std::string(kStateColumns) + " FROM device_states", &state_of);
  }
  Result<std::vector<RolloutMarkRow>> load_marks() override {
    return load_by_cursor<RolloutMarkRow>(
        "SELECT " + std::string(kMarkColumns) + " FROM rollout_marks", &mark_of);
  }
  Result<std::int64_t> count_devices() override {
    auto r = exec("SELECT count(*) FROM devices", Params(), "count devices");
    if (!r) return r.error();
    return Cells(r->get(), 0).integer(0);
  }
  Result<std::vector<std::pair<core::Tags, std::uint64_t>>> count_devices_by_tags(
      const std::vector<std::string>& keys) override {
    // Per key its value and whether the device has it; the keys go as parameters.
    std::string columns;
    Params params;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string p = "$" + std::to_string(i + 1) + "::text";
      columns += "tags_json::jsonb ->> " + p + ", tags_json::jsonb ? " + p + ", ";
      params.add(keys[i]);
    }
    std::string groups;
    for (std::size_t i = 1; i <= 2 * keys.size(); ++i) groups += (i > 1 ? ", " : "") + std::to_string(i);
    const std::size_t n = keys.size();
    return load<std::pair<core::Tags, std::uint64_t>>(
        "SELECT " + columns + "count(*) FROM devices GROUP BY " + groups, params,
        [&keys, n](const Cells& c) {
          std::pair<core::Tags, std::uint64_t> group;
          for (std::size_t i = 0; i < n; ++i) {
            if (c.text(static_cast<int>(2 * i + 1)) == "t") group.first[keys[i]] = c.text(static_cast<int>(2 * i));
          }
          group.second = static_cast<std::uint64_t>(c.integer(static_cast<int>(2 * n)));
          return group;
        });
  }
  Status write_device_batch(const DeviceBatch& batch) override;
  Result<DeviceRecord> load_device(std::string_view id) override;
  Result<DeviceRecord> claim_device(std::string_view id, std::string_view owner, TimeMs now,
                                    const ClaimCheck& check) override;
  Result<std::vector<ClaimRow>> load_claims(TimeMs since, std::size_t limit) override {
    return load<ClaimRow>(
        "SELECT device, owner, owner_since FROM device_states WHERE owner_since > $1 "
        "ORDER BY owner_since LIMIT $2",
        Params().add(since).add(clamp_limit(limit)),
        [](const Cells& c) { return ClaimRow{c.text(0), c.text(1), c.integer(2)}; });
  }
  Status beat_server(std::string_view id, TimeMs now) override {
    return run(
        "INSERT INTO servers (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET "
        "seen_at = GREATEST(servers.seen_at, EXCLUDED.seen_at)",
        Params().add(id).add(now), "server heartbeat");
  }
  Result<std::vector<std::string>> find_orphans(std::string_view self, TimeMs alive_since,
                                                std::size_t limit) override {
    if (auto s = run("DELETE FROM servers WHERE seen_at < $1 AND id <> $2 AND NOT EXISTS "
                     "(SELECT 1 FROM device_states WHERE device_states.owner = servers.id)",
                     Params().add(alive_since).add(self), "forget stopped servers");
        !s) {
      return s.error();
    }
    return load<std::string>(
        "SELECT device FROM device_states WHERE owner = '' OR owner IN "
        "(SELECT id FROM servers WHERE seen_at < $2 AND id <> $1) LIMIT $3",
        Params().add(self).add(alive_since).add(clamp_limit(limit)),
        [](const Cells& c) { return c.text(0); });
  }
  Result<std::vector<DeviceEventRow>> load_events(std::string_view device,
                                                  std::size_t limit) override {
    // The newest `limit`, returned oldest first.
    return load<DeviceEventRow>(
        "SELECT device, seq, kind, channel, version, detail_json, at FROM "
        "(SELECT * FROM device_events WHERE device = $1 ORDER BY seq DESC LIMIT $2) AS newest "
        "ORDER BY seq",
        Params().add(device).add(clamp_limit(limit)), [](const Cells& c) {
          return DeviceEventRow{c.text(0), c.integer(1), c.text(2),   c.text(3),
                                c.text(4), c.text(5),    c.integer(6)};
        });
  }

  Result<std::vector<DeviceEventRow>> load_events_before(std::string_view device,
                                                         std::int64_t before_seq,
                                                         std::size_t limit) override {
    return load<DeviceEventRow>(
        "SELECT " + std::string(kEventColumns) +
            " FROM device_events WHERE device = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        Params().add(device).add(before_seq).add(clamp_limit(limit)), &event_of);
  }
  Result<std::vector<DevicePageEntry>> list_devices(std::string_view after,
                                                    std::size_t limit) override;
  Result<std::vector<RolloutDeviceEntry>> list_rollout_devices(std::string_view rollout, int rank,
                                                               std::string_view channel,
                                                               std::string_view version,
                                                               std::string_view after,
                                                               std::size_t limit) override {
    return load<RolloutDeviceEntry>(
        "SELECT m.rollout, m.device, m.standing, m.failure, m.offered_at, m.acknowledged_at, "
        "m.failed_at, COALESCE(e.device, ''), COALESCE(e.seq, 0), COALESCE(e.kind, ''), "
        "COALESCE(e.channel, ''), COALESCE(e.version, ''), COALESCE(e.detail_json, ''), "
        "COALESCE(e.at, 0) FROM rollout_marks m LEFT JOIN device_events e ON e.device = m.device "
        "AND e.seq = (SELECT max(x.seq) FROM device_events x WHERE x.device = m.device "
        "AND x.channel = $1 AND x.version = $2) "
        "WHERE m.rollout = $3 AND m.rank = $4 AND m.device > $5 ORDER BY m.device LIMIT $6",
        Params().add(channel).add(version).add(rollout).add(static_cast<std::int64_t>(rank)).add(after).add(
            clamp_limit(limit)),
        [](const Cells& c) {
          RolloutDeviceEntry entry{mark_of(c), std::nullopt};
          if (!c.text(7).empty()) {
            entry.last_event = DeviceEventRow{c.text(7),  c.integer(8), c.text(9),    c.text(10),
                                              c.text(11), c.text(12),   c.integer(13)};
          }
          return entry;
        });
  }

  // --- ReleaseStore ---
  Status insert_release(const ReleaseRow& row, const AuditRow& audit) override {
    return audited(audit, [&] {
      return run(
          "INSERT INTO releases (channel, version, targets_json, contract_bypassed, "
          "registered_at) VALUES ($1, $2, $3, $4, $5)",
          Params()
              .add(row.channel)
              .add(row.version)
              .add(row.targets_json)
              .add(row.contract_bypassed)
              .add(row.registered_at));
    });
  }
  Result<std::vector<ReleaseRow>> load_releases() override {
    return load<ReleaseRow>(
        "SELECT channel, version, targets_json, contract_bypassed, registered_at FROM releases "
        "ORDER BY registered_at, channel, version",
        Params(), [](const Cells& c) {
          return ReleaseRow{c.text(0), c.text(1), c.text(2), c.boolean(3), c.integer(4)};
        });
  }

  // --- RolloutStore ---
  Status insert_rollout(const RolloutRow& row, const AuditRow& audit) override;
  Status update_rollout(const RolloutRow& row, std::int64_t expected_generation,
                        const TransitionRow& transition, const AuditRow& audit) override;
  Status save_gate(std::string_view id, std::int64_t expected_generation,
                   std::string_view gate_json, TimeMs updated_at) override;
  Result<std::vector<RolloutRow>> load_rollouts() override {
    return load<RolloutRow>(
        "SELECT id, channel, version, previous, plan_yaml, salt, status_json, gate_json, "
        "generation, created_at, updated_at FROM rollouts ORDER BY created_at, id",
        Params(), [](const Cells& c) {
          return RolloutRow{c.text(0),    c.text(1),    c.text(2),
                            c.text(3),    c.text(4),    static_cast<std::uint64_t>(c.integer(5)),
                            c.text(6),    c.text(7),    c.integer(8),
                            c.integer(9), c.integer(10)};
        });
  }
  Result<std::vector<TransitionRow>> load_transitions(std::string_view rollout) override {
    return load<TransitionRow>(
        "SELECT rollout, generation, from_state, to_state, event, reason, at "
        "FROM rollout_transitions WHERE rollout = $1 ORDER BY generation",
        Params().add(rollout), [](const Cells& c) {
          return TransitionRow{c.text(0), c.integer(1), c.text(2),   c.text(3),
                               c.text(4), c.text(5),    c.integer(6)};
        });
  }

  // --- EvidenceStore ---
  Status save_exposure(const ExposureRow& row) override {
    return run(
        "INSERT INTO rollout_exposure (rollout, server, exposed_ms, control_ms, coverage_target, "
        "coverage_running, online_on_version, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (rollout, server) DO UPDATE SET "
        "exposed_ms = GREATEST(rollout_exposure.exposed_ms, EXCLUDED.exposed_ms), "
        "control_ms = GREATEST(rollout_exposure.control_ms, EXCLUDED.control_ms), "
        "coverage_target = EXCLUDED.coverage_target, coverage_running = EXCLUDED.coverage_running, "
        "online_on_version = EXCLUDED.online_on_version, updated_at = EXCLUDED.updated_at "
        "WHERE EXCLUDED.updated_at >= rollout_exposure.updated_at",
        Params()
            .add(row.rollout)
            .add(row.server)
            .add(row.exposed_ms)
            .add(row.control_ms)
            .add(row.coverage_target)
            .add(row.coverage_running)
            .add(row.online_on_version)
            .add(row.updated_at),
        "save exposure");
  }
  Result<EvidenceSums> load_evidence(std::string_view rollout, TimeMs fresh_since) override {
    EvidenceSums sums;
    auto counts = load<StandingCount>(
        "SELECT standing, failure, count(*) FROM rollout_marks WHERE rollout = $1 "
        "GROUP BY standing, failure ORDER BY standing, failure",
        Params().add(rollout),
        [](const Cells& c) { return StandingCount{c.text(0), c.text(1), c.integer(2)}; });
    if (!counts) return counts.error();
    sums.counts = std::move(*counts);
    auto r = exec(
        "SELECT COALESCE(sum(exposed_ms), 0), COALESCE(sum(control_ms), 0), "
        "COALESCE(sum(coverage_target) FILTER (WHERE updated_at >= $2), 0), "
        "COALESCE(sum(coverage_running) FILTER (WHERE updated_at >= $2), 0), "
        "COALESCE(sum(online_on_version) FILTER (WHERE updated_at >= $2), 0) "
        "FROM rollout_exposure WHERE rollout = $1",
        Params().add(rollout).add(fresh_since), "load exposure");
    if (!r) return r.error();
    const Cells c(r->get(), 0);
    sums.exposed_ms = c.integer(0);
    sums.control_ms = c.integer(1);
    sums.coverage_target = c.integer(2);
    sums.coverage_running = c.integer(3);
    sums.online_on_version = c.integer(4);
    return sums;
  }

  // --- AuditStore ---
  Status append_audit(const AuditRow& row) override {
    if (auto s = begin(); !s) return s;
    if (auto s = insert_audit(row); !s) return rollback(s);
    return commit();
  }
  Result<std::vector<AuditRow>> load_audit(std::int64_t after_seq, std::size_t limit) override {
    return load<AuditRow>(
        "SELECT seq, at, actor, action, target, reason FROM audit WHERE seq > $1 "
        "ORDER BY seq LIMIT $2",
        Params().add(after_seq).add(clamp_limit(limit)), [](const Cells& c) {
          return AuditRow{c.integer(0), c.integer(1), c.text(2), c.text(3), c.text(4), c.text(5)};
        });
  }

  // --- EngineLock ---
  Result<bool> try_acquire_engine_lock() override;

  // --- Store ---
  Result<int> schema_version() override {
    auto r =
        exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", Params(), "schema version");
    if (!r) return r.error();
    return static_cast<int>(Cells(r->get(), 0).integer(0));
  }
  std::string_view backend() const override { return "postgres"; }

 private:
  // Runs one statement. Errors carry the server's SQLSTATE as a code:
  // unique_violation → kConflict (the header's contract), any other integrity
  // violation → kInvalidArgument, the rest → kInternal with the server's text.
  Result<PgResult> exec(std::string_view sql, const Params& params, std::string_view what = {}) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      // Inside a transaction the work so far is gone with the old session: a
      // new one must not run the rest (a COMMIT there would "succeed").
      if (in_tx_ || !reconnect()) return unavailable(what.empty() ? sql.substr(0, 24) : what);
    }
    const std::string text(sql);
    const std::vector<const char*> values = params.pointers();
    PgResult r(PQexecParams(conn_.get(), text.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
    const ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    return error(r.get(), what.empty() ? sql.substr(0, sql.find(' ', 7)) : what);
  }
  // After the server went away (restart, failover, network): a new session,
  // tried at most once per backoff step (100 ms doubling to 5 s), so a server
  // whose database is down neither spins nor waits long on each request.
  bool reconnect() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_reconnect_) return false;
    PQreset(conn_.get());
    holds_engine_lock_ = false;  // a lock of the old session went with it
    if (PQstatus(conn_.get()) == CONNECTION_OK) {
      reconnect_backoff_ = kFirstReconnectBackoff;
      next_reconnect_ = {};
      PQsetNoticeProcessor(conn_.get(), [](void*, const char*) {}, nullptr);
      PgResult r(PQexec(conn_.get(), "SET synchronous_commit = on"));
      return r && PQresultStatus(r.get()) == PGRES_COMMAND_OK;
    }
    next_reconnect_ = now + reconnect_backoff_;
    reconnect_backoff_ = std::min(reconnect_backoff_ * 2, kMaxReconnectBackoff);
    return false;
  }
  Error unavailable(std::string_view what) const {
    std::string message = PQerrorMessage(conn_.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return make_error(ErrorCode::kUnavailable,
                      "postgres: " + std::string(what) + ": no connection to the database (" +
                          (message.empty() ? std::string("reconnecting") : message) + ")");
  }
  Status run(std::string_view sql, const Params& params, std::string_view what = {}) {
    auto r = exec(sql, params, what);
    if (!r) return r.error();
    return Ok{};
  }
  Error error(const PGresult* r, std::string_view what) const {
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary = r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    const char* detail = r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : nullptr;
    // No result fields: the connection failed; libpq's own message says how.
    std::string message = "postgres: " + std::string(what) + ": " +
                          (primary != nullptr ? primary : PQerrorMessage(conn_.get()));
    if (detail != nullptr) message += std::string(" (") + detail + ")";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    const std::string_view code = state != nullptr ? state : "";
    // The connection is gone, the server is shutting down or starting, or out
    // of disk or memory: retry later, not the caller's fault.
    if (PQstatus(conn_.get()) != CONNECTION_OK || code.starts_with("08") ||
        code.starts_with("57P") || code.starts_with("53")) {
      return make_error(ErrorCode::kUnavailable, std::move(message));
    }
    if (code == "23505") return make_error(ErrorCode::kConflict, std::move(message));
    if (code.starts_with("23")) return make_error(ErrorCode::kInvalidArgument, std::move(message));
    return make_error(ErrorCode::kInternal, std::move(message));
  }

  Status begin() {
    auto s = run("BEGIN", Params());
    in_tx_ = s.ok();
    return s;
  }
  Status commit() {
    auto s = run("COMMIT", Params());
    in_tx_ = false;
    return s;
  }
  // Rolls back and returns the error that made it necessary. A failed ROLLBACK
  // changes nothing for the caller: the transaction is lost either way.
  Status rollback(const Status& cause) {
    in_tx_ = false;
    if (PQstatus(conn_.get()) == CONNECTION_OK) (void)run("ROLLBACK", Params());
    return cause;
  }
  // Rows an INSERT, UPDATE or DELETE touched.
  static std::int64_t affected(PGresult* r) {
    const std::string_view text = PQcmdTuples(r);
    std::int64_t n = 0;
    std::from_chars(text.data(), text.data() + text.size(), n);
    return n;
  }

  template <typename Row, typename Read>
  Result<std::vector<Row>> load(std::string_view sql, const Params& params, Read read) {
    auto r = exec(sql, params);
    if (!r) return r.error();
    std::vector<Row> rows;
    const int n = PQntuples(r->get());
    rows.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) rows.push_back(read(Cells(r->get(), i)));
    return rows;
  }
  template <typename Row, typename Read>
  Result<std::vector<Row>> load_by_cursor(std::string_view select, Read read);

  // Within the caller's transaction: the audit lock, held to commit, makes seqs
  // commit in the order the sequence hands them out (0001_init.sql).
  Status insert_audit(const AuditRow& row) {
    if (auto s = run("SELECT pg_advisory_xact_lock($1::bigint)", Params().add(kAuditLockKey)); !s) {
      return s;
    }
    return run("INSERT INTO audit (at, actor, action, target, reason) VALUES ($1, $2, $3, $4, $5)",
               Params().add(row.at).add(row.actor).add(row.action).add(row.target).add(row.reason));
  }
  Status guard_failed(std::string_view id, std::int64_t expected_generation);

  // `action` and the audit row in one transaction: both or neither.
  template <typename Action>
  Status audited(const AuditRow& audit, Action action) {
    if (auto s = begin(); !s) return s;
    if (auto s = action(); !s) return rollback(s);
    if (auto s = insert_audit(audit); !s) return rollback(s);
    return commit();
  }
  static constexpr std::string_view kStateColumns =
      "device, versions_json, failed_json, health_json, last_seen, said_goodbye, "
      "last_event_seq, owner, owner_since, revision";
  static DeviceStateRow state_of(const Cells& c) {
    return DeviceStateRow{c.text(0),    c.text(1),    c.text(2), c.text(3),
                          c.integer(4), c.boolean(5), c.integer(6), c.text(7),
                          c.integer(8), c.integer(9)};
  }
  static constexpr std::string_view kEventColumns =
      "device, seq, kind, channel, version, detail_json, at";
  static DeviceEventRow event_of(const Cells& c) {
    return DeviceEventRow{c.text(0), c.integer(1), c.text(2),   c.text(3),
                          c.text(4), c.text(5),    c.integer(6)};
  }
  static constexpr std::string_view kMarkColumns =
      "rollout, device, standing, failure, offered_at, acknowledged_at, failed_at";
  static RolloutMarkRow mark_of(const Cells& c) {
    return RolloutMarkRow{c.text(0),    c.text(1),    c.text(2),   c.text(3),
                          c.integer(4), c.integer(5), c.integer(6)};
  }

  static constexpr std::chrono::milliseconds kFirstReconnectBackoff{100};
  static constexpr std::chrono::milliseconds kMaxReconnectBackoff{5000};

  std::unique_ptr<PGconn, FinishConn> conn_;
  bool holds_engine_lock_ = false;
  bool in_tx_ = false;  // between a BEGIN that succeeded and its COMMIT or ROLLBACK
  std::chrono::steady_clock::time_point next_reconnect_{};
  std::chrono::milliseconds reconnect_backoff_ = kFirstReconnectBackoff;
};

Status PostgresStore::configure() {
  // NOTICEs ("relation already exists, skipping") would go to stderr.
  PQsetNoticeProcessor(
      conn_.get(), [](void*, const char*) {}, nullptr);
  // synchronous_commit=on whatever the server's default: COMMIT returns only
  // once the commit record is flushed, so what the server acknowledges survives
  // a crash of the database machine.
  return run("SET synchronous_commit = on", Params());
}

// One transaction per version, under a transaction-level advisory lock: two
// servers starting together on an empty database apply each migration once,
// the second finding it done when it gets the lock.
Status PostgresStore::migrate(int target) {
  const auto migrations = postgres_migrations();
  for (;;) {
    if (auto s = begin(); !s) return s;
    if (auto s = run("SELECT pg_advisory_xact_lock($1::bigint)", Params().add(kMigrationLockKey));
        !s) {
      return rollback(s);
    }
    if (auto s = run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                     Params());
        !s) {
      return rollback(s);
    }
    auto current = schema_version();
    if (!current) return rollback(current.error());
    if (*current > latest_schema_version()) return rollback(schema_too_new(*current));
    if (*current >= target) return commit();
    const Migration& m = migrations[static_cast<std::size_t>(*current)];  // version current + 1
    // PQexec, not PQexecParams: a migration is several statements of our own
    // text, which only the simple query protocol runs in one call.
    PgResult r(PQexec(conn_.get(), std::string(m.sql).c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      return rollback(error(r.get(), "migration " + std::string(m.name)));
    }
    if (auto s = run("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                     Params().add(static_cast<std::int64_t>(m.version)).add(m.name));
        !s) {
      return rollback(s);
    }
    if (auto s = commit(); !s) return s;
  }
}

template <typename Row, typename Read>
Result<std::vector<Row>> PostgresStore::load_by_cursor(std::string_view select, Read read) {
  if (auto s = begin(); !s) return s.error();
  if (auto s = run("DECLARE rows NO SCROLL CURSOR FOR " + std::string(select), Params()); !s) {
    return rollback(s).error();
  }
  std::vector<Row> rows;
  const std::string fetch = "FETCH FORWARD " + std::string(kFetchRows) + " FROM rows";
  for (;;) {
    auto r = exec(fetch, Params());
    if (!r) return rollback(r.error()).error();
    const int n = PQntuples(r->get());
    if (n == 0) break;
    for (int i = 0; i < n; ++i) rows.push_back(read(Cells(r->get(), i)));
  }
  // COMMIT closes the cursor.
  if (auto s = commit(); !s) return s.error();
  return rows;
}

Status PostgresStore::write_device_batch(const DeviceBatch& batch) {
  const auto& states = batch.states;
  const auto& events = batch.events;
  if (states.empty() && events.empty() && batch.marks.empty()) return Ok{};
  // One INSERT ... ON CONFLICT DO UPDATE may not touch a row twice, so a device
  // that appears twice in the batch keeps only its highest revision (the last
  // of equals: what a sequence of single upserts would leave), and a mark only
  // its merge.
  std::vector<const DeviceStateRow*> unique;
  unique.reserve(states.size());
  {
    std::unordered_map<std::string_view, std::size_t> slot;
    slot.reserve(states.size());
    for (const DeviceStateRow& row : states) {
      const auto [it, inserted] = slot.try_emplace(row.device, unique.size());
      if (inserted) {
        unique.push_back(&row);
      } else if (row.revision >= unique[it->second]->revision) {
        unique[it->second] = &row;
      }
    }
  }
  auto merged = merge_marks(batch.marks);
  if (!merged) return merged.error();
  const std::vector<RolloutMarkRow>& marks = *merged;
  if (auto s = begin(); !s) return s;
  for (std::size_t first = 0; first < unique.size(); first += kRowsPerInsert) {
    const std::size_t n = std::min(kRowsPerInsert, unique.size() - first);
    Params params;
    for (std::size_t i = first; i < first + n; ++i) {
      const DeviceStateRow& row = *unique[i];
      params.add(row.device)
          .add(row.versions_json)
          .add(row.failed_json)
          .add(row.health_json)
          .add(row.last_seen)
          .add(row.said_goodbye)
          .add(row.last_event_seq)
          .add(row.owner)
          .add(row.owner_since)
          .add(row.revision);
    }
    // A row at the same or a higher revision stays: it is newer than ours.
    const std::string sql =
        "INSERT INTO device_states (" + std::string(kStateColumns) + ") VALUES " +
        value_rows(n, 10) +
        " ON CONFLICT (device) DO UPDATE SET versions_json = EXCLUDED.versions_json, "
        "failed_json = EXCLUDED.failed_json, health_json = EXCLUDED.health_json, "
        "last_seen = EXCLUDED.last_seen, said_goodbye = EXCLUDED.said_goodbye, "
        "last_event_seq = EXCLUDED.last_event_seq, owner = EXCLUDED.owner, "
        "owner_since = EXCLUDED.owner_since, revision = EXCLUDED.revision "
        "WHERE EXCLUDED.revision > device_states.revision";
    if (auto s = run(sql, params, "device states"); !s) return rollback(s);
  }
  for (std::size_t first = 0; first < events.size(); first += kRowsPerInsert) {
    const std::size_t n = std::min(kRowsPerInsert, events.size() - first);
    Params params;
    for (std::size_t i = first; i < first + n; ++i) {
      const DeviceEventRow& row = events[i];
      params.add(row.device)
          .add(row.seq)
          .add(row.kind)
          .add(row.channel)
          .add(row.version)
          .add(row.detail_json)
          .add(row.at);
    }
    // (device, seq) stored already: the same event, sent again (here or to
    // another server) after an answer was lost.
    const std::string sql =
        "INSERT INTO device_events (device, seq, kind, channel, version, detail_json, at) "
        "VALUES " +
        value_rows(n, 7) + " ON CONFLICT (device, seq) DO NOTHING";
    if (auto s = run(sql, params, "device events"); !s) return rollback(s);
  }
  for (std::size_t first = 0; first < marks.size(); first += kRowsPerInsert) {
    const std::size_t n = std::min(kRowsPerInsert, marks.size() - first);
    Params params;
    for (std::size_t i = first; i < first + n; ++i) {
      const RolloutMarkRow& row = marks[i];
      params.add(row.rollout)
          .add(row.device)
          .add(row.standing)
          .add(static_cast<std::int64_t>(mark_rank(row)))
          .add(row.failure)
          .add(row.offered_at)
          .add(row.acknowledged_at)
          .add(row.failed_at);
    }
    const std::string sql =
        "INSERT INTO rollout_marks (rollout, device, standing, rank, failure, offered_at, "
        "acknowledged_at, failed_at) VALUES " +
        value_rows(n, 8) + " ON CONFLICT (rollout, device) DO UPDATE SET " +
        merge_mark_set_sql() + " WHERE EXCLUDED.rank > rollout_marks.rank";
    if (auto s = run(sql, params, "rollout marks"); !s) return rollback(s);
  }
  return commit();
}

Result<std::vector<DevicePageEntry>> PostgresStore::list_devices(std::string_view after,
                                                                 std::size_t limit) {
  if (auto s = begin(); !s) return s.error();  // one snapshot of the four reads
  auto devices = load<DeviceRow>(
      "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices "
      "WHERE id > $1 ORDER BY id LIMIT $2",
      Params().add(after).add(clamp_limit(limit)), [](const Cells& c) {
        return DeviceRow{c.text(0), c.text(1), c.text(2), c.text(3),
                         static_cast<std::int32_t>(c.integer(4)), c.integer(5)};
      });
  if (!devices) return rollback(devices.error()).error();
  std::vector<DevicePageEntry> page;
  for (auto& d : *devices) {
    DevicePageEntry entry;
    entry.record.state = blank_state(d.id);
    entry.record.device = std::move(d);
    page.push_back(std::move(entry));
  }
  if (page.empty()) {
    if (auto s = commit(); !s) return s.error();
    return page;
  }
  const std::string last = page.back().record.device.id;
  std::map<std::string, std::size_t, std::less<>> at;
  for (std::size_t i = 0; i < page.size(); ++i) at.emplace(page[i].record.device.id, i);
  auto states = load<DeviceStateRow>(
      "SELECT " + std::string(kStateColumns) + " FROM device_states WHERE device > $1 AND device <= $2",
      Params().add(after).add(last), &state_of);
  if (!states) return rollback(states.error()).error();
  for (auto& st : *states) {
    if (auto it = at.find(st.device); it != at.end()) page[it->second].record.state = std::move(st);
  }
  auto marks = load<RolloutMarkRow>(
      "SELECT " + std::string(kMarkColumns) + " FROM rollout_marks WHERE device > $1 AND device <= $2",
      Params().add(after).add(last), &mark_of);
  if (!marks) return rollback(marks.error()).error();
  for (auto& m : *marks) {
    if (auto it = at.find(m.device); it != at.end()) page[it->second].record.marks.push_back(std::move(m));
  }
  auto events = load<DeviceEventRow>(
      "SELECT e.device, e.seq, e.kind, e.channel, e.version, e.detail_json, e.at "
      "FROM devices d JOIN device_events e ON e.device = d.id WHERE d.id > $1 AND d.id <= $2 AND "
      "e.seq = (SELECT max(x.seq) FROM device_events x WHERE x.device = d.id)",
      Params().add(after).add(last), &event_of);
  if (!events) return rollback(events.error()).error();
  for (auto& e : *events) {
    if (auto it = at.find(e.device); it != at.end()) page[it->second].last_event = std::move(e);
  }
  if (auto s = commit(); !s) return s.error();
  return page;
}

Result<DeviceRecord> PostgresStore::load_device(std::string_view id) {
  if (auto s = begin(); !s) return s.error();  // one snapshot of the three reads
  auto device = exec(
      "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices "
      "WHERE id = $1",
      Params().add(id), "load device");
  if (!device) return rollback(device.error()).error();
  if (PQntuples(device->get()) == 0) {
    (void)rollback(Ok{});
    return make_error(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
  }
  DeviceRecord record;
  {
    const Cells c(device->get(), 0);
    record.device = DeviceRow{c.text(0), c.text(1), c.text(2), c.text(3),
                              static_cast<std::int32_t>(c.integer(4)), c.integer(5)};
  }
  auto state = exec("SELECT " + std::string(kStateColumns) + " FROM device_states WHERE device = $1",
                    Params().add(id), "load device");
  if (!state) return rollback(state.error()).error();
  record.state = PQntuples(state->get()) == 0 ? blank_state(id) : state_of(Cells(state->get(), 0));
  auto marks = load<RolloutMarkRow>(
      "SELECT " + std::string(kMarkColumns) + " FROM rollout_marks WHERE device = $1",
      Params().add(id), &mark_of);
  if (!marks) return rollback(marks.error()).error();
  record.marks = std::move(*marks);
  if (auto s = commit(); !s) return s.error();
  return record;
}

Result<DeviceRecord> PostgresStore::claim_device(std::string_view id, std::string_view owner,
                                                 TimeMs now, const ClaimCheck& check) {
  if (auto s = begin(); !s) return s.error();
  auto device = exec(
      "SELECT id, tenant, token_hash, tags_json, utc_offset_minutes, enrolled_at FROM devices "
      "WHERE id = $1",
      Params().add(id), "claim device");
  if (!device) return rollback(device.error()).error();
  if (PQntuples(device->get()) == 0) {
    (void)rollback(Ok{});
    return make_error(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
  }
  DeviceRecord record;
  {
    const Cells c(device->get(), 0);
    record.device = DeviceRow{c.text(0), c.text(1), c.text(2), c.text(3),
                              static_cast<std::int32_t>(c.integer(4)), c.integer(5)};
  }
  if (check && !check(record.device)) {
    (void)rollback(Ok{});
    return make_error(ErrorCode::kNotFound, "device " + std::string(id) + ": the claim was refused");
  }
  // The next claim count, low bits zero (DeviceStateRow::revision).
  auto state = exec(
      "INSERT INTO device_states (" + std::string(kStateColumns) +
          ") VALUES ($1, '{}', '{}', '{}', 0, false, 0, $2, $3, $4) "
          "ON CONFLICT (device) DO UPDATE SET owner = EXCLUDED.owner, "
          "owner_since = EXCLUDED.owner_since, "
          "revision = ((device_states.revision >> 32) + 1) << 32 RETURNING " +
          std::string(kStateColumns),
      Params().add(id).add(owner).add(now).add(std::int64_t{1} << 32), "claim device");
  if (!state) return rollback(state.error()).error();
  record.state = state_of(Cells(state->get(), 0));
  auto marks = load<RolloutMarkRow>(
      "SELECT " + std::string(kMarkColumns) + " FROM rollout_marks WHERE device = $1",
      Params().add(id), &mark_of);
  if (!marks) return rollback(marks.error()).error();
  record.marks = std::move(*marks);
  if (auto s = commit(); !s) return s.error();
  return record;
}

Status PostgresStore::insert_rollout(const RolloutRow& row, const AuditRow& audit) {
  if (auto s = begin(); !s) return s;
  auto s =
      run("INSERT INTO rollouts (id, channel, version, previous, plan_yaml, salt, "
          "status_json, gate_json, generation, created_at, updated_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
          Params()
              .add(row.id)
              .add(row.channel)
              .add(row.version)
              .add(row.previous)
              .add(row.plan_yaml)
              .add(static_cast<std::int64_t>(row.salt))  // the bits, see 0001_init.sql
              .add(row.status_json)
              .add(row.gate_json)
              .add(row.generation)
              .add(row.created_at)
              .add(row.updated_at),
          "rollout " + row.id);
  if (!s) return rollback(s);
  if (auto a = insert_audit(audit); !a) return rollback(a);
  return commit();
}

Status PostgresStore::guard_failed(std::string_view id, std::int64_t expected_generation) {
  auto r = exec("SELECT 1 FROM rollouts WHERE id = $1", Params().add(id));
  if (!r) return r.error();
  if (PQntuples(r->get()) == 0) {
    return make_error(ErrorCode::kNotFound, "rollout " + std::string(id) + " not found");
  }
  return make_error(ErrorCode::kConflict, "rollout " + std::string(id) +
                                              ": generation is no longer " +
                                              std::to_string(expected_generation));
}

// READ COMMITTED is enough for the guard: a second UPDATE of the same row waits
// for the first to commit, then re-checks `generation = $expected` against the
// committed row and matches nothing.
Status PostgresStore::update_rollout(const RolloutRow& row, std::int64_t expected_generation,
                                     const TransitionRow& transition, const AuditRow& audit) {
  if (auto s = check_rollout_update(row, expected_generation, transition); !s) return s;
  if (auto s = begin(); !s) return s;
  auto r = exec(
      "UPDATE rollouts SET channel = $1, version = $2, previous = $3, plan_yaml = $4, "
      "salt = $5, status_json = $6, gate_json = $7, generation = $8, created_at = $9, "
      "updated_at = $10 WHERE id = $11 AND generation = $12",
      Params()
          .add(row.channel)
          .add(row.version)
          .add(row.previous)
          .add(row.plan_yaml)
          .add(static_cast<std::int64_t>(row.salt))
          .add(row.status_json)
          .add(row.gate_json)
          .add(row.generation)
          .add(row.created_at)
          .add(row.updated_at)
          .add(row.id)
          .add(expected_generation),
      "rollout " + row.id);
  if (!r) return rollback(r.error());
  if (affected(r->get()) == 0) return rollback(guard_failed(row.id, expected_generation));
  if (auto s = run("INSERT INTO rollout_transitions (rollout, generation, from_state, to_state, "
                   "event, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   Params()
                       .add(transition.rollout)
                       .add(transition.generation)
                       .add(transition.from_state)
                       .add(transition.to_state)
                       .add(transition.event)
                       .add(transition.reason)
                       .add(transition.at),
                   "transition");
      !s) {
    return rollback(s);
  }
  if (auto a = insert_audit(audit); !a) return rollback(a);
  return commit();
}

Status PostgresStore::save_gate(std::string_view id, std::int64_t expected_generation,
                                std::string_view gate_json, TimeMs updated_at) {
  auto r = exec(
      "UPDATE rollouts SET gate_json = $1, updated_at = $2 "
      "WHERE id = $3 AND generation = $4",
      Params().add(gate_json).add(updated_at).add(id).add(expected_generation), "save gate");
  if (!r) return r.error();
  if (affected(r->get()) == 0) return guard_failed(id, expected_generation);
  return Ok{};
}

// Session-level: the lock lives as long as this connection, and a server that
// dies (kill -9 included) loses it when the kernel closes its socket. Once held,
// asking again checks that the connection — and with it the lock — is still
// there. A Store that reconnected holds no lock (reconnect() forgets it): it
// competes for the lock again like any other server.
Result<bool> PostgresStore::try_acquire_engine_lock() {
  if (holds_engine_lock_) {
    if (auto s = run("SELECT 1", Params(), "engine lock check"); !s) {
      holds_engine_lock_ = false;
      return s.error();
    }
    if (holds_engine_lock_) return true;  // else: reconnected while checking, the lock is gone
  }
  auto r =
      exec("SELECT pg_try_advisory_lock($1::bigint)", Params().add(kEngineLockKey), "engine lock");
  if (!r) return r.error();
  holds_engine_lock_ = Cells(r->get(), 0).boolean(0);
  return holds_engine_lock_;
}

}  // namespace

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& conninfo, int migrate_to) {
  // expand_dbname: "dbname" holds the whole URI; the fallback name shows in
  // pg_stat_activity unless the URI sets its own.
  const char* const keywords[] = {"dbname", "fallback_application_name", nullptr};
  const char* const values[] = {conninfo.c_str(), "tranche-server", nullptr};
  std::unique_ptr<PGconn, FinishConn> conn(PQconnectdbParams(keywords, values, 1));
  if (!conn) return make_error(ErrorCode::kUnavailable, "postgres: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    // libpq's message names host and port, never the password.
    return make_error(ErrorCode::kUnavailable, "postgres: cannot connect: " + message);
  }
  auto store = std::make_unique<PostgresStore>(conn.release());
  if (auto s = store->configure(); !s) return s.error();
  if (auto s = store->migrate(migrate_to); !s) return s.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tranche::store
