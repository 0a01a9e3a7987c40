// No acknowledged write lost: a real tranche-server under load — devices
// uploading events, an operator creating tokens, releases, tenants and
// rollouts and aborting some — is killed with SIGKILL ten times at random
// moments and restarted on the same data. After each kill the store itself
// (the SQLite file, or the PostgreSQL database, read directly) must hold
//   - every event the server answered {"accepted": N} for,
//   - every token, release, tenant, rollout and rollout action the server
//     answered 201 (or 200) for, and
//   - for every token, release, tenant, rollout and rollout transition it
//     holds, the audit row of the action that made it (written in the same
//     transaction, so no crash can split them).
//
// Built twice (tests/server/CMakeLists.txt): on the default SQLite store in
// --data-dir (crash_durability_test, label integration) and with
// TRANCHE_SERVER_TEST_POSTGRES on a database of its own in the `postgres`
// fixture's server (crash_durability_pg_test, label postgres).
//
// TRANCHE_CRASH_SEED=N replays the kill schedule and the load's choices (not the
// scheduling of threads) of an earlier run, which prints its seed.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/server/harness.h"
#include "tests/store/pg_test_db.h"

namespace tranche::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kAdmin = "crash-admin-token-0123456789";
constexpr const char* kEnrollKey = "acme-enrollment-key-0123";
constexpr int kDevices = 50;
constexpr int kEventThreads = 6;
constexpr int kKills = 10;

bool use_postgres() {
#ifdef TRANCHE_SERVER_TEST_POSTGRES
  return true;
#else
  return false;
#endif
}

std::int64_t ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// --- reading the store directly ------------------------------------------------------------

using Rows = std::vector<std::vector<std::string>>;

// Rows of `sql` as text, or an error. Opened for one look while the server is
// down, closed before it restarts.
class StoreReader {
 public:
  virtual ~StoreReader() = default;
  virtual bool query(const std::string& sql, Rows& out, std::string& error) = 0;
};

class SqliteReader : public StoreReader {
 public:
  explicit SqliteReader(const std::filesystem::path& file) {
    // Read-only; the WAL and its index the killed server left are read (and the
    // index rebuilt if need be) as SQLite's recovery does, nothing is written
    // to the database itself.
    int rc = sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
    if (rc != SQLITE_OK) error_ = "sqlite3_open_v2 " + file.string() + ": " + sqlite3_errstr(rc);
  }
  ~SqliteReader() override { sqlite3_close(db_); }
  const std::string& open_error() const { return error_; }

  bool query(const std::string& sql, Rows& out, std::string& error) override {
    out.clear();
    if (!error_.empty()) {
      error = error_;
      return false;
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      error = sql + ": " + sqlite3_errmsg(db_);
      return false;
    }
    int rc = SQLITE_ROW;
    const int columns = sqlite3_column_count(stmt);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < columns; ++c) {
        const auto* text = sqlite3_column_text(stmt, c);
        row.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
      }
      out.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) error = sql + ": " + sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE;
  }

 private:
  sqlite3* db_ = nullptr;
  std::string error_;
};

class PgReader : public StoreReader {
 public:
  explicit PgReader(const std::string& url) : conn_(PQconnectdb(url.c_str())) {}
  ~PgReader() override { PQfinish(conn_); }

  bool query(const std::string& sql, Rows& out, std::string& error) override {
    out.clear();
    if (PQstatus(conn_) != CONNECTION_OK) {
      error = std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(conn_);
      return false;
    }
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn_, sql.c_str()), PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      error = sql + ": " + PQerrorMessage(conn_);
      return false;
    }
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      std::vector<std::string> row;
      for (int c = 0; c < PQnfields(r.get()); ++c) row.emplace_back(PQgetvalue(r.get(), i, c));
      out.push_back(std::move(row));
    }
    return true;
  }

 private:
  PGconn* conn_;
};

// --- what the server acknowledged ------------------------------------------------------------

// What an operator action leaves in the store, in the words check_store
// reads it back: "token NAME", "release CHANNEL VERSION", "tenant ID",
// "rollout ID", "transition ID EVENT".
using Action = std::string;

// Everything the test was told was done, and what went wrong on the way.
struct Ledger {
  std::mutex mu;
  std::vector<std::set<std::int64_t>> acked_seqs = std::vector<std::set<std::int64_t>>(kDevices);
  std::size_t acked_events = 0;
  std::vector<Action> acked_actions;
  // Requests that got no HTTP answer (the server died under them, or was down).
  std::size_t unanswered_uploads = 0;
  std::size_t unanswered_actions = 0;
  // 503 unavailable (the server's store is behind): not acknowledged, not an
  // error — a device sends again later (here: the next events instead).
  std::size_t busy = 0;
  // HTTP answers other than success and 503: not expected at all.
  std::size_t refused = 0;
  std::vector<std::string> refused_examples;

  void refuse(const std::string& what) {
    std::lock_guard lock(mu);
    ++refused;
    if (refused_examples.size() < 10) refused_examples.push_back(what);
  }
};

// The store's look after a crash, against the ledger.
struct Verdict {
  std::size_t acked_events = 0;
  std::size_t lost_events = 0;
  std::size_t acked_actions = 0;
  std::size_t lost_actions = 0;
  std::size_t stored_actions =
      0;                      // audit rows the store's tokens, releases, tenants, rollouts need
  std::size_t unaudited = 0;  // ... of which missing
  std::size_t stored_events = 0;
  std::vector<std::string> examples;
  std::string error;  // the store could not be read: the test's problem, not the server's
};

std::string audit_key(const std::string& action, const std::string& target) {
  return action + "\n" + target;
}

Verdict check_store(StoreReader& db, Ledger& ledger) {
  Verdict v;
  Rows events, tokens, releases, tenants, rollouts, transitions, audit;
  if (!db.query("SELECT device, seq FROM device_events", events, v.error) ||
      !db.query("SELECT name FROM operator_tokens", tokens, v.error) ||
      !db.query("SELECT channel, version FROM releases", releases, v.error) ||
      !db.query("SELECT id FROM tenants", tenants, v.error) ||
      !db.query("SELECT id FROM rollouts", rollouts, v.error) ||
      !db.query("SELECT rollout, event FROM rollout_transitions", transitions, v.error) ||
      !db.query("SELECT action, target FROM audit", audit, v.error)) {
    return v;
  }
  v.stored_events = events.size();
  std::map<std::string, std::set<std::int64_t>> stored;
  for (const auto& r : events) stored[r[0]].insert(std::stoll(r[1]));
  std::map<std::string, std::size_t> audited;  // action and target -> rows
  for (const auto& r : audit) ++audited[audit_key(r[0], r[1])];

  auto example = [&](std::string what) {
    if (v.examples.size() < 12) v.examples.push_back(std::move(what));
  };
  // What the store holds (Action's words), and the audit rows it needs: one
  // per token, release, tenant and rollout, one per transition of a rollout
  // (engine's too) — two aborts of one rollout would need two rows.
  std::set<Action> present;
  std::map<std::string, std::size_t> needed;
  for (const auto& r : tokens) {
    present.insert("token " + r[0]);
    if (r[0].rfind("crash-op-", 0) == 0) ++needed[audit_key("token.create", "token " + r[0])];
  }
  for (const auto& r : releases) {
    present.insert("release " + r[0] + " " + r[1]);
    ++needed[audit_key("release.register", "release " + r[0] + " " + r[1])];
  }
  for (const auto& r : tenants) {
    present.insert("tenant " + r[0]);
    ++needed[audit_key("tenant.put", "tenant " + r[0])];
  }
  for (const auto& r : rollouts) {
    present.insert("rollout " + r[0]);
    ++needed[audit_key("rollout.create", "rollout " + r[0])];
  }
  for (const auto& r : transitions) {
    present.insert("transition " + r[0] + " " + r[1]);
    ++needed[audit_key("rollout." + r[1], "rollout " + r[0])];
  }
  for (const auto& [key, n] : needed) {
    v.stored_actions += n;
    const std::size_t have = audited.count(key) != 0 ? audited.at(key) : 0;
    if (have < n) {
      v.unaudited += n - have;
      std::string what = key;
      what[what.find('\n')] = ' ';
      example("in the store without its audit row (" + std::to_string(have) + " of " +
              std::to_string(n) + "): " + what);
    }
  }

  std::lock_guard lock(ledger.mu);
  for (int d = 0; d < kDevices; ++d) {
    const std::string id = "acme/d-" + std::to_string(d);  // the key (tenant/id)
    const auto& have = stored[id];
    for (std::int64_t seq : ledger.acked_seqs[static_cast<std::size_t>(d)]) {
      ++v.acked_events;
      if (have.count(seq) == 0) {
        ++v.lost_events;
        example("acknowledged, not in device_events: " + id + " seq " + std::to_string(seq));
      }
    }
  }
  for (const auto& a : ledger.acked_actions) {
    ++v.acked_actions;
    if (present.count(a) == 0) {
      ++v.lost_actions;
      example("acknowledged, not in the store: " + a);
    }
  }
  return v;
}

// --- the load --------------------------------------------------------------------------------

// Event uploaders and one operator, running until destroyed, across kills:
// while the server is down their requests fail and they try again.
class Load {
 public:
  Load(std::string base_url, std::vector<std::string> device_tokens, Ledger& ledger,
       std::uint32_t seed)
      : base_(std::move(base_url)), tokens_(std::move(device_tokens)), ledger_(ledger) {
    for (int t = 0; t < kEventThreads; ++t) {
      threads_.emplace_back([this, t, seed] { upload(t, seed + static_cast<std::uint32_t>(t)); });
    }
    threads_.emplace_back([this, seed] { operate(seed + 1000); });
  }
  ~Load() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

 private:
  // Devices t, t + kEventThreads, ... belong to thread t alone: each device's
  // seq only increases, and a seq once sent is never sent again (the server may
  // have kept it even when its answer was lost).
  void upload(int t, std::uint32_t seed) {
    std::mt19937 rng(seed);
    HttpClient http;
    std::vector<int> mine;
    for (int d = t; d < kDevices; d += kEventThreads) mine.push_back(d);
    std::map<int, std::int64_t> next;
    for (int d : mine) next[d] = 1;
    while (!stop_) {
      const int d = mine[std::uniform_int_distribution<std::size_t>(0, mine.size() - 1)(rng)];
      const int n = std::uniform_int_distribution<int>(1, 20)(rng);
      const std::int64_t first = next[d];
      next[d] += n;
      json::array events;
      for (int i = 0; i < n; ++i) {
        events.push_back(json::object{{"seq", first + i},
                                      {"kind", "installed"},
                                      {"channel", "content"},
                                      {"version", "1.0"},
                                      {"message", "crash durability"}});
      }
      auto r = http.request("POST", base_ + "/v1/events",
                            json::serialize(json::object{{"events", events}}),
                            tokens_[static_cast<std::size_t>(d)], 10);
      if (r.status == -1) {
        {
          std::lock_guard lock(ledger_.mu);
          ++ledger_.unanswered_uploads;
        }
        std::this_thread::sleep_for(10ms);
        continue;
      }
      if (r.status == 503) {
        {
          std::lock_guard lock(ledger_.mu);
          ++ledger_.busy;
        }
        std::this_thread::sleep_for(50ms);
        continue;
      }
      auto body = r.json();
      const json::value* accepted =
          body.is_object() ? body.as_object().if_contains("accepted") : nullptr;
      if (r.status != 200 || accepted == nullptr || !accepted->is_int64() ||
          accepted->as_int64() != n) {
        ledger_.refuse("POST /v1/events d-" + std::to_string(d) + " seq " + std::to_string(first) +
                       ".." + std::to_string(first + n - 1) + ": " + std::to_string(r.status) +
                       " " + r.body.substr(0, 200));
        continue;
      }
      std::lock_guard lock(ledger_.mu);
      auto& seqs = ledger_.acked_seqs[static_cast<std::size_t>(d)];
      for (int i = 0; i < n; ++i) seqs.insert(first + i);
      ledger_.acked_events += static_cast<std::size_t>(n);
    }
  }

  // One request of the operator's: true when it got `ok` (recorded as `done`);
  // no answer and any other answer are counted.
  bool act(HttpClient& http, const std::string& path, const json::object& body, long ok,
           const Action& done) {
    auto r = http.request("POST", base_ + path, json::serialize(body), kAdmin, 10);
    if (r.status == -1) {
      {
        std::lock_guard lock(ledger_.mu);
        ++ledger_.unanswered_actions;
      }
      std::this_thread::sleep_for(10ms);
      return false;
    }
    if (r.status == 503) {
      {
        std::lock_guard lock(ledger_.mu);
        ++ledger_.busy;
      }
      std::this_thread::sleep_for(50ms);
      return false;
    }
    if (r.status != ok) {
      ledger_.refuse("POST " + path + ": " + std::to_string(r.status) + " " +
                     r.body.substr(0, 200));
      return false;
    }
    std::lock_guard lock(ledger_.mu);
    ledger_.acked_actions.push_back(done);
    return true;
  }

  // Tokens, releases, tenants and rollouts (each on a channel of its own, some
  // aborted at once), each with a name never used before: a request whose
  // answer was lost may have been carried out.
  void operate(std::uint32_t seed) {
    std::mt19937 rng(seed);
    HttpClient http;
    const json::array targets{
        json::object{{"path", "crash.yaml"}, {"length", 100}, {"sha256", std::string(64, 'a')}}};
    for (int i = 0; !stop_; ++i) {
      const std::string n = std::to_string(i);
      switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
        case 0:
          act(http, "/v1/tokens", {{"name", "crash-op-" + n}, {"role", "viewer"}}, 201,
              "token crash-op-" + n);
          break;
        case 1:
          act(http, "/v1/releases",
              {{"channel", "content"}, {"version", "2." + n}, {"targets", targets}}, 201,
              "release content 2." + n);
          break;
        case 2:
          act(http, "/v1/tenants",
              {{"id", "crash-tenant-" + n}, {"enrollment_key", "crash-enrollment-key-" + n}}, 201,
              "tenant crash-tenant-" + n);
          break;
        default: {
          const std::string channel = "ops-" + n, id = "crash-ro-" + n;
          if (!act(http, "/v1/releases",
                   {{"channel", channel}, {"version", "1.0"}, {"targets", targets}}, 201,
                   "release " + channel + " 1.0")) {
            break;
          }
          // A 201 means created and started.
          if (!act(http, "/v1/rollouts",
                   {{"channel", channel},
                    {"version", "1.0"},
                    {"id", id},
                    {"plan_yaml",
                     "name: crash\nstages:\n  - {name: all, percent: 100%, bake: 1h}\n"}},
                   201, "transition " + id + " start")) {
            break;
          }
          if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) {
            act(http, "/v1/rollouts/" + id + "/abort", {{"reason", "crash durability"}}, 200,
                "transition " + id + " abort");
          }
          break;
        }
      }
      // An operator's pace, not a flood: a few actions per second.
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 80)(rng)));
    }
  }

  std::string base_;
  std::vector<std::string> tokens_;
  Ledger& ledger_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// --- the test --------------------------------------------------------------------------------

TEST(CrashDurability, NoAcknowledgedEventOrUnauditedActionAfterTenKillNines) {
  const auto t0 = Clock::now();
  std::uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("TRANCHE_CRASH_SEED"))
    seed = static_cast<std::uint32_t>(std::stoul(s));
  std::printf("store %s, seed %u (TRANCHE_CRASH_SEED=%u replays the schedule)\n",
              use_postgres() ? "PostgreSQL" : "SQLite", seed, seed);
  std::mt19937 rng(seed);

  const auto data_dir = fresh_dir("tranche-crash-durability");
  struct RemoveDir {
    std::filesystem::path dir;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } remove_dir{data_dir};
  std::unique_ptr<PgTestDb> pg;
  if (use_postgres()) {
    pg = std::make_unique<PgTestDb>();
    ASSERT_TRUE(pg->ok()) << "PostgreSQL unavailable: " << pg->error();
  }
  std::vector<std::string> args = {"--data-dir",    data_dir.string(),
                                   "--admin-token", kAdmin,
                                   "--tick-ms",     "100",
                                   "--batch-ms",    "50",
                                   "--threads",     "4"};
  if (pg) {
    args.push_back("--store");
    args.push_back(pg->url());
  }
  auto reader = [&]() -> std::unique_ptr<StoreReader> {
    if (pg) return std::make_unique<PgReader>(pg->url());
    return std::make_unique<SqliteReader>(data_dir / "tranche.db");
  };

  auto server = std::make_unique<ServerProcess>(args);
  const std::string base = server->url("");
  HttpClient http;
  {
    auto r = http.request(
        "POST", base + "/v1/tenants",
        json::serialize(json::object{{"id", "acme"}, {"enrollment_key", kEnrollKey}}), kAdmin);
    ASSERT_EQ(r.status, 201) << r.body;
  }
  std::vector<std::string> tokens;
  {
    json::array devices;
    for (int i = 0; i < kDevices; ++i)
      devices.push_back(json::object{{"device_id", "d-" + std::to_string(i)}});
    auto r = http.request("POST", base + "/v1/devices/bulk",
                          json::serialize(json::object{{"tenant", "acme"}, {"devices", devices}}),
                          kAdmin);
    ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
    const auto provisioned = r.json();  // kept: the loop below reads into it
    for (const auto& d : provisioned.at("devices").as_array()) {
      tokens.emplace_back(d.at("device_token").as_string());
    }
    ASSERT_EQ(tokens.size(), static_cast<std::size_t>(kDevices));
  }

  Ledger ledger;
  Verdict last;
  {
    Load load(base, tokens, ledger, seed);
    for (int round = 1; round <= kKills; ++round) {
      const int wait_ms = std::uniform_int_distribution<int>(300, 1500)(rng);
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      const int status = server->stop(SIGKILL);
      if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        ADD_FAILURE() << "round " << round << ": the server was not killed by SIGKILL: it had "
                      << (WIFSIGNALED(status)
                              ? "died of signal " + std::to_string(WTERMSIG(status))
                              : "exited with status " + std::to_string(WEXITSTATUS(status)))
                      << " before (its stderr, above, says why)";
      }
      // The server is down: whatever the store holds now is what survived.
      {
        auto db = reader();
        last = check_store(*db, ledger);
      }
      ASSERT_TRUE(last.error.empty())
          << "round " << round << ": cannot read the store: " << last.error;
      std::printf(
          "round %2d: killed after %4d ms of load; so far lost %zu of %zu acknowledged events, "
          "%zu of %zu acknowledged actions; %zu of %zu actions in the store without audit\n",
          round, wait_ms, last.lost_events, last.acked_events, last.lost_actions,
          last.acked_actions, last.unaudited, last.stored_actions);
      if (round == kKills) break;  // the last look is at the store as the last crash left it
      const auto restart_at = Clock::now();
      try {
        server->restart();
      } catch (const std::exception& e) {
        FAIL() << "round " << round
               << ": the server did not restart on its data after kill -9: " << e.what();
      }
      if (ms_since(restart_at) > 5000) {
        std::printf("round %2d: restart took %lld ms\n", round,
                    static_cast<long long>(ms_since(restart_at)));
      }
    }
  }  // the load stops here; every answer it got is in the ledger

  // The verdict on the store as the tenth crash left it: with the load stopped,
  // every acknowledgement is counted.
  {
    auto db = reader();
    last = check_store(*db, ledger);
  }
  ASSERT_TRUE(last.error.empty()) << "cannot read the store: " << last.error;
  std::printf(
      "lost %zu of %zu acknowledged events (%zu events stored); "
      "%zu of %zu acknowledged actions lost; %zu of %zu actions without audit\n",
      last.lost_events, last.acked_events, last.stored_events, last.lost_actions,
      last.acked_actions, last.unaudited, last.stored_actions);
  std::printf(
      "requests without an answer (in flight at a kill or sent while down): %zu uploads, %zu "
      "actions; 503 (store behind): %zu; refused otherwise: %zu\n",
      ledger.unanswered_uploads, ledger.unanswered_actions, ledger.busy, ledger.refused);
  for (const auto& e : last.examples) std::printf("  %s\n", e.c_str());
  for (const auto& e : ledger.refused_examples) std::printf("  refused: %s\n", e.c_str());

  // Not vacuous: the load really ran and the server really answered.
  EXPECT_GE(last.acked_events, 100u) << "too few acknowledged events to say anything";
  EXPECT_GE(last.acked_actions, 5u) << "too few acknowledged operator actions to say anything";
  EXPECT_EQ(last.lost_events, 0u)
      << "events answered {\"accepted\": N} are missing from the store after kill -9";
  EXPECT_EQ(last.lost_actions, 0u)
      << "operator actions answered 201 (or 200) are missing from the store";
  EXPECT_EQ(last.unaudited, 0u)
      << "tokens, releases, tenants, rollouts or transitions in the store without their audit row";
  // Every HTTP answer was a success: nothing here is invalid, replayed or conflicting.
  EXPECT_EQ(ledger.refused, 0u) << "requests answered with an error (listed above)";

  // The server still starts on what the last crash left, and stops cleanly.
  {
    ASSERT_NO_THROW(server->restart()) << "the server did not restart after the last kill -9";
    auto r = http.request("GET", base + "/v1/audit?limit=1", "", kAdmin);
    EXPECT_EQ(r.status, 200) << r.body;
    const int status = server->stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "SIGTERM after recovery: the server "
        << (WIFSIGNALED(status) ? "died of signal " + std::to_string(WTERMSIG(status))
                                : "exited with status " + std::to_string(WEXITSTATUS(status)))
        << " instead of stopping cleanly";
    // The test's own reading, checked: the store as the server recovered it
    // holds what the test read from the crashed one, no more and no fewer.
    Verdict recovered;
    {
      auto db = reader();
      recovered = check_store(*db, ledger);
    }
    ASSERT_TRUE(recovered.error.empty()) << "cannot read the store: " << recovered.error;
    std::printf(
        "after a restart and a clean stop: %zu events stored, lost %zu; %zu actions without "
        "audit\n",
        recovered.stored_events, recovered.lost_events, recovered.unaudited);
    EXPECT_EQ(recovered.stored_events, last.stored_events)
        << "the crashed store read differently before and after the server's recovery";
    EXPECT_EQ(recovered.lost_events, last.lost_events)
        << "the crashed store read differently before and after the server's recovery";
  }
  server.reset();
  std::printf("whole test %lld ms\n", static_cast<long long>(ms_since(t0)));
}

}  // namespace
}  // namespace tranche::testing
