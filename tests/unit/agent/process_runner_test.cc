#include "agent/process_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace gpuorch::agent {
namespace {

constexpr int kPollRounds = 1000;  // x 10 ms = 10 s, the most any wait in these tests takes

void SleepMillis(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Polls `done` every 10 ms for up to 10 s.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < kPollRounds; ++i) {
    if (done()) {
      return true;
    }
    SleepMillis(10);
  }
  return done();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The pids of live (non-zombie) processes whose process group is `pgid`.
std::vector<int> GroupMembers(int64_t pgid) {
  std::vector<int> members;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return members;
  }
  while (dirent* entry = ::readdir(proc)) {
    int pid = std::atoi(entry->d_name);
    if (pid <= 0) {
      continue;
    }
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream in(stat.substr(close + 1));
    char state = 0;
    int64_t ppid = 0;
    int64_t pgrp = 0;
    if (in >> state >> ppid >> pgrp && pgrp == pgid && state != 'Z') {
      members.push_back(pid);
    }
  }
  ::closedir(proc);
  return members;
}

char ProcState(int64_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

class ProcessRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "gpuorch-runner-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    attempt_dir_ = dir_ + "/attempts/a1";
    runner_ = MakeShimProcessRunner({.shim_path = GPUORCH_BIN_DIR "/gpuorch-shim"});
  }

  void TearDown() override {
    for (const AttemptHandle& handle : launched_) {
      if (runner_->Probe(handle.attempt_dir).status == AttemptStatus::kRunning) {
        (void)runner_->Signal(handle, SIGKILL);
        Eventually(
            [&] { return runner_->Probe(handle.attempt_dir).status != AttemptStatus::kRunning; });
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  AttemptHandle Launch(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                       std::string working_dir = "") {
    auto handle = runner_->Launch(LaunchSpec{.attempt_dir = attempt_dir_,
                                             .argv = std::move(argv),
                                             .env = std::move(env),
                                             .working_dir = std::move(working_dir)});
    EXPECT_TRUE(handle) << handle.error().message;
    if (!handle) {
      return {};
    }
    launched_.push_back(*handle);
    return *handle;
  }

  // Probes until the attempt is no longer running (at most 10 s).
  AttemptProbe AwaitEnd(ProcessRunner& runner) {
    AttemptProbe probe;
    Eventually([&] {
      probe = runner.Probe(attempt_dir_);
      return probe.status != AttemptStatus::kRunning;
    });
    return probe;
  }
  AttemptProbe AwaitEnd() { return AwaitEnd(*runner_); }

  std::string Log() { return ReadFile(attempt_dir_ + "/log"); }

  std::string dir_;
  std::string attempt_dir_;
  std::unique_ptr<ProcessRunner> runner_;
  std::vector<AttemptHandle> launched_;
};

void ExpectSameHandle(const AttemptHandle& a, const AttemptHandle& b) {
  EXPECT_EQ(a.attempt_dir, b.attempt_dir);
  EXPECT_EQ(a.shim_pid, b.shim_pid);
  EXPECT_EQ(a.job_pid, b.job_pid);
  EXPECT_EQ(a.job_start_ticks, b.job_start_ticks);
}

TEST_F(ProcessRunnerTest, ExitCodeAndLogCapture) {
  AttemptHandle handle = Launch({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_GT(handle.shim_pid, 1);
  EXPECT_GT(handle.job_pid, 1);
  EXPECT_NE(handle.shim_pid, handle.job_pid);
  EXPECT_GT(handle.job_start_ticks, 0);
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 3);
  ASSERT_TRUE(probe.handle);
  ExpectSameHandle(*probe.handle, handle);
  EXPECT_EQ(Log(), "out\nerr\n");
  EXPECT_EQ(ReadFile(attempt_dir_ + "/exit"), "3\n");
  std::ostringstream pid_line;
  pid_line << handle.shim_pid << " " << handle.job_pid << " " << handle.job_start_ticks << "\n";
  EXPECT_EQ(ReadFile(attempt_dir_ + "/pid"), pid_line.str());
}

TEST_F(ProcessRunnerTest, QuickSuccessfulJob) {
  Launch({"true"});
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 0);
}

TEST_F(ProcessRunnerTest, EnvironmentIsPassed) {
  Launch({"sh", "-c", "echo FOO=$FOO; echo PATH_SET=${PATH:+yes}"}, {{"FOO", "bar"}});
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 0);
  EXPECT_EQ(Log(), "FOO=bar\nPATH_SET=yes\n");
}

TEST_F(ProcessRunnerTest, ArgvIsNeverInterpretedByAShell) {
  std::string marker = dir_ + "/pwned";
  std::string arg =
      "$(touch " + marker + "); rm -rf " + dir_ + "/nothing `touch " + marker + "` | * > \"'\\";
  Launch({"echo", arg});
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 0);
  EXPECT_EQ(Log(), arg + "\n");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(ProcessRunnerTest, MissingCommandExits127WithMessage) {
  Launch({"gpuorch-no-such-command-xyz", "arg"});
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 127);
  EXPECT_NE(Log().find("gpuorch-shim: cannot execute 'gpuorch-no-such-command-xyz': "
                       "No such file or directory"),
            std::string::npos)
      << Log();
}

TEST_F(ProcessRunnerTest, WorkingDirectoryDefaultsToAttemptDir) {
  Launch({"pwd"});
  ASSERT_EQ(AwaitEnd().status, AttemptStatus::kExited);
  EXPECT_EQ(std::filesystem::path(Log().substr(0, Log().size() - 1)),
            std::filesystem::canonical(attempt_dir_));
}

TEST_F(ProcessRunnerTest, WorkingDirectoryIsUsed) {
  Launch({"pwd"}, {}, dir_);
  ASSERT_EQ(AwaitEnd().status, AttemptStatus::kExited);
  EXPECT_EQ(std::filesystem::path(Log().substr(0, Log().size() - 1)),
            std::filesystem::canonical(dir_));
}

TEST_F(ProcessRunnerTest, ServiceDescriptorsAreNotInherited) {
  constexpr int kLeakedFd = 100;
  int fd = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::dup2(fd, kLeakedFd), kLeakedFd);  // dup2 clears O_CLOEXEC: inheritable
  ::close(fd);
  // `ls /proc/PID/fd` of the shell lists the shell's descriptors, not those ls opens itself.
  Launch({"sh", "-c", "ls /proc/$$/fd; true"});
  ::close(kLeakedFd);
  ASSERT_EQ(AwaitEnd().status, AttemptStatus::kExited);
  std::istringstream in(Log());
  std::vector<int> fds;
  for (int n; in >> n;) {
    fds.push_back(n);
  }
  EXPECT_EQ(fds, (std::vector<int>{0, 1, 2})) << Log();
}

TEST_F(ProcessRunnerTest, TermKillsTheWholeGroup) {
  AttemptHandle handle = Launch({"sh", "-c", "sleep 100 & sleep 100 & wait"});
  ASSERT_TRUE(Eventually([&] { return GroupMembers(handle.job_pid).size() == 3; }));
  ASSERT_EQ(runner_->Probe(attempt_dir_).status, AttemptStatus::kRunning);
  ASSERT_TRUE(runner_->Signal(handle, SIGTERM));
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 143);
  EXPECT_TRUE(GroupMembers(handle.job_pid).empty());
  errno = 0;
  EXPECT_EQ(::kill(-static_cast<pid_t>(handle.job_pid), 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ProcessRunnerTest, LeftoversOfTheGroupAreKilledWhenTheLeaderEnds) {
  AttemptHandle handle = Launch({"sh", "-c", "sleep 100 & echo started"});
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 0);
  EXPECT_TRUE(GroupMembers(handle.job_pid).empty());
}

TEST_F(ProcessRunnerTest, KillGives137) {
  AttemptHandle handle = Launch({"sleep", "100"});
  ASSERT_TRUE(runner_->Signal(handle, SIGKILL));
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 137);
}

TEST_F(ProcessRunnerTest, TermRightAfterLaunchIsNeverLost) {
  // The job starts life with the shim's ignored TERM; a signal in that window must still count.
  for (int i = 0; i < 20; ++i) {
    std::string dir = dir_ + "/quick-term-" + std::to_string(i);
    auto handle = runner_->Launch(LaunchSpec{.attempt_dir = dir, .argv = {"sleep", "100"}});
    ASSERT_TRUE(handle) << handle.error().message;
    launched_.push_back(*handle);
    ASSERT_TRUE(runner_->Signal(*handle, SIGTERM));
    AttemptProbe probe;
    Eventually([&] {
      probe = runner_->Probe(dir);
      return probe.status != AttemptStatus::kRunning;
    });
    ASSERT_EQ(probe.status, AttemptStatus::kExited) << "iteration " << i;
    EXPECT_EQ(probe.exit_code, 143);
  }
}

TEST_F(ProcessRunnerTest, JobIgnoringTermSurvivesItAndDiesOnKill) {
  AttemptHandle handle = Launch({"sh", "-c", "trap '' TERM; echo ready; sleep 100"});
  ASSERT_TRUE(Eventually([&] { return Log() == "ready\n"; }));
  ASSERT_TRUE(runner_->Signal(handle, SIGTERM));
  // Surviving can only be shown by time passing; 300 ms is ample for a delivered TERM to act.
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(runner_->Probe(attempt_dir_).status, AttemptStatus::kRunning);
    SleepMillis(10);
  }
  ASSERT_TRUE(runner_->Signal(handle, SIGKILL));
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 137);
  EXPECT_TRUE(GroupMembers(handle.job_pid).empty());
}

TEST_F(ProcessRunnerTest, SecondRunnerReattachesToARunningAttempt) {
  AttemptHandle handle = Launch({"sleep", "100"});
  auto restarted = MakeShimProcessRunner({.shim_path = GPUORCH_BIN_DIR "/gpuorch-shim"});
  AttemptProbe probe = restarted->Probe(attempt_dir_);
  ASSERT_EQ(probe.status, AttemptStatus::kRunning);
  ASSERT_TRUE(probe.handle);
  ExpectSameHandle(*probe.handle, handle);
  ASSERT_TRUE(restarted->Signal(*probe.handle, SIGTERM));
  AttemptProbe ended = AwaitEnd(*restarted);
  ASSERT_EQ(ended.status, AttemptStatus::kExited);
  EXPECT_EQ(ended.exit_code, 143);
}

TEST_F(ProcessRunnerTest, KilledShimAndJobIsLost) {
  AttemptHandle handle = Launch({"sleep", "100"});
  ASSERT_EQ(::kill(static_cast<pid_t>(handle.shim_pid), SIGKILL), 0);
  // The shim is our child: it stays a zombie until the runner reaps it, so its death is visible.
  ASSERT_TRUE(Eventually([&] { return ProcState(handle.shim_pid) == 'Z'; }));
  ASSERT_EQ(runner_->Probe(attempt_dir_).status, AttemptStatus::kRunning);  // the job still runs
  ASSERT_EQ(::kill(static_cast<pid_t>(handle.job_pid), SIGKILL), 0);
  AttemptProbe probe = AwaitEnd();
  EXPECT_EQ(probe.status, AttemptStatus::kLost);
  EXPECT_FALSE(probe.exit_code);
  ASSERT_TRUE(probe.handle);
  ExpectSameHandle(*probe.handle, handle);
  EXPECT_TRUE(runner_->Signal(handle, SIGKILL));  // gone: nothing to do, not an error
}

TEST_F(ProcessRunnerTest, LotsOfOutput) {
  Launch({"sh", "-c", "head -c 5000000 /dev/zero; yes 'a line of text' | head -n 100000 >&2"});
  AttemptProbe probe = AwaitEnd();
  ASSERT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 0);
  EXPECT_EQ(std::filesystem::file_size(attempt_dir_ + "/log"), 5000000u + 100000u * 15u);
}

TEST_F(ProcessRunnerTest, EmptyAttemptDirIsNotStarted) {
  std::filesystem::create_directories(attempt_dir_);
  AttemptProbe probe = runner_->Probe(attempt_dir_);
  EXPECT_EQ(probe.status, AttemptStatus::kNotStarted);
  EXPECT_FALSE(probe.handle);
  EXPECT_EQ(runner_->Probe(dir_ + "/does-not-exist").status, AttemptStatus::kNotStarted);
}

TEST_F(ProcessRunnerTest, ShimThatHasNotWrittenItsPidFileIsRunning) {
  // A process whose command line names the attempt dir the way the shim's does.
  std::filesystem::create_directories(attempt_dir_);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execlp("sh", "sh", "-c", "sleep 30; true", "sh", "--dir", attempt_dir_.c_str(),
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  AttemptProbe probe;
  for (int i = 0; i < 1000; ++i) {
    probe = runner_->Probe(attempt_dir_);
    if (probe.status == AttemptStatus::kRunning) {
      break;
    }
    ::usleep(1000);
  }
  EXPECT_EQ(probe.status, AttemptStatus::kRunning);
  EXPECT_FALSE(probe.handle);
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(runner_->Probe(attempt_dir_).status, AttemptStatus::kNotStarted);
}

TEST_F(ProcessRunnerTest, LaunchingTwiceIntoOneDirIsRefused) {
  Launch({"true"});
  auto again = runner_->Launch(LaunchSpec{.attempt_dir = attempt_dir_, .argv = {"true"}});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, core::Code::kAlreadyExists);
}

TEST_F(ProcessRunnerTest, InvalidSpecsAreRejected) {
  auto no_argv = runner_->Launch(LaunchSpec{.attempt_dir = attempt_dir_});
  ASSERT_FALSE(no_argv);
  EXPECT_EQ(no_argv.error().code, core::Code::kInvalidArgument);
  auto bad_env = runner_->Launch(
      LaunchSpec{.attempt_dir = attempt_dir_, .argv = {"true"}, .env = {{"A=B", "c"}}});
  ASSERT_FALSE(bad_env);
  EXPECT_EQ(bad_env.error().code, core::Code::kInvalidArgument);
  auto bad_pid = runner_->Signal(AttemptHandle{.job_pid = 0}, SIGKILL);
  ASSERT_FALSE(bad_pid);
  EXPECT_EQ(bad_pid.error().code, core::Code::kInvalidArgument);
}

TEST_F(ProcessRunnerTest, MissingShimIsUnavailable) {
  auto runner = MakeShimProcessRunner({.shim_path = dir_ + "/no-such-shim"});
  auto handle = runner->Launch(LaunchSpec{.attempt_dir = attempt_dir_, .argv = {"true"}});
  ASSERT_FALSE(handle);
  EXPECT_EQ(handle.error().code, core::Code::kUnavailable);
}

TEST_F(ProcessRunnerTest, ShimFailingEarlyIsUnavailableWithItsMessage) {
  // A script stands in for a shim that dies before writing the pid file.
  std::string fake = dir_ + "/fake-shim";
  {
    std::ofstream out(fake);
    out << "#!/bin/sh\necho 'gpuorch-shim: something broke' >&2\nexit 2\n";
  }
  ::chmod(fake.c_str(), 0755);
  auto runner = MakeShimProcessRunner({.shim_path = fake});
  auto handle = runner->Launch(LaunchSpec{.attempt_dir = attempt_dir_, .argv = {"true"}});
  ASSERT_FALSE(handle);
  EXPECT_EQ(handle.error().code, core::Code::kUnavailable);
  EXPECT_NE(handle.error().message.find("status 2"), std::string::npos) << handle.error().message;
  EXPECT_NE(handle.error().message.find("something broke"), std::string::npos)
      << handle.error().message;
}

TEST(ExecutableDirTest, IsTheDirectoryOfTheTestBinary) {
  EXPECT_EQ(std::filesystem::canonical(ExecutableDir()),
            std::filesystem::canonical(GPUORCH_BIN_DIR));
}

}  // namespace
}  // namespace gpuorch::agent
