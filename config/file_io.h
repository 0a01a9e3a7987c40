// Whole files in and out: a bounded reader and a durable writer, the one
// implementation behind the config loaders, the agent's PosixFileSystem::read,
// tranche-tuf-client (through it), the repository directory and `tranche keys gen`.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/result.h"

namespace tranche::config {

// Reads the whole of `path`, never holding more than max_bytes + 1 bytes.
// kNotFound when it does not exist (ENOENT, ENOTDIR, ENAMETOOLONG); kTooLarge
// beyond max_bytes ("PATH: longer than N bytes"); kInvalidArgument for any
// other failure (a directory, no permission). Messages name the path and why.
core::Result<std::string> read_file_limited(const std::string& path, std::size_t max_bytes);

struct WriteOptions {
  // Permission bits of the new file, before the umask.
  mode_t mode = 0644;
  // Refuse (kConflict, "PATH: File exists") when `path` exists, instead of
  // replacing it. Holds against a concurrent writer too: the file appears by
  // an exclusive link/rename, never by a check followed by a write.
  bool no_overwrite = false;
  // Create missing parent directories (mode 0755) first.
  bool create_parent_dirs = true;
};

// Writes a temporary file beside `path` (unique to this process and call),
// fsyncs it, renames (or, with no_overwrite, exclusively links) it to `path`
// and fsyncs the directory: after a crash `path` holds the old bytes or the
// new, never a mix, and a server or CDN syncing the directory never sees half a
// file. Errors name `path` and the reason.
core::Status write_file_atomic(const std::filesystem::path& path, std::string_view bytes,
                               const WriteOptions& options = {});

}  // namespace tranche::config
