// Repositories for the client tests, one level up from repo_builder.h:
//   - Repo: the four top-level files at version 1 and a TrustedSet trusting its
//     root (TrustedSet tests, one check at a time);
//   - FakeFetcher / FakeStore: the Updater's two ports in memory;
//   - World: a repository that publishes through tuf/repository.h's functions,
//     served by a FakeFetcher to a client whose FakeStore holds root.json;
//   - DelegationWorld / SharedRoleWorld: delegation trees for the search (5.6.7).
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/tuf/repo_builder.h"
#include "tuf/client.h"
#include "tuf/updater.h"

namespace tranche::tuf::testing {

// The error of a failed status, or a failure when it succeeded.
template <typename R>
core::Error error_of(const R& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? core::Error{} : r.error();
}

// A repository at version 1 of everything, and a set trusting its root.
struct Repo {
  RepoBuilder b;
  std::string root = b.root(1);
  std::string targets = b.targets(1);
  std::string snapshot = b.snapshot_for(1, 1, targets);
  std::string timestamp = b.timestamp(1, 1, snapshot);

  TrustedSet set(core::TimeMs now = kNow) const {
    auto s = TrustedSet::create(root, now);
    EXPECT_TRUE(s.ok()) << s.error().to_string();
    return std::move(*s);
  }
  // A set that trusts everything up to (not including) `stop`.
  TrustedSet set_through(std::string_view stop, core::TimeMs now = kNow) const {
    TrustedSet s = set(now);
    EXPECT_TRUE(s.finish_root_update().ok());
    if (stop == "timestamp") return s;
    EXPECT_TRUE(s.update_timestamp(timestamp).ok());
    if (stop == "snapshot") return s;
    EXPECT_TRUE(s.update_snapshot(snapshot).ok());
    return s;
  }
};

// Files by name; a missing file is kNotFound, a longer one kTooLarge.
struct FakeFetcher : Fetcher {
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> targets;
  std::vector<std::string> requested;
  bool fail_transport = false;

  core::Result<std::string> get(std::map<std::string, std::string>& files, const std::string& name,
                                std::size_t max_bytes) {
    requested.push_back(name);
    if (fail_transport) return core::make_error(core::ErrorCode::kConflict, "connection refused");
    auto it = files.find(name);
    if (it == files.end()) return core::make_error(core::ErrorCode::kNotFound, "404");
    if (it->second.size() > max_bytes) {
      return core::make_error(core::ErrorCode::kTooLarge, "too long");
    }
    return it->second;
  }
  core::Result<std::string> fetch_metadata(const std::string& name, std::size_t max) override {
    return get(metadata, name, max);
  }
  core::Result<std::string> fetch_target(const std::string& path, std::size_t max) override {
    return get(targets, path, max);
  }
};

// Files by name; `unreadable` ones fail to load as a disk would.
struct FakeStore : MetadataStore {
  std::map<std::string, std::string> files;
  std::set<std::string> unreadable;
  core::Result<std::string> load(const std::string& name, std::size_t max) override {
    if (unreadable.count(name) != 0) {
      return core::make_error(core::ErrorCode::kUnavailable, name + ": input/output error");
    }
    auto it = files.find(name);
    if (it == files.end()) return core::make_error(core::ErrorCode::kNotFound, name);
    if (it->second.size() > max) return core::make_error(core::ErrorCode::kTooLarge, name);
    return it->second;
  }
  core::Status store(const std::string& name, std::string_view bytes) override {
    files[name] = std::string(bytes);
    return core::Ok{};
  }
  core::Status remove(const std::string& name) override {
    files.erase(name);
    return core::Ok{};
  }
};

// A repository that publishes through tuf/repository.h's functions.
struct World {
  RepoBuilder b;
  FakeFetcher remote;
  FakeStore local;
  std::int64_t targets_version = 0, snapshot_version = 0, timestamp_version = 0;
  std::map<TargetPath, TargetFile> files;

  World() {
    remote.metadata["1.root.json"] = b.root(1);
    local.files["root.json"] = b.root(1);
    publish();
  }
  void publish(boost::json::object targets_obj) {
    ++targets_version;
    targets_obj["version"] = targets_version;
    const std::string t = RepoBuilder::sign(targets_obj, b.targets_keys);
    remote.metadata[std::to_string(targets_version) + ".targets.json"] = t;
    const std::string s = b.snapshot_for(++snapshot_version, targets_version, t);
    remote.metadata[std::to_string(snapshot_version) + ".snapshot.json"] = s;
    remote.metadata["timestamp.json"] = b.timestamp(++timestamp_version, snapshot_version, s);
  }
  void publish() { publish(targets_signed(1, b.expires, files)); }
  void add_target(const std::string& path, const std::string& bytes) {
    TargetFile f = target_file_of(bytes);
    files[target_path(path)] = f;
    remote.targets[target_remote_path(target_path(path), f, true)] = bytes;
    publish();
  }
  core::Status refresh(core::TimeMs now = kNow) {
    auto u = Updater::create(remote, local, now);
    if (!u) return u.error();
    return u->refresh();
  }
};

// Top-level targets delegates, in order, to "a" (paths "x/*", non-terminating)
// and "b" (paths "x/*"); "a" delegates to "c" (terminating, "x/*") and "d".
struct DelegationWorld : World {
  std::map<std::string, SigningKey> keys;
  std::map<std::string, std::string> role_bytes;
  std::map<std::string, MetaInfo> meta;

  static boost::json::object role_entry(const std::string& name, const SigningKey& k,
                                        bool terminating, const char* pattern) {
    return boost::json::object{{"name", name},
                               {"keyids", boost::json::array{key_id(k.public_key)}},
                               {"threshold", 1},
                               {"terminating", terminating},
                               {"paths", boost::json::array{pattern}}};
  }
  boost::json::object delegations(std::initializer_list<std::pair<std::string, bool>> roles,
                                  const char* pattern = "x/*") {
    boost::json::object ks;
    boost::json::array rs;
    for (const auto& [name, terminating] : roles) {
      const SigningKey& k = keys.at(name);
      ks[key_id(k.public_key)] = k.public_key.json;
      rs.emplace_back(role_entry(name, k, terminating, pattern));
    }
    return boost::json::object{{"keys", ks}, {"roles", rs}};
  }

  DelegationWorld() {
    for (const char* n : {"a", "b", "c", "d"}) keys.emplace(n, new_key());
  }
  // A delegated role's metadata at version 1, signed with its own key.
  void role_doc(const std::string& name, const boost::json::object& obj) {
    role_bytes[name] = RepoBuilder::sign(obj, {keys.at(name)});
    remote.metadata["1." + name + ".json"] = role_bytes[name];
    meta[name + ".json"] = meta_info_of(1, role_bytes[name]);
  }
  // Top-level targets at version 9, then the snapshot and timestamp listing
  // every role published so far.
  void publish_top(const boost::json::object& top) {
    const std::string t = RepoBuilder::sign(top, b.targets_keys);
    remote.metadata["9.targets.json"] = t;
    meta["targets.json"] = meta_info_of(9, t);
    const std::string s = b.snapshot(9, meta);
    remote.metadata["9.snapshot.json"] = s;
    remote.metadata["timestamp.json"] = b.timestamp(9, 9, s);
  }

  // role -> the targets it lists; publishes everything at version 1 of each role
  void build(const std::map<std::string, std::map<TargetPath, TargetFile>>& listed) {
    auto listed_by = [&](const std::string& r) {
      auto it = listed.find(r);
      return it == listed.end() ? std::map<TargetPath, TargetFile>{} : it->second;
    };
    boost::json::object a = targets_signed(1, b.expires, listed_by("a"));
    a["delegations"] = delegations({{"c", true}, {"d", false}});
    role_doc("a", a);
    for (const char* n : {"b", "c", "d"}) role_doc(n, targets_signed(1, b.expires, listed_by(n)));
    boost::json::object top = targets_signed(9, b.expires, listed_by("targets"));
    top["delegations"] = delegations({{"a", false}, {"b", false}});
    publish_top(top);
  }
};

// 5.6.7.2: "c" is delegated by "a" for "a/*" (with c's key) and by "b" for
// "b/*" (with `b_gives_c`); c lists "b/y". Top-level targets delegates "a"
// ("a/*") and "b" ("b/*").
struct SharedRoleWorld : DelegationWorld {
  void build(const SigningKey& b_gives_c) {
    auto delegating = [&](const std::string& role, const SigningKey& k, const char* pattern) {
      return boost::json::object{
          {"keys", boost::json::object{{key_id(k.public_key), k.public_key.json}}},
          {"roles", boost::json::array{role_entry(role, k, false, pattern)}}};
    };
    boost::json::object a = targets_signed(1, b.expires, {});
    a["delegations"] = delegating("c", keys.at("c"), "a/*");
    role_doc("a", a);
    boost::json::object bo = targets_signed(1, b.expires, {});
    bo["delegations"] = delegating("c", b_gives_c, "b/*");
    role_doc("b", bo);
    role_doc("c", targets_signed(1, b.expires, {{target_path("b/y"), target_file_of("y")}}));
    boost::json::object top = targets_signed(9, b.expires, {});
    boost::json::object ks{{key_id(keys.at("a").public_key), keys.at("a").public_key.json},
                           {key_id(keys.at("b").public_key), keys.at("b").public_key.json}};
    top["delegations"] = boost::json::object{
        {"keys", ks},
        {"roles", boost::json::array{role_entry("a", keys.at("a"), false, "a/*"),
                                     role_entry("b", keys.at("b"), false, "b/*")}}};
    publish_top(top);
  }
};

}  // namespace tranche::tuf::testing
