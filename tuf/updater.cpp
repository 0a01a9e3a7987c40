#include "tuf/updater.h"

#include <cstdint>
#include <functional>
#include <set>
#include <utility>

namespace tranche::tuf {
namespace {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

constexpr const char* kRootFile = "root.json";
constexpr const char* kTimestampFile = "timestamp.json";
constexpr const char* kSnapshotFile = "snapshot.json";

}  // namespace

Result<Updater> Updater::create(Fetcher& fetcher, MetadataStore& store, core::TimeMs now,
                                const ClientLimits& limits) {
  auto bytes = store.load(kRootFile, limits.max_root_bytes);
  if (!bytes) return bytes.error().with_context("trusted root.json: ");
  auto set = TrustedSet::create(*bytes, now, limits);
  if (!set) return set.error();
  return Updater(fetcher, store, std::move(*set));
}

Status Updater::refresh() {
  if (refreshed_) return core::Ok{};
  for (Status (Updater::*step)() :
       {&Updater::load_root, &Updater::load_timestamp, &Updater::load_snapshot}) {
    auto st = (this->*step)();
    if (!st) return st;
  }
  auto st = load_targets("targets", "root");
  if (!st) return st;
  refreshed_ = true;
  return core::Ok{};
}

Status Updater::load_root() {
  // 5.3.2 .. 5.3.9: N+1, N+2, ... until the repository has no newer root
  // (kNotFound) or the per-refresh bound is reached.
  while (auto next = set_->next_root_download()) {
    auto bytes = fetcher_->fetch_metadata(next->file_name, next->max_bytes);
    if (!bytes) {
      if (bytes.error().code == ErrorCode::kNotFound) break;  // 5.3.3: no newer root
      return bytes.error().with_context("fetching " + next->file_name + ": ");
    }
    auto st = set_->update_root(*bytes);
    if (!st) return st;
    st = store_->store(kRootFile, *bytes);  // 5.3.8
    if (!st) return st.error().with_context("storing root.json: ");
    notes_.push_back("trusted " + next->file_name);
  }
  auto rotated = set_->finish_root_update();  // 5.3.10
  if (!rotated) return rotated.error();
  if (*rotated) {
    // 5.3.11: fast-forward attack recovery.
    notes_.push_back(
        "root rotated the timestamp or snapshot keys: deleting the trusted "
        "timestamp.json and snapshot.json (5.3.11)");
    for (const char* f : {kTimestampFile, kSnapshotFile}) {
      auto st = store_->remove(f);
      if (!st) return st.error().with_context(std::string("deleting ") + f + ": ");
    }
  }
  return core::Ok{};
}

Status Updater::load_trusted(const char* file, std::size_t max_bytes,
                             const std::function<Status(std::string_view)>& trust) {
  auto local = store_->load(file, max_bytes);
  if (!local) {
    if (local.error().code == core::ErrorCode::kNotFound) return core::Ok{};  // first run
    // Fail closed: without the trusted copy the rollback checks would be
    // skipped, so an unreadable one (too large, an I/O error) stops here.
    return local.error().with_context(std::string("trusted ") + file +
                                      " could not be read, so its rollback checks cannot run: ");
  }
  auto st = trust(*local);
  if (!st) {
    return st.error().with_context(std::string("trusted ") + file +
                                   " does not verify, so its rollback checks cannot run: ");
  }
  return core::Ok{};
}

Status Updater::load_timestamp() {
  const Download d = set_->timestamp_download();
  // The trusted timestamp, for the rollback checks of 5.4.3. Expired is fine
  // here: it is kept for comparison only.
  if (auto st = load_trusted(kTimestampFile, set_->limits().max_timestamp_bytes,
                             [&](std::string_view local) -> Status {
                               auto r = set_->update_timestamp(local);
                               if (!r) notes_.push_back("local timestamp.json: " + r.error().message);
                               return set_->timestamp() != nullptr ? Status(core::Ok{}) : Status(r.error());
                             });
      !st) {
    return st;
  }
  auto bytes = fetcher_->fetch_metadata(d.file_name, d.max_bytes);  // 5.4.1
  if (!bytes) return bytes.error().with_context("fetching timestamp.json: ");
  auto r = set_->update_timestamp(*bytes);
  if (!r) return r.error();
  if (*r == TimestampUpdate::kSameVersion) {
    notes_.push_back("timestamp.json unchanged (same version as trusted, 5.4.3.1)");
    return core::Ok{};
  }
  auto st = store_->store(kTimestampFile, *bytes);  // 5.4.5
  if (!st) return st.error().with_context("storing timestamp.json: ");
  return core::Ok{};
}

Status Updater::load_snapshot() {
  auto d = set_->snapshot_download();
  if (!d) return d.error();
  // A trusted snapshot that is still the one the timestamp lists needs no
  // download; a stale one stays for the rollback checks of 5.5.5. It is read
  // under the local cap, not the new timestamp's length for the new snapshot:
  // a trusted snapshot longer than the new one must still be compared.
  bool current = false;
  if (auto st = load_trusted(kSnapshotFile, set_->limits().max_snapshot_bytes,
                             [&](std::string_view local) -> Status {
                               auto u = set_->update_snapshot(local, /*from_local=*/true);
                               current = u.ok();
                               if (!u) notes_.push_back("local snapshot.json is not current: " + u.error().message);
                               return set_->snapshot() != nullptr ? Status(core::Ok{}) : u;
                             });
      !st) {
    return st;
  }
  if (current) return core::Ok{};
  auto bytes = fetcher_->fetch_metadata(d->file_name, d->max_bytes);  // 5.5.1
  if (!bytes) return bytes.error().with_context("fetching " + d->file_name + ": ");
  auto st = set_->update_snapshot(*bytes);
  if (!st) return st;
  st = store_->store(kSnapshotFile, *bytes);  // 5.5.7
  if (!st) return st.error().with_context("storing snapshot.json: ");
  return core::Ok{};
}

Status Updater::load_targets(const std::string& role, const std::string& delegator) {
  // Reached before through another delegator: trusted, but only if this
  // delegator's keys for it sign it too.
  if (set_->targets(role) != nullptr) return set_->verify_trusted_via(role, delegator);
  auto d = set_->targets_download(role);  // validates the role name (5.6.1)
  if (!d) return d.error();
  auto stem = role_file_stem(role);
  if (!stem) return stem.error();
  const std::string local_name = *stem + ".json";
  if (auto local = store_->load(local_name, d->max_bytes)) {
    auto st = set_->update_delegated_targets(*local, role, delegator);
    if (st) return core::Ok{};
    notes_.push_back("local " + local_name + " is not current: " + st.error().message);
  }
  auto bytes = fetcher_->fetch_metadata(d->file_name, d->max_bytes);  // 5.6.1
  if (!bytes) return bytes.error().with_context("fetching " + d->file_name + ": ");
  auto st = set_->update_delegated_targets(*bytes, role, delegator);
  if (!st) return st;
  st = store_->store(local_name, *bytes);  // 5.6.6
  if (!st) return st.error().with_context("storing " + local_name + ": ");
  return core::Ok{};
}

Result<TargetFile> Updater::get_target_info(const TargetPath& path) {
  auto st = refresh();
  if (!st) return st.error();
  // 5.6.7: pre-order depth-first search, as python-tuf walks it: a stack of
  // (role, delegator), children pushed in reverse so the first is visited
  // first, a terminating delegation drops the roles still waiting.
  std::vector<std::pair<std::string, std::string>> to_visit{{"targets", "root"}};
  std::set<std::string> visited;
  std::uint32_t budget = set_->limits().max_delegations;
  while (budget > 0 && !to_visit.empty()) {
    auto [role, delegator] = std::move(to_visit.back());
    to_visit.pop_back();
    // 5.6.7.1: a role visited before is skipped (cycles).
    if (visited.count(role) != 0) continue;
    st = load_targets(role, delegator);
    if (!st) return st.error();
    const Metadata<Targets>& md = *set_->targets(role);
    // 5.6.7.1: this role lists the target: done.
    if (auto it = md.body.targets.find(path); it != md.body.targets.end()) return it->second;
    visited.insert(role);
    --budget;
    if (!md.body.delegations) continue;
    // 5.6.7.2: the delegations trusted for this path, in order.
    std::vector<std::pair<std::string, std::string>> children;
    const Delegations& d = *md.body.delegations;
    if (d.succinct_roles) {
      // A succinct delegation names exactly one bin per path, terminating.
      to_visit.clear();
      children.emplace_back(d.succinct_roles->role_for(path), role);
    }
    for (const DelegatedRole& r : d.roles) {
      if (!r.is_delegated_path(path)) continue;
      children.emplace_back(r.name, role);
      if (r.terminating) {
        // 5.6.7.2.1: a terminating delegation ends the search after it.
        to_visit.clear();
        break;
      }
    }
    to_visit.insert(to_visit.end(), children.rbegin(), children.rend());
  }
  if (budget == 0 && !to_visit.empty()) {
    notes_.push_back("delegation search stopped after " +
                     std::to_string(set_->limits().max_delegations) + " roles (5.6.7.1)");
  }
  return make_error(ErrorCode::kNotFound,
                    "no trusted targets metadata lists '" + path.str() + "' (5.7.2)");
}

Result<std::string> Updater::download_target(const TargetPath& path, const TargetFile& info) {
  const std::string remote =
      target_remote_path(path, info, set_->root().body.consistent_snapshot);  // 5.7.3
  // The cap is the signed length: a longer answer is an endless-data attack.
  auto bytes = fetcher_->fetch_target(remote, static_cast<std::size_t>(info.length));
  if (!bytes) return bytes.error().with_context("fetching target " + remote + ": ");
  auto st = verify_target(info, *bytes, "target '" + path.str() + "'");
  if (!st) return st.error();
  return std::move(*bytes);
}

}  // namespace tranche::tuf
