#include "store/store.h"

#include <string>
#include <string_view>

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
