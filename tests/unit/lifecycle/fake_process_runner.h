// An in-memory agent::ProcessRunner for lifecycle tests: no shim, no processes, no files.
//
// Launch records the LaunchSpec and returns a handle with made-up pids; the attempt then "runs"
// (Probe says kRunning) until the test ends it with Exit() or Vanish(), or a signal configured with
// EndOnSignal() arrives. It keeps the interface contract of the real runner: kInvalidArgument for
// an empty attempt_dir or argv or a bad env name, kAlreadyExists when the attempt dir was launched
// before, kNotStarted for a directory it never saw, Signal succeeding (and doing nothing) once the
// attempt ended, kInvalidArgument for job_pid <= 1. Survives a "restart" of the service: a second
// controller over the same fake sees the attempts the first one left. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/process_runner.h"
#include "core/error.h"

namespace gpuorch::lifecycle::testing {

class FakeProcessRunner final : public agent::ProcessRunner {
 public:
  struct SignalRecord {
    std::string attempt_dir;
    int signal = 0;
  };

  core::Result<agent::AttemptHandle> Launch(const agent::LaunchSpec& spec) override;
  agent::AttemptProbe Probe(const std::string& attempt_dir) override;
  core::Status Signal(const agent::AttemptHandle& handle, int signal) override;

  // ---- Test controls. `key` is an attempt dir, or a job id (GPUORCH_JOB_ID of a launch), which
  // names that job's most recent attempt. Each returns false when `key` names no attempt. ----

  // The attempt's process exits with `code` (a no-op when it already ended).
  bool Exit(const std::string& key, int code);
  // The attempt's process disappears without an exit status (Probe: kLost).
  bool Vanish(const std::string& key);
  // From now on, `signal` ends a running attempt with exit code 128 + signal.
  void EndOnSignal(int signal);
  // The next Launch fails with `error` (once).
  void FailNextLaunch(core::Error error);

  // ---- Inspection ----

  // Every successful launch, oldest first.
  std::vector<agent::LaunchSpec> Launches() const;
  int LaunchCount() const;
  // The spec of `key`'s attempt, or nullopt.
  std::optional<agent::LaunchSpec> LaunchOf(const std::string& key) const;
  // The signals sent to `key`'s attempt, in order (also those sent after it ended).
  std::vector<int> SignalsTo(const std::string& key) const;
  bool IsRunning(const std::string& key) const;

 private:
  struct Attempt {
    agent::LaunchSpec spec;
    agent::AttemptHandle handle;
    agent::AttemptStatus status = agent::AttemptStatus::kRunning;
    std::optional<int> exit_code;
    std::vector<int> signals;
    int order = 0;  // launch order, for "most recent attempt of a job"
  };

  // REQUIRES: mu_ held.
  Attempt* Find(const std::string& key);
  const Attempt* Find(const std::string& key) const;

  mutable std::mutex mu_;
  std::map<std::string, Attempt> attempts_;  // by attempt dir
  std::vector<std::string> launch_order_;    // attempt dirs
  std::set<int> fatal_signals_;
  std::optional<core::Error> next_launch_error_;
  int64_t next_pid_ = 4000;
};

}  // namespace gpuorch::lifecycle::testing
