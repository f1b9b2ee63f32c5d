#include "security/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/ids.h"

namespace gpuorch::security {
namespace {

tl::unexpected<core::Error> Unavailable(const std::string& what, const std::string& path) {
  return core::Fail(core::Code::kUnavailable, what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

core::Status WriteSecretFile(const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp-" + core::RandomHexToken(4);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("cannot create", tmp);
  }
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      auto error = Unavailable("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return error;
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    auto error = Unavailable("cannot sync", tmp);
    ::unlink(tmp.c_str());
    return error;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto error = Unavailable("cannot rename to", path);
    ::unlink(tmp.c_str());
    return error;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return core::Ok();
}

core::Result<std::string> ReadSecretFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return core::Fail(core::Code::kNotFound, "no file " + path);
    }
    return Unavailable("cannot open", path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    auto error = Unavailable("cannot stat", path);
    ::close(fd);
    return error;
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return core::Fail(core::Code::kFailedPrecondition,
                      path + " holds a secret but others may read it: chmod 600 " + path);
  }
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      auto error = Unavailable("cannot read", path);
      ::close(fd);
      return error;
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) {
      ::close(fd);
      return core::Fail(core::Code::kFailedPrecondition, path + " is too large for a secret");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace gpuorch::security
