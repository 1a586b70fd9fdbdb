#include "base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace clade {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  int e = errno;
  std::string msg = std::string(what) + " " + path + ": " + std::strerror(e);
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EEXIST) return absl::AlreadyExistsError(msg);
  if (e == EACCES || e == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

std::string DirOf(const std::string& path) {
  std::filesystem::path p(path);
  auto parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// A new temporary file, never one that a link makes somebody else's (see files.h).
absl::StatusOr<int> CreateTemporary(const std::string& tmp, int mode) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::open(tmp.c_str(), kFlags, mode);
  if (fd >= 0 || errno != EEXIST) {
    if (fd < 0) return Errno("cannot create", tmp);
    return fd;
  }
  struct stat st {};
  if (::lstat(tmp.c_str(), &st) != 0) return Errno("cannot stat", tmp);
  if (S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "temporary file ", tmp, " exists and is a symbolic link; refusing to write through it"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("temporary file ", tmp, " exists and is not a regular file"));
  }
  // Unlinking removes the name only: a hard link's other names keep their content.
  if (::unlink(tmp.c_str()) != 0) return Errno("cannot remove the leftover", tmp);
  fd = ::open(tmp.c_str(), kFlags, mode);
  if (fd < 0) return Errno("cannot create", tmp);
  return fd;
}

}  // namespace

absl::StatusOr<int> OpenLockFile(const std::string& path) {
  // O_NONBLOCK: a FIFO planted there must not block the open; it is refused below.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat("lock file ", path, " is a symbolic link; refusing to follow it"));
    }
    if (errno == ENXIO) {  // a socket, or a FIFO without a reader
      return absl::FailedPreconditionError(
          absl::StrCat("lock file ", path, " is not a regular file"));
    }
    return Errno("cannot open lock file", path);
  }
  struct stat st {};
  absl::Status refused;
  if (::fstat(fd, &st) != 0) {
    refused = Errno("cannot stat lock file", path);
  } else if (!S_ISREG(st.st_mode)) {
    refused =
        absl::FailedPreconditionError(absl::StrCat("lock file ", path, " is not a regular file"));
  } else if (st.st_nlink != 1) {
    refused = absl::FailedPreconditionError(
        absl::StrFormat("lock file %s has %d hard links; a lock file has one", path, st.st_nlink));
  }
  if (!refused.ok()) {
    ::close(fd);
    return refused;
  }
  return fd;
}

namespace {
absl::StatusOr<Bytes> ReadWhole(const std::string& path, size_t limit, int extra_flags) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | extra_flags);
  if (fd < 0 && errno == ELOOP && (extra_flags & O_NOFOLLOW) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is a symbolic link; refusing to follow it"));
  }
  if (fd < 0) return Errno("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno("cannot stat", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is %d bytes, more than the limit of %d", path, st.st_size, limit));
  }
  Bytes out;
  out.reserve(static_cast<size_t>(st.st_size));
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = Errno("cannot read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrFormat("%s is more than the limit of %d bytes", path, limit));
    }
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}
}  // namespace

absl::StatusOr<Bytes> ReadFileBytes(const std::string& path, size_t limit) {
  return ReadWhole(path, limit, 0);
}

absl::StatusOr<Bytes> ReadFileBytesNoFollow(const std::string& path, size_t limit) {
  return ReadWhole(path, limit, O_NOFOLLOW);
}

absl::StatusOr<std::string> ReadFileString(const std::string& path, size_t limit) {
  ASSIGN_OR_RETURN(Bytes b, ReadFileBytes(path, limit));
  return std::string(b.begin(), b.end());
}

absl::Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot fsync directory", dir);
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, const void* data, size_t size, int mode,
                             bool exclusive) {
  if (exclusive && PathExists(path)) {
    return absl::AlreadyExistsError(absl::StrCat(path, " already exists; refusing to overwrite"));
  }
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  ASSIGN_OR_RETURN(int fd, CreateTemporary(tmp, mode));
  // open() honours the umask; set the bits we were asked for exactly.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    absl::Status s = Errno("cannot chmod", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  const auto* p = static_cast<const uint8_t*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = Errno("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = Errno("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (exclusive) {
    // link() fails if the target appeared meanwhile, so exclusivity holds without a race.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      absl::Status s = Errno("cannot create", path);
      ::unlink(tmp.c_str());
      return s;
    }
    ::unlink(tmp.c_str());
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = Errno("cannot rename onto", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDir(DirOf(path));
}

absl::Status MakeDirs(const std::string& path, int mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return absl::OkStatus();
  std::filesystem::create_directories(path, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create directory ", path, ": ", ec.message()));
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) return Errno("cannot chmod", path);
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

absl::Status CheckPrivateFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Errno("cannot stat", path);
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s has mode %04o; it must not be readable or writable by group or "
                        "others (chmod 600 %s)",
                        path, st.st_mode & 07777, path));
  }
  return absl::OkStatus();
}

}  // namespace clade
