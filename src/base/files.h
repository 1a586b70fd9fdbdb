// Bounded reads and durable writes. Every read states its size limit; every write goes to a
// temporary file in the same directory, is fsync'ed, renamed over the target and the directory
// fsync'ed, so a crash leaves the old file or the new one, never a torn one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace clade {

using Bytes = std::vector<uint8_t>;

inline constexpr size_t kDefaultFileLimit = 16 * 1024 * 1024;

// Reads a whole file; refuses one larger than `limit` ("FILE is N bytes, more than the limit M").
absl::StatusOr<Bytes> ReadFileBytes(const std::string& path, size_t limit = kDefaultFileLimit);
absl::StatusOr<std::string> ReadFileString(const std::string& path,
                                           size_t limit = kDefaultFileLimit);
// As ReadFileBytes, but a PATH that is a symbolic link is refused, never followed (O_NOFOLLOW):
// FailedPrecondition "PATH is a symbolic link; refusing to follow it".
absl::StatusOr<Bytes> ReadFileBytesNoFollow(const std::string& path, size_t limit);

// Atomic, durable write with the given permission bits. `exclusive` refuses an existing target.
// The temporary file (PATH.tmp.<pid>) is created new (O_EXCL, O_NOFOLLOW): one planted there as
// a symbolic link or other non-regular file is refused, FailedPrecondition "temporary file T
// exists and is a symbolic link; refusing to write through it", and its target is not touched.
// A regular leftover (a crashed writer of the same pid) is removed and the file made anew.
absl::Status WriteFileAtomic(const std::string& path, const void* data, size_t size,
                             int mode = 0644, bool exclusive = false);
inline absl::Status WriteFileAtomic(const std::string& path, const std::string& data,
                                    int mode = 0644, bool exclusive = false) {
  return WriteFileAtomic(path, data.data(), data.size(), mode, exclusive);
}
inline absl::Status WriteFileAtomic(const std::string& path, const Bytes& data, int mode = 0644,
                                    bool exclusive = false) {
  return WriteFileAtomic(path, data.data(), data.size(), mode, exclusive);
}

// Opens a lock file for flock(), creating it (mode 0600) if missing, and returns its descriptor
// (close-on-exec; the caller closes it). A lock file is rewritten by its holder (pid), so one
// planted as a symbolic link (never followed: O_NOFOLLOW), as a non-regular file, or as a hard
// link to another file is refused with FailedPrecondition naming it ("lock file L is a symbolic
// link; refusing to follow it", "lock file L is not a regular file", "lock file L has N hard
// links"), and nothing is written.
absl::StatusOr<int> OpenLockFile(const std::string& path);

// Creates a directory (and parents) with `mode` if it does not exist.
absl::Status MakeDirs(const std::string& path, int mode = 0755);
bool PathExists(const std::string& path);
// fsyncs a directory so a rename or create inside it is durable.
absl::Status SyncDir(const std::string& dir);

// Fails if the file's permission bits let group or others read or write it.
absl::Status CheckPrivateFile(const std::string& path);

}  // namespace clade
