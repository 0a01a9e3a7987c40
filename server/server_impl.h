// Internal: the parts of tranche-server and how they share state. server.cpp
// has the lifecycle, loading, the batch writer, the engine's thread and the
// parts' wiring; engine.cpp the rollout engine, batch_writer.cpp the device
// writes, long_poll.cpp the held check-ins, membership.cpp which devices this
// server holds; api.cpp the HTTP routes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/json/value.hpp>

#include "core/contract.h"
#include "server/batch_writer.h"
#include "server/engine.h"
#include "server/fleet.h"
#include "server/history.h"
#include "server/long_poll.h"
#include "server/membership.h"
#include "server/throttle.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_codec.h"
#include "server/server.h"
#include "store/store.h"
#include "tuf/crypto.h"

namespace tranche::server {

// What an API handler returns: a response, or an error the router renders as
// {"error": {"code", "message"}} with the status its code maps to.
struct ApiError {
  unsigned status;
  std::string code;
  std::string message;
};

struct Caller {
  std::string name;
  store::Role role = store::Role::kViewer;
};

// A rollout from its stored row; `evidence` (when given) is kept instead of
// the row's.
// `shared`: several servers on one store (RolloutInfo::summed).
core::Result<std::shared_ptr<RolloutInfo>> rollout_from_row(store::RolloutRow row,
                                                            std::shared_ptr<RolloutEvidence> evidence,
                                                            bool shared);
// Live rollout per channel and each channel's baseline, from the rollouts.
void derive_channel_state(Snapshot& snapshot);

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions options, std::shared_ptr<Clock> clock);
  ~ServerImpl() override;

  core::Status open();  // store, load, bootstrap token, threads, listener
  std::uint16_t port() const override { return http_ ? http_->port() : 0; }
  std::string bootstrap_token() const override { return bootstrap_token_; }
  void shutdown() override;

  // --- api.cpp ---
  void handle(HttpRequest&& request, Responder respond);

 private:
  // --- loading (server.cpp) ---
  core::Status load();
  core::Status ensure_admin_token();

  core::DurationMs last_seen_every() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(options_.last_seen_every).count();
  }
  // Several servers: makes this server the owner of `id` (Membership); alone
  // on its store it owns every device.
  core::Status ensure_owned(const std::string& id, const std::string& hash) {
    return membership_ ? membership_->ensure_owned(id, hash) : core::Status(core::Ok{});
  }

  // --- the engine ---
  void engine_loop();
  // Several servers on one PostgreSQL: every tick, pick up what the others
  // changed — rollouts (by generation), releases, tenants and operator tokens.
  // A follower also takes the leader's gate evidence; the leader keeps its own.
  void sync_from_store();
  // Online TUF roles: publish snapshot and timestamp when needed (leader only).
  void publish_tuf_if_needed(TimeMs now);
  std::vector<tuf::SigningKey> tuf_snapshot_signers_;
  std::vector<tuf::SigningKey> tuf_timestamp_signers_;
  TimeMs tuf_checked_at_ = 0;
  std::string synced_fingerprint_;
  // Held while this server writes a release, tenant or token to the store and
  // publishes it: the store sync (sync_from_store) takes it too, so a read it
  // took before such a write never replaces the write in the snapshot.
  [[nodiscard]] std::unique_lock<std::recursive_mutex> snapshot_write_lock() {
    return std::unique_lock(engine_->mutex());
  }
  core::Status audit(const std::string& actor, const std::string& action,
                     const std::string& target, const std::string& reason, TimeMs now);

  // --- api.cpp ---
  // One /v1 route: a method, a pattern of the path's segments after "v1" ("{}"
  // matches any one segment, passed to the handler in order), the role an
  // operator token needs (none: a device route, whose handler checks the device
  // token) and the handler.
  struct Route {
    std::string_view method;
    std::vector<std::string_view> pattern;
    std::optional<store::Role> role;
    void (*handle)(ServerImpl& self, HttpRequest& req, Responder& respond, const Caller& caller,
                   const std::vector<std::string>& args);
  };
  static const std::vector<Route>& routes();
  // Whether `pattern` matches `seg` from index `first` to its end: "{}" takes any
  // one segment (appended to `args`, which is cleared first), anything else must
  // be equal. The route tables of /v1 and of DDI share it.
  static bool matches_pattern(const std::vector<std::string_view>& pattern,
                              const std::vector<std::string>& seg, std::size_t first,
                              std::vector<std::string>& args);
  void route(HttpRequest& req, Responder& respond);
  // Not const: on a shared store it asks the store (a token revoked elsewhere).
  std::optional<ApiError> authorize_operator(const HttpRequest& req, store::Role needed, Caller* caller);
  void reply_json(Responder& respond, unsigned status, const boost::json::value& body) const;
  void reply_error(Responder& respond, const ApiError& error) const;
  // With extra headers (405's Allow, 429's Retry-After).
  using Headers = std::vector<std::pair<std::string, std::string>>;
  void reply_error(Responder& respond, const ApiError& error, Headers headers) const;
  void reply_error(Responder& respond, const core::Error& error) const;

  void api_enroll(HttpRequest& req, Responder& respond);
  void api_checkin(HttpRequest& req, Responder& respond);
  void api_events(HttpRequest& req, Responder& respond);
  void api_create_tenant(HttpRequest& req, Responder& respond, const Caller& caller);
  void api_put_policy(HttpRequest& req, Responder& respond, const Caller& caller,
                      const std::string& tenant);
  void api_create_token(HttpRequest& req, Responder& respond, const Caller& caller);
  // The admin views and revocation (tranche token|tenant|release, issue 13).
  void api_list_tokens(Responder& respond);
  void api_revoke_token(Responder& respond, const Caller& caller, const std::string& name);
  void api_list_tenants(Responder& respond);
  void api_get_policy(Responder& respond, const std::string& tenant);
  void api_get_release(Responder& respond, const std::string& channel, const std::string& version);
  void api_register_release(HttpRequest& req, Responder& respond, const Caller& caller);
  void api_list_releases(Responder& respond);
  core::Result<core::StratumCounts> count_strata(const std::vector<std::string>& keys);
  void api_create_rollout(HttpRequest& req, Responder& respond, const Caller& caller);
  void api_rollout_action(HttpRequest& req, Responder& respond, const Caller& caller,
                          const std::string& id, const std::string& action);
  void api_get_rollout(Responder& respond, const std::string& id);
  void api_list_rollouts(Responder& respond);
  void api_fleet(Responder& respond);
  void api_device(HttpRequest& req, Responder& respond, const std::string& id);
  // Per-device truth (devices_api.cpp, issue 13).
  void api_list_devices(HttpRequest& req, Responder& respond);
  void api_device_events(HttpRequest& req, Responder& respond, const std::string& id);
  void api_rollout_devices(HttpRequest& req, Responder& respond, const std::string& id);
  // Adds a device's state, reason, stages, last report and newest events to its view.
  std::optional<ApiError> device_truth(const Device& device, const Snapshot& snapshot, TimeMs now,
                                       boost::json::object& out);
  void api_audit(HttpRequest& req, Responder& respond);
  void api_metrics(Responder& respond);
  void api_bulk_enroll(HttpRequest& req, Responder& respond, const Caller& caller);
  // One device to enroll, from its decoded fields (server/request_codec.h; whether
  // it is enrolled already is is_enrolled's), with a fresh token. Shared by single
  // and bulk enrollment.
  struct NewDevice {
    Device device;
    store::DeviceRow row;
    std::string token;
  };
  NewDevice new_device(DeviceFields fields, const std::string& tenant, TimeMs now);
  bool is_enrolled(const std::string& key);  // held in memory (the store's key refuses the rest)
  static std::string already_enrolled(const std::string& tenant, const std::string& id);
  // The key of the device a device token names: "<tenant>/<id>.<secret>"; a
  // token from before schema version 5 ("<id>.<secret>") is looked up in each
  // tenant for the device that holds its hash (held devices first, then the
  // store). Claims the device on a shared store (ensure_owned). nullopt: no
  // token; a key no device has: the caller's lookup answers 401.
  std::optional<std::string> key_of_token(const std::string& token);
  // The device an operator names: GET /v1/devices/{id}?tenant=T. Without T,
  // the one tenant that has such an id; 409 when several do, 404 when none.
  core::Result<std::string> key_of_device(const std::string& id, const std::string& query);
  // GET of a file under `root` (validated relative path; 404 when absent).
  void serve_file(const std::string& root, const std::string& relative, Responder& respond);

  boost::json::object rollout_json(const RolloutInfo& rollout, const Snapshot& snapshot) const;
  // Each tick: a sample into history_ of each live rollout every
  // kHistoryEvery, and of any rollout whose state or stage changed. The engine
  // thread's.
  void sample_history(TimeMs now);
  void api_rollout_history(HttpRequest& req, Responder& respond, const std::string& id);
  void api_me(Responder& respond, const Caller& caller);
  boost::json::object answer_json(const std::vector<ChannelAnswer>& answers,
                                  const Snapshot& snapshot, TimeMs now) const;

  // --- ddi.cpp: hawkBit's DDI API for SWUpdate and other DDI clients ---
  // One route under /{tenant}/controller/v1/{controllerId}: a method, the
  // pattern of the segments after the controller id ("{}" any one segment),
  // and the handler, which gets the authenticated device.
  struct DdiTarget {
    std::string tenant;
    std::string device;    // its key, "<tenant>/<controllerId>"
    std::string base_url;  // absolute: http(s)://host/{tenant}/controller/v1/{controllerId}
  };
  struct DdiRoute {
    std::string_view method;
    std::vector<std::string_view> pattern;
    void (*handle)(ServerImpl& self, HttpRequest& req, Responder& respond, const DdiTarget& target,
                   const std::vector<std::string>& args);
  };
  // The action a DDI action id names: a release of a swu channel, in a rollout.
  struct DdiAction {
    std::string id;
    std::string channel;
    core::Version version;
    std::string rollout;  // "" outside any rollout
    const ReleaseInfo* release = nullptr;  // into the snapshot it was resolved from
  };
  static const std::vector<DdiRoute>& ddi_routes();
  // `seg`: the path's segments, seg[1] == "controller", seg[2] == "v1".
  void route_ddi(HttpRequest& req, Responder& respond, const std::vector<std::string>& seg);
  std::optional<ApiError> authorize_ddi(const HttpRequest& req, const std::string& tenant,
                                        const std::string& controller, DdiTarget* target);
  // The action the device is offered now on its swu channels, if any.
  static std::optional<DdiAction> ddi_offer(const std::vector<ChannelAnswer>& answers, const Snapshot& snapshot);
  static std::optional<DdiAction> ddi_resolve(const Snapshot& snapshot, const std::string& action_id);
  void ddi_base(HttpRequest& req, Responder& respond, const DdiTarget& target);
  void ddi_deployment(HttpRequest& req, Responder& respond, const DdiTarget& target, const std::string& action);
  void ddi_artifact(HttpRequest& req, Responder& respond, const DdiTarget& target, const std::string& action,
                    const std::string& file);
  void ddi_feedback(HttpRequest& req, Responder& respond, const DdiTarget& target, const std::string& action);
  void ddi_config_data(HttpRequest& req, Responder& respond, const DdiTarget& target);
  // Artifact requests per release ("channel version"), for /metrics.
  std::mutex ddi_mu_;
  std::map<std::string, std::uint64_t> ddi_downloads_;  // guarded by ddi_mu_
  // Per device, the error lines its open action forwarded as proceeding
  // feedback (SWUpdate sends the handler's own error that way, and closes the
  // action with a generic one): the failure's reason names them. Memory only,
  // a few lines per device; guarded by ddi_mu_.
  std::map<std::string, std::vector<std::string>> ddi_errors_;
  // Actions ("device/actionId") a device has started (sent feedback for, or
  // downloaded) and not closed yet, and cancellations it has confirmed: after a
  // halt only those not started are cancelled (cancelAction), once. Memory only:
  // after a restart a confirmed cancellation is offered again, which the client
  // confirms again. Guarded by ddi_mu_.
  std::set<std::string> ddi_started_;
  std::set<std::string> ddi_cancelled_;
  // Progress events already recorded ("device/actionId/kind"): downloading and
  // installing once per action, however many proceeding lines SWUpdate sends.
  // Dropped when the action closes. Memory only: after a restart a device may
  // record one of each again. Guarded by ddi_mu_.
  std::set<std::string> ddi_progress_;
  // The action of a stopped rollout (halted, rolling back, aborted) that the
  // device was offered and has not started: to cancel.
  std::optional<DdiAction> ddi_cancel(const Device& device, const Snapshot& snapshot);
  void ddi_cancel_action(Responder& respond, const std::string& action);
  void ddi_cancel_feedback(HttpRequest& req, Responder& respond, const DdiTarget& target, const std::string& action);

  ServerOptions options_;
  // Wrong enrollment keys per peer address: 20 at once, then one per second.
  FailureThrottle enroll_guesses_{20, 1};
  std::shared_ptr<Clock> clock_;
  Metrics metrics_;

  std::mutex store_mu_;  // one Store object, one caller at a time
  std::unique_ptr<store::Store> store_;
  // PostgreSQL: several servers may share the store. Then the batch writer and
  // the engine lock have connections of their own.
  bool shared_ = false;
  std::string server_id_;
  std::unique_ptr<store::Store> writer_store_;  // the writer thread's only
  std::unique_ptr<store::Store> lock_store_;    // the engine thread's only
  TimeMs devices_counted_at_ = 0;               // engine thread
  Fleet fleet_;
  std::map<std::string, core::ConsumerInterface> interfaces_;
  std::string bootstrap_token_;
  bool engine_leader_ = false;

  // What the dashboard's charts draw (server/history.h): an hour at 5 s.
  static constexpr TimeMs kHistoryEvery = 5 * core::kSecond;
  RolloutHistory history_{720};

  // Ticks and transitions (server/engine.h); made by open() over the store.
  std::unique_ptr<RolloutEngine> engine_;

  // Device writes, batched (server/batch_writer.h); made by open() over the store.
  std::unique_ptr<BatchWriter> writer_;
  // Several servers: the devices this one holds (server/membership.h).
  std::unique_ptr<Membership> membership_;
  // Events queued and not yet written past which new uploads get 503: memory
  // stays bounded while the store is down.
  static constexpr std::size_t kMaxPendingEvents = 200'000;
  std::atomic<bool> stopping_{false};

  // Held check-ins (server/long_poll.h); made by open().
  std::unique_ptr<LongPoll> long_poll_;

  std::mutex engine_sleep_mu_;
  std::condition_variable engine_cv_;  // wakes the engine's sleep at shutdown
  std::thread engine_thread_;
  std::unique_ptr<HttpServer> http_;
  std::once_flag shutdown_once_;
};

}  // namespace tranche::server
