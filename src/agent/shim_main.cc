// gpuorch-shim: the parent of one job attempt, which outlives the service that started it.
//
//   gpuorch-shim --dir ATTEMPT_DIR [--cwd DIR] -- ARGV...
//
// DESIGN. The service spawns the shim in a new session; the shim forks the job into its own process
// group (pgid = job pid), records "SHIM_PID JOB_PID JOB_START_TICKS" in ATTEMPT_DIR/pid, waits for
// the job and records its exit code in ATTEMPT_DIR/exit. Both files are written to a temporary
// name, fsynced and renamed, so a reader sees all of a file or none of it. The shim ignores the
// signals a terminal or a dying service would send, so that only an explicit kill ends it. It is a
// child subreaper: descendants the job orphans are re-parented to the shim, which reaps them, and
// once the job's leader has ended it SIGKILLs whatever is left of the job's process group and waits
// for it to be gone before writing the exit file; "exit written" then means "nothing of the job
// holds a GPU".
//
// The shim links no gpuorch library (it must stay small and self-contained); it reports its own
// failures on stderr, which the service points at ATTEMPT_DIR/log.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "internal/proc_stat.h"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;
constexpr int kGroupKillRounds = 1000;  // x 5 ms: how long to wait for the group to disappear

struct Args {
  std::string dir;
  std::string cwd;
  std::vector<std::string> argv;
};

void Report(const std::string& message) {
  std::string line = "gpuorch-shim: " + message + "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
}

bool ParseArgs(int argc, char** argv, Args& args) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if ((arg == "--dir" || arg == "--cwd") && i + 1 < argc) {
      (arg == "--dir" ? args.dir : args.cwd) = argv[++i];
    } else if (arg.rfind("--dir=", 0) == 0) {
      args.dir = arg.substr(6);
    } else if (arg.rfind("--cwd=", 0) == 0) {
      args.cwd = arg.substr(6);
    } else {
      Report("unknown argument '" + arg + "'");
      return false;
    }
  }
  for (; i < argc; ++i) {
    args.argv.emplace_back(argv[i]);
  }
  if (args.dir.empty() || args.argv.empty()) {
    Report("usage: gpuorch-shim --dir ATTEMPT_DIR [--cwd DIR] -- ARGV...");
    return false;
  }
  if (args.cwd.empty()) {
    args.cwd = args.dir;
  }
  return true;
}

// Closes every descriptor >= 3 the shim inherited, so that the job holds no socket or file of the
// service (which would keep ports bound and pipes open after the service died).
void CloseInheritedFds() {
  if (::close_range(3, ~0U, 0) == 0) {
    return;
  }
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) {
    for (int fd = 3; fd < 65536; ++fd) {
      ::close(fd);
    }
    return;
  }
  std::vector<int> fds;
  while (dirent* entry = ::readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (fd >= 3 && fd != ::dirfd(dir)) {
      fds.push_back(fd);
    }
  }
  ::closedir(dir);
  for (int fd : fds) {
    ::close(fd);
  }
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// Writes `content` to dir/name via dir/name.tmp, fsync and rename, then fsyncs the directory.
bool WriteFileAtomically(const std::string& dir, const std::string& name,
                         const std::string& content) {
  std::string path = dir + "/" + name;
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    Report("cannot create '" + tmp + "': " + std::strerror(errno));
    return false;
  }
  bool ok = WriteAll(fd, content) && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    Report("cannot write '" + path + "': " + std::strerror(ok ? errno : saved));
    ::unlink(tmp.c_str());
    return false;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

void IgnoreShimSignals() {
  for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGPIPE}) {
    ::signal(sig, SIG_IGN);
  }
}

// In the forked child: becomes the job. Never returns.
[[noreturn]] void ExecJob(const Args& args) {
  ::setpgid(0, 0);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::signal(sig, SIG_DFL);
    }
  }
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  std::string log = args.dir + "/log";
  int null_fd = ::open("/dev/null", O_RDONLY);
  int log_fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (null_fd < 0 || log_fd < 0) {
    Report("cannot open '" + log + "' or /dev/null: " + std::strerror(errno));
    ::_exit(127);
  }
  ::dup2(null_fd, 0);
  ::dup2(log_fd, 1);
  ::dup2(log_fd, 2);
  if (null_fd > 2) {
    ::close(null_fd);
  }
  if (log_fd > 2) {
    ::close(log_fd);
  }
  if (::chdir(args.cwd.c_str()) != 0) {
    Report("cannot change directory to '" + args.cwd + "': " + std::strerror(errno));
    ::_exit(127);
  }
  std::vector<char*> cargv;
  for (const std::string& arg : args.argv) {
    cargv.push_back(const_cast<char*>(arg.c_str()));
  }
  cargv.push_back(nullptr);
  ::execvp(cargv[0], cargv.data());
  Report("cannot execute '" + args.argv[0] + "': " + std::strerror(errno));
  ::_exit(127);
}

void SleepMillis(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Reaps children (the job and orphans re-parented to us) until the job's leader has ended.
// Returns its wait status, or -1 when it cannot be waited for.
int WaitForLeader(pid_t job) {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid == job) {
      return status;
    }
    if (pid < 0 && errno != EINTR) {
      Report(std::string("waiting for the job failed: ") + std::strerror(errno));
      return -1;
    }
  }
}

// Kills and reaps what is left of the job's process group, waiting (bounded) until it is empty.
void KillRemainingGroup(pid_t job) {
  for (int round = 0; round < kGroupKillRounds; ++round) {
    if (::kill(-job, SIGKILL) != 0 && errno == ESRCH) {
      return;
    }
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (::kill(-job, 0) != 0 && errno == ESRCH) {
      return;
    }
    SleepMillis(5);
  }
  Report("processes of group " + std::to_string(job) + " survived SIGKILL");
}

int ExitCodeOf(int status) {
  if (status < 0) {
    return 255;
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return 255;
}

}  // namespace

int main(int argc, char** argv) {
  CloseInheritedFds();
  IgnoreShimSignals();
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    return kExitUsage;
  }
  // Orphaned descendants of the job come to us, so that we can reap and account for them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // The child inherits our ignored TERM/INT/HUP until it resets them. A signal sent to the job in
  // that window would be discarded, but the kernel never discards a blocked signal: block all
  // across fork, and the child unblocks (and so receives them) only after restoring defaults.
  sigset_t all;
  sigset_t old_mask;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &old_mask);
  pid_t job = ::fork();
  if (job == 0) {
    ExecJob(args);
  }
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (job < 0) {
    Report(std::string("fork failed: ") + std::strerror(errno));
    return kExitFailure;
  }
  // Both sides set the group, so it exists before the pid file names it. EACCES means the child
  // has already exec'd, which it only does after its own setpgid.
  ::setpgid(job, job);
  auto stat = gpuorch::agent::internal::ReadProcStat(job);
  int64_t start_ticks = stat ? stat->start_ticks : 0;
  std::string pid_line = std::to_string(::getpid()) + " " + std::to_string(job) + " " +
                         std::to_string(start_ticks) + "\n";
  bool recorded = WriteFileAtomically(args.dir, "pid", pid_line);
  if (!recorded) {
    // Nobody could ever find or stop this job: do not leave it running unaccounted for.
    ::kill(-job, SIGKILL);
  }
  int status = WaitForLeader(job);
  KillRemainingGroup(job);
  if (!WriteFileAtomically(args.dir, "exit", std::to_string(ExitCodeOf(status)) + "\n")) {
    return kExitFailure;
  }
  return recorded ? 0 : kExitFailure;
}
