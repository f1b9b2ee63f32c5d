#include "security/secret_file.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/ids.h"

namespace gpuorch::security {
namespace {

// Closes a file descriptor on every path out of a scope. Close() closes it early and reports the
// close's own failure, which for a file just written can be the first sign of a lost write.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  // 0, or -1 with errno set. Not retried on EINTR: Linux has released the descriptor either way.
  int Close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd);
  }

 private:
  int fd_;
};

// Failures the operator has to fix (permissions, a read-only or missing directory) are
// kFailedPrecondition; the rest may pass on their own.
tl::unexpected<core::Error> IoFailure(int err, const std::string& what) {
  core::Code code = core::Code::kUnavailable;
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOTDIR:
    case ENOENT:
    case ELOOP:
      code = core::Code::kFailedPrecondition;
      break;
    default:
      break;
  }
  return core::Fail(code, what + ": " + std::strerror(err));
}

core::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return IoFailure(n < 0 ? errno : EIO, "cannot write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return core::Ok();
}

// Makes a rename or link in the directory of `path` durable.
core::Status FsyncDirOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) {
    dir = ".";
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return IoFailure(errno, "cannot open directory " + dir);
  }
  FdCloser closer(fd);
  if (::fsync(fd) != 0) {
    return IoFailure(errno, "cannot sync directory " + dir);
  }
  return core::Ok();
}

// Writes `contents` to a fresh 0600 temporary file beside `path`, synced and closed; returns its
// name. On failure the temporary file is gone.
core::Result<std::string> WriteTempFile(const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp-" + core::RandomHexToken(8);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return IoFailure(errno, "cannot create " + tmp);
  }
  core::Status written = [&]() -> core::Status {
    FdCloser closer(fd);
    // The umask may have taken bits from 0600 (never added any): make it exactly 0600.
    if (::fchmod(fd, 0600) != 0) {
      return IoFailure(errno, "cannot chmod " + tmp);
    }
    GPUORCH_TRY(WriteAll(fd, contents, tmp));
    if (::fsync(fd) != 0) {
      return IoFailure(errno, "cannot sync " + tmp);
    }
    if (closer.Close() != 0) {
      return IoFailure(errno, "cannot close " + tmp);
    }
    return core::Ok();
  }();
  if (!written) {
    ::unlink(tmp.c_str());
    return core::Fail(written.error());
  }
  return tmp;
}

// Installs `contents` at `path` through a temporary file. `replace`: rename over whatever is there;
// otherwise link, which fails with EEXIST rather than replace an existing file.
core::Status InstallSecretFile(const std::string& path, std::string_view contents, bool replace) {
  GPUORCH_ASSIGN_OR_RETURN(const std::string tmp, WriteTempFile(path, contents));
  const int rc = replace ? ::rename(tmp.c_str(), path.c_str()) : ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  if (rc != 0 || !replace) {
    ::unlink(tmp.c_str());  // after a link the file lives on under `path`
  }
  if (rc != 0) {
    if (!replace && err == EEXIST) {
      return core::Fail(core::Code::kAlreadyExists, path + " already exists");
    }
    return IoFailure(err, "cannot install " + path);
  }
  return FsyncDirOf(path);
}

// Replaces `buffer` by a zero-filled one of `size` bytes that starts with its contents, wiping the
// old one (std::string would free it unwiped).
void GrowWiping(std::string& buffer, size_t size) {
  std::string bigger(size, '\0');
  std::memcpy(bigger.data(), buffer.data(), buffer.size());
  sodium_memzero(buffer.data(), buffer.size());
  buffer.swap(bigger);
}

// Everything `fd` holds, or kSecretFileTooLargeReason once it exceeds `max_bytes`. `size_hint`
// (the size fstat saw) sizes the buffer so that it is seldom grown.
core::Result<std::string> ReadAll(int fd, const std::string& path, size_t max_bytes,
                                  size_t size_hint) {
  max_bytes = std::min(max_bytes, std::numeric_limits<size_t>::max() / 2);  // max_bytes + 1 fits
  std::string out(std::min(size_hint, max_bytes) + 1, '\0');
  size_t got = 0;
  while (got <= max_bytes) {
    if (got == out.size()) {
      GrowWiping(out, std::min(std::max(2 * out.size(), size_t{4096}), max_bytes + 1));
    }
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int err = errno;
      sodium_memzero(out.data(), out.size());
      return IoFailure(err, "cannot read " + path);
    }
    if (n == 0) {
      out.resize(got);
      return out;
    }
    got += static_cast<size_t>(n);
  }
  sodium_memzero(out.data(), out.size());
  return core::Fail(core::Code::kFailedPrecondition,
                    path + " is larger than " + std::to_string(max_bytes) + " bytes", "",
                    std::string(kSecretFileTooLargeReason));
}

}  // namespace

core::Status WriteSecretFile(const std::string& path, std::string_view contents) {
  return InstallSecretFile(path, contents, /*replace=*/true);
}

core::Status CreateSecretFileIfAbsent(const std::string& path, std::string_view contents) {
  return InstallSecretFile(path, contents, /*replace=*/false);
}

core::Result<std::string> ReadSecretFile(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not regular.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return core::Fail(core::Code::kNotFound, path + " does not exist");
    }
    return IoFailure(err, "cannot open " + path);
  }
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return IoFailure(errno, "cannot stat " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return core::Fail(core::Code::kFailedPrecondition, path + " is not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return core::Fail(
        core::Code::kFailedPrecondition,
        path + " holds a secret but group or others may access it; run: chmod 600 " + path, "",
        std::string(kInsecureSecretFileReason));
  }
  return ReadAll(fd, path, max_bytes, static_cast<size_t>(std::max<off_t>(st.st_size, 0)));
}

}  // namespace gpuorch::security
