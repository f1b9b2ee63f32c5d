// Jobs: what a user asked for (JobSpec), what the service knows about it (Job), and the one state
// machine every job moves along. Pure values and functions, no I/O; thread-safe as values are.
//
// State machine (each arrow a stored, timestamped transition):
//
//   queued ──► scheduled ──► running ──► succeeded | failed | cancelled | timed_out
//     ▲  │          │  │         │
//     │  ├► failed   │  │         │   (queued → failed: refused before it ever ran)
//     │  └► cancelled│  └► failed (could not start, no retries left)
//     │             └► cancelled
//     └──────────── scheduled | running  (retry: attempt failed or was lost, retries left)
//
// Terminal states (succeeded, failed, cancelled, timed_out) are final.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace gpuorch::domain {

enum class JobState { kQueued, kScheduled, kRunning, kSucceeded, kFailed, kCancelled, kTimedOut };

std::string_view ToString(JobState state);
std::optional<JobState> ParseJobState(std::string_view text);
bool IsTerminal(JobState state);
// True when `from` → `to` is an arrow of the state machine above.
bool CanTransition(JobState from, JobState to);
// Every state, in state-machine order.
const std::vector<JobState>& AllJobStates();

// What the user submitted, after template defaults were applied. Built by the API's codec.
struct JobSpec {
  std::string name;
  std::string job_type = "custom";
  std::string template_name;  // empty when no template was named
  int priority = 0;
  int64_t timeout_seconds = 0;  // 0: the service default
  int max_retries = 0;
  // config
  std::string gpu_type;  // empty or "any": any type
  int gpu_count = 1;
  double memory_gb = 0;  // GPU memory needed over all the job's GPUs; 0: no requirement
  std::string docker_image;
  std::string model_name;
  std::vector<std::string> command;  // argv; a shell string arrives as {"sh", "-c", string}
  std::map<std::string, std::string> env;
  std::string config_json;  // the whole `config` object as submitted, extra keys included
  // scheduling
  bool preemptible = false;  // top-level `preemptible`: may be stopped for a higher-priority job
  std::map<std::string, std::string> node_selector;  // config.node_selector: labels a node needs
  std::vector<std::string> allowed_providers;  // config.allowed_providers; empty: any provider

  bool operator==(const JobSpec&) const = default;
};

struct Job {
  std::string id;
  std::string owner = "default";
  std::string idempotency_key;  // empty when none was given
  JobSpec spec;
  JobState state = JobState::kQueued;
  std::string status_message;  // why it waits, what went wrong, how it ended
  int attempt = 0;             // number of the current (or last) attempt; 0 before the first
  core::SystemTime created_at{};
  core::SystemTime updated_at{};
  std::optional<core::SystemTime> started_at;   // current attempt's start
  std::optional<core::SystemTime> finished_at;  // set in terminal states
  std::optional<core::SystemTime> not_before;   // retry backoff: not scheduled before this
  std::optional<int> exit_code;                 // last attempt's exit code (128+N for signal N)
  std::string node_id;                          // where the current attempt runs
  std::vector<int> gpu_indices;                 // GPUs of the current attempt on that node
  int64_t seq = 0;                              // store order; used for cursors

  bool operator==(const Job&) const = default;
};

// One stored state change.
struct JobTransition {
  std::string job_id;
  std::optional<JobState> from;  // nullopt for creation
  JobState to = JobState::kQueued;
  core::SystemTime at{};
  int attempt = 0;
  std::string message;

  bool operator==(const JobTransition&) const = default;
};

}  // namespace gpuorch::domain
