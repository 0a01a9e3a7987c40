// A database of its own for one test, on the throwaway PostgreSQL server that
// CTest's `postgres` fixture starts (tests/pg). Tests of one run share that
// server and run in parallel; each creates a fresh database here (t_<random>)
// and drops it when done, so none sees another's rows or advisory locks (which
// PostgreSQL keys by database).
//
// The server's URL comes from the file named by the environment variable
// TRANCHE_PG_URL_FILE, or else by the TRANCHE_PG_URL_FILE macro that
// tranche_gtest(... POSTGRES) compiles in (tests/CMakeLists.txt).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>

namespace tranche::testing {

// The shared server's URL (…/tranche_test), or "" with `why` set.
inline std::string pg_server_url(std::string& why) {
  const char* env = std::getenv("TRANCHE_PG_URL_FILE");
#ifdef TRANCHE_PG_URL_FILE
  const std::string path = env != nullptr ? env : TRANCHE_PG_URL_FILE;
#else
  const std::string path = env != nullptr ? env : "";
#endif
  if (path.empty()) {
    why = "TRANCHE_PG_URL_FILE is not set";
    return "";
  }
  std::ifstream in(path);
  std::string url;
  if (!std::getline(in, url) || url.empty()) {
    why = "no PostgreSQL URL in " + path +
          " (run under ctest, which starts the server: " + "fixture postgres)";
    return "";
  }
  return url;
}

// `url` with its database name replaced: postgresql://user@host:port/NAME?params.
inline std::string pg_url_with_database(const std::string& url, std::string_view name) {
  const std::size_t scheme = url.find("://");
  const std::size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const std::size_t query = url.find('?');
  std::string out = slash == std::string::npos ? url.substr(0, query) : url.substr(0, slash);
  out += "/";
  out += name;
  if (query != std::string::npos) out += url.substr(query);
  return out;
}

class PgTestDb {
 public:
  PgTestDb() {
    server_url_ = pg_server_url(error_);
    if (server_url_.empty()) return;
    std::random_device random;
    const std::uint64_t bits = (std::uint64_t{random()} << 32) | random();
    name_ = "t_" + std::to_string(bits);
    // The name is ours (digits), so it can be spliced into the statement: a
    // database name cannot be a query parameter.
    if (!admin("CREATE DATABASE " + name_)) {
      name_.clear();
      return;
    }
    url_ = pg_url_with_database(server_url_, name_);
  }
  ~PgTestDb() {
    // FORCE: a Store a failed test left open must not keep the database alive.
    if (!name_.empty()) admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  PgTestDb(const PgTestDb&) = delete;
  PgTestDb& operator=(const PgTestDb&) = delete;

  bool ok() const { return !url_.empty(); }
  // Why there is no database (for the test's failure message).
  const std::string& error() const { return error_; }
  // postgresql://… of this test's database.
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  bool admin(const std::string& sql) {
    std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(server_url_.c_str()), PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      error_ = "cannot connect to " + server_url_ + ": " + PQerrorMessage(conn.get());
      return false;
    }
    std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn.get(), sql.c_str()), PQclear);
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      error_ = sql + ": " + PQerrorMessage(conn.get());
      return false;
    }
    return true;
  }

  std::string server_url_;
  std::string name_;
  std::string url_;
  std::string error_;
};

}  // namespace tranche::testing
