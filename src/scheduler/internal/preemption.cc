#include "scheduler/internal/preemption.h"

#include <algorithm>
#include <bit>
#include <numeric>

namespace gpuorch::scheduler::internal {
namespace {

// Exhaustive search over subsets up to this many candidates; greedy beyond (nodes rarely run more
// jobs than this, as each holds at least one GPU).
constexpr size_t kExhaustiveCandidates = 12;

VictimChoice Describe(uint32_t mask, const std::vector<VictimCandidate>& candidates) {
  VictimChoice choice;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (mask & (1u << i)) {
      choice.chosen.push_back(static_cast<int>(i));
      choice.lost_gpu_s += candidates[i].lost_gpu_s;
      choice.gpus += candidates[i].gpus;
    }
  }
  return choice;
}

std::optional<VictimChoice> Greedy(int free, int need,
                                   const std::vector<VictimCandidate>& candidates) {
  std::vector<int> order(candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    if (candidates[a].gpus != candidates[b].gpus) {
      return candidates[a].gpus > candidates[b].gpus;
    }
    return candidates[a].lost_gpu_s < candidates[b].lost_gpu_s;
  });
  VictimChoice choice;
  for (int i : order) {
    if (free + choice.gpus >= need) {
      break;
    }
    choice.chosen.push_back(i);
    choice.gpus += candidates[i].gpus;
    choice.lost_gpu_s += candidates[i].lost_gpu_s;
  }
  if (free + choice.gpus < need) {
    return std::nullopt;
  }
  std::sort(choice.chosen.begin(), choice.chosen.end());
  return choice;
}

}  // namespace

bool VictimChoice::BetterThan(const VictimChoice& o) const {
  if (chosen.size() != o.chosen.size()) {
    return chosen.size() < o.chosen.size();
  }
  if (lost_gpu_s != o.lost_gpu_s) {
    return lost_gpu_s < o.lost_gpu_s;
  }
  return gpus < o.gpus;
}

std::optional<VictimChoice> ChooseVictims(int free, int need,
                                          const std::vector<VictimCandidate>& candidates) {
  if (free >= need) {
    return VictimChoice{};
  }
  if (candidates.size() > kExhaustiveCandidates) {
    return Greedy(free, need, candidates);
  }
  std::optional<VictimChoice> best;
  const uint32_t end = 1u << candidates.size();
  for (uint32_t mask = 1; mask < end; ++mask) {
    if (best && static_cast<size_t>(std::popcount(mask)) > best->chosen.size()) {
      continue;
    }
    int gpus = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      gpus += (mask & (1u << i)) ? candidates[i].gpus : 0;
    }
    if (free + gpus < need) {
      continue;
    }
    VictimChoice choice = Describe(mask, candidates);
    if (!best || choice.BetterThan(*best)) {
      best = std::move(choice);
    }
  }
  return best;
}

std::optional<PreemptionChoice> FindPreemption(const Cluster& cluster, const Pipeline& pipeline,
                                               const plugins::CycleState& cycle,
                                               const JobRequest& job, int exclude_node,
                                               core::SystemTime now) {
  const int need = std::max(0, job.gpu_count);
  std::optional<PreemptionChoice> best;
  std::optional<VictimChoice> best_choice;
  int best_left = 0;
  for (int index : cluster.NodesWithPreemptible()) {
    const Node& node = cluster.node(index);
    if (index == exclude_node || !pipeline.Accepts(cycle, job, node.EmptyState())) {
      continue;
    }
    std::vector<const Running*> running;
    std::vector<VictimCandidate> candidates;
    for (const Running* r : node.running) {
      const int gpus = static_cast<int>(r->job.gpu_indices.size());
      if (r->job.preemptible && !r->victim && r->job.priority < job.priority && gpus > 0) {
        running.push_back(r);
        const double ran = std::chrono::duration<double>(now - r->job.started_at).count();
        candidates.push_back(VictimCandidate{gpus, gpus * std::max(0.0, ran)});
      }
    }
    std::optional<VictimChoice> choice = ChooseVictims(node.free, need, candidates);
    if (!choice || choice->chosen.empty()) {
      continue;  // not enough, or no preemption needed (then it would have fit)
    }
    const int left = node.free + choice->gpus - need;
    if (best_choice && !choice->BetterThan(*best_choice) &&
        (best_choice->BetterThan(*choice) || left >= best_left)) {
      continue;
    }
    best_choice = choice;
    best_left = left;
    best = PreemptionChoice{.node = index, .victim_gpus = choice->gpus};
    for (int i : choice->chosen) {
      best->victims.push_back(running[i]);
    }
  }
  return best;
}

}  // namespace gpuorch::scheduler::internal
