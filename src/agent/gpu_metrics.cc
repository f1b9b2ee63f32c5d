#include "agent/gpu_metrics.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

extern char** environ;

namespace gpuorch::agent {
namespace {

constexpr int kTimeoutMs = 5000;
constexpr size_t kMaxOutputBytes = 1 << 20;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// A number, 0 for nvidia-smi's "[N/A]"-style placeholders, nullopt for anything else.
std::optional<double> Field(std::string_view text) {
  text = Trim(text);
  if (!text.empty() && text.front() == '[') {
    return 0.0;
  }
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

// Runs argv with stdout captured (stderr discarded); nullopt when it could not run, failed or
// outlived the timeout (then its process group is killed). The deadline is a timerfd: it bounds a
// real OS process, so it is real time by nature.
std::optional<std::string> Capture(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return std::nullopt;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask;
  sigset_t all_signals;
  sigemptyset(&empty_mask);
  sigfillset(&all_signals);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &all_signals);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return std::nullopt;
  }
  std::string text;
  bool timed_out = false;
  int timer_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  itimerspec deadline{};
  deadline.it_value.tv_sec = kTimeoutMs / 1000;
  if (timer_fd >= 0) {
    ::timerfd_settime(timer_fd, 0, &deadline, nullptr);
  }
  char buf[4096];
  for (;;) {
    pollfd pfds[2] = {{out[0], POLLIN, 0}, {timer_fd, POLLIN, 0}};
    int n = ::poll(pfds, timer_fd >= 0 ? 2 : 1, timer_fd >= 0 ? -1 : kTimeoutMs);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || pfds[1].revents != 0) {
      timed_out = n >= 0;
      break;
    }
    ssize_t got = ::read(out[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      break;
    }
    if (text.size() < kMaxOutputBytes) {
      text.append(buf, static_cast<size_t>(got));
    }
  }
  ::close(out[0]);
  if (timer_fd >= 0) {
    ::close(timer_fd);
  }
  if (timed_out) {
    ::kill(-pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return std::nullopt;
  }
  return text;
}

}  // namespace

core::Result<std::vector<GpuMetric>> ParseGpuMetricsCsv(std::string_view text) {
  std::vector<GpuMetric> out;
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty()) {
      continue;
    }
    std::vector<std::optional<double>> fields;
    for (;;) {
      size_t comma = line.find(',');
      fields.push_back(Field(line.substr(0, comma)));
      if (comma == std::string_view::npos) {
        break;
      }
      line.remove_prefix(comma + 1);
    }
    bool ok = fields.size() == 4;
    for (const auto& f : fields) {
      ok = ok && f.has_value();
    }
    if (!ok) {
      return core::Fail(core::Code::kInvalidArgument,
                        "nvidia-smi metrics: cannot parse line " + std::to_string(line_no));
    }
    out.push_back(GpuMetric{.index = static_cast<int>(*fields[0]),
                            .utilization_pct = *fields[1],
                            .memory_used_mb = static_cast<int64_t>(*fields[2]),
                            .memory_total_mb = static_cast<int64_t>(*fields[3])});
  }
  return out;
}

core::Result<std::vector<GpuMetric>> QueryGpuMetrics(const std::string& nvidia_smi) {
  auto text = Capture({nvidia_smi, "--query-gpu=index,utilization.gpu,memory.used,memory.total",
                       "--format=csv,noheader,nounits"});
  if (!text) {
    return core::Fail(core::Code::kUnavailable, "nvidia-smi metrics: the query failed");
  }
  auto parsed = ParseGpuMetricsCsv(*text);
  if (!parsed) {
    return core::Fail(core::Code::kUnavailable, parsed.error().message);
  }
  return parsed;
}

}  // namespace gpuorch::agent
