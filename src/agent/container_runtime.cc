#include "agent/container_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vector>

extern char** environ;

namespace gpuorch::agent {

bool ContainerRuntimeWorks(const std::string& runtime, std::chrono::milliseconds timeout) {
  if (runtime.empty()) {
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = {runtime, "info"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, runtime.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return false;
  }
  // Poll for the exit; the runtime's `info` answers fast or not at all.
  const long step_ns = 10'000'000;
  for (long waited_ms = 0;; waited_ms += step_ns / 1'000'000) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    if (done < 0 || waited_ms >= timeout.count()) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    timespec ts{0, step_ns};
    nanosleep(&ts, nullptr);
  }
}

}  // namespace gpuorch::agent
