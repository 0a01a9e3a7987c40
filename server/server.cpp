#include "server/server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
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
  spdlog::info("store: {} (schema version {})", store_->backend(), store::latest_schema_version());

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

  writer_ = std::thread([this] { writer_loop(); });
  engine_ = std::thread([this] { engine_loop(); });
  poller_ = std::thread([this] { poller_loop(); });

  HttpServerOptions http;
  http.address = options_.listen_address;
  http.port = options_.port;
  http.threads = options_.threads == 0 ? std::max(1u, std::thread::hardware_concurrency())
                                       : options_.threads;
  http.max_body_bytes = options_.max_body_bytes;
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
                                                            std::shared_ptr<RolloutEvidence> evidence) {
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
  info->channel = row.channel;
  info->version = *version;
  if (!row.previous.empty()) {
    auto prev = core::Version::parse(row.previous);
    if (prev) info->previous = *prev;
  }
  info->evidence = evidence ? std::move(evidence)  // this server's own evidence goes on
                            : std::make_shared<RolloutEvidence>(gate->evidence);
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
  auto devices = store_->load_devices();
  if (!devices) return devices.error();
  auto states = store_->load_device_states();
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
  for (auto& row : *tokens) snap.operators.emplace(row.token_hash, OperatorInfo{row.name, row.role});
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
    auto info = rollout_from_row(std::move(row), nullptr);
    if (!info) return info.error();
    snap.rollouts.emplace((*info)->row.id, std::move(*info));
  }
  derive_channel_state(snap);

  std::unordered_map<std::string, store::DeviceStateRow> state_by_device;
  for (auto& s : *states) state_by_device.emplace(s.device, std::move(s));
  for (auto& row : *devices) {
    Device d;
    d.id = row.id;
    d.tenant = row.tenant;
    d.token_hash = row.token_hash;
    d.utc_offset_minutes = row.utc_offset_minutes;
    d.enrolled_at = row.enrolled_at;
    boost::system::error_code ec;
    if (auto tags = json::parse(row.tags_json, ec); !ec) {
      if (auto t = tags_from_json(tags)) d.tags = std::move(*t);
    }
    if (auto it = state_by_device.find(row.id); it != state_by_device.end()) {
      const auto& s = it->second;
      d.last_seen = s.last_seen;
      d.said_goodbye = s.said_goodbye;
      d.last_event_seq = s.last_event_seq;
      if (auto v = json::parse(s.versions_json, ec); !ec && v.is_object()) {
        for (const auto& [ch, ver] : v.as_object()) {
          if (ver.is_string()) {
            if (auto p = core::Version::parse(ver.as_string())) d.versions.emplace(ch, *p);
          }
        }
      }
      if (auto f = json::parse(s.failed_json, ec); !ec && f.is_object()) {
        for (const auto& [ch, list] : f.as_object()) {
          if (!list.is_array()) continue;
          for (const auto& ver : list.as_array()) {
            if (!ver.is_string()) continue;
            if (auto p = core::Version::parse(ver.as_string())) d.failed[ch].push_back(*p);
          }
        }
      }
      if (auto h = json::parse(s.health_json, ec); !ec && h.is_object()) {
        auto& o = h.as_object();
        if (auto* marks = o.if_contains("_marks"); marks != nullptr && marks->is_array()) {
          for (const auto& m : marks->as_array()) {
            if (!m.is_object()) continue;
            RolloutMark mark;
            const auto& mo = m.as_object();
            auto text_of = [&](std::string_view key) -> std::string_view {
              auto* v = mo.if_contains(key);
              return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view{};
            };
            auto time_of = [&](std::string_view key) -> TimeMs {
              auto* v = mo.if_contains(key);
              return v != nullptr && v->is_int64() ? v->as_int64() : 0;
            };
            mark.rollout = std::string(text_of("rollout"));
            mark.failure = core::parse_failure_cause(text_of("failure")).value_or(core::FailureCause::kNone);
            mark.offered_at = time_of("offered_at");
            mark.acknowledged_at = time_of("acknowledged_at");
            mark.failed_at = time_of("failed_at");
            if (auto standing = core::parse_standing(text_of("standing"))) {
              mark.standing = *standing;
            } else {
              // A mark written before standings (acknowledged_at, failure_counted, offered_at).
              auto* fc = mo.if_contains("failure_counted");
              const bool failed = fc != nullptr && fc->is_bool() && fc->as_bool();
              const bool exposed = mark.offered_at > 0 || mark.acknowledged_at > 0;
              mark.standing = failed ? (exposed ? core::Standing::kExposedFailed : core::Standing::kControlFailed)
                              : mark.acknowledged_at > 0 ? core::Standing::kAcknowledged
                              : exposed                  ? core::Standing::kExposed
                                                         : core::Standing::kControl;
            }
            d.marks.push_back(std::move(mark));
          }
          o.erase("_marks");
        }
        d.health_json = json::serialize(o);
      }
    }
    if (auto st = fleet_.add_device(std::move(d)); !st) return st;
  }
  fleet_.update([&](Snapshot& s) { s = std::move(snap); });
  spdlog::info("loaded {} tenants, {} devices, {} releases, {} rollouts ({} live)",
               tenants->size(), devices->size(), releases->size(), rollouts->size(),
               fleet_.snapshot()->live_rollout.size());
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
  store::OperatorTokenRow row{tuf::sha256_hex(token), "admin", store::Role::kAdmin};
  {
    std::lock_guard lock(store_mu_);
    if (auto st = store_->put_operator_token(row); !st) return st;
  }
  fleet_.update([&](Snapshot& s) { s.operators[row.token_hash] = OperatorInfo{row.name, row.role}; });
  bootstrap_token_ = token;
  return core::Ok{};
}

// --- shutdown -----------------------------------------------------------------------

void ServerImpl::shutdown() {
  std::call_once(shutdown_once_, [this] {
    stopping_ = true;
    // Held check-ins are answered now (with what they would get anyway).
    waiters_cv_.notify_all();
    fleet_.wake_all();
    if (poller_.joinable()) poller_.join();
    if (http_) http_->stop(std::chrono::milliseconds(3000));
    writer_cv_.notify_all();
    engine_cv_.notify_all();
    if (engine_.joinable()) engine_.join();
    if (writer_.joinable()) writer_.join();  // its last round flushes everything
    std::lock_guard lock(store_mu_);
    store_.reset();
    spdlog::info("stopped; every acknowledged write is in the store");
  });
}

// --- batch writer -------------------------------------------------------------------

void ServerImpl::enqueue(DeviceWrite write) {
  std::size_t pending = 0;
  {
    std::lock_guard lock(writer_mu_);
    pending_states_.insert(std::move(write.device));
    for (auto& e : write.events) pending_events_.push_back(std::move(e));
    pending = pending_states_.size() + pending_events_.size();
  }
  if (pending >= options_.batch_max_records) writer_cv_.notify_one();
}

void ServerImpl::flush_pending() {
  std::unordered_set<std::string> devices;
  std::vector<store::DeviceEventRow> events;
  {
    std::lock_guard lock(writer_mu_);
    devices.swap(pending_states_);
    events.swap(pending_events_);
  }
  // Each device's state as it is now: a device that checked in ten times since
  // the last batch is written once.
  std::vector<store::DeviceStateRow> states;
  states.reserve(devices.size());
  for (const auto& id : devices) {
    (void)fleet_.with_device(id, [&](Device& d) { states.push_back(d.state_row()); });
  }
  if (states.empty() && events.empty()) return;
  auto t0 = std::chrono::steady_clock::now();
  core::Status st = core::Ok{};
  {
    std::lock_guard lock(store_mu_);
    if (!store_) return;
    st = store_->write_batch(states, events);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  metrics_.store_flush_seconds.observe(seconds);
  if (st) {
    metrics_.store_flushes.fetch_add(1);
    metrics_.store_flush_records.fetch_add(states.size() + events.size());
    return;
  }
  metrics_.store_flush_errors.fetch_add(1);
  spdlog::error("store: batch of {} states and {} events not written, retrying: {}",
                states.size(), events.size(), st.error().to_string());
  // Put the batch back (the states are rebuilt from the devices next time).
  std::lock_guard lock(writer_mu_);
  for (auto& s : states) pending_states_.insert(s.device);
  pending_events_.insert(pending_events_.begin(), std::make_move_iterator(events.begin()),
                         std::make_move_iterator(events.end()));
}

void ServerImpl::writer_loop() {
  while (!stopping_) {
    {
      std::unique_lock lock(writer_mu_);
      writer_cv_.wait_for(lock, options_.batch_interval, [this] {
        return stopping_.load() ||
               pending_states_.size() + pending_events_.size() >= options_.batch_max_records;
      });
    }
    flush_pending();
  }
  // Shutdown: the listener has stopped, so nothing new arrives; write the rest.
  for (int attempt = 0; attempt < 5; ++attempt) {
    flush_pending();
    std::lock_guard lock(writer_mu_);
    if (pending_states_.empty() && pending_events_.empty()) break;
  }
}

// --- engine ---------------------------------------------------------------------------

void ServerImpl::engine_loop() {
  auto next = std::chrono::steady_clock::now();
  const bool shared_store = store_->backend() == "postgres";
  while (!stopping_) {
    core::Result<bool> got = false;
    {
      std::lock_guard lock(store_mu_);
      got = store_->try_acquire_engine_lock();
    }
    bool leads = got && *got;
    if (leads != engine_leader_) {
      if (leads) {
        spdlog::info("engine: this server runs the rollout engine");
      } else {
        spdlog::warn("engine: lost the engine lock ({}); following",
                     got ? "held by another server" : got.error().to_string());
      }
    }
    engine_leader_ = leads;
    metrics_.engine_leader.store(leads ? 1 : 0);
    // With SQLite this process is the only one; with PostgreSQL others may have
    // changed rollouts, releases, tenants or tokens.
    if (shared_store) sync_from_store();
    if (engine_leader_) {
      tick(clock_->now());
      publish_tuf_if_needed(clock_->now());
    }
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
  (void)audit("engine", "tuf.publish", "snapshot " + std::to_string(*version), *why, now);
}

void ServerImpl::sync_from_store() {
  core::Result<std::vector<store::RolloutRow>> rollouts = std::vector<store::RolloutRow>{};
  core::Result<std::vector<store::ReleaseRow>> releases = std::vector<store::ReleaseRow>{};
  core::Result<std::vector<store::TenantRow>> tenants = std::vector<store::TenantRow>{};
  core::Result<std::vector<store::OperatorTokenRow>> tokens = std::vector<store::OperatorTokenRow>{};
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

  std::lock_guard engine_lock(engine_mu_);
  fleet_.update([&](Snapshot& s) {
    for (auto& row : *rollouts) {
      auto it = s.rollouts.find(row.id);
      bool newer = it == s.rollouts.end() || it->second->row.generation < row.generation;
      bool take_evidence = !engine_leader_ && it != s.rollouts.end() &&
                           it->second->row.updated_at < row.updated_at;
      if (!newer && !take_evidence) continue;
      // The leader keeps counting its own evidence; a follower takes the leader's.
      std::shared_ptr<RolloutEvidence> keep =
          engine_leader_ && it != s.rollouts.end() ? it->second->evidence : nullptr;
      auto info = rollout_from_row(row, keep);
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
    for (auto& row : *tokens) s.operators.emplace(row.token_hash, OperatorInfo{row.name, row.role});
  });
}

core::Status ServerImpl::audit(const std::string& actor, const std::string& action,
                               const std::string& target, const std::string& reason,
                               TimeMs now) {
  store::AuditRow row{0, now, actor, action, target, reason};
  std::lock_guard lock(store_mu_);
  return store_->append_audit(row);
}

core::GateObservation ServerImpl::observe(const RolloutInfo& r, TimeMs now) {
  const core::DurationMs bake =
      r.status.stage < r.plan.stages.size() ? r.plan.stages[r.status.stage].bake : 0;
  return core::observe(r.evidence->tally(),
                       std::max<core::DurationMs>(0, now - r.status.stage_started_at), bake);
}

namespace {

std::string gate_json_of(const RolloutInfo& r) {
  GateRecord rec;
  rec.state = r.gate;
  rec.evidence = r.evidence->tally();
  return json::serialize(gate_to_json(rec));
}

}  // namespace

void ServerImpl::save_gate_evidence(const RolloutInfo& r, TimeMs now) {
  std::lock_guard lock(store_mu_);
  auto st = store_->save_gate(r.row.id, r.row.generation, gate_json_of(r), now);
  if (!st) spdlog::warn("engine: gate evidence of {} not saved: {}", r.row.id, st.error().to_string());
}

core::Result<std::shared_ptr<const RolloutInfo>> ServerImpl::transition(
    const std::string& rollout_id, core::RolloutEvent event, const std::string& actor,
    std::string reason, TimeMs now, const std::function<void(RolloutInfo&)>& amend) {
  std::lock_guard engine_lock(engine_mu_);
  auto snap = fleet_.snapshot();
  auto it = snap->rollouts.find(rollout_id);
  if (it == snap->rollouts.end()) {
    return make_error(ErrorCode::kNotFound, "rollout '" + rollout_id + "' does not exist");
  }
  const RolloutInfo& cur = *it->second;
  auto next = std::make_shared<RolloutInfo>(cur);
  if (amend) amend(*next);
  auto t = core::apply_event(cur.status, event, cur.plan, now, reason, next->coverage);
  if (!t) return t.error();

  next->status = t->next;
  next->row.status_json = json::serialize(status_to_json(next->status));
  next->row.gate_json = gate_json_of(*next);
  next->row.generation = cur.row.generation + 1;
  next->row.updated_at = now;
  store::TransitionRow tr{rollout_id, next->row.generation, std::string(core::to_string(cur.status.state)),
                          std::string(core::to_string(next->status.state)),
                          std::string(core::to_string(event)), reason, now};
  store::AuditRow audit_row{0, now, actor, "rollout." + std::string(core::to_string(event)),
                            "rollout " + rollout_id, reason};
  {
    // Persisted before anything acts on it: the snapshot (what check-ins see)
    // changes only after the store has the transition.
    std::lock_guard lock(store_mu_);
    if (auto st = store_->update_rollout(next->row, cur.row.generation, tr, audit_row); !st) {
      return st.error();
    }
  }
  metrics_.transitions.fetch_add(1);
  spdlog::info("rollout {}: {} -> {} ({}) by {}: {}", rollout_id, tr.from_state, tr.to_state,
               tr.event, actor, reason);
  std::shared_ptr<const RolloutInfo> published = next;
  fleet_.update([&](Snapshot& s) {
    s.rollouts[rollout_id] = published;
    if (published->live()) {
      s.live_rollout[published->channel] = rollout_id;
    } else if (auto lr = s.live_rollout.find(published->channel);
               lr != s.live_rollout.end() && lr->second == rollout_id) {
      s.live_rollout.erase(lr);
    }
    if (published->status.state == core::RolloutState::kCompleted) {
      auto& baseline = s.channels[published->channel].baseline;
      if (!baseline || *baseline < published->version) baseline = published->version;
    }
  });
  return published;
}

void ServerImpl::tick(TimeMs now) {
  metrics_.engine_ticks.fetch_add(1);
  auto snap = fleet_.snapshot();
  // One pass over the devices: exposure since the last tick, silence, and what
  // completion and a rollback's end need (Fleet::scan, core/evidence.h).
  std::vector<std::string> changed;
  const auto scans = fleet_.scan(*snap, now, last_accrual_ > 0 ? now - last_accrual_ : 0, changed);
  last_accrual_ = now;
  for (auto& device : changed) enqueue(DeviceWrite{std::move(device), {}});
  for (const auto& [channel, id] : snap->live_rollout) {
    auto sc = scans.find(id);
    if (sc == scans.end()) continue;
    const Fleet::ScanResult& scan = sc->second;

    // Decide on the rollout as it is now (an operator may have acted since the
    // snapshot above was taken).
    std::lock_guard engine_lock(engine_mu_);
    auto fresh = fleet_.snapshot();
    auto fit = fresh->rollouts.find(id);
    if (fit == fresh->rollouts.end()) continue;
    const RolloutInfo& cur = *fit->second;

    if (cur.status.state == core::RolloutState::kRollingBack) {
      if (scan.online_on_version == 0) {
        (void)transition(id, core::RolloutEvent::kRollbackDone, "engine",
                         "no reachable device runs " + cur.version.to_string() + " any more", now);
      }
      continue;
    }
    if (cur.status.state != core::RolloutState::kRunning) continue;

    auto decision =
        core::decide_tick(cur.status, cur.plan, cur.gate, observe(cur, now), now, scan.coverage);
    // What the decision came from: the gate's state and verdict, and the coverage.
    auto amend = [&](RolloutInfo& r) {
      r.gate = decision.gate.state;
      r.verdict = decision.gate.verdict;
      r.coverage = scan.coverage;
    };
    if (decision.event == core::RolloutEvent::kHold) {
      // No transition: the snapshot shows the look (the API reads it), the store
      // keeps the evidence.
      auto next = std::make_shared<RolloutInfo>(cur);
      amend(*next);
      next->status.reason = decision.reason;
      next->status.recheck_at = decision.recheck_at;
      fleet_.update([&](Snapshot& s) { s.rollouts[id] = next; });
      save_gate_evidence(*next, now);
      continue;
    }
    // Promote or halt: published with the new state in one snapshot, so nobody
    // sees a halted gate on a rollout still running.
    auto done = transition(id, decision.event, "engine", decision.reason, now, amend);
    if (!done) {
      spdlog::error("engine: {} on rollout {} not applied: {}", core::to_string(decision.event), id,
                    done.error().to_string());
    }
  }
}

// --- long poll ----------------------------------------------------------------------

void ServerImpl::poller_loop() {
  std::uint64_t seen = 0;
  while (true) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    auto snap = stopping_ ? fleet_.snapshot() : fleet_.wait_for_change(seen, deadline);
    seen = snap->generation;
    auto now_steady = std::chrono::steady_clock::now();
    TimeMs now = clock_->now();
    // Take out the waiters to look at, answer them without the lock (the first
    // answer leaves before the thousandth is computed), put back the rest.
    std::list<Waiter> due;
    {
      std::lock_guard lock(waiters_mu_);
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        bool look = stopping_ || now_steady >= it->deadline || it->generation < snap->generation;
        auto next = std::next(it);
        if (look) due.splice(due.end(), waiters_, it);
        it = next;
      }
    }
    std::list<Waiter> still_waiting;
    for (auto it = due.begin(); it != due.end();) {
      auto next = std::next(it);
      bool expired = stopping_ || now_steady >= it->deadline;
      std::vector<ChannelAnswer> answers;
      bool answer_now = expired;
      (void)fleet_.with_device(it->device, [&](Device& d) {
        answers = Fleet::answer(d, *snap, now);
        answer_now = answer_now || !answer_is_rest(answers);
        if (answer_now) {
          Fleet::note_offers(d, *snap, answers, now);
          d.held = false;
          d.last_seen = now;  // it was connected until this answer
        }
      });
      it->generation = snap->generation;
      if (answer_now) {
        reply_json(it->respond, 200, answer_json(answers, *snap, now));
        metrics_.checkins_held.fetch_sub(1);
      } else {
        still_waiting.splice(still_waiting.end(), due, it);
      }
      it = next;
    }
    if (!still_waiting.empty()) {
      std::lock_guard lock(waiters_mu_);
      waiters_.splice(waiters_.end(), still_waiting);
    }
    if (stopping_) {
      std::lock_guard lock(waiters_mu_);
      if (waiters_.empty()) return;
    }
  }
}

}  // namespace tranche::server
