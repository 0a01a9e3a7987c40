#include "server/server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "config/content_files.h"
#include "config/plan_yaml.h"
#include "config/tuf_repo_dir.h"
#include "core/cohort.h"
#include "server/codec.h"
#include "server/server_impl.h"
#include "tuf/crypto.h"

namespace tranche::server {
namespace json = boost::json;
using core::ErrorCode;
using core::make_error;

core::TimeMs SystemClock::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  TRANCHE_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()),
                            static_cast<int>(raw.size())) == 1,
                 "OpenSSL's random generator failed");
  return tuf::hex_encode(raw);
}

ServerImpl::ServerImpl(ServerOptions options, std::shared_ptr<Clock> clock)
    : options_(std::move(options)), clock_(std::move(clock)) {}

ServerImpl::~ServerImpl() { shutdown(); }

core::Result<std::unique_ptr<Server>> Server::start(ServerOptions options,
                                                    std::shared_ptr<Clock> clock) {
  auto impl = std::make_unique<ServerImpl>(std::move(options), std::move(clock));
  if (auto st = impl->open(); !st) return st.error();
  return std::unique_ptr<Server>(std::move(impl));
}

namespace {

bool is_loopback(const std::string& address) {
  return address == "127.0.0.1" || address == "::1" || address.rfind("127.", 0) == 0 ||
         address == "localhost";
}

}  // namespace

core::Status ServerImpl::open() {
  if (!options_.tls && !options_.allow_insecure_remote && !is_loopback(options_.listen_address)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "refusing plain HTTP on " + options_.listen_address +
                          ": tokens would cross the network in clear text; give --tls-cert and "
                          "--tls-key, or --allow-insecure-remote");
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--data-dir " + options_.data_dir + ": " + ec.message());
  }
  std::string url = options_.store_url.empty()
                        ? "sqlite:" + (std::filesystem::path(options_.data_dir) / "tranche.db").string()
                        : options_.store_url;
  auto store = store::open_store(url);
  if (!store) return store.error().with_context("store " + url + ": ");
  store_ = std::move(*store);
  shared_ = store_->backend() == "postgres";
  server_id_ = options_.server_id.empty() ? "s-" + random_hex(6) : options_.server_id;
  if (shared_) {
    // Connections of their own: the batch writer's commits never wait behind
    // the API's reads, and the engine lock is lost only when its own session is.
    auto writer = store::open_store(url);
    if (!writer) return writer.error().with_context("store " + url + " (batch writer): ");
    writer_store_ = std::move(*writer);
    auto lock = store::open_store(url);
    if (!lock) return lock.error().with_context("store " + url + " (engine lock): ");
    lock_store_ = std::move(*lock);
    // Alive before it claims any device, so no leader takes them for orphans.
    if (auto st = store_->beat_server(server_id_, clock_->now()); !st) {
      return st.error().with_context("store " + url + ": ");
    }
  }
  spdlog::info("store: {} (schema version {}); this server is {}", store_->backend(),
               store::latest_schema_version(), server_id_);

  for (const auto& [channel, path] : options_.interfaces) {
    auto iface = config::load_consumer_interface_file(path);
    if (!iface) return iface.error().with_context("--interface " + channel + "=");
    interfaces_.emplace(channel, std::move(*iface));
  }

  if (!options_.tuf_snapshot_keys.empty() || !options_.tuf_timestamp_keys.empty()) {
    if (options_.tuf_repo_dir.empty() || options_.tuf_snapshot_keys.empty() ||
        options_.tuf_timestamp_keys.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--tuf-snapshot-key and --tuf-timestamp-key go together, with --tuf-repo");
    }
    auto s = config::load_signing_keys(options_.tuf_snapshot_keys);
    if (!s) return s.error().with_context("--tuf-snapshot-key ");
    auto t = config::load_signing_keys(options_.tuf_timestamp_keys);
    if (!t) return t.error().with_context("--tuf-timestamp-key ");
    tuf_snapshot_signers_ = std::move(*s);
    tuf_timestamp_signers_ = std::move(*t);
  }
  if (auto st = load(); !st) return st;
  if (auto st = ensure_admin_token(); !st) return st;

  BatchWriter::Sink sink = [this](const store::DeviceBatch& batch) -> core::Status {
    if (writer_store_) return writer_store_->write_device_batch(batch);
    std::lock_guard lock(store_mu_);
    if (!store_) return core::make_error(ErrorCode::kUnavailable, "the store is closed");
    return store_->write_device_batch(batch);
  };
  writer_ = std::make_unique<BatchWriter>(
      fleet_, metrics_, std::move(sink),
      BatchWriter::Settings{options_.batch_interval, options_.batch_max_records, std::chrono::seconds(5)});
  const core::DurationMs tick_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.tick).count();
  if (shared_) {
    membership_ = std::make_unique<Membership>(
        Membership::Ports{fleet_, *store_, store_mu_, *clock_,
                          [this](const std::string& id) { return writer_->unwritten(id); }},
        Membership::Settings{server_id_, tick_ms, last_seen_every(),
                             std::chrono::duration_cast<std::chrono::milliseconds>(options_.forget_idle).count()});
  }
  engine_ = std::make_unique<RolloutEngine>(
      RolloutEngine::Ports{fleet_, *store_, store_mu_, *clock_, metrics_,
                           [this](DeviceWrite write) { writer_->enqueue(std::move(write)); }},
      RolloutEngine::Settings{shared_, server_id_, tick_ms});
  writer_->start();
  engine_thread_ = std::thread([this] { engine_loop(); });
  long_poll_ = std::make_unique<LongPoll>(LongPoll::Ports{
      fleet_, *clock_, metrics_, [this](DeviceWrite write) { writer_->enqueue(std::move(write)); },
      [this](Responder& respond, const std::vector<ChannelAnswer>& answers, const Snapshot& snap, TimeMs now) {
        reply_json(respond, 200, answer_json(answers, snap, now));
      }});
  long_poll_->start();

  HttpServerOptions http;
  http.address = options_.listen_address;
  http.port = options_.port;
  http.threads = options_.threads == 0 ? std::max(1u, std::thread::hardware_concurrency())
                                       : options_.threads;
  http.max_body_bytes = options_.max_body_bytes;
  http.max_connections = options_.max_connections;
  http.max_connections_per_address = options_.max_connections_per_address;
  http.max_buffered_body_bytes = options_.max_buffered_body_bytes;
  http.body_timeout = options_.body_timeout;
  http.tls = options_.tls;
  auto listener = HttpServer::start(
      http, [this](HttpRequest&& req, Responder respond) { handle(std::move(req), std::move(respond)); });
  if (!listener) {
    shutdown();
    return listener.error();
  }
  http_ = std::move(*listener);
  spdlog::info("listening on {}://{}:{} with {} worker threads", options_.tls ? "https" : "http",
               options_.listen_address, http_->port(), http.threads);
  return core::Ok{};
}

// --- loading ------------------------------------------------------------------------

core::Result<std::shared_ptr<RolloutInfo>> rollout_from_row(store::RolloutRow row,
                                                            std::shared_ptr<RolloutEvidence> evidence,
                                                            bool shared) {
  auto info = std::make_shared<RolloutInfo>();
  auto plan = config::parse_plan(row.plan_yaml, "rollout " + row.id);
  if (!plan) return plan.error();
  auto status = status_from_json(row.status_json);
  if (!status) return status.error().with_context("rollout " + row.id + ": ");
  auto gate = gate_from_json(row.gate_json);
  if (!gate) return gate.error().with_context("rollout " + row.id + ": ");
  auto version = core::Version::parse(row.version);
  if (!version) return version.error();
  info->plan = std::move(*plan);
  info->status = *status;
  info->gate = gate->state;
  info->strata = std::move(gate->strata);
  info->channel = row.channel;
  info->version = *version;
  if (!row.previous.empty()) {
    auto prev = core::Version::parse(row.previous);
    if (prev) info->previous = *prev;
  }
  if (shared) {
    // Several servers: each counts from zero what it sees (its exposure row);
    // the stored evidence is the sum the leader last read.
    info->evidence = evidence ? std::move(evidence) : std::make_shared<RolloutEvidence>();
    info->summed = gate->evidence;
  } else {
    info->evidence = evidence ? std::move(evidence)  // this server's own evidence goes on
                              : std::make_shared<RolloutEvidence>(gate->evidence);
  }
  info->row = std::move(row);
  return info;
}

void derive_channel_state(Snapshot& snap) {
  snap.live_rollout.clear();
  for (auto& [channel, info] : snap.channels) info.baseline.reset();
  for (const auto& [id, r] : snap.rollouts) {
    if (r->status.state == core::RolloutState::kCompleted) {
      auto& baseline = snap.channels[r->channel].baseline;
      if (!baseline || *baseline < r->version) baseline = r->version;
    }
    if (r->live()) snap.live_rollout[r->channel] = id;
  }
}

core::Status ServerImpl::load() {
  auto tenants = store_->load_tenants();
  if (!tenants) return tenants.error();
  auto tokens = store_->load_operator_tokens();
  if (!tokens) return tokens.error();
  auto releases = store_->load_releases();
  if (!releases) return releases.error();
  auto rollouts = store_->load_rollouts();
  if (!rollouts) return rollouts.error();
  // Several servers: a server holds only the devices it serves, each read
  // from the store on its first request here (ensure_owned); none at start.
  auto devices = shared_ ? core::Result<std::vector<store::DeviceRow>>(std::vector<store::DeviceRow>{})
                         : store_->load_devices();
  if (!devices) return devices.error();
  auto states = shared_ ? core::Result<std::vector<store::DeviceStateRow>>(std::vector<store::DeviceStateRow>{})
                        : store_->load_device_states();
  if (!states) return states.error();

  Snapshot snap;
  for (auto& row : *tenants) {
    TenantInfo info;
    boost::system::error_code ec;
    auto policy_value = json::parse(row.policy_json, ec);
    if (!ec) {
      auto policy = policy_from_json(policy_value);
      if (!policy) return policy.error().with_context("tenant " + row.id + ": ");
      info.policy = std::move(*policy);
    }
    info.row = std::move(row);
    snap.tenants.emplace(info.row.id, std::move(info));
  }
  for (auto& row : *tokens) {
    snap.operators.emplace(row.token_hash, OperatorInfo{row.name, row.role, row.created_at});
  }
  for (auto& row : *releases) {
    auto v = core::Version::parse(row.version);
    if (!v) return v.error().with_context("release " + row.channel + " ");
    snap.channels[row.channel].releases.push_back(ReleaseInfo{*v, std::move(row), nullptr});
  }
  for (auto& [channel, info] : snap.channels) {
    std::sort(info.releases.begin(), info.releases.end(),
              [](const ReleaseInfo& a, const ReleaseInfo& b) { return a.version < b.version; });
  }
  for (auto& row : *rollouts) {
    auto info = rollout_from_row(std::move(row), nullptr, shared_);
    if (!info) return info.error();
    snap.rollouts.emplace((*info)->row.id, std::move(*info));
  }
  derive_channel_state(snap);

  auto marks = shared_ ? core::Result<std::vector<store::RolloutMarkRow>>(std::vector<store::RolloutMarkRow>{})
                       : store_->load_marks();
  if (!marks) return marks.error();
  if (shared_) {
    auto n = store_->count_devices();
    if (!n) return n.error();
    fleet_.set_store_count(static_cast<std::uint64_t>(*n));
  }
  std::unordered_map<std::string, store::DeviceStateRow> state_by_device;
  for (auto& st : *states) state_by_device.emplace(st.device, std::move(st));
  std::unordered_map<std::string, std::vector<store::RolloutMarkRow>> marks_by_device;
  for (auto& m : *marks) marks_by_device[m.device].push_back(std::move(m));
  static const std::vector<store::RolloutMarkRow> kNoMarks;
  for (auto& row : *devices) {
    auto st = state_by_device.find(row.id);
    auto mk = marks_by_device.find(row.id);
    Device d = device_from_rows(row, st == state_by_device.end() ? nullptr : &st->second,
                                mk == marks_by_device.end() ? kNoMarks : mk->second);
    // Several servers: a device is this one's once it claims it (first request).
    d.owned = !shared_;
    d.last_seen = core::latest_contact(d.last_seen, last_seen_every(), clock_->now());
    if (auto added = fleet_.add_device(std::move(d)); !added) return added;
  }
  fleet_.update([&](Snapshot& s) { s = std::move(snap); });
  spdlog::info("loaded {} tenants, {} devices{}, {} releases, {} rollouts ({} live)", tenants->size(),
               shared_ ? fleet_.store_count() : devices->size(),
               shared_ ? " (in the store; each read here on its first request)" : "", releases->size(),
               rollouts->size(), fleet_.snapshot()->live_rollout.size());
  return core::Ok{};
}

core::Status ServerImpl::ensure_admin_token() {
  std::string token = options_.admin_token;
  auto snap = fleet_.snapshot();
  if (token.empty()) {
    if (!snap->operators.empty()) return core::Ok{};
    token = "tro_" + random_hex(24);
    auto path = std::filesystem::path(options_.data_dir) / "admin-token";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
      return make_error(ErrorCode::kInvalidArgument, "cannot write " + path.string());
    }
    std::string line = token + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ok = ::fsync(fd) == 0 && ok;
    ::close(fd);
    if (!ok) return make_error(ErrorCode::kInvalidArgument, "cannot write " + path.string());
    spdlog::info("no operator token yet: wrote an admin token to {}", path.string());
  }
  store::OperatorTokenRow row{tuf::sha256_hex(token), "admin", store::Role::kAdmin, clock_->now()};
  if (auto known = snap->operators.find(row.token_hash);
      known != snap->operators.end() && known->second.name == row.name && known->second.role == row.role) {
    bootstrap_token_ = token;  // stored at an earlier start: nothing to write, nothing to audit
    return core::Ok{};
  }
  store::AuditRow audit_row{0, clock_->now(), "server " + server_id_, "token.bootstrap", "token admin",
                            options_.admin_token.empty() ? "written to the data directory"
                                                         : "given with --admin-token"};
  {
    std::lock_guard lock(store_mu_);
    if (auto st = store_->put_operator_token(row, audit_row); !st) return st;
  }
  fleet_.update([&](Snapshot& s) { s.operators[row.token_hash] = OperatorInfo{row.name, row.role, row.created_at}; });
  bootstrap_token_ = token;
  return core::Ok{};
}

// --- shutdown -----------------------------------------------------------------------

void ServerImpl::shutdown() {
  std::call_once(shutdown_once_, [this] {
    stopping_ = true;
    // Held check-ins are answered now (with what they would get anyway).
    if (long_poll_) long_poll_->stop();
    if (http_) http_->stop(std::chrono::milliseconds(3000));
    engine_cv_.notify_all();
    if (engine_thread_.joinable()) engine_thread_.join();
    if (writer_) writer_->stop();  // its last round flushes everything
    std::lock_guard lock(store_mu_);
    store_.reset();
    writer_store_.reset();
    lock_store_.reset();
    spdlog::info("stopped; every acknowledged write is in the store");
  });
}

// --- engine ---------------------------------------------------------------------------

void ServerImpl::engine_loop() {
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    core::Result<bool> got = false;
    if (lock_store_) {
      got = lock_store_->try_acquire_engine_lock();
    } else {
      std::lock_guard lock(store_mu_);
      got = store_->try_acquire_engine_lock();
    }
    bool leads = got && *got;
    if (leads != engine_leader_) {
      if (leads) {
        spdlog::info("engine: this server ({}) runs the rollout engine", server_id_);
      } else {
        spdlog::warn("engine: lost the engine lock ({}); following",
                     got ? "held by another server" : got.error().to_string());
      }
    }
    engine_leader_ = leads;
    metrics_.engine_leader.store(leads ? 1 : 0);
    // With SQLite this process is the only one; with PostgreSQL others may have
    // changed rollouts, releases, tenants or tokens, and taken devices.
    if (shared_) {
      {
        std::lock_guard lock(store_mu_);
        if (auto st = store_->beat_server(server_id_, clock_->now()); !st) {
          spdlog::warn("engine: this server's heartbeat not saved: {}", st.error().to_string());
        }
      }
      sync_from_store();
      membership_->take_claims();
      if (engine_leader_) membership_->adopt_orphans();
      membership_->evict_if_due();
    }
    engine_->tick(engine_leader_);
    if (engine_leader_) publish_tuf_if_needed(clock_->now());
    sample_history(clock_->now());
    next += options_.tick;
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;
    std::unique_lock lock(engine_sleep_mu_);
    engine_cv_.wait_until(lock, next, [this] { return stopping_.load(); });
  }
}

void ServerImpl::publish_tuf_if_needed(TimeMs now) {
  if (tuf_snapshot_signers_.empty() || now - tuf_checked_at_ < 2 * core::kSecond) return;
  tuf_checked_at_ = now;
  auto lifetime = std::chrono::duration_cast<std::chrono::milliseconds>(options_.tuf_timestamp_lifetime).count();
  // Renew at half the timestamp's life: a client never sees it expire (5.4.4
  // freeze check) while the server runs.
  auto why = config::repo_publish_reason(options_.tuf_repo_dir, now, lifetime / 2);
  if (!why) return;
  auto version = config::repo_publish(options_.tuf_repo_dir, tuf_snapshot_signers_, tuf_timestamp_signers_,
                                      now, lifetime);
  if (!version) {
    spdlog::error("tuf: snapshot and timestamp not published ({}): {}", *why, version.error().to_string());
    return;
  }
  spdlog::info("tuf: published snapshot {} and a timestamp ({})", *version, *why);
  // The files are out already (the repository is files, not rows): a lost
  // audit entry is logged, and the next publish writes its own.
  if (auto st = audit("engine", "tuf.publish", "snapshot " + std::to_string(*version), *why, now); !st) {
    spdlog::error("tuf: the audit entry of snapshot {} was not written: {}", *version, st.error().to_string());
  }
}

void ServerImpl::sync_from_store() {
  core::Result<std::vector<store::RolloutRow>> rollouts = std::vector<store::RolloutRow>{};
  core::Result<std::vector<store::ReleaseRow>> releases = std::vector<store::ReleaseRow>{};
  core::Result<std::vector<store::TenantRow>> tenants = std::vector<store::TenantRow>{};
  core::Result<std::vector<store::OperatorTokenRow>> tokens = std::vector<store::OperatorTokenRow>{};
  // Read and publish under snapshot_write_lock, which this server's own writes
  // of releases, tenants and tokens take too.
  auto locked = snapshot_write_lock();
  {
    std::lock_guard lock(store_mu_);
    rollouts = store_->load_rollouts();
    releases = store_->load_releases();
    tenants = store_->load_tenants();
    tokens = store_->load_operator_tokens();
  }
  if (!rollouts || !releases || !tenants || !tokens) {
    spdlog::warn("sync: store unreadable; serving what this server knows");
    return;
  }
  // Stages size themselves against the whole fleet, enrolled at any server.
  const TimeMs now = clock_->now();
  if (now - devices_counted_at_ >= 5 * core::kSecond) {
    core::Result<std::int64_t> n = std::int64_t{0};
    {
      std::lock_guard lock(store_mu_);
      n = store_->count_devices();
    }
    if (n) {
      devices_counted_at_ = now;
      if (static_cast<std::uint64_t>(*n) != fleet_.store_count()) {
        fleet_.set_store_count(static_cast<std::uint64_t>(*n));
        synced_fingerprint_.clear();  // publish: the count is in the snapshot
      }
    }
  }
  // Publish only when something moved: a publish wakes every held check-in.
  std::string fingerprint;
  for (const auto& r : *rollouts) {
    fingerprint += r.id + ":" + std::to_string(r.generation) + ":" +
                   std::to_string(engine_leader_ ? 0 : r.updated_at) + ";";
  }
  for (const auto& r : *releases) fingerprint += r.channel + "/" + r.version + ";";
  for (const auto& t : *tenants) fingerprint += t.id + "=" + t.policy_json + t.enrollment_key_hash + ";";
  for (const auto& t : *tokens) fingerprint += t.token_hash + std::to_string(static_cast<int>(t.role)) + ";";
  if (fingerprint == synced_fingerprint_) return;
  synced_fingerprint_ = fingerprint;

  fleet_.update([&](Snapshot& s) {
    for (auto& row : *rollouts) {
      auto it = s.rollouts.find(row.id);
      bool newer = it == s.rollouts.end() || it->second->row.generation < row.generation;
      bool take_evidence = !engine_leader_ && it != s.rollouts.end() &&
                           it->second->row.updated_at < row.updated_at;
      if (!newer && !take_evidence) continue;
      // Each server keeps counting its own share; the stored sum comes with the row.
      std::shared_ptr<RolloutEvidence> keep = it != s.rollouts.end() ? it->second->evidence : nullptr;
      auto info = rollout_from_row(row, keep, shared_);
      if (!info) {
        spdlog::error("sync: rollout {}: {}", row.id, info.error().to_string());
        continue;
      }
      s.rollouts[row.id] = std::move(*info);
    }
    s.channels.clear();
    for (auto& row : *releases) {
      auto v = core::Version::parse(row.version);
      if (v) s.channels[row.channel].releases.push_back(ReleaseInfo{*v, std::move(row), nullptr});
    }
    for (auto& [channel, info] : s.channels) {
      std::sort(info.releases.begin(), info.releases.end(),
                [](const ReleaseInfo& a, const ReleaseInfo& b) { return a.version < b.version; });
    }
    derive_channel_state(s);
    for (auto& row : *tenants) {
      boost::system::error_code ec;
      auto value = json::parse(row.policy_json, ec);
      auto policy = ec ? core::Result<core::TenantPolicy>(core::TenantPolicy{}) : policy_from_json(value);
      if (policy) s.tenants[row.id] = TenantInfo{row, *policy};
    }
    s.operators.clear();
    for (auto& row : *tokens) {
      s.operators.emplace(row.token_hash, OperatorInfo{row.name, row.role, row.created_at});
    }
  });
}

core::Status ServerImpl::audit(const std::string& actor, const std::string& action,
                               const std::string& target, const std::string& reason,
                               TimeMs now) {
  store::AuditRow row{0, now, actor, action, target, reason};
  std::lock_guard lock(store_mu_);
  return store_->append_audit(row);
}

}  // namespace tranche::server
