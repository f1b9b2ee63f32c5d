// Placement of queued jobs on nodes' GPUs: a pure function of a snapshot, no I/O.
// Gang placement: all of a job's GPUs on one node; a GPU is never given to two jobs.
// Order: higher priority first, then older (lower seq) first; a job that does not fit waits with a
// reason and does not block smaller jobs behind it. Thread-safe (pure functions).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "domain/gpu.h"
#include "domain/job.h"

namespace gpuorch::scheduler {

struct NodeView {
  std::string node_id;
  std::vector<domain::GpuDevice> gpus;
  std::vector<int> busy_gpu_indices;  // GPUs held by live attempts (including ones being killed)
  bool container_runtime = false;     // `docker run` works on this node

  bool operator==(const NodeView&) const = default;
};

struct Fit {
  bool fits = false;
  std::vector<int> gpu_indices;  // when fits: the GPUs to use, ascending
  std::string reason;            // when not: why, e.g. "needs 4 x RTX4090, node local has 6 x RTX4090 with 2 free"
};

// Whether `spec` fits on `node` now, given its busy GPUs.
Fit FitOnNode(const NodeView& node, const domain::JobSpec& spec);

struct Assignment {
  std::string job_id;
  std::string node_id;
  std::vector<int> gpu_indices;

  bool operator==(const Assignment&) const = default;
};

struct SchedulePlan {
  std::vector<Assignment> assignments;           // in the order they should be started
  std::map<std::string, std::string> waiting;    // job_id → reason, for queued jobs not placed
};

// Places `queued` jobs (any order; only state queued is considered) on `nodes` at time `now`.
// Jobs whose retry backoff (not_before) lies in the future wait.
SchedulePlan Schedule(const std::vector<NodeView>& nodes, const std::vector<domain::Job>& queued,
                      core::SystemTime now);

}  // namespace gpuorch::scheduler
