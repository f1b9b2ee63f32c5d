#include "domain/job.h"

namespace gpuorch::domain {

std::string_view ToString(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kScheduled: return "scheduled";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
    case JobState::kTimedOut: return "timed_out";
  }
  return "unknown";
}

const std::vector<JobState>& AllJobStates() {
  static const std::vector<JobState> all = {
      JobState::kQueued,    JobState::kScheduled, JobState::kRunning,  JobState::kSucceeded,
      JobState::kFailed,    JobState::kCancelled, JobState::kTimedOut};
  return all;
}

std::optional<JobState> ParseJobState(std::string_view text) {
  for (JobState s : AllJobStates()) {
    if (ToString(s) == text) {
      return s;
    }
  }
  return std::nullopt;
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled || state == JobState::kTimedOut;
}

bool CanTransition(JobState from, JobState to) {
  using S = JobState;
  switch (from) {
    case S::kQueued:
      return to == S::kScheduled || to == S::kCancelled || to == S::kFailed;
    case S::kScheduled:
      return to == S::kRunning || to == S::kQueued || to == S::kCancelled || to == S::kFailed;
    case S::kRunning:
      return to == S::kSucceeded || to == S::kFailed || to == S::kCancelled ||
             to == S::kTimedOut || to == S::kQueued;
    case S::kSucceeded:
    case S::kFailed:
    case S::kCancelled:
    case S::kTimedOut:
      return false;
  }
  return false;
}

}  // namespace gpuorch::domain
