#include "agent/gpu_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <mutex>
#include <utility>

#include "core/log.h"

extern char** environ;

namespace gpuorch::agent {
namespace {

constexpr int kMaxGpusPerItem = 64;
constexpr int kNvidiaSmiTimeoutSeconds = 10;
constexpr size_t kMaxCapturedBytes = 1 << 20;

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t pos = s.find(sep);
    parts.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) {
      return parts;
    }
    s.remove_prefix(pos + 1);
  }
}

template <typename T>
std::optional<T> ParseNumber(std::string_view s) {
  T value{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return value;
}

core::Result<std::vector<domain::GpuDevice>> ParseDeclarationItem(std::string_view item,
                                                                  int first_index) {
  auto bad = [&](std::string_view why) {
    return core::Fail(core::Code::kInvalidArgument,
                      "invalid GPU declaration item '" + core::SanitizeForLog(item) +
                          "': " + std::string(why) + " (expected TYPE:COUNT[:MEMORY_GB])",
                      "local_gpus");
  };
  std::vector<std::string_view> parts = Split(item, ':');
  if (parts.size() < 2 || parts.size() > 3) {
    return bad("wrong number of ':'-separated fields");
  }
  std::string_view name = Trim(parts[0]);
  std::string type = domain::CanonicalGpuType(name);
  if (type.empty()) {
    return bad("missing or meaningless GPU type");
  }
  std::optional<int> count = ParseNumber<int>(Trim(parts[1]));
  if (!count || *count < 1 || *count > kMaxGpusPerItem) {
    return bad("count must be an integer from 1 to 64");
  }
  double memory_gb = domain::KnownGpuMemoryGb(type);
  if (parts.size() == 3) {
    std::optional<double> parsed = ParseNumber<double>(Trim(parts[2]));
    if (!parsed || !std::isfinite(*parsed) || *parsed <= 0 || *parsed > 1e6) {
      return bad("memory must be a positive number of GB");
    }
    memory_gb = *parsed;
  }
  std::vector<domain::GpuDevice> devices;
  for (int i = 0; i < *count; ++i) {
    devices.push_back(domain::GpuDevice{.index = first_index + i,
                                        .name = std::string(name),
                                        .type = type,
                                        .memory_mb = std::llround(memory_gb * 1024),
                                        .uuid = ""});
  }
  return devices;
}

core::Result<domain::GpuDevice> ParseNvidiaSmiLine(std::string_view line) {
  auto bad = [&](std::string_view why) {
    return core::Fail(
        core::Code::kInvalidArgument,
        "malformed nvidia-smi line '" + core::SanitizeForLog(line) + "': " + std::string(why));
  };
  std::vector<std::string_view> fields = Split(line, ',');
  if (fields.size() < 4) {
    return bad("expected index, name, memory.total, uuid");
  }
  // A name holding a comma would split in two; index, memory and uuid sit at the ends.
  std::optional<int> index = ParseNumber<int>(Trim(fields.front()));
  if (!index || *index < 0) {
    return bad("index is not a non-negative integer");
  }
  std::string_view memory_text = Trim(fields[fields.size() - 2]);
  std::optional<int64_t> memory_mib = ParseNumber<int64_t>(memory_text);
  if (!memory_mib && memory_text != "[N/A]") {
    return bad("memory.total is not an integer (MiB)");
  }
  size_t name_begin = fields[1].data() - line.data();
  size_t name_end = fields[fields.size() - 2].data() - 1 - line.data();
  std::string_view name = Trim(line.substr(name_begin, name_end - name_begin));
  if (name.empty()) {
    return bad("empty name");
  }
  return domain::GpuDevice{.index = *index,
                           .name = std::string(name),
                           .type = domain::CanonicalGpuType(name),
                           .memory_mb = memory_mib.value_or(0),
                           .uuid = std::string(Trim(fields.back()))};
}

// The outcome of running a short-lived command and capturing its output.
struct CommandResult {
  bool not_found = false;  // the command could not be executed at all (errno in spawn_errno)
  int spawn_errno = 0;
  bool timed_out = false;
  int wait_status = 0;
  std::string out;
  std::string err;
};

// Drains `fds` (stdout, stderr) until both hit EOF or `timer_fd` fires. Returns false on timeout.
bool DrainUntilEof(int out_fd, int err_fd, int timer_fd, CommandResult& result) {
  int fds[2] = {out_fd, err_fd};
  std::string* sinks[2] = {&result.out, &result.err};
  char buf[4096];
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd pfds[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {timer_fd, POLLIN, 0}};
    int n = ::poll(pfds, 3, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    if (pfds[2].revents != 0) {
      return false;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || pfds[i].revents == 0) {
        continue;
      }
      ssize_t got = ::read(fds[i], buf, sizeof(buf));
      if (got < 0 && errno == EINTR) {
        continue;
      }
      if (got <= 0) {
        fds[i] = -1;
        continue;
      }
      if (sinks[i]->size() < kMaxCapturedBytes) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      }
    }
  }
  return true;
}

// Spawns `argv` (looked up in PATH) in its own process group, stdin from /dev/null, stdout and
// stderr on `out_fd` and `err_fd`, every signal at its default. Returns 0 or an errno value.
int SpawnCapturing(const std::vector<std::string>& argv, int out_fd, int err_fd, pid_t* pid) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask;
  sigset_t default_signals;
  sigemptyset(&empty_mask);
  sigfillset(&default_signals);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> cargv;
  for (const std::string& arg : argv) {
    cargv.push_back(const_cast<char*>(arg.c_str()));
  }
  cargv.push_back(nullptr);
  int rc = ::posix_spawnp(pid, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

// Runs `argv` capturing stdout and stderr, and kills its process group when it runs past
// `timeout_seconds`. The deadline is a timerfd on CLOCK_MONOTONIC: the timeout is for a real OS
// process, so it is real time by nature (no injected Clock can make nvidia-smi finish sooner).
CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_seconds) {
  CommandResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.spawn_errno = errno;
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.spawn_errno = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  pid_t pid = 0;
  int rc = SpawnCapturing(argv, out_pipe[1], err_pipe[1], &pid);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc == 0) {
    int timer_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    itimerspec deadline{};
    deadline.it_value.tv_sec = timeout_seconds;
    if (timer_fd >= 0) {
      ::timerfd_settime(timer_fd, 0, &deadline, nullptr);
    }
    if (!DrainUntilEof(out_pipe[0], err_pipe[0], timer_fd, result)) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    if (timer_fd >= 0) {
      ::close(timer_fd);
    }
    while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
    }
  } else {
    result.not_found = (rc == ENOENT || rc == EACCES || rc == ENOTDIR);
    result.spawn_errno = rc;
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  return result;
}

class SystemGpuProbe final : public GpuProbe {
 public:
  SystemGpuProbe(std::optional<std::string> declaration, std::string nvidia_smi)
      : declaration_(std::move(declaration)), nvidia_smi_(std::move(nvidia_smi)) {}

  core::Result<std::vector<domain::GpuDevice>> Discover() override {
    std::string source = "none";
    auto result = DiscoverFrom(source);
    std::lock_guard<std::mutex> lock(mu_);
    source_ = result ? source : "none";
    return result;
  }

  std::string Source() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return source_;
  }

 private:
  core::Result<std::vector<domain::GpuDevice>> DiscoverFrom(std::string& source) {
    if (declaration_) {
      source = "declared";
      auto parsed = ParseGpuDeclaration(*declaration_);
      if (!parsed) {
        return core::Fail(parsed.error().WithContext("gpu probe: GPUORCH_LOCAL_GPUS"));
      }
      return parsed;
    }
    return RunNvidiaSmi(source);
  }

  core::Result<std::vector<domain::GpuDevice>> RunNvidiaSmi(std::string& source) {
    CommandResult run = RunCommand(
        {nvidia_smi_, "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"},
        kNvidiaSmiTimeoutSeconds);
    std::string what = "gpu probe: " + core::SanitizeForLog(nvidia_smi_);
    if (run.not_found) {
      spdlog::debug("{}: not runnable ({}); no GPUs", what, std::strerror(run.spawn_errno));
      return std::vector<domain::GpuDevice>{};
    }
    if (run.spawn_errno != 0) {
      return core::Fail(core::Code::kUnavailable,
                        what + ": cannot start: " + std::strerror(run.spawn_errno));
    }
    if (run.timed_out) {
      return core::Fail(
          core::Code::kUnavailable,
          what + ": no answer within " + std::to_string(kNvidiaSmiTimeoutSeconds) + " s; killed");
    }
    if (WIFSIGNALED(run.wait_status)) {
      return core::Fail(core::Code::kUnavailable,
                        what + ": killed by signal " + std::to_string(WTERMSIG(run.wait_status)));
    }
    int code = WIFEXITED(run.wait_status) ? WEXITSTATUS(run.wait_status) : -1;
    if (code != 0) {
      // No driver, no devices, or a broken install: a node without usable GPUs, not a failure.
      spdlog::warn("{}: exited with status {}; assuming no GPUs: {}", what, code,
                   core::SanitizeForLog(Trim(run.err)));
      return std::vector<domain::GpuDevice>{};
    }
    auto parsed = ParseNvidiaSmiCsv(run.out);
    if (!parsed) {
      return core::Fail(core::Code::kUnavailable, what + ": " + parsed.error().message);
    }
    source = "nvidia-smi";
    return parsed;
  }

  const std::optional<std::string> declaration_;
  const std::string nvidia_smi_;
  mutable std::mutex mu_;
  std::string source_ = "none";  // GPUORCH_GUARDED_BY(mu_)
};

}  // namespace

core::Result<std::vector<domain::GpuDevice>> ParseGpuDeclaration(std::string_view text) {
  std::vector<domain::GpuDevice> devices;
  if (Trim(text).empty()) {
    return devices;  // declared: no GPUs
  }
  for (std::string_view item : Split(text, ',')) {
    GPUORCH_ASSIGN_OR_RETURN(std::vector<domain::GpuDevice> more,
                             ParseDeclarationItem(Trim(item), static_cast<int>(devices.size())));
    devices.insert(devices.end(), more.begin(), more.end());
  }
  return devices;
}

core::Result<std::vector<domain::GpuDevice>> ParseNvidiaSmiCsv(std::string_view text) {
  std::vector<domain::GpuDevice> devices;
  for (std::string_view line : Split(text, '\n')) {
    line = Trim(line);
    if (line.empty()) {
      continue;
    }
    GPUORCH_ASSIGN_OR_RETURN(domain::GpuDevice device, ParseNvidiaSmiLine(line));
    devices.push_back(std::move(device));
  }
  return devices;
}

std::unique_ptr<GpuProbe> MakeSystemGpuProbe(std::optional<std::string> declaration,
                                             std::string nvidia_smi) {
  return std::make_unique<SystemGpuProbe>(std::move(declaration), std::move(nvidia_smi));
}

}  // namespace gpuorch::agent
