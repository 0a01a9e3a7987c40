// The two implementations of store::Store, opened by open_store (store.cpp).
// Internal to store/.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "store/store.h"

namespace tranche::store {

// `path`: the database file ("PATH.lock" beside it is held while the Store lives).
core::Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, int migrate_to);
// `conninfo`: a libpq connection URI.
core::Result<std::unique_ptr<Store>> open_postgres_store(const std::string& conninfo,
                                                         int migrate_to);

// What both backends refuse in update_rollout before touching the database: a
// transition for another rollout, or a generation that does not move forward
// (which would let a second engine's stale write through the guard).
core::Status check_rollout_update(const RolloutRow& row, std::int64_t expected_generation,
                                  const TransitionRow& transition);

// The error for a newer schema than this build knows.
core::Error schema_too_new(int version);

// The marks of one batch, checked (a standing and a failure core's codec knows)
// and merged per (rollout, device) with core::merge_standing, so that one
// statement touches each row once. kInvalidArgument names a bad mark.
core::Result<std::vector<RolloutMarkRow>> merge_marks(const std::vector<RolloutMarkRow>& marks);
// core::standing_rank of a checked mark's standing.
int mark_rank(const RolloutMarkRow& mark);
// The SET clause of both backends' mark upsert, "... WHERE EXCLUDED.rank >
// rollout_marks.rank": core::merge_standing in SQL (the store contract test
// checks the two agree), the first offer, acknowledgement and failure kept.
const std::string& merge_mark_set_sql();

}  // namespace tranche::store
