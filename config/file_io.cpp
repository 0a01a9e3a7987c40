#include "config/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tranche::config {

namespace fs = std::filesystem;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

// 0 or the errno of the failed write.
int write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

// Renames `from` to `to` unless `to` exists (EEXIST), atomically: with
// renameat2(RENAME_NOREPLACE) where the file system has it (ext4, xfs, btrfs,
// tmpfs, vfat), else with link(), which NFS has (the temporary name is then
// removed). 0 or the errno.
int rename_no_replace(const char* from, const char* to) {
  if (::renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return errno;
  if (::link(from, to) != 0) return errno;
  ::unlink(from);
  return 0;
}

// 0 or the errno.
int fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

}  // namespace

Result<std::string> read_file_limited(const std::string& path, std::size_t max_bytes) {
  auto failed = [&path]() {
    // No file by that name: none there, a parent that is not a directory, or a
    // name too long to be one (from a command line).
    const bool absent = errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG;
    const ErrorCode code = absent ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument;
    return make_error(code, path + ": " + std::strerror(errno));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failed();
  std::string out;
  char buf[65536];
  while (true) {
    // One byte past the cap is enough to know the file is too long.
    const std::size_t room = max_bytes - out.size();
    const ssize_t n = ::read(fd, buf, room < sizeof buf ? room + 1 : sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto e = failed();
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return make_error(ErrorCode::kTooLarge,
                        path + ": longer than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

Status write_file_atomic(const fs::path& path, std::string_view bytes,
                         const WriteOptions& options) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  auto failed = [&path](const std::string& step, int err) {
    return make_error(ErrorCode::kInvalidArgument,
                      path.string() + ": " + step + ": " + std::strerror(err));
  };
  if (options.create_parent_dirs) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return make_error(ErrorCode::kInvalidArgument, dir.string() + ": " + ec.message());
  }
  // Unique per process and call: two writers of the same path never write
  // into one temporary file. A name this process had in an earlier life
  // (same pid, then a crash) is stale and removed.
  static std::atomic<unsigned> sequence{0};
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive)
  // on the same name built with operator+.
  std::string name = ".";
  name.append(path.filename().string()).append(".").append(std::to_string(::getpid()));
  name.append("-").append(std::to_string(sequence++)).append(".tmp");
  const fs::path tmp = dir / name;
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, options.mode);
  if (fd < 0) return failed("create " + tmp.string(), errno);
  int err = write_all(fd, bytes);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return failed("write " + tmp.string(), err);
  }
  if (options.no_overwrite) {
    err = rename_no_replace(tmp.c_str(), path.c_str());
    if (err != 0) {
      ::unlink(tmp.c_str());
      if (err == EEXIST) {
        return make_error(ErrorCode::kConflict, path.string() + ": " + std::strerror(err));
      }
      return failed("rename", err);
    }
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return failed("rename", err);
  }
  if (err = fsync_dir(dir); err != 0) return failed("fsync " + dir.string(), err);
  return core::Ok{};
}

}  // namespace tranche::config
