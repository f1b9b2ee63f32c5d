// Running one attempt of a job as its own process group, in a way that survives a restart of the
// service (the conmon/containerd-shim pattern).
//
// Each attempt has a directory `<attempt_dir>` holding:
//   log   the attempt's stdout and stderr
//   pid   "SHIM_PID JOB_PID JOB_START_TICKS\n", written by the shim once the job process exists
//   exit  "EXIT_CODE\n" (128+N when killed by signal N), written atomically when the job ended
// The service launches `gpuorch-shim`, which starts a new session, forks the job into its own process
// group (pgid = JOB_PID), waits for it and records its exit. The shim outlives a killed service, so a
// restarted service re-attaches by reading these files: exit present → ended; job process alive with
// the same start time → still running; otherwise → lost.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace gpuorch::agent {

struct LaunchSpec {
  std::string attempt_dir;                   // created if missing
  std::vector<std::string> argv;             // argv[0] looked up in PATH; never run via a shell
  std::map<std::string, std::string> env;    // added to (and overriding) the service's environment
  std::string working_dir;                   // empty: attempt_dir
  std::string job_id;                        // for runners that hand the attempt to a remote agent
  int attempt = 0;
  std::vector<int> gpu_indices;              // the node's GPU indices the attempt holds
};

struct AttemptHandle {
  std::string attempt_dir;
  int64_t shim_pid = 0;
  int64_t job_pid = 0;  // also the job's process group id
  int64_t job_start_ticks = 0;
};

// kRunning: the job (or its shim, which may not have written `pid` yet) lives.
// kExited: `exit` was written. kLost: it had started (`pid` exists) but nothing of it lives and no
// exit was recorded. kNotStarted: no `pid`, no `exit` and no shim for the directory: the job process
// never existed, so the attempt can be started again without running anything twice.
enum class AttemptStatus { kRunning, kExited, kLost, kNotStarted };

struct AttemptProbe {
  AttemptStatus status = AttemptStatus::kLost;
  std::optional<int> exit_code;          // set when kExited
  std::optional<AttemptHandle> handle;   // set when the pid file exists
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Starts the attempt and returns once the job process exists (blocks up to a few seconds).
  // kUnavailable when the shim could not be started. A command that does not exist is not an error
  // here: the attempt ends with exit code 127 and a message in its log. kInvalidArgument for an
  // empty attempt_dir or argv, or an env name that is empty or holds '='. kAlreadyExists when
  // attempt_dir already holds a pid or exit file (re-attach with Probe; never launch twice).
  [[nodiscard]] virtual core::Result<AttemptHandle> Launch(const LaunchSpec& spec) = 0;
  // What the attempt directory and the process table say about the attempt now. Never blocks;
  // reaps the shim when it is our child.
  virtual AttemptProbe Probe(const std::string& attempt_dir) = 0;
  // Sends `signal` to the job's whole process group. Succeeds (does nothing) when it is gone, or when
  // job_pid now names a different process (start ticks differ). kInvalidArgument when job_pid <= 1.
  [[nodiscard]] virtual core::Status Signal(const AttemptHandle& handle, int signal) = 0;
};

struct ProcessRunnerOptions {
  std::string shim_path;  // path of the gpuorch-shim binary
};

std::unique_ptr<ProcessRunner> MakeShimProcessRunner(const ProcessRunnerOptions& options);

// The directory of the running executable (for finding gpuorch-shim beside gpuorch).
std::string ExecutableDir();

}  // namespace gpuorch::agent
