#include "tuf/repository.h"

#include <algorithm>
#include <boost/json.hpp>
#include <set>
#include <utility>

#include "tuf/canonical_json.h"
#include "tuf/verify.h"

namespace tranche::tuf {
namespace {

namespace json = boost::json;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

json::object common(std::string_view type, std::int64_t version, core::TimeMs expires) {
  return json::object{{"_type", type},
                      {"spec_version", kSpecVersion},
                      {"version", version},
                      {"expires", format_utc_time(expires)}};
}

json::object hashes_json(const Hashes& hashes) {
  json::object o;
  for (const auto& [alg, hex] : hashes) o[alg] = hex;
  return o;
}

json::object meta_json(const MetaInfo& mi) {
  json::object o{{"version", mi.version}};
  if (mi.length) o["length"] = *mi.length;
  if (mi.hashes) o["hashes"] = hashes_json(*mi.hashes);
  return o;
}

json::object role_json(const RoleDefinition& r) {
  json::array ids;
  for (const PublicKey& k : r.keys) ids.emplace_back(key_id(k));
  return json::object{{"keyids", std::move(ids)}, {"threshold", r.threshold}};
}

Status check_role(const RoleDefinition& r, std::string_view name) {
  if (r.keys.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "root: role " + std::string(name) + " has no keys");
  }
  std::set<std::string> ids;
  for (const PublicKey& k : r.keys) {
    if (!ids.insert(key_id(k)).second) {
      return make_error(ErrorCode::kInvalidArgument,
                        "root: role " + std::string(name) + " lists key " + key_id(k) + " twice");
    }
  }
  if (r.threshold < 1 || r.threshold > r.keys.size()) {
    return make_error(ErrorCode::kInvalidArgument, "root: role " + std::string(name) +
                                                       " threshold " + std::to_string(r.threshold) +
                                                       " with " + std::to_string(r.keys.size()) +
                                                       " keys");
  }
  return core::Ok{};
}

// The signers meet what `root` requires of `role` (a client's check).
Status check_signed_for(const Metadata<Root>& root, const RoleKeys& role, std::string_view name,
                        std::string_view envelope_bytes, std::string_view type) {
  auto st = verify_role_from_bytes(envelope_bytes, type, root.body.keys, role, name);
  if (!st) return st.error().with_context("signing keys do not satisfy the root: ");
  return core::Ok{};
}

core::TimeMs later(core::TimeMs now, core::DurationMs d) {
  return core::saturating_add(now, d);
}

}  // namespace

std::string root_file_name(std::int64_t version) {
  return std::to_string(version) + ".root.json";
}
std::string targets_file_name(std::int64_t version) {
  return std::to_string(version) + ".targets.json";
}
std::string snapshot_file_name(std::int64_t version) {
  return std::to_string(version) + ".snapshot.json";
}

std::string target_file_name(const TargetPath& path, std::string_view sha256_hex) {
  const std::string& p = path.str();
  const std::size_t slash = p.rfind('/');
  if (slash == std::string::npos) return std::string(sha256_hex) + "." + p;
  return p.substr(0, slash + 1) + std::string(sha256_hex) + "." + p.substr(slash + 1);
}

json::object root_signed(const RootDefinition& def) {
  json::object o = common("root", def.version, def.expires);
  o["consistent_snapshot"] = def.consistent_snapshot;
  json::object keys;
  for (const RoleDefinition* r : {&def.root, &def.targets, &def.snapshot, &def.timestamp}) {
    for (const PublicKey& k : r->keys) keys[key_id(k)] = k.json;
  }
  o["keys"] = std::move(keys);
  o["roles"] = json::object{{"root", role_json(def.root)},
                            {"targets", role_json(def.targets)},
                            {"snapshot", role_json(def.snapshot)},
                            {"timestamp", role_json(def.timestamp)}};
  return o;
}

json::object targets_signed(std::int64_t version, core::TimeMs expires,
                            const std::map<TargetPath, TargetFile>& targets) {
  json::object o = common("targets", version, expires);
  json::object t;
  for (const auto& [path, file] : targets) {
    json::object f{{"length", file.length}, {"hashes", hashes_json(file.hashes)}};
    if (file.custom) f["custom"] = *file.custom;
    t[path.str()] = std::move(f);
  }
  o["targets"] = std::move(t);
  return o;
}

json::object snapshot_signed(std::int64_t version, core::TimeMs expires,
                             const std::map<std::string, MetaInfo>& meta) {
  json::object o = common("snapshot", version, expires);
  json::object m;
  for (const auto& [name, mi] : meta) m[name] = meta_json(mi);
  o["meta"] = std::move(m);
  return o;
}

json::object timestamp_signed(std::int64_t version, core::TimeMs expires,
                              const MetaInfo& snapshot) {
  json::object o = common("timestamp", version, expires);
  o["meta"] = json::object{{"snapshot.json", meta_json(snapshot)}};
  return o;
}

Result<std::string> sign_metadata(const json::object& signed_obj,
                                  const std::vector<SigningKey>& signers) {
  auto canonical = canonical_json(signed_obj);
  if (!canonical) return canonical.error();
  json::array sigs;
  for (const SigningKey& k : signers) {
    auto sig = sign(k, *canonical);
    if (!sig) return sig.error();
    sigs.emplace_back(json::object{{"keyid", key_id(k.public_key)}, {"sig", *sig}});
  }
  const json::object envelope{{"signatures", std::move(sigs)}, {"signed", signed_obj}};
  auto text = canonical_json(envelope);
  if (!text) return text.error();
  // Canonical JSON writes control characters raw, which no JSON parser accepts
  // (the PEM of an ECDSA or RSA key has newlines): then the file is ordinary
  // escaped JSON. The signatures are over the canonical form either way.
  const bool raw_controls = std::any_of(
      text->begin(), text->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (raw_controls) return json::serialize(envelope);
  return text;
}

MetaInfo meta_info_of(std::int64_t version, std::string_view bytes) {
  MetaInfo mi;
  mi.version = version;
  mi.length = static_cast<std::int64_t>(bytes.size());
  mi.hashes = Hashes{{"sha256", sha256_hex(bytes)}};
  return mi;
}

Result<std::string> make_root(const RootDefinition& def, const std::vector<SigningKey>& signers) {
  for (auto [r, name] : {std::pair<const RoleDefinition*, const char*>{&def.root, "root"},
                         {&def.targets, "targets"},
                         {&def.snapshot, "snapshot"},
                         {&def.timestamp, "timestamp"}}) {
    auto st = check_role(*r, name);
    if (!st) return st.error();
  }
  auto bytes = sign_metadata(root_signed(def), signers);
  if (!bytes) return bytes.error();
  if (def.version == 1) {
    auto root = parse_root(*bytes);
    if (!root) return root.error();
    auto st = check_signed_for(*root, root->body.root, "root", *bytes, "root");
    if (!st) return st.error();
  }
  return bytes;
}

Result<RootDefinition> root_definition(std::string_view root_bytes) {
  auto root = parse_root(root_bytes);
  if (!root) return root.error();
  RootDefinition def;
  def.version = root->body.common.version;
  def.expires = root->body.common.expires;
  def.consistent_snapshot = root->body.consistent_snapshot;
  auto role = [&](const RoleKeys& rk) {
    RoleDefinition r;
    r.threshold = rk.threshold;
    for (const std::string& id : rk.keyids) {
      auto it = root->body.keys.find(id);
      if (it != root->body.keys.end()) r.keys.push_back(it->second);
    }
    return r;
  };
  def.root = role(root->body.root);
  def.targets = role(root->body.targets);
  def.snapshot = role(root->body.snapshot);
  def.timestamp = role(root->body.timestamp);
  return def;
}

Result<std::string> rotate_root(std::string_view current_root, RootDefinition next,
                                core::TimeMs expires, const std::vector<SigningKey>& signers) {
  auto current = parse_root(current_root);
  if (!current) return current.error().with_context("current root: ");
  next.version = current->body.common.version + 1;
  next.expires = expires;
  auto bytes = make_root(next, signers);
  if (!bytes) return bytes.error();
  auto parsed = parse_root(*bytes);
  if (!parsed) return parsed.error();
  // 5.3.4 as a client will check it: the old root's threshold ...
  auto st = check_signed_for(*current, current->body.root, "root (old threshold)", *bytes, "root");
  if (!st) return st.error();
  // ... and the new one's.
  st = check_signed_for(*parsed, parsed->body.root, "root (new threshold)", *bytes, "root");
  if (!st) return st.error();
  return bytes;
}

Result<std::string> add_target(std::string_view root_bytes, std::string_view current_targets,
                               const TargetPath& path, const TargetFile& file, core::TimeMs expires,
                               const std::vector<SigningKey>& signers) {
  auto root = parse_root(root_bytes);
  if (!root) return root.error().with_context("root: ");
  json::object signed_obj;
  if (current_targets.empty()) {
    signed_obj = targets_signed(1, expires, {{path, file}});
  } else {
    auto current = parse_targets(current_targets);
    if (!current) return current.error().with_context("current targets: ");
    auto env = parse_envelope(current_targets, "targets", "targets");
    if (!env) return env.error();
    signed_obj = env->signed_value.get_object();
    signed_obj["version"] = current->body.common.version + 1;
    signed_obj["expires"] = format_utc_time(expires);
    json::object f{{"length", file.length}, {"hashes", hashes_json(file.hashes)}};
    if (file.custom) f["custom"] = *file.custom;
    signed_obj["targets"].as_object()[path.str()] = std::move(f);
  }
  auto bytes = sign_metadata(signed_obj, signers);
  if (!bytes) return bytes.error();
  auto st = check_signed_for(*root, root->body.targets, "targets", *bytes, "targets");
  if (!st) return st.error();
  return bytes;
}

Result<std::string> empty_targets(std::string_view root_bytes, core::TimeMs expires,
                                  const std::vector<SigningKey>& signers) {
  auto root = parse_root(root_bytes);
  if (!root) return root.error().with_context("root: ");
  auto bytes = sign_metadata(targets_signed(1, expires, {}), signers);
  if (!bytes) return bytes.error();
  auto st = check_signed_for(*root, root->body.targets, "targets", *bytes, "targets");
  if (!st) return st.error();
  return bytes;
}

Result<Published> publish(const PublishRequest& req) {
  auto root = parse_root(req.root);
  if (!root) return root.error().with_context("root: ");
  if (req.targets.count("targets") == 0) {
    return make_error(ErrorCode::kInvalidArgument, "publish: no top-level targets metadata");
  }
  std::map<std::string, MetaInfo> meta;
  for (const auto& [role, bytes] : req.targets) {
    auto md = parse_targets(bytes, role);
    if (!md) return md.error();
    meta.emplace(role + ".json", meta_info_of(md->body.common.version, bytes));
  }
  std::int64_t snapshot_version = 1;
  if (req.previous_snapshot) {
    auto prev = parse_snapshot(*req.previous_snapshot);
    if (!prev) return prev.error().with_context("previous snapshot: ");
    snapshot_version = prev->body.common.version + 1;
    // A client refuses a snapshot that drops or lowers a role (5.5.5).
    for (const auto& [file, info] : prev->body.meta) {
      auto it = meta.find(file);
      if (it == meta.end() || it->second.version < info.version) {
        return make_error(ErrorCode::kConflict,
                          "publish: '" + file + "' would be missing or older than in snapshot " +
                              std::to_string(prev->body.common.version) +
                              " (clients would refuse it, 5.5.5)");
      }
    }
  }
  std::int64_t timestamp_version = 1;
  if (req.previous_timestamp) {
    auto prev = parse_timestamp(*req.previous_timestamp);
    if (!prev) return prev.error().with_context("previous timestamp: ");
    timestamp_version = prev->body.common.version + 1;
    snapshot_version = std::max(snapshot_version, prev->body.snapshot.version + 1);
  }
  Published out;
  out.snapshot_version = snapshot_version;
  auto snap =
      sign_metadata(snapshot_signed(snapshot_version, later(req.now, req.snapshot_expiry), meta),
                    req.snapshot_keys);
  if (!snap) return snap.error();
  auto st = check_signed_for(*root, root->body.snapshot, "snapshot", *snap, "snapshot");
  if (!st) return st.error();
  out.snapshot = std::move(*snap);
  auto ts = sign_metadata(timestamp_signed(timestamp_version, later(req.now, req.timestamp_expiry),
                                           meta_info_of(snapshot_version, out.snapshot)),
                          req.timestamp_keys);
  if (!ts) return ts.error();
  st = check_signed_for(*root, root->body.timestamp, "timestamp", *ts, "timestamp");
  if (!st) return st.error();
  out.timestamp = std::move(*ts);
  return out;
}

}  // namespace tranche::tuf
