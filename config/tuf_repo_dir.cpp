#include "config/tuf_repo_dir.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tuf/metadata.h"
#include "tuf/repository.h"

namespace tranche::config {
namespace fs = std::filesystem;
using core::ErrorCode;
using core::make_error;

core::Result<std::string> read_whole_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, p.string() + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

core::Result<tuf::SigningKey> load_signing_key(const std::string& path) {
  auto bytes = read_whole_file(path);
  if (!bytes) return bytes.error();
  auto key = tuf::signing_key_from_pem(*bytes);
  if (!key) return key.error().with_context(path + ": ");
  return key;
}

core::Result<std::vector<tuf::SigningKey>> load_signing_keys(const std::vector<std::string>& paths) {
  std::vector<tuf::SigningKey> out;
  for (const std::string& p : paths) {
    auto k = load_signing_key(p);
    if (!k) return k.error();
    out.push_back(std::move(*k));
  }
  return out;
}

fs::path repo_metadata_dir(const std::string& dir) { return fs::path(dir) / "metadata"; }

std::int64_t repo_latest_version(const std::string& dir, const std::string& role) {
  std::int64_t best = 0;
  std::error_code ec;
  const std::string suffix = "." + role + ".json";
  for (const auto& e : fs::directory_iterator(repo_metadata_dir(dir), ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() <= suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const std::string digits = n.substr(0, n.size() - suffix.size());
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    best = std::max(best, static_cast<std::int64_t>(std::stoll(digits)));
  }
  return best;
}

core::Result<std::string> repo_read_latest(const std::string& dir, const std::string& role) {
  const std::int64_t v = repo_latest_version(dir, role);
  if (v == 0) {
    return make_error(ErrorCode::kNotFound, repo_metadata_dir(dir).string() + ": no N." + role +
                                                ".json (run tranche repo init first)");
  }
  return read_whole_file(repo_metadata_dir(dir) / (std::to_string(v) + "." + role + ".json"));
}

core::Status repo_check_targets(const std::string& dir, const std::vector<ExpectedTarget>& targets) {
  auto top_bytes = repo_read_latest(dir, "targets");
  if (!top_bytes) return top_bytes.error();
  auto top = tuf::parse_targets(*top_bytes, "targets");
  if (!top) return top.error().with_context(repo_metadata_dir(dir).string() + ": targets metadata: ");
  // The top-level role and the roles it delegates to, in its order.
  std::vector<std::pair<std::string, tuf::Targets>> roles{{"targets", top->body}};
  if (top->body.delegations) {
    for (const auto& role : top->body.delegations->roles) {
      auto bytes = repo_read_latest(dir, role.name);
      if (!bytes) continue;  // delegated, not yet signed: it signs nothing
      auto parsed = tuf::parse_targets(*bytes, role.name);
      if (parsed) roles.emplace_back(role.name, parsed->body);
    }
  }
  for (const auto& want : targets) {
    const tuf::TargetFile* found = nullptr;
    std::string by;
    for (const auto& [name, body] : roles) {
      for (const auto& [path, file] : body.targets) {
        if (path.str() == want.path) {
          found = &file;
          by = name;
          break;
        }
      }
      if (found != nullptr) break;
    }
    if (found == nullptr) {
      std::string signed_paths;
      std::size_t listed = 0;
      for (const auto& [name, body] : roles) {
        for (const auto& [path, file] : body.targets) {
          if (listed++ < 10) signed_paths += (signed_paths.empty() ? "" : ", ") + path.str();
        }
      }
      if (listed > 10) signed_paths += ", … (" + std::to_string(listed) + " in all)";
      return make_error(ErrorCode::kNotFound,
                        "target '" + want.path + "' is not signed in the TUF repository " + dir +
                            " (it signs: " + (signed_paths.empty() ? std::string("nothing yet") : signed_paths) +
                            "); sign the file under that name first: tranche release sign " + dir +
                            " FILE --name " + want.path + " --targets-key KEY.pem");
    }
    auto sha = found->hashes.find("sha256");
    if (found->length != want.length || sha == found->hashes.end() || sha->second != want.sha256) {
      return make_error(ErrorCode::kConflict,
                        "target '" + want.path + "' is signed (by role " + by + ") with length " +
                            std::to_string(found->length) + " and sha256 " +
                            (sha == found->hashes.end() ? std::string("(none)") : sha->second) +
                            ", not the length " + std::to_string(want.length) + " and sha256 " + want.sha256 +
                            " given: the release must name the signed file");
    }
  }
  return core::Ok{};
}

core::Result<std::int64_t> repo_publish(const std::string& dir,
                                        const std::vector<tuf::SigningKey>& snapshot_keys,
                                        const std::vector<tuf::SigningKey>& timestamp_keys,
                                        core::TimeMs now,
                                        std::optional<core::DurationMs> timestamp_expiry) {
  auto root = repo_read_latest(dir, "root");
  if (!root) return root.error();
  auto targets = repo_read_latest(dir, "targets");
  if (!targets) return targets.error();
  tuf::PublishRequest req;
  req.root = *root;
  req.targets = {{"targets", *targets}};
  std::optional<std::string> prev_snapshot, prev_timestamp;
  if (repo_latest_version(dir, "snapshot") != 0) {
    auto s = repo_read_latest(dir, "snapshot");
    if (!s) return s.error();
    prev_snapshot = std::move(*s);
    req.previous_snapshot = *prev_snapshot;
  }
  if (auto t = read_whole_file(repo_metadata_dir(dir) / tuf::kTimestampFileName)) {
    prev_timestamp = std::move(*t);
    req.previous_timestamp = *prev_timestamp;
  }
  req.snapshot_keys = snapshot_keys;
  req.timestamp_keys = timestamp_keys;
  req.now = now;
  if (timestamp_expiry) req.timestamp_expiry = *timestamp_expiry;
  auto published = tuf::publish(req);
  if (!published) return published.error();
  // The snapshot before the timestamp that points at it.
  if (auto st = write_file_atomic(repo_metadata_dir(dir) / tuf::snapshot_file_name(published->snapshot_version),
                                  published->snapshot);
      !st) {
    return st.error();
  }
  if (auto st = write_file_atomic(repo_metadata_dir(dir) / tuf::kTimestampFileName, published->timestamp); !st) {
    return st.error();
  }
  return published->snapshot_version;
}

std::optional<std::string> repo_publish_reason(const std::string& dir, core::TimeMs now,
                                               core::DurationMs renew_before) {
  const std::int64_t targets_version = repo_latest_version(dir, "targets");
  if (targets_version == 0) return std::nullopt;  // not initialised: nothing to publish
  auto ts_bytes = read_whole_file(repo_metadata_dir(dir) / tuf::kTimestampFileName);
  if (!ts_bytes) return "no timestamp yet";
  auto ts = tuf::parse_timestamp(*ts_bytes);
  if (!ts) return "timestamp unreadable: " + ts.error().message;
  if (ts->body.common.expires - now < renew_before) return "timestamp expires soon";
  auto snap_bytes = repo_read_latest(dir, "snapshot");
  if (!snap_bytes) return "no snapshot yet";
  auto snap = tuf::parse_snapshot(*snap_bytes);
  if (!snap) return "snapshot unreadable: " + snap.error().message;
  auto listed = snap->body.meta.find("targets.json");
  if (listed == snap->body.meta.end() || listed->second.version != targets_version) {
    return "targets version " + std::to_string(targets_version) + " is not in the snapshot yet";
  }
  return std::nullopt;
}

}  // namespace tranche::config
