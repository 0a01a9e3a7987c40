// tranche-server: the control plane. Owns the store, the in-memory fleet, the
// batch writer, the rollout engine and the HTTP API (docs/api.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/types.h"
#include "server/http_server.h"

namespace tranche::server {

// The one clock port: the engine samples it once per tick and
// passes the time into core.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual core::TimeMs now() const = 0;
};
class SystemClock final : public Clock {
 public:
  core::TimeMs now() const override;
};

struct ServerOptions {
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port
  unsigned threads = 0;       // 0: the number of cores
  // Plain HTTP on an address other than loopback needs this: tokens would cross
  // the network in clear text.
  bool allow_insecure_remote = false;
  std::optional<TlsFiles> tls;

  std::string data_dir = "tranche-data";
  std::string store_url;  // empty: "sqlite:<data_dir>/tranche.db"
  // This server among several on one PostgreSQL (logs, the store's owner and
  // exposure rows); empty: a random one per start.
  std::string server_id;

  std::chrono::milliseconds tick{1000};            // rollout engine period
  std::chrono::milliseconds batch_interval{250};   // device state flush period
  std::size_t batch_max_records = 2000;            // ... or this many pending records
  std::chrono::seconds long_poll_max{30};          // longest hold of a check-in
  std::chrono::seconds ask_again{60};              // "ask again" for a device at rest
  // A check-in that changes nothing writes the device's last contact to the
  // store only this often (core::last_seen_write_due); 0: every check-in.
  std::chrono::seconds last_seen_every{600};
  // Several servers: a device this server owns and has not heard from for this
  // long, with nothing left to judge, is forgotten (the store has it).
  std::chrono::seconds forget_idle{900};
  std::size_t max_body_bytes = 1 << 20;
  // The HTTP layer's budgets (HttpServerOptions has what each means).
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_address = 0;
  std::size_t max_buffered_body_bytes = 64u << 20;
  std::chrono::seconds body_timeout{30};

  // Bootstrap admin token (e.g. from TRANCHE_ADMIN_TOKEN). When empty and the
  // store has no operator token yet, one is generated and written to
  // <data_dir>/admin-token (mode 0600).
  std::string admin_token;
  // channel -> consumer interface file: releases of that channel that carry a
  // content bundle are checked against it when registered (issue 4 section 4).
  std::map<std::string, std::string> interfaces;
  // Served read-only over GET, as any static HTTP server or CDN could serve them
  // instead: a TUF repository (metadata/, targets/) at /tuf/, and the dashboard
  // at / and /ui/. Empty: not served.
  std::string tuf_repo_dir;
  std::string dashboard_dir;
  // The SWUpdate images (.swu) of releases on channels of kind swu: a release
  // names its file here when it is registered (its hashes are computed then),
  // and DDI clients download it through /{tenant}/controller/v1 (docs/ddi.md).
  // Empty: no swu release can be registered.
  std::string artifact_dir;
  // The online roles (TUF spec: snapshot and timestamp keys live on the
  // server): with both given, the engine's server signs a new snapshot when a
  // release's targets metadata appears in tuf_repo_dir, and renews the
  // timestamp before it expires. Targets stay signed offline (tranche release sign).
  std::vector<std::string> tuf_snapshot_keys;
  std::vector<std::string> tuf_timestamp_keys;
  std::chrono::seconds tuf_timestamp_lifetime{86400};
};

class Server {
 public:
  static core::Result<std::unique_ptr<Server>> start(ServerOptions options,
                                                     std::shared_ptr<Clock> clock);
  virtual ~Server() = default;
  virtual std::uint16_t port() const = 0;
  // The admin token this start wrote or was given (empty when the store already
  // had operator tokens and none was given).
  virtual std::string bootstrap_token() const = 0;
  // Graceful: stop accepting, answer held check-ins, flush every buffered write,
  // close the store. Idempotent.
  virtual void shutdown() = 0;
};

}  // namespace tranche::server
