// The store contract against SQLite, and what only SQLite has: the data
// directory's lock file, WAL mode, and the url forms open_store accepts.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "store/store.h"
#include "tests/store/store_contract.h"

namespace tranche::store {
namespace {

using core::ErrorCode;

// A fresh directory under the test temp dir, deleted with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "tranche-store-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class SqliteDatabase final : public TestDatabase {
 public:
  std::string url() const override { return "sqlite:" + file(); }
  std::string error() const override {
    return dir_.path().empty() ? "cannot make a temporary directory" : "";
  }
  std::string file() const { return dir_.path() + "/tranche.db"; }

 private:
  TempDir dir_;
};

const Backend kSqlite{"sqlite", [] { return std::unique_ptr<TestDatabase>(new SqliteDatabase); }};

INSTANTIATE_TEST_SUITE_P(store, StoreContract, ::testing::Values(&kSqlite));

TEST(SqliteStore, ASecondOpenOfTheSameDatabaseFailsUntilTheFirstCloses) {
  SqliteDatabase db;
  auto first = open_store(db.url());
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  auto second = open_store(db.url());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find(db.file() + ".lock"), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("another tranche-server"), std::string::npos);
  first->reset();
  auto third = open_store(db.url());
  EXPECT_TRUE(third.ok()) << third.error().to_string();
}

TEST(SqliteStore, RunsTheEngineAndUsesWal) {
  SqliteDatabase db;
  auto store = open_store(db.url());
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  auto lock = (*store)->try_acquire_engine_lock();
  ASSERT_TRUE(lock.ok());
  EXPECT_TRUE(*lock);
  // Bytes 18 and 19 of the header (file format write/read versions) are 2 in WAL mode.
  std::ifstream in(db.file(), std::ios::binary);
  char header[20] = {};
  ASSERT_TRUE(in.read(header, sizeof header));
  EXPECT_EQ(header[18], 2);
  EXPECT_EQ(header[19], 2);
}

TEST(SqliteStore, ADatabaseFromANewerBuildIsRefused) {
  SqliteDatabase db;
  ASSERT_TRUE(open_store(db.url()).ok());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.file().c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> conn(raw, sqlite3_close);
  const std::string sql = "INSERT INTO schema_migrations (version, name) VALUES (" +
                          std::to_string(latest_schema_version() + 1) + ", '9999_future.sql')";
  ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  conn.reset();
  auto store = open_store(db.url());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kConflict);
  EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
}

TEST(OpenStore, RefusesUrlsItDoesNotKnow) {
  for (const char* url : {"", "sqlite:", "sqlite:///var/x.db", "mysql://root@localhost/x",
                          "postgres:/nohost", "/var/lib/tranche.db"}) {
    auto store = open_store(url);
    ASSERT_FALSE(store.ok()) << url;
    EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument) << url;
  }
  // The scheme is named; the rest, which may hold a password, is not echoed.
  auto store = open_store("mysql://root:secret@localhost/x");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("'mysql'"), std::string::npos) << store.error().message;
  EXPECT_EQ(store.error().message.find("secret"), std::string::npos) << store.error().message;
}

TEST(OpenStore, SaysWhichFileItCannotOpen) {
  auto store = open_store("sqlite:/nonexistent-dir/tranche.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("/nonexistent-dir/tranche.db"), std::string::npos)
      << store.error().message;
}

TEST(OpenStore, SaysWhenPostgresIsUnreachable) {
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  auto store = open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("cannot connect"), std::string::npos)
      << store.error().message;
}

}  // namespace
}  // namespace tranche::store
