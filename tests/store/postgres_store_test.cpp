// The store contract against PostgreSQL, and what only PostgreSQL has: the
// engine lock between servers, and generation guards under real concurrency
// (issue 3, section 6: no transition lost or doubled).
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "tests/store/pg_test_db.h"
#include "tests/store/store_contract.h"

namespace tranche::store {
namespace {

using core::ErrorCode;

class PostgresDatabase final : public TestDatabase {
 public:
  std::string url() const override { return db_.url(); }
  std::string error() const override { return db_.error(); }

 private:
  testing::PgTestDb db_;
};

const Backend kPostgres{"postgres",
                        [] { return std::unique_ptr<TestDatabase>(new PostgresDatabase); }};

INSTANTIATE_TEST_SUITE_P(store, StoreContract, ::testing::Values(&kPostgres));

std::unique_ptr<Store> must_open(const std::string& url) {
  auto store = open_store(url);
  EXPECT_TRUE(store.ok()) << store.error().to_string();
  return store.ok() ? std::move(*store) : nullptr;
}

// Runs `sql` on its own connection to `url` (what another server, or an
// operator, would do).
std::string run_sql(const std::string& url, const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(url.c_str()), PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) return PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn.get(), sql.c_str()), PQclear);
  const ExecStatusType status = PQresultStatus(r.get());
  return status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ? "" : PQerrorMessage(conn.get());
}

// Asks until the lock is granted or `seconds` pass: a closed connection's
// backend releases its locks as it exits, a moment after the client hangs up.
bool acquires_within(Store& store, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    auto got = store.try_acquire_engine_lock();
    if (got.ok() && *got) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(PostgresStore, OneStoreHoldsTheEngineLockUntilItCloses) {
  testing::PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  auto first = must_open(db.url());
  auto second = must_open(db.url());
  ASSERT_TRUE(first && second);
  auto a = first->try_acquire_engine_lock();
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_TRUE(*a);
  auto b = second->try_acquire_engine_lock();
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_FALSE(*b);
  // Asking again keeps it, and keeps the other out.
  EXPECT_TRUE(first->try_acquire_engine_lock().value());
  EXPECT_FALSE(second->try_acquire_engine_lock().value());

  first.reset();
  EXPECT_TRUE(acquires_within(*second, 5));
}

TEST(PostgresStore, ALostConnectionLosesTheLockAndSaysSo) {
  testing::PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  auto engine = must_open(db.url());
  ASSERT_TRUE(engine);
  ASSERT_TRUE(engine->try_acquire_engine_lock().value());
  // What a kill -9 of the server does to its session, seen from the database.
  EXPECT_EQ(run_sql(db.url(),
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"),
            "");
  auto check = engine->try_acquire_engine_lock();
  EXPECT_FALSE(check.ok());  // an error, never a stale "yes"
  auto standby = must_open(db.url());
  ASSERT_TRUE(standby);
  EXPECT_TRUE(acquires_within(*standby, 5));
}

TEST(PostgresStore, ConcurrentEnginesNeitherLoseNorDoubleATransition) {
  testing::PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  {
    auto setup = must_open(db.url());
    ASSERT_TRUE(setup);
    RolloutRow row{"r-1", "content", "2", "1", "plan", 7, "{}", "{}", 0, 1, 1};
    ASSERT_TRUE(setup->insert_rollout(row, {0, 1, "op", "rollout.create", "r-1", ""}).ok());
  }
  constexpr int kAttempts = 60;
  std::atomic<int> applied{0};
  std::atomic<int> refused{0};
  std::atomic<int> failed{0};
  auto engine = [&](const std::string& name) {
    auto store = must_open(db.url());
    if (!store) {
      ++failed;
      return;
    }
    for (int i = 0; i < kAttempts; ++i) {
      auto rollouts = store->load_rollouts();
      if (!rollouts.ok() || rollouts->size() != 1) {
        ++failed;
        return;
      }
      RolloutRow next = rollouts->front();
      const std::int64_t read = next.generation;
      next.generation = read + 1;
      next.status_json = R"({"by":")" + name + "\"}";
      const TransitionRow t{"r-1", next.generation, "a", "b", "tick", name, i};
      auto s = store->update_rollout(next, read, t, {0, i, name, "rollout.advance", "r-1", ""});
      if (s.ok()) {
        ++applied;
      } else if (s.error().code == ErrorCode::kConflict) {
        ++refused;
      } else {
        ADD_FAILURE() << s.error().to_string();
        ++failed;
      }
    }
  };
  std::thread one(engine, "one");
  std::thread two(engine, "two");
  one.join();
  two.join();
  ASSERT_EQ(failed.load(), 0);
  EXPECT_EQ(applied + refused, 2 * kAttempts);

  auto store = must_open(db.url());
  ASSERT_TRUE(store);
  auto rollouts = store->load_rollouts();
  ASSERT_TRUE(rollouts.ok());
  EXPECT_EQ(rollouts->front().generation, applied.load());
  auto transitions = store->load_transitions("r-1");
  ASSERT_TRUE(transitions.ok());
  ASSERT_EQ(transitions->size(), static_cast<std::size_t>(applied.load()));
  for (std::size_t i = 0; i < transitions->size(); ++i) {
    EXPECT_EQ((*transitions)[i].generation, static_cast<std::int64_t>(i + 1));
  }
  auto entries = store->load_audit(0, 1000);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(entries->size(), static_cast<std::size_t>(applied.load() + 1));
}

TEST(PostgresStore, ConcurrentAuditWritersGetDistinctIncreasingSeqs) {
  testing::PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  constexpr int kEach = 50;
  auto writer = [&](const std::string& name) {
    auto store = must_open(db.url());
    if (!store) return;
    for (int i = 0; i < kEach; ++i) {
      auto s = store->append_audit({0, i, name, "x", "y", ""});
      EXPECT_TRUE(s.ok()) << s.error().to_string();
    }
  };
  std::thread one(writer, "one");
  std::thread two(writer, "two");
  one.join();
  two.join();
  auto store = must_open(db.url());
  ASSERT_TRUE(store);
  auto entries = store->load_audit(0, 1000);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u * kEach);
  for (std::size_t i = 1; i < entries->size(); ++i) {
    EXPECT_LT((*entries)[i - 1].seq, (*entries)[i].seq);
  }
}

TEST(PostgresStore, TwoServersMigratingTogetherApplyEachVersionOnce) {
  testing::PgTestDb db;
  ASSERT_TRUE(db.ok()) << db.error();
  std::vector<std::thread> servers;
  std::atomic<int> opened{0};
  for (int i = 0; i < 3; ++i) {
    servers.emplace_back([&] {
      auto store = open_store(db.url());
      EXPECT_TRUE(store.ok()) << store.error().to_string();
      if (store.ok()) ++opened;
    });
  }
  for (std::thread& t : servers) t.join();
  EXPECT_EQ(opened.load(), 3);
  auto store = must_open(db.url());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version().value(), latest_schema_version());
}

}  // namespace
}  // namespace tranche::store
