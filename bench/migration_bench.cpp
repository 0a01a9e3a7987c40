// Schema migration 5 (device ids scoped per tenant) on a fleet's worth of rows:
// the time an upgraded server spends at start moving every device row — its
// device, state, one event and one rollout mark — from its id to its key
// "<tenant>/<id>". The rows are written at schema version 4 through the store
// (open_store(url, 4)), then the store is opened again, which migrates.
//
//   build/bin/migration_bench [DEVICES]                   (default 100000; SQLite)
//   TRANCHE_BENCH_PG_URL=postgresql://... build/bin/migration_bench [DEVICES]
//
// The PostgreSQL database must be empty (a fresh one): the rows are written at
// version 4 from scratch. The anchor is writing the same rows (the load), in
// the same run: the migration's cost as a ratio of it.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace tranche::store {
namespace {

constexpr int kChunk = 10'000;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int fail(const std::string& what, const core::Error& e) {
  std::fprintf(stderr, "migration_bench: %s: %s\n", what.c_str(), e.to_string().c_str());
  return 1;
}

int run(const std::string& backend, const std::string& url, int devices) {
  double load_s = 0;
  {
    auto store = open_store(url, 4);
    if (!store) return fail("open at version 4", store.error());
    auto version = (*store)->schema_version();
    if (!version || *version != 4) {
      std::fprintf(stderr, "migration_bench: %s is not empty (schema version %d)\n", backend.c_str(),
                   version ? *version : -1);
      return 1;
    }
    if (auto st = (*store)->put_tenant(TenantRow{"acme", "hash", "{}"}, AuditRow{0, 1, "bench", "tenant.put", "tenant acme", ""});
        !st) {
      return fail("tenant", st.error());
    }
    const auto start = std::chrono::steady_clock::now();
    for (int first = 0; first < devices; first += kChunk) {
      std::vector<DeviceRow> rows;
      DeviceBatch batch;
      for (int i = first; i < std::min(devices, first + kChunk); ++i) {
        const std::string id = "host-" + std::to_string(i);
        rows.push_back({id, "acme", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                        R"({"class":"server","region":"emea"})", 60, 1});
        batch.states.push_back({id, R"({"content":"291.1"})", R"({})", R"({"crashes":0})", 2, false, 1, "s-1", 1, 1});
        batch.events.push_back({id, 1, "installed", "content", "291.1", "{}", 2});
        batch.marks.push_back({"r-1", id, "exposed", "none", 2, 3, 0});
      }
      if (auto st = (*store)->insert_devices(rows, AuditRow{0, 1, "bench", "device.bulk_enroll", "tenant acme", ""});
          !st) {
        return fail("devices", st.error());
      }
      if (auto st = (*store)->write_device_batch(batch); !st) return fail("states", st.error());
    }
    load_s = seconds_since(start);
  }
  const auto start = std::chrono::steady_clock::now();
  auto store = open_store(url);
  const double migrate_s = seconds_since(start);
  if (!store) return fail("migrate", store.error());
  auto record = (*store)->load_device("acme/host-" + std::to_string(devices - 1));
  if (!record || record->marks.size() != 1 || record->state.device != "acme/host-" + std::to_string(devices - 1)) {
    std::fprintf(stderr, "migration_bench: the last device is not under its key after the migration\n");
    return 1;
  }
  std::printf("%s: %d devices (a state, an event and a mark each): load at version 4 %.2f s, "
              "migration 4 -> 5 %.2f s, ratio %.2f\n",
              backend.c_str(), devices, load_s, migrate_s, migrate_s / load_s);
  return 0;
}

}  // namespace
}  // namespace tranche::store

int main(int argc, char** argv) {
  const int devices = argc > 1 ? std::atoi(argv[1]) : 100'000;
  if (devices < 1) {
    std::fprintf(stderr, "usage: migration_bench [DEVICES]   (DEVICES >= 1; TRANCHE_BENCH_PG_URL for PostgreSQL)\n");
    return 2;
  }
  const auto dir = std::filesystem::temp_directory_path() / ("migration-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  int rc = tranche::store::run("sqlite", "sqlite:" + (dir / "tranche.db").string(), devices);
  std::filesystem::remove_all(dir);
  if (const char* pg = std::getenv("TRANCHE_BENCH_PG_URL"); rc == 0 && pg != nullptr && *pg != '\0') {
    rc = tranche::store::run("postgres", pg, devices);
  }
  return rc;
}
