#include "tuf/client.h"

#include <set>
#include <utility>

#include "tuf/crypto.h"
#include "tuf/verify.h"

namespace tranche::tuf {
namespace {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

core::Error unverified(std::string message) {
  return make_error(ErrorCode::kUnverified, std::move(message));
}

core::Error out_of_order(std::string message) {
  return make_error(ErrorCode::kInvalidTransition, std::move(message));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Length and hashes of a file as the referring metadata lists them (5.5.2,
// 5.6.2 for metadata, 5.7.3 for targets). Every listed hash is checked: a
// repository that lists two promised both.
Status check_length_and_hashes(std::string_view bytes, const std::optional<std::int64_t>& length,
                               const std::optional<Hashes>& hashes, const std::string& what,
                               std::string_view section) {
  if (length && bytes.size() != static_cast<std::uint64_t>(*length)) {
    return unverified(what + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                      std::to_string(*length) + " (" + std::string(section) + " length)");
  }
  if (!hashes) return core::Ok{};
  for (const auto& [algorithm, expected] : *hashes) {
    std::string actual;
    if (algorithm == "sha256") {
      actual = sha256_hex(bytes);
    } else if (algorithm == "sha512") {
      actual = sha512_hex(bytes);
    } else {
      return unverified(what + ": hash algorithm '" + algorithm + "' is not supported (" +
                        std::string(section) + ")");
    }
    if (actual != lower(expected)) {
      return unverified(what + ": " + algorithm + " " + actual + " does not match the expected " +
                        expected + " (" + std::string(section) + " hash)");
    }
  }
  return core::Ok{};
}

// Freeze attack: metadata is current only while now < expires (python-tuf's
// is_expired is now >= expires).
Status check_not_expired(const CommonFields& common, core::TimeMs now, const std::string& what,
                         std::string_view section) {
  if (now >= common.expires) {
    return unverified(what + ": expired at " + format_utc_time(common.expires) + ", now is " +
                      format_utc_time(now) + " (" + std::string(section) + " freeze attack)");
  }
  return core::Ok{};
}

// The keys a role is trusted with, as (key id, key material): a rotation is a
// change of either.
std::set<std::pair<std::string, std::string>> role_key_material(const Root& root,
                                                                const RoleKeys& role) {
  std::set<std::pair<std::string, std::string>> out;
  for (const std::string& id : role.keyids) {
    auto it = root.keys.find(id);
    out.emplace(id, it == root.keys.end() ? std::string() : it->second.public_value);
  }
  return out;
}

// Whether `name` is one of the bins of a succinct delegation
// (NAME_PREFIX-<hex bin>, with role_for's width).
bool is_succinct_bin(const SuccinctRoles& s, std::string_view name) {
  const std::string head = s.name_prefix + "-";
  if (name.size() <= head.size() || name.substr(0, head.size()) != head) return false;
  std::string_view suffix = name.substr(head.size());
  std::size_t width = 1;
  for (std::uint64_t top = s.number_of_bins() - 1; top >= 16; top >>= 4) ++width;
  if (suffix.size() != width) return false;
  std::uint64_t bin = 0;
  for (char c : suffix) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return false;
    }
    bin = bin * 16 + digit;
  }
  return bin < s.number_of_bins();
}

std::string versioned(bool consistent, std::int64_t version, const std::string& stem) {
  return consistent ? std::to_string(version) + "." + stem + ".json" : stem + ".json";
}

}  // namespace

std::string percent_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xFu];
    }
  }
  return out;
}

Result<std::string> role_file_stem(std::string_view role_name) {
  const std::string quoted = "role '" + percent_encode(role_name) + "'";
  if (role_name.empty()) return make_error(ErrorCode::kInvalidArgument, "role name is empty");
  if (role_name == "." || role_name == "..") {
    return make_error(ErrorCode::kInvalidArgument, quoted + ": not a usable file name");
  }
  for (char c : role_name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return make_error(ErrorCode::kInvalidArgument, quoted + ": name has a control character");
    }
  }
  std::string stem = percent_encode(role_name);
  // "VERSION." + stem + ".json" must fit NAME_MAX (255) with a 20-digit version.
  if (stem.size() > 200) {
    return make_error(ErrorCode::kInvalidArgument,
                      "role '" + stem.substr(0, 40) + "...': name too long for a file name");
  }
  return stem;
}

Status verify_target(const TargetFile& info, std::string_view bytes, std::string_view what) {
  return check_length_and_hashes(bytes, info.length, info.hashes, std::string(what), "5.7.3");
}

std::string target_remote_path(const TargetPath& path, const TargetFile& info,
                               bool consistent_snapshot) {
  if (!consistent_snapshot) return percent_encode(path.str(), true);
  const std::string& p = path.str();
  const std::size_t slash = p.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : p.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  auto sha256 = info.hashes.find("sha256");
  const std::string& digest =
      sha256 != info.hashes.end() ? sha256->second : info.hashes.begin()->second;
  return percent_encode(dir + digest + "." + base, true);
}

std::string target_local_name(const TargetPath& path) {
  return percent_encode(path.str());
}

const Metadata<Targets>* TrustedSet::targets(std::string_view role) const {
  auto it = targets_.find(role);
  return it == targets_.end() ? nullptr : &it->second;
}

// ---- 5.2 / 5.3 root ---------------------------------------------------------

Result<TrustedSet> TrustedSet::create(std::string_view root_bytes, core::TimeMs now,
                                      const ClientLimits& limits) {
  auto root = parse_root(root_bytes);
  if (!root) return root.error().with_context("trusted root.json: ");
  // 5.2: the trusted root must carry a threshold of its own root keys (as
  // python-tuf checks when it loads it); otherwise local storage was tampered.
  auto st = verify_role(*root, root->body.keys, root->body.root, "root");
  if (!st) return st.error().with_context("trusted root.json (5.2): ");
  return TrustedSet(std::move(*root), now, limits);
}

std::optional<Download> TrustedSet::next_root_download() const {
  // 5.3.3: stop after max_root_rotations new roots in one refresh (a
  // repository cannot keep the client fetching forever).
  if (root_finished_ || roots_accepted_ >= limits_.max_root_rotations) return std::nullopt;
  return Download{std::to_string(root_.body.common.version + 1) + ".root.json",
                  limits_.max_root_bytes};
}

Status TrustedSet::update_root(std::string_view bytes) {
  if (root_finished_) return out_of_order("root: cannot update root after the root update ended");
  if (roots_accepted_ >= limits_.max_root_rotations) {
    return make_error(ErrorCode::kTooLarge, "root: more than " +
                                                std::to_string(limits_.max_root_rotations) +
                                                " new root versions in one refresh (5.3.3)");
  }
  const std::string what = std::to_string(root_.body.common.version + 1) + ".root.json";
  auto new_root = parse_root(bytes);
  if (!new_root) return new_root.error().with_context(what + ": ");
  // 5.3.4: signed by a threshold of the trusted root's root keys ...
  auto st = verify_role(*new_root, root_.body.keys, root_.body.root, "root");
  if (!st) {
    return st.error().with_context(what + ": by the keys of trusted version " +
                                   std::to_string(root_.body.common.version) + " (5.3.4): ");
  }
  // ... and by a threshold of its own root keys.
  st = verify_role(*new_root, new_root->body.keys, new_root->body.root, "root");
  if (!st) return st.error().with_context(what + ": by its own keys (5.3.4): ");
  // 5.3.5: rollback attack — exactly N+1.
  if (new_root->body.common.version != root_.body.common.version + 1) {
    return unverified(what + ": version " + std::to_string(new_root->body.common.version) +
                      ", expected " + std::to_string(root_.body.common.version + 1) +
                      " (5.3.5 rollback attack)");
  }
  // 5.3.6: an intermediate root's expiry does not matter. 5.3.7: trust it.
  root_ = std::move(*new_root);
  ++roots_accepted_;
  return core::Ok{};
}

Result<bool> TrustedSet::finish_root_update() {
  if (root_finished_) return out_of_order("root: the root update already ended");
  // 5.3.10: freeze attack on root.
  auto st =
      check_not_expired(root_.body.common, now_,
                        "root.json version " + std::to_string(root_.body.common.version), "5.3.10");
  if (!st) return st.error();
  root_finished_ = true;
  // 5.3.11: timestamp or snapshot keys rotated -> the trusted timestamp and
  // snapshot go, so that versions pushed forward by a compromised key (a
  // fast-forward attack) do not block the recovered repository forever.
  const bool rotated = role_key_material(initial_root_, initial_root_.timestamp) !=
                           role_key_material(root_.body, root_.body.timestamp) ||
                       role_key_material(initial_root_, initial_root_.snapshot) !=
                           role_key_material(root_.body, root_.body.snapshot);
  // 5.3.12: consistent_snapshot is read from root_ wherever a name is formed.
  return rotated;
}

// ---- 5.4 timestamp ----------------------------------------------------------

Download TrustedSet::timestamp_download() const {
  return Download{"timestamp.json", limits_.max_timestamp_bytes};  // 5.4.1
}

Result<TimestampUpdate> TrustedSet::update_timestamp(std::string_view bytes) {
  if (!root_finished_) return out_of_order("timestamp: the root update has not ended");
  if (snapshot_) return out_of_order("timestamp: cannot update after the snapshot");
  auto ts = parse_timestamp(bytes);
  if (!ts) return ts.error().with_context("timestamp.json: ");
  // 5.4.2: arbitrary software attack.
  auto st = verify_role(*ts, root_.body.keys, root_.body.timestamp, "timestamp");
  if (!st) return st.error().with_context("timestamp.json (5.4.2): ");
  if (timestamp_) {
    const std::int64_t trusted = timestamp_->body.common.version;
    const std::int64_t fetched = ts->body.common.version;
    // 5.4.3.1: rollback attack on the timestamp.
    if (fetched < trusted) {
      return unverified("timestamp.json: version " + std::to_string(fetched) +
                        " is lower than the trusted version " + std::to_string(trusted) +
                        " (5.4.3.1 rollback attack)");
    }
    if (fetched == trusted) return TimestampUpdate::kSameVersion;  // 5.4.3.1: keep ours
    // 5.4.3.2: rollback attack on the snapshot it lists.
    const std::int64_t trusted_snap = timestamp_->body.snapshot.version;
    if (ts->body.snapshot.version < trusted_snap) {
      return unverified("timestamp.json: lists snapshot version " +
                        std::to_string(ts->body.snapshot.version) +
                        ", lower than the trusted timestamp's " + std::to_string(trusted_snap) +
                        " (5.4.3.2 rollback attack)");
    }
  }
  timestamp_ = std::move(*ts);
  // 5.4.4: freeze attack, checked once it is trusted (see the header).
  st = check_final_timestamp();
  if (!st) return st.error();
  return TimestampUpdate::kNew;
}

Status TrustedSet::check_final_timestamp() const {
  return check_not_expired(
      timestamp_->body.common, now_,
      "timestamp.json version " + std::to_string(timestamp_->body.common.version), "5.4.4");
}

// ---- 5.5 snapshot -----------------------------------------------------------

Result<Download> TrustedSet::snapshot_download() const {
  if (!timestamp_) return out_of_order("snapshot: no trusted timestamp");
  const MetaInfo& meta = timestamp_->body.snapshot;
  // 5.5.1: the name follows consistent_snapshot (5.3.12); the cap is the
  // length the timestamp lists, else the default.
  return Download{
      versioned(root_.body.consistent_snapshot, meta.version, "snapshot"),
      meta.length ? static_cast<std::size_t>(*meta.length) : limits_.max_snapshot_bytes};
}

Status TrustedSet::update_snapshot(std::string_view bytes, bool from_local) {
  if (!timestamp_) return out_of_order("snapshot: no trusted timestamp");
  if (!targets_.empty()) return out_of_order("snapshot: cannot update after targets");
  // The timestamp it is checked against must itself be current (5.4.4).
  auto st = check_final_timestamp();
  if (!st) return st.error();
  const MetaInfo& meta = timestamp_->body.snapshot;
  const std::string what = versioned(root_.body.consistent_snapshot, meta.version, "snapshot");
  if (!from_local) {
    // 5.5.2: mix-and-match — exactly the snapshot the timestamp describes.
    st = check_length_and_hashes(bytes, meta.length, meta.hashes, what, "5.5.2");
    if (!st) return st.error();
  }
  auto snap = parse_snapshot(bytes);
  if (!snap) return snap.error().with_context(what + ": ");
  // 5.5.3: arbitrary software attack.
  st = verify_role(*snap, root_.body.keys, root_.body.snapshot, "snapshot");
  if (!st) return st.error().with_context(what + " (5.5.3): ");
  // 5.5.5: rollback attack on the targets roles it lists.
  if (snapshot_) {
    for (const auto& [file, info] : snapshot_->body.meta) {
      auto it = snap->body.meta.find(file);
      if (it == snap->body.meta.end()) {
        return unverified(
            what + ": '" + file +
            "' is listed by the trusted snapshot but missing (5.5.5 rollback attack)");
      }
      if (it->second.version < info.version) {
        return unverified(what + ": '" + file + "' version " + std::to_string(it->second.version) +
                          " is lower than the trusted " + std::to_string(info.version) +
                          " (5.5.5 rollback attack)");
      }
    }
  }
  snapshot_ = std::move(*snap);
  return check_final_snapshot();
}

Status TrustedSet::check_final_snapshot() const {
  const std::int64_t v = snapshot_->body.common.version;
  // 5.5.6: freeze attack.
  auto st = check_not_expired(snapshot_->body.common, now_,
                              "snapshot.json version " + std::to_string(v), "5.5.6");
  if (!st) return st;
  // 5.5.4: mix-and-match — the version the timestamp lists.
  const std::int64_t listed = timestamp_->body.snapshot.version;
  if (v != listed) {
    return unverified("snapshot.json: version " + std::to_string(v) + ", the timestamp lists " +
                      std::to_string(listed) + " (5.5.4)");
  }
  return core::Ok{};
}

// ---- 5.6 targets ------------------------------------------------------------

Result<Download> TrustedSet::targets_download(std::string_view role) const {
  if (!snapshot_) return out_of_order("targets: no trusted snapshot");
  // The name becomes a file name and a URL: validated first.
  auto stem = role_file_stem(role);
  if (!stem) return stem.error();
  auto it = snapshot_->body.meta.find(std::string(role) + ".json");
  if (it == snapshot_->body.meta.end()) {
    return make_error(ErrorCode::kNotFound, "snapshot lists no '" + *stem + ".json' (5.6.1)");
  }
  // 5.6.1: name per consistent_snapshot, cap per the snapshot's length.
  return Download{
      versioned(root_.body.consistent_snapshot, it->second.version, *stem),
      it->second.length ? static_cast<std::size_t>(*it->second.length) : limits_.max_targets_bytes};
}

Result<TrustedSet::Trust> TrustedSet::delegation(std::string_view role, std::string_view delegator) const {
  auto stem = role_file_stem(role);
  if (!stem) return stem.error();
  // The keys `delegator` trusts `role` with.
  if (delegator == "root") {
    if (role != "targets") return out_of_order("root delegates only 'targets'");
    return Trust{&root_.body.keys, &root_.body.targets};
  }
  const Metadata<Targets>* parent = targets(delegator);
  if (parent == nullptr) {
    return out_of_order("delegating role '" + std::string(delegator) + "' is not trusted");
  }
  const RoleKeys* role_keys = nullptr;
  if (parent->body.delegations) {
    const Delegations& d = *parent->body.delegations;
    for (const DelegatedRole& r : d.roles) {
      if (r.name == role) role_keys = &r.keys;
    }
    if (d.succinct_roles && is_succinct_bin(*d.succinct_roles, role)) {
      role_keys = &d.succinct_roles->keys;
    }
    if (role_keys != nullptr) return Trust{&d.keys, role_keys};
  }
  return make_error(ErrorCode::kNotFound,
                    "'" + std::string(delegator) + "' does not delegate to '" + *stem + "'");
}

Status TrustedSet::verify_trusted_via(std::string_view role, std::string_view delegator) const {
  const Metadata<Targets>* md = targets(role);
  if (md == nullptr) return out_of_order("'" + std::string(role) + "' is not trusted");
  auto trust = delegation(role, delegator);
  if (!trust) return trust.error();
  // 5.6.7.2: a role reached again through another delegator must carry that
  // delegator's threshold of its keys for it, not only the first one's.
  auto st = verify_role(*md, *trust->first, *trust->second, role);
  if (!st) {
    return st.error().with_context("'" + std::string(role) + "' as delegated by '" +
                                   std::string(delegator) + "' (5.6.7.2): ");
  }
  return core::Ok{};
}

Status TrustedSet::update_delegated_targets(std::string_view bytes, std::string_view role,
                                            std::string_view delegator) {
  if (!snapshot_) return out_of_order("targets: no trusted snapshot");
  if (targets_.count(role) != 0)
    return out_of_order("'" + std::string(role) + "' is already trusted");
  // The snapshot it is checked against must itself be final (5.5.4, 5.5.6).
  auto st = check_final_snapshot();
  if (!st) return st;
  auto stem = role_file_stem(role);
  if (!stem) return stem.error();

  auto trust = delegation(role, delegator);
  if (!trust) return trust.error();
  const auto& [keys, role_keys] = *trust;

  auto meta = snapshot_->body.meta.find(std::string(role) + ".json");
  if (meta == snapshot_->body.meta.end()) {
    return make_error(ErrorCode::kNotFound, "snapshot lists no '" + *stem + ".json' (5.6.1)");
  }
  const std::string what = versioned(root_.body.consistent_snapshot, meta->second.version, *stem);
  // 5.6.2: mix-and-match — exactly the file the snapshot describes.
  st = check_length_and_hashes(bytes, meta->second.length, meta->second.hashes, what, "5.6.2");
  if (!st) return st;
  auto md = parse_targets(bytes, role);
  if (!md) return md.error().with_context(what + ": ");
  // 5.6.3: arbitrary software attack (5.6.7.2 for delegated roles: the
  // delegating role's keys and threshold for it).
  st = verify_role(*md, *keys, *role_keys, role);
  if (!st) return st.error().with_context(what + " (5.6.3): ");
  // 5.6.4: mix-and-match / rollback — the version the snapshot lists.
  if (md->body.common.version != meta->second.version) {
    return unverified(what + ": version " + std::to_string(md->body.common.version) +
                      ", the snapshot lists " + std::to_string(meta->second.version) + " (5.6.4)");
  }
  // 5.6.5: freeze attack.
  st = check_not_expired(md->body.common, now_,
                         *stem + ".json version " + std::to_string(md->body.common.version),
                         "5.6.5");
  if (!st) return st;
  targets_.emplace(std::string(role), std::move(*md));
  return core::Ok{};
}

}  // namespace tranche::tuf
