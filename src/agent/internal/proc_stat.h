// Reading /proc/PID/stat, shared by the shim (which records the job's start time) and the process
// runner (which compares it to tell a live job from a reused pid). Header-only and std/libc-only,
// because gpuorch-shim links no library of its own. Included by no other module. Thread-safe.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace gpuorch::agent::internal {

struct ProcStat {
  char state = '?';         // field 3: R, S, D, Z, X, ...
  int64_t session = 0;      // field 6
  int64_t start_ticks = 0;  // field 22: start time in clock ticks after boot
};

// Parses the text of /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so
// fields are counted from the last ')'.
inline std::optional<ProcStat> ParseProcStat(std::string_view text) {
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) {
    return std::nullopt;
  }
  std::string rest(text.substr(close + 1));
  ProcStat stat;
  int field = 2;
  const char* p = rest.c_str();
  while (*p != '\0' && field < 22) {
    while (*p == ' ') {
      ++p;
    }
    if (*p == '\0') {
      break;
    }
    ++field;
    const char* start = p;
    while (*p != '\0' && *p != ' ') {
      ++p;
    }
    std::string_view token(start, static_cast<size_t>(p - start));
    if (field == 3) {
      stat.state = token.empty() ? '?' : token[0];
    } else if (field == 6 || field == 22) {
      char* end = nullptr;
      std::string copy(token);
      errno = 0;
      long long value = std::strtoll(copy.c_str(), &end, 10);
      if (errno != 0 || end == copy.c_str() || *end != '\0') {
        return std::nullopt;
      }
      (field == 6 ? stat.session : stat.start_ticks) = value;
    }
  }
  if (field < 22) {
    return std::nullopt;
  }
  return stat;
}

// /proc/PID/stat of a process (zombies included), or nullopt when there is no such process.
inline std::optional<ProcStat> ReadProcStat(int64_t pid) {
  if (pid <= 0) {
    return std::nullopt;
  }
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  char buf[1024];
  std::string text;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ParseProcStat(text);
}

}  // namespace gpuorch::agent::internal
