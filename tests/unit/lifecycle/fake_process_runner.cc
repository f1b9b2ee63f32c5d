#include "unit/lifecycle/fake_process_runner.h"

#include <utility>

namespace gpuorch::lifecycle::testing {
namespace {

bool IsValidEnvName(const std::string& name) {
  return !name.empty() && name.find('=') == std::string::npos;
}

}  // namespace

core::Result<agent::AttemptHandle> FakeProcessRunner::Launch(const agent::LaunchSpec& spec) {
  std::lock_guard lock(mu_);
  if (next_launch_error_) {
    core::Error error = std::move(*next_launch_error_);
    next_launch_error_.reset();
    return core::Fail(std::move(error));
  }
  if (spec.attempt_dir.empty() || spec.argv.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "fake runner: empty attempt_dir or argv");
  }
  for (const auto& [name, value] : spec.env) {
    if (!IsValidEnvName(name)) {
      return core::Fail(core::Code::kInvalidArgument, "fake runner: bad env name '" + name + "'");
    }
  }
  if (attempts_.count(spec.attempt_dir)) {
    return core::Fail(core::Code::kAlreadyExists,
                      "fake runner: " + spec.attempt_dir + " was launched before");
  }
  const int64_t shim_pid = next_pid_++;
  const int64_t job_pid = next_pid_++;
  Attempt attempt{.spec = spec,
                  .handle = agent::AttemptHandle{.attempt_dir = spec.attempt_dir,
                                                 .shim_pid = shim_pid,
                                                 .job_pid = job_pid,
                                                 .job_start_ticks = job_pid * 100},
                  .order = static_cast<int>(launch_order_.size())};
  attempts_[spec.attempt_dir] = attempt;
  launch_order_.push_back(spec.attempt_dir);
  return attempt.handle;
}

agent::AttemptProbe FakeProcessRunner::Probe(const std::string& attempt_dir) {
  std::lock_guard lock(mu_);
  auto it = attempts_.find(attempt_dir);
  if (it == attempts_.end()) {
    return agent::AttemptProbe{.status = agent::AttemptStatus::kNotStarted};
  }
  const Attempt& attempt = it->second;
  return agent::AttemptProbe{
      .status = attempt.status, .exit_code = attempt.exit_code, .handle = attempt.handle};
}

core::Status FakeProcessRunner::Signal(const agent::AttemptHandle& handle, int signal) {
  if (handle.job_pid <= 1) {
    return core::Fail(core::Code::kInvalidArgument, "fake runner: job_pid must be > 1");
  }
  std::lock_guard lock(mu_);
  auto it = attempts_.find(handle.attempt_dir);
  if (it == attempts_.end() || it->second.handle.job_pid != handle.job_pid) {
    return core::Ok();  // gone, or the pid names another process: nothing to do
  }
  Attempt& attempt = it->second;
  attempt.signals.push_back(signal);
  if (attempt.status == agent::AttemptStatus::kRunning && fatal_signals_.count(signal)) {
    attempt.status = agent::AttemptStatus::kExited;
    attempt.exit_code = 128 + signal;
  }
  return core::Ok();
}

bool FakeProcessRunner::Exit(const std::string& key, int code) {
  std::lock_guard lock(mu_);
  Attempt* attempt = Find(key);
  if (attempt == nullptr) {
    return false;
  }
  if (attempt->status == agent::AttemptStatus::kRunning) {
    attempt->status = agent::AttemptStatus::kExited;
    attempt->exit_code = code;
  }
  return true;
}

bool FakeProcessRunner::Vanish(const std::string& key) {
  std::lock_guard lock(mu_);
  Attempt* attempt = Find(key);
  if (attempt == nullptr) {
    return false;
  }
  attempt->status = agent::AttemptStatus::kLost;
  attempt->exit_code.reset();
  return true;
}

void FakeProcessRunner::EndOnSignal(int signal) {
  std::lock_guard lock(mu_);
  fatal_signals_.insert(signal);
}

void FakeProcessRunner::FailNextLaunch(core::Error error) {
  std::lock_guard lock(mu_);
  next_launch_error_ = std::move(error);
}

std::vector<agent::LaunchSpec> FakeProcessRunner::Launches() const {
  std::lock_guard lock(mu_);
  std::vector<agent::LaunchSpec> out;
  for (const auto& dir : launch_order_) {
    out.push_back(attempts_.at(dir).spec);
  }
  return out;
}

int FakeProcessRunner::LaunchCount() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(launch_order_.size());
}

std::optional<agent::LaunchSpec> FakeProcessRunner::LaunchOf(const std::string& key) const {
  std::lock_guard lock(mu_);
  const Attempt* attempt = Find(key);
  return attempt ? std::optional(attempt->spec) : std::nullopt;
}

std::vector<int> FakeProcessRunner::SignalsTo(const std::string& key) const {
  std::lock_guard lock(mu_);
  const Attempt* attempt = Find(key);
  return attempt ? attempt->signals : std::vector<int>{};
}

bool FakeProcessRunner::IsRunning(const std::string& key) const {
  std::lock_guard lock(mu_);
  const Attempt* attempt = Find(key);
  return attempt && attempt->status == agent::AttemptStatus::kRunning;
}

const FakeProcessRunner::Attempt* FakeProcessRunner::Find(const std::string& key) const {
  if (auto it = attempts_.find(key); it != attempts_.end()) {
    return &it->second;
  }
  const Attempt* latest = nullptr;
  for (const auto& [dir, attempt] : attempts_) {
    auto env = attempt.spec.env.find("GPUORCH_JOB_ID");
    if (env != attempt.spec.env.end() && env->second == key &&
        (latest == nullptr || attempt.order > latest->order)) {
      latest = &attempt;
    }
  }
  return latest;
}

FakeProcessRunner::Attempt* FakeProcessRunner::Find(const std::string& key) {
  return const_cast<Attempt*>(std::as_const(*this).Find(key));
}

}  // namespace gpuorch::lifecycle::testing
