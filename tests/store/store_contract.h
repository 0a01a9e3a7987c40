// The store contract (store/store.h) as one parameterised suite, StoreContract,
// that every backend passes: store_contract_test.cpp holds the cases, and each
// backend's test file instantiates them with a Backend that makes empty
// databases (sqlite_store_test.cpp, postgres_store_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "store/store.h"

namespace tranche::store {

// An empty database for one test, removed when destroyed. url() may be opened
// any number of times (reopen, migration walk).
class TestDatabase {
 public:
  virtual ~TestDatabase() = default;
  virtual std::string url() const = 0;
  virtual std::string error() const = 0;  // non-empty: no database
};

struct Backend {
  const char* name;  // the test name suffix: StoreContract.RoundTrip/sqlite
  std::unique_ptr<TestDatabase> (*make)();
};

// Each case gets an empty database of its own.
class StoreContract : public ::testing::TestWithParam<const Backend*> {
 protected:
  void SetUp() override {
    db_ = GetParam()->make();
    ASSERT_TRUE(db_->error().empty()) << db_->error();
  }
  core::Result<std::unique_ptr<Store>> open(std::optional<int> migrate_to = std::nullopt) {
    return open_store(db_->url(), migrate_to);
  }
  std::unique_ptr<TestDatabase> db_;
};

// Names the case "store/StoreContract.Case/sqlite" in CTest: gtest lists the
// parameter as "/0  # GetParam() = sqlite", which gtest_discover_tests folds.
inline void PrintTo(const Backend* backend, std::ostream* os) {
  *os << backend->name;
}

}  // namespace tranche::store
