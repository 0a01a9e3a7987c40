#include "store/store.h"

#include <map>
#include <string>
#include <utility>
#include <string_view>

#include "core/evidence.h"
#include "store/backends.h"

namespace tranche::store {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

Status check_rollout_update(const RolloutRow& row, std::int64_t expected_generation,
                            const TransitionRow& transition) {
  if (transition.rollout != row.id) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "transition is for rollout '" + transition.rollout + "', not '" + row.id + "'");
  }
  if (row.generation <= expected_generation) {
    return make_error(ErrorCode::kInvalidArgument,
                      "rollout " + row.id + ": new generation " + std::to_string(row.generation) +
                          " does not follow " + std::to_string(expected_generation));
  }
  if (transition.generation != row.generation) {
    return make_error(ErrorCode::kInvalidArgument,
                      "rollout " + row.id + ": transition generation " +
                          std::to_string(transition.generation) + " is not the row's " +
                          std::to_string(row.generation));
  }
  return core::Ok{};
}

core::Error schema_too_new(int version) {
  return make_error(ErrorCode::kConflict,
                    "database schema is at version " + std::to_string(version) +
                        ", newer than this build's " + std::to_string(latest_schema_version()) +
                        " (written by a newer tranche-server?)");
}

namespace {

TimeMs first_nonzero(TimeMs a, TimeMs b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return a < b ? a : b;
}

}  // namespace

Result<std::vector<RolloutMarkRow>> merge_marks(const std::vector<RolloutMarkRow>& marks) {
  std::vector<RolloutMarkRow> out;
  out.reserve(marks.size());
  std::map<std::pair<std::string_view, std::string_view>, std::size_t> slot;
  for (const RolloutMarkRow& m : marks) {
    auto standing = core::parse_standing(m.standing);
    if (!standing) {
      return make_error(ErrorCode::kInvalidArgument,
                        "mark " + m.rollout + "/" + m.device + ": standing '" + m.standing + "' unknown");
    }
    if (!core::parse_failure_cause(m.failure)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "mark " + m.rollout + "/" + m.device + ": failure '" + m.failure + "' unknown");
    }
    auto [it, inserted] = slot.try_emplace({m.rollout, m.device}, out.size());
    if (inserted) {
      out.push_back(m);
      continue;
    }
    RolloutMarkRow& kept = out[it->second];
    const core::Standing before = *core::parse_standing(kept.standing);
    const core::Standing merged = core::merge_standing(before, *standing);
    if (merged != before) {
      kept.standing = std::string(core::to_string(merged));
      kept.failure = m.failure;
      kept.failed_at = m.failed_at;
    }
    kept.offered_at = first_nonzero(kept.offered_at, m.offered_at);
    kept.acknowledged_at = first_nonzero(kept.acknowledged_at, m.acknowledged_at);
  }
  // Keys in `slot` view `marks`, not `out`: nothing dangles.
  return out;
}

int mark_rank(const RolloutMarkRow& mark) {
  return core::standing_rank(core::parse_standing(mark.standing).value_or(core::Standing::kControl));
}

const std::string& merge_mark_set_sql() {
  static const std::string sql = [] {
    const std::string control_failed(core::to_string(core::Standing::kControlFailed));
    const std::string exposed_failed(core::to_string(core::Standing::kExposedFailed));
    const std::string exposed_ranks =
        std::to_string(core::standing_rank(core::Standing::kExposed)) + ", " +
        std::to_string(core::standing_rank(core::Standing::kAcknowledged));
    return "standing = CASE WHEN EXCLUDED.standing = '" + control_failed +
           "' AND rollout_marks.rank IN (" + exposed_ranks + ") THEN '" + exposed_failed +
           "' ELSE EXCLUDED.standing END, rank = EXCLUDED.rank, failure = EXCLUDED.failure, "
           "offered_at = CASE WHEN rollout_marks.offered_at <> 0 THEN rollout_marks.offered_at "
           "ELSE EXCLUDED.offered_at END, "
           "acknowledged_at = CASE WHEN rollout_marks.acknowledged_at <> 0 THEN "
           "rollout_marks.acknowledged_at ELSE EXCLUDED.acknowledged_at END, "
           "failed_at = EXCLUDED.failed_at";
  }();
  return sql;
}

Result<std::unique_ptr<Store>> open_store(std::string_view url, std::optional<int> migrate_to) {
  const int latest = latest_schema_version();
  const int target = migrate_to.value_or(latest);
  if (target < 1 || target > latest) {
    return make_error(ErrorCode::kInvalidArgument, "schema version " + std::to_string(target) +
                                                       " is not between 1 and " +
                                                       std::to_string(latest));
  }
  constexpr std::string_view kSqlite = "sqlite:";
  if (url.starts_with(kSqlite)) {
    const std::string_view path = url.substr(kSqlite.size());
    if (path.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "store url 'sqlite:' names no file");
    }
    // "sqlite:///var/x.db" would open "//var/x.db" by luck and "sqlite://x.db" a
    // file named "//x.db": refuse URL forms rather than guess.
    if (path.starts_with("//")) {
      return make_error(ErrorCode::kInvalidArgument,
                        "store url '" + std::string(url) +
                            "': write sqlite:PATH (e.g. sqlite:/var/lib/tranche/tranche.db)");
    }
    return open_sqlite_store(std::string(path), target);
  }
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    return open_postgres_store(std::string(url), target);
  }
  // Only the scheme is echoed: the rest of a mistyped url may hold a password.
  const std::string_view scheme = url.substr(0, url.find(':'));
  return make_error(ErrorCode::kInvalidArgument,
                    "store url scheme '" + std::string(scheme) +
                        "' unknown: expected sqlite:PATH, postgres://... or postgresql://...");
}

}  // namespace tranche::store
