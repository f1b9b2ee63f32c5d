// Choosing what to preempt: on one node, the fewest running jobs that are preemptible and of
// strictly lower priority than the job that cannot start, so that their GPUs and the node's free
// ones suffice. Ties: the least GPU-seconds of work lost, then the fewest GPUs.
#pragma once

#include <optional>
#include <vector>

#include "core/clock.h"
#include "scheduler/internal/cluster.h"
#include "scheduler/registry.h"

namespace gpuorch::scheduler::internal {

struct VictimCandidate {
  int gpus = 0;
  double lost_gpu_s = 0;  // GPU-seconds it has run: the work lost when stopped
};

struct VictimChoice {
  std::vector<int> chosen;  // indices into the candidates, ascending
  double lost_gpu_s = 0;
  int gpus = 0;

  // Fewer victims, then less work lost, then fewer GPUs.
  bool BetterThan(const VictimChoice& o) const;
};

// Pure: the best set of candidates whose GPUs and `free` reach `need`; nullopt when even all of
// them do not.
std::optional<VictimChoice> ChooseVictims(int free, int need,
                                          const std::vector<VictimCandidate>& candidates);

struct PreemptionChoice {
  int node = -1;
  std::vector<const Running*> victims;
  int victim_gpus = 0;
};

// The best node (by ChooseVictims' order, then fewest GPUs left free) on which `job` could start
// after preempting, skipping `exclude_node` and jobs already being preempted.
std::optional<PreemptionChoice> FindPreemption(const Cluster& cluster, const Pipeline& pipeline,
                                               const plugins::CycleState& cycle,
                                               const JobRequest& job, int exclude_node,
                                               core::SystemTime now);

}  // namespace gpuorch::scheduler::internal
