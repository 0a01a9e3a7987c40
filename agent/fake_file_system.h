// An in-memory FileSystem that forgets what was not made durable, the way
// LevelDB's fault-injection test environment does (db/fault_injection_test.cc):
// crash() throws away every write not fsync'd and every directory change
// (create, rename, remove, symlink) whose directory was not fsync'd since.
// Files are inodes, so a rename moves data that was synced under the old name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "agent/ports.h"

namespace tranche::agent {

class FakeFileSystem : public FileSystem {
 public:
  core::Result<std::string> read(const std::string& path, std::size_t max_bytes) override;
  core::Status write(const std::string& path, std::string_view bytes, bool private_file) override;
  core::Status append(const std::string& path, std::string_view bytes) override;
  core::Status fsync(const std::string& path) override;
  core::Status rename(const std::string& from, const std::string& to) override;
  core::Status remove(const std::string& path) override;
  core::Status symlink(const std::string& target, const std::string& link) override;
  core::Result<std::string> readlink(const std::string& link) override;
  core::Status make_dirs(const std::string& path) override;
  core::Result<std::int64_t> size(const std::string& path) override;
  core::Result<std::vector<std::string>> list(const std::string& dir) override;
  core::Status remove_tree(const std::string& path) override;

  // The machine loses power: only what was made durable survives.
  void crash();
  // Every mutating call from now on fails after `n` more succeed (disk full).
  void fail_after(std::int64_t n) { fail_after_ = n; }

 private:
  struct Inode {
    std::string data;
    std::string synced;
    bool symlink = false;
  };
  using Entries = std::map<std::string, std::shared_ptr<Inode>>;  // path -> inode
  core::Status tick();
  bool dir_exists(const std::string& dir) const;

  Entries live_;
  Entries durable_;  // names as of each directory's last fsync
  std::map<std::string, bool> dirs_{{"/", true}};
  std::int64_t fail_after_ = -1;
};

}  // namespace tranche::agent
