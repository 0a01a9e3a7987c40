// The store's batch write, the one store call on the device path: DeviceStore::
// write_batch of 1,000 device states (and, separately, 1,000 states plus 1,000
// events), one transaction each. SQLite in a temporary file always; PostgreSQL
// too when TRANCHE_BENCH_PG_URL names a database (its device_states and
// device_events rows for devices "bench-*" are overwritten). Real time: the
// cost is the commit's fsync and round trips, not CPU.
//
//   build/bin/store_bench
//   TRANCHE_BENCH_PG_URL=postgresql://postgres@127.0.0.1:PORT/tranche_test build/bin/store_bench
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace tranche::store {
namespace {

constexpr int kBatch = 1000;

std::vector<DeviceStateRow> states(std::int64_t round) {
  std::vector<DeviceStateRow> rows;
  rows.reserve(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    rows.push_back({"bench-" + std::to_string(i), R"({"content":"291.1","sensor":"7.11"})",
                    R"({"content":[]})", R"({"crashes":0,"uptime_s":86400})", round, false, round, "bench", 0, round});  // revision: each round newer
  }
  return rows;
}

std::vector<DeviceEventRow> events(std::int64_t round) {
  std::vector<DeviceEventRow> rows;
  rows.reserve(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    rows.push_back({"bench-" + std::to_string(i), round, "installed", "content", "291.1",
                    R"({"exit":0})", round});
  }
  return rows;
}

// Opened once per process and shared by the benchmarks of one backend.
struct Opened {
  std::unique_ptr<Store> store;
  std::string dir;  // SQLite's temporary directory, removed at exit
  ~Opened() {
    store.reset();
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

void open_into(Opened& o, const std::string& url) {
  auto s = open_store(url);
  if (s.ok()) {
    o.store = std::move(*s);
  } else {
    std::fprintf(stderr, "store_bench: %s\n", s.error().to_string().c_str());
  }
}

Store* sqlite_store() {
  static Opened opened;
  static const bool once = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tranche-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return false;
    opened.dir = pattern;
    open_into(opened, "sqlite:" + opened.dir + "/tranche.db");
    return true;
  }();
  (void)once;
  return opened.store.get();
}

Store* postgres_store() {
  static Opened opened;
  static const bool once = [] {
    const char* url = std::getenv("TRANCHE_BENCH_PG_URL");
    if (url != nullptr) open_into(opened, url);
    return true;
  }();
  (void)once;
  return opened.store.get();
}

// A fresh round number per iteration and process: events need new seqs.
std::int64_t next_round() {
  static std::int64_t round = static_cast<std::int64_t>(::time(nullptr)) * 1000;
  return ++round;
}

void write_states(benchmark::State& state, Store* (*store)()) {
  Store* s = store();
  if (s == nullptr) {
    state.SkipWithError("no store (TRANCHE_BENCH_PG_URL unset for postgres)");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    const auto rows = states(next_round());
    state.ResumeTiming();
    auto written = s->write_batch(rows, {});
    if (!written.ok()) {
      state.SkipWithError(written.error().to_string().c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void write_states_and_events(benchmark::State& state, Store* (*store)()) {
  Store* s = store();
  if (s == nullptr) {
    state.SkipWithError("no store (TRANCHE_BENCH_PG_URL unset for postgres)");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    const std::int64_t round = next_round();
    const auto rows = states(round);
    const auto evs = events(round);
    state.ResumeTiming();
    auto written = s->write_batch(rows, evs);
    if (!written.ok()) {
      state.SkipWithError(written.error().to_string().c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

BENCHMARK_CAPTURE(write_states, sqlite, sqlite_store)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(write_states_and_events, sqlite, sqlite_store)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(write_states, postgres, postgres_store)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(write_states_and_events, postgres, postgres_store)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace tranche::store

BENCHMARK_MAIN();
