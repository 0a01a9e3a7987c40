// The numbered schema migrations of both backends, compiled in from
// store/migrations/<backend>/NNNN_name.sql (store/CMakeLists.txt generates the
// definitions). Internal to store/: the server sees only schema_version() and
// latest_schema_version().
#pragma once

#include <span>
#include <string_view>

namespace tranche::store {

struct Migration {
  int version;            // 1, 2, ...: the file's number; the schema is at `version` after it
  std::string_view name;  // "0001_init.sql"
  std::string_view sql;   // one or more statements, applied in one transaction
};

// Version order, 1..latest_schema_version() without gaps (checked by CMake).
std::span<const Migration> sqlite_migrations();
std::span<const Migration> postgres_migrations();

}  // namespace tranche::store
