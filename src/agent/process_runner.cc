#include "agent/process_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "agent/internal/proc_stat.h"
#include "core/log.h"

extern char** environ;

namespace gpuorch::agent {
namespace {

constexpr int kPidWaitRounds = 500;  // x 10 ms: how long Launch waits for the shim's pid file
constexpr long kPidWaitStepMs = 10;
constexpr size_t kMaxSmallFileBytes = 4096;

void SleepMillis(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// The content of a small file, or nullopt when it cannot be read.
std::optional<std::string> ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string text;
  char buf[512];
  while (text.size() < kMaxSmallFileBytes) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

std::string DescribeWaitStatus(int status) {
  if (status < 0) {
    return "ended";
  }
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// The last non-empty line of the attempt's log (for error messages), cut to a log-safe length.
std::string LastLogLine(const std::string& attempt_dir) {
  std::string path = attempt_dir + "/log";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return "";
  }
  off_t size = ::lseek(fd, 0, SEEK_END);
  off_t from = size > 1024 ? size - 1024 : 0;
  std::string text(static_cast<size_t>(size - from), '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), from);
  ::close(fd);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  size_t nl = text.rfind('\n');
  return core::SanitizeForLog(nl == std::string::npos ? text : text.substr(nl + 1));
}

std::optional<AttemptHandle> ReadPidFile(const std::string& attempt_dir) {
  auto text = ReadSmallFile(attempt_dir + "/pid");
  if (!text) {
    return std::nullopt;
  }
  AttemptHandle handle{.attempt_dir = attempt_dir};
  std::istringstream in(*text);
  if (!(in >> handle.shim_pid >> handle.job_pid >> handle.job_start_ticks) ||
      handle.shim_pid <= 1 || handle.job_pid <= 1) {
    return std::nullopt;
  }
  return handle;
}

std::optional<int> ReadExitFile(const std::string& attempt_dir) {
  auto text = ReadSmallFile(attempt_dir + "/exit");
  if (!text) {
    return std::nullopt;
  }
  std::istringstream in(*text);
  int code = 0;
  if (!(in >> code)) {
    return std::nullopt;
  }
  return code;
}

// The job's leader still runs: same pid, same start time, not yet a zombie.
bool JobAlive(const AttemptHandle& handle) {
  auto stat = internal::ReadProcStat(handle.job_pid);
  return stat && stat->start_ticks == handle.job_start_ticks && stat->state != 'Z' &&
         stat->state != 'X';
}

// The shim still runs. It leads its own session (POSIX_SPAWN_SETSID), which tells it apart from an
// unrelated process that reused its pid.
// True when a live process has "--dir <attempt_dir>" in its command line: a gpuorch-shim that was
// started for this attempt, whether or not it has written its pid file yet.
bool ShimRunningFor(const std::string& attempt_dir) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return false;
  }
  const std::string needle = std::string("--dir") + '\0' + attempt_dir + '\0';
  bool found = false;
  while (dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') {
      continue;
    }
    std::ifstream in(std::string("/proc/") + entry->d_name + "/cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(needle) != std::string::npos) {
      auto stat = internal::ReadProcStat(std::atoll(entry->d_name));
      if (!stat || stat->state != 'Z') {
        found = true;
        break;
      }
    }
  }
  ::closedir(proc);
  return found;
}

bool ShimAlive(int64_t shim_pid) {
  if (shim_pid <= 1 || (::kill(static_cast<pid_t>(shim_pid), 0) != 0 && errno == ESRCH)) {
    return false;
  }
  auto stat = internal::ReadProcStat(shim_pid);
  return stat && stat->state != 'Z' && stat->state != 'X' && stat->session == shim_pid;
}

std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view kv(*entry);
    std::string key(kv.substr(0, kv.find('=')));
    if (overrides.find(key) == overrides.end()) {
      env.emplace_back(kv);
    }
  }
  for (const auto& [key, value] : overrides) {
    env.push_back(key + "=" + value);
  }
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

class ShimProcessRunner final : public ProcessRunner {
 public:
  explicit ShimProcessRunner(ProcessRunnerOptions options) : options_(std::move(options)) {}

  core::Result<AttemptHandle> Launch(const LaunchSpec& spec) override {
    GPUORCH_TRY(Validate(spec));
    std::error_code ec;
    std::filesystem::create_directories(spec.attempt_dir, ec);
    if (ec) {
      return core::Fail(core::Code::kUnavailable,
                        "agent: create attempt dir '" + spec.attempt_dir + "': " + ec.message());
    }
    if (::access((spec.attempt_dir + "/pid").c_str(), F_OK) == 0 ||
        ::access((spec.attempt_dir + "/exit").c_str(), F_OK) == 0) {
      // Launching twice into one directory would run the attempt twice; a restarted service must
      // re-attach with Probe instead.
      return core::Fail(core::Code::kAlreadyExists,
                        "agent: attempt dir '" + spec.attempt_dir + "' already holds an attempt");
    }
    GPUORCH_ASSIGN_OR_RETURN(pid_t shim, SpawnShim(spec));
    {
      std::lock_guard<std::mutex> lock(mu_);
      children_.insert(shim);
    }
    return AwaitPidFile(spec.attempt_dir, shim);
  }

  AttemptProbe Probe(const std::string& attempt_dir) override {
    AttemptProbe probe;
    probe.handle = ReadPidFile(attempt_dir);
    if (probe.handle) {
      ReapIfOurs(static_cast<pid_t>(probe.handle->shim_pid));
    }
    if (auto code = ReadExitFile(attempt_dir)) {
      probe.status = AttemptStatus::kExited;
      probe.exit_code = code;
      return probe;
    }
    if (probe.handle && (JobAlive(*probe.handle) || ShimAlive(probe.handle->shim_pid))) {
      probe.status = AttemptStatus::kRunning;
      return probe;
    }
    if (!probe.handle && ShimRunningFor(attempt_dir)) {
      probe.status = AttemptStatus::kRunning;  // started, pid file not written yet
      return probe;
    }
    // The shim may have written the exit file and ended between the reads above.
    if (auto code = ReadExitFile(attempt_dir)) {
      probe.status = AttemptStatus::kExited;
      probe.exit_code = code;
      return probe;
    }
    if (!probe.handle && !ReadPidFile(attempt_dir)) {
      probe.status = AttemptStatus::kNotStarted;
      return probe;
    }
    probe.status = AttemptStatus::kLost;
    return probe;
  }

  core::Status Signal(const AttemptHandle& handle, int signal) override {
    if (handle.job_pid <= 1) {
      return core::Fail(core::Code::kInvalidArgument,
                        "agent: signal: invalid job pid " + std::to_string(handle.job_pid));
    }
    auto stat = internal::ReadProcStat(handle.job_pid);
    if (stat && handle.job_start_ticks != 0 && stat->start_ticks != handle.job_start_ticks) {
      // The pid belongs to another process now. Linux does not reuse a pid while a process group
      // of that id exists, so the job's group is gone.
      return core::Ok();
    }
    if (::kill(-static_cast<pid_t>(handle.job_pid), signal) != 0 && errno != ESRCH) {
      int err = errno;
      return core::Fail(err == EPERM ? core::Code::kPermissionDenied : core::Code::kInternal,
                        "agent: signal " + std::to_string(signal) + " to group " +
                            std::to_string(handle.job_pid) + ": " + std::strerror(err));
    }
    return core::Ok();
  }

 private:
  static core::Status Validate(const LaunchSpec& spec) {
    if (spec.attempt_dir.empty()) {
      return core::Fail(core::Code::kInvalidArgument, "agent: launch: empty attempt_dir",
                        "attempt_dir");
    }
    if (spec.argv.empty() || spec.argv[0].empty()) {
      return core::Fail(core::Code::kInvalidArgument, "agent: launch: empty argv", "argv");
    }
    for (const auto& [key, value] : spec.env) {
      if (key.empty() || key.find('=') != std::string::npos ||
          key.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
        return core::Fail(
            core::Code::kInvalidArgument,
            "agent: launch: invalid environment variable name '" + core::SanitizeForLog(key) + "'",
            "env");
      }
    }
    return core::Ok();
  }

  // Starts the shim in a new session, with stdin from /dev/null and stdout/stderr on the log (so
  // that the shim's own complaints land where the user looks), and every signal at its default.
  core::Result<pid_t> SpawnShim(const LaunchSpec& spec) {
    std::vector<std::string> args = {options_.shim_path, "--dir", spec.attempt_dir};
    if (!spec.working_dir.empty()) {
      args.insert(args.end(), {"--cwd", spec.working_dir});
    }
    args.emplace_back("--");
    args.insert(args.end(), spec.argv.begin(), spec.argv.end());
    std::vector<std::string> env = BuildEnvironment(spec.env);
    std::vector<char*> cargs = CStrings(args);
    std::vector<char*> cenv = CStrings(env);
    std::string log = spec.attempt_dir + "/log";

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty_mask;
    sigset_t all_signals;
    sigemptyset(&empty_mask);
    sigfillset(&all_signals);
    posix_spawnattr_setsigmask(&attr, &empty_mask);
    posix_spawnattr_setsigdefault(&attr, &all_signals);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int rc =
        ::posix_spawn(&pid, options_.shim_path.c_str(), &actions, &attr, cargs.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      return core::Fail(core::Code::kUnavailable,
                        "agent: start shim '" + options_.shim_path + "': " + std::strerror(rc));
    }
    return pid;
  }

  // Polls for the pid file the shim writes once the job process exists.
  core::Result<AttemptHandle> AwaitPidFile(const std::string& attempt_dir, pid_t shim) {
    for (int round = 0; round < kPidWaitRounds; ++round) {
      if (auto handle = ReadPidFile(attempt_dir)) {
        return *handle;
      }
      int status = 0;
      Reaped reaped = TryReap(shim, &status);
      if (reaped == Reaped::kUnknown && !ShimAlive(shim)) {
        reaped = Reaped::kYes;  // reaped elsewhere (SIGCHLD ignored?): status unknown
        status = -1;
      }
      if (reaped == Reaped::kYes) {
        if (auto handle = ReadPidFile(attempt_dir)) {
          return *handle;  // the job was quick, and so was the shim
        }
        return core::Fail(core::Code::kUnavailable,
                          "agent: gpuorch-shim " + DescribeWaitStatus(status) +
                              " before starting the job: " + LastLogLine(attempt_dir));
      }
      SleepMillis(kPidWaitStepMs);
    }
    ::kill(shim, SIGKILL);
    int status = 0;
    while (::waitpid(shim, &status, 0) < 0 && errno == EINTR) {
    }
    Forget(shim);
    return core::Fail(core::Code::kUnavailable,
                      "agent: gpuorch-shim did not start the job within " +
                          std::to_string(kPidWaitRounds * kPidWaitStepMs / 1000) +
                          " s; killed it: " + LastLogLine(attempt_dir));
  }

  enum class Reaped { kNo, kYes, kUnknown };

  // Reaps `pid` when it is a shim we started and it has ended. kUnknown when it is not (or no
  // longer) our child to wait for.
  Reaped TryReap(pid_t pid, int* status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (children_.count(pid) == 0) {
        return Reaped::kUnknown;
      }
    }
    pid_t got = ::waitpid(pid, status, WNOHANG);
    if (got == pid) {
      Forget(pid);
      return Reaped::kYes;
    }
    if (got < 0 && errno == ECHILD) {
      Forget(pid);
      return Reaped::kUnknown;
    }
    return Reaped::kNo;
  }

  void ReapIfOurs(pid_t pid) {
    int status = 0;
    TryReap(pid, &status);
  }

  void Forget(pid_t pid) {
    std::lock_guard<std::mutex> lock(mu_);
    children_.erase(pid);
  }

  const ProcessRunnerOptions options_;
  std::mutex mu_;
  std::set<pid_t> children_;  // GPUORCH_GUARDED_BY(mu_): shims we spawned and have not reaped
};

}  // namespace

std::unique_ptr<ProcessRunner> MakeShimProcessRunner(const ProcessRunnerOptions& options) {
  return std::make_unique<ShimProcessRunner>(options);
}

std::string ExecutableDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return "";
  }
  return exe.parent_path().string();
}

}  // namespace gpuorch::agent
