// Finding a node for a job: filter, then score, over the bucket index.
#pragma once

#include <vector>

#include "core/clock.h"
#include "scheduler/internal/cluster.h"
#include "scheduler/internal/reservation.h"
#include "scheduler/registry.h"

namespace gpuorch::scheduler::internal {

struct NodeChoice {
  int node = -1;           // -1: none
  std::vector<int> gpus;   // ascending
  bool held_back = false;  // some node accepted the job but the reservation kept it
};

// How many feasible nodes a search ranks when the scores are not best_fit alone.
inline constexpr int kEnoughFeasible = 8;

// Best fit: walks free counts upward from the job's gpu_count within its GPU type (every type for
// ""), runs the filters on the nodes of each bucket, and ranks the feasible ones with the scores;
// with best_fit alone the first feasible node is the best. With a reservation, a node is feasible
// only where the job cannot delay it (GpusSparing).
NodeChoice FindBestNode(const Cluster& cluster, const Pipeline& pipeline,
                        const plugins::CycleState& cycle, const JobRequest& job,
                        const Reservation* reservation, core::SystemTime now);

// The FIFO baseline's choice: the first node in index order (the order nodes were added, a removed
// node's index going to the next one added) that takes the job. O(nodes).
NodeChoice FindFirstNode(const Cluster& cluster, const Pipeline& pipeline,
                         const plugins::CycleState& cycle, const JobRequest& job);

}  // namespace gpuorch::scheduler::internal
