#include "scheduler/internal/node_search.h"

#include <algorithm>

namespace gpuorch::scheduler::internal {

NodeChoice FindBestNode(const Cluster& cluster, const Pipeline& pipeline,
                        const plugins::CycleState& cycle, const JobRequest& job,
                        const Reservation* reservation, core::SystemTime now) {
  std::vector<int> types;
  if (job.gpu_type.empty()) {
    for (int t = 0; t < cluster.num_types(); ++t) {
      types.push_back(t);
    }
  } else if (int t = cluster.TypeIndex(job.gpu_type); t >= 0) {
    types.push_back(t);
  }
  const int need = std::max(0, job.gpu_count);
  NodeChoice best;
  int best_score = 0;
  int feasible = 0;
  for (int free = need; free <= cluster.max_gpus(); ++free) {
    for (int type : types) {
      for (int index : cluster.Bucket(type, free)) {
        const Node& node = cluster.node(index);
        if (!pipeline.Accepts(cycle, job, node.State())) {
          continue;
        }
        std::optional<std::vector<int>> gpus =
            reservation ? GpusSparing(cluster, index, job, *reservation, now)
                        : cluster.LowestFree(index, need);
        if (!gpus) {
          best.held_back = true;
          continue;
        }
        if (pipeline.RanksByFewestFree()) {
          return NodeChoice{.node = index, .gpus = std::move(*gpus), .held_back = best.held_back};
        }
        const int score = pipeline.Score(cycle, job, node.State());
        if (best.node < 0 || score > best_score) {
          best.node = index;
          best.gpus = std::move(*gpus);
          best_score = score;
        }
        if (++feasible >= kEnoughFeasible) {
          return best;
        }
      }
    }
  }
  return best;
}

NodeChoice FindFirstNode(const Cluster& cluster, const Pipeline& pipeline,
                         const plugins::CycleState& cycle, const JobRequest& job) {
  for (int index = 0; index < cluster.node_slots(); ++index) {
    const Node& node = cluster.node(index);
    if (node.alive && pipeline.Accepts(cycle, job, node.State())) {
      return NodeChoice{.node = index,
                        .gpus = cluster.LowestFree(index, std::max(0, job.gpu_count))};
    }
  }
  return NodeChoice{};
}

}  // namespace gpuorch::scheduler::internal
