#include "agent/fake_file_system.h"

namespace tranche::agent {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

Status FakeFileSystem::tick() {
  if (fail_after_ == 0) return make_error(ErrorCode::kTooLarge, "no space left on device (injected)");
  if (fail_after_ > 0) --fail_after_;
  return core::Ok{};
}

bool FakeFileSystem::dir_exists(const std::string& dir) const {
  return dirs_.count(dir) != 0;
}

Result<std::string> FakeFileSystem::read(const std::string& path, std::size_t max_bytes) {
  auto it = live_.find(path);
  if (it == live_.end() || it->second->symlink) return make_error(ErrorCode::kNotFound, path + ": no such file");
  if (it->second->data.size() > max_bytes) return make_error(ErrorCode::kTooLarge, path + ": too large");
  return it->second->data;
}

Status FakeFileSystem::write(const std::string& path, std::string_view bytes, bool) {
  if (auto st = tick(); !st) return st;
  if (!dir_exists(parent_dir(path))) return make_error(ErrorCode::kNotFound, path + ": no directory");
  auto& inode = live_[path];
  if (!inode) inode = std::make_shared<Inode>();
  inode->data = std::string(bytes);
  return core::Ok{};
}

Status FakeFileSystem::append(const std::string& path, std::string_view bytes) {
  if (auto st = tick(); !st) return st;
  if (!dir_exists(parent_dir(path))) return make_error(ErrorCode::kNotFound, path + ": no directory");
  auto& inode = live_[path];
  if (!inode) inode = std::make_shared<Inode>();
  inode->data.append(bytes);
  return core::Ok{};
}

Status FakeFileSystem::fsync(const std::string& path) {
  if (auto st = tick(); !st) return st;
  if (dir_exists(path)) {
    // The directory's names become durable: what exists under it now, exactly.
    const std::string prefix = path == "/" ? "/" : path + "/";
    for (auto it = durable_.begin(); it != durable_.end();) {
      if (parent_dir(it->first) == path && live_.count(it->first) == 0) {
        it = durable_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [name, inode] : live_) {
      if (parent_dir(name) == path) durable_[name] = inode;
    }
    return core::Ok{};
  }
  auto it = live_.find(path);
  if (it == live_.end()) return make_error(ErrorCode::kNotFound, path + ": no such file");
  it->second->synced = it->second->data;
  return core::Ok{};
}

Status FakeFileSystem::rename(const std::string& from, const std::string& to) {
  if (auto st = tick(); !st) return st;
  auto it = live_.find(from);
  if (it == live_.end()) return make_error(ErrorCode::kNotFound, from + ": no such file");
  auto inode = it->second;
  live_.erase(it);
  live_[to] = inode;
  return core::Ok{};
}

Status FakeFileSystem::remove(const std::string& path) {
  if (auto st = tick(); !st) return st;
  live_.erase(path);
  return core::Ok{};
}

Status FakeFileSystem::symlink(const std::string& target, const std::string& link) {
  if (auto st = tick(); !st) return st;
  if (live_.count(link) != 0) return make_error(ErrorCode::kConflict, link + ": exists");
  auto inode = std::make_shared<Inode>();
  inode->data = target;
  inode->synced = target;  // a symlink's target is part of its directory entry
  inode->symlink = true;
  live_[link] = inode;
  return core::Ok{};
}

Result<std::string> FakeFileSystem::readlink(const std::string& link) {
  auto it = live_.find(link);
  if (it == live_.end() || !it->second->symlink) return make_error(ErrorCode::kNotFound, link + ": no symlink");
  return it->second->data;
}

Status FakeFileSystem::make_dirs(const std::string& path) {
  // Directories are durable at once here (the agent creates them at start).
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') dirs_[path.substr(0, i)] = true;
  }
  return core::Ok{};
}

Result<std::int64_t> FakeFileSystem::size(const std::string& path) {
  auto it = live_.find(path);
  if (it == live_.end()) return make_error(ErrorCode::kNotFound, path + ": no such file");
  return static_cast<std::int64_t>(it->second->data.size());
}

Result<std::vector<std::string>> FakeFileSystem::list(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& [name, inode] : live_) {
    if (parent_dir(name) == dir) names.push_back(name.substr(dir.size() + 1));
  }
  return names;
}

Status FakeFileSystem::remove_tree(const std::string& path) {
  if (auto st = tick(); !st) return st;
  const std::string prefix = path + "/";
  for (auto it = live_.begin(); it != live_.end();) {
    if (it->first == path || it->first.rfind(prefix, 0) == 0) {
      it = live_.erase(it);
    } else {
      ++it;
    }
  }
  return core::Ok{};
}

void FakeFileSystem::crash() {
  live_.clear();
  for (const auto& [name, inode] : durable_) {
    inode->data = inode->synced;
    live_[name] = inode;
  }
  fail_after_ = -1;
}

}  // namespace tranche::agent
