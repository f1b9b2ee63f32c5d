// A discrete-event replay of a trace against one scheduler::Scheduler, in simulated time only.
//
// Events are job arrivals and job completions. After every batch of events at one instant the
// simulator calls Schedule(now), starts each assignment (the Scheduler has already moved it to its
// running set) and books its completion at start + actual runtime, which never exceeds the bound
// the scheduler was told. Preemptions end their victims at `now` and requeue them with their
// remaining work and bound, then Schedule runs again at the same instant.
//
// The simulator checks the scheduler as it goes, and stops with kInternal on a broken invariant: a
// GPU given to two jobs, an assignment to an unknown node or GPU, of the wrong size, or of a job
// that is not queued; a preemption of a job that is not running, not preemptible or not of lower
// priority; GpusInUse disagreeing with the GPUs actually held. Jobs still queued once nothing is
// left to happen (no arrival, no completion, and Schedule starting nothing at later instants) are
// reported as starved, not as an error.
// Not thread-safe: one Simulate call owns its scheduler for the whole run.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "scheduler/scheduler.h"
#include "sim/trace.h"

namespace gpuorch::sim {

struct ClusterOptions {
  int nodes = 64;
  int gpus_per_node = 8;
  bool preemption = false;  // priority-0 jobs are submitted preemptible
};

// What happened to one trace job (same index as in the trace).
struct JobOutcome {
  int gpus = 1;
  std::string user;
  double arrival_s = 0;
  double first_start_s = -1;  // -1: never started
  double end_s = -1;          // -1: never finished
  double wait_s = 0;          // time spent queued, over all its attempts (requeues included)
  int preemptions = 0;

  bool Finished() const { return end_s >= 0; }
};

struct SimResult {
  std::vector<JobOutcome> jobs;
  int total_gpus = 0;
  double makespan_s = 0;      // from the first arrival to the last completion
  double busy_gpu_s = 0;      // GPU-seconds held by jobs, partial runs of preempted jobs included
  double arrival_span_s = 0;  // from the first arrival to the last
  double busy_gpu_s_in_arrival_span = 0;  // the part of busy_gpu_s inside that span
  int schedule_calls = 0;
  int backfilled = 0;          // assignments marked backfilled
  int preemptions = 0;         // victims stopped
  int wasted_preemptions = 0;  // preemptions whose preemptor did not start at that instant
  int stalls = 0;              // times jobs sat queued with nothing running or due to happen
  int starved = 0;             // jobs never finished
  std::vector<std::string> starved_examples;  // a few: "job-000042 (8 GPUs): <Explain's reason>"
};

// Replays `trace` on `scheduler`, which must be fresh (no nodes, no jobs); the simulator adds the
// cluster's nodes "node-000".. with GPUs 0..gpus_per_node-1 and submits each job at its arrival.
// Fails with kInvalidArgument when a job asks for more GPUs than a node has, and with kInternal
// when the scheduler breaks an invariant (see the file comment), naming the job, node and time.
[[nodiscard]] core::Result<SimResult> Simulate(scheduler::Scheduler& scheduler,
                                               const std::vector<TraceJob>& trace,
                                               const ClusterOptions& cluster);

}  // namespace gpuorch::sim
