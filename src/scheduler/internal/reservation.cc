#include "scheduler/internal/reservation.h"

#include <algorithm>

namespace gpuorch::scheduler::internal {
namespace {

// The GPUs the node's running jobs give back, and when.
void Releases(const Node& node, core::SystemTime now, std::vector<GpuRelease>& out) {
  out.clear();
  for (const Running* running : node.running) {
    if (!running->victim) {  // a victim's GPUs go to its preemptor
      out.push_back(GpuRelease{std::max(running->job.expected_end, now),
                               static_cast<int>(running->job.gpu_indices.size())});
    }
  }
}

std::vector<int> TypesFor(const Cluster& cluster, const JobRequest& job) {
  std::vector<int> types;
  if (job.gpu_type.empty()) {
    for (int t = 0; t < cluster.num_types(); ++t) {
      types.push_back(t);
    }
  } else if (int t = cluster.TypeIndex(job.gpu_type); t >= 0) {
    types.push_back(t);
  }
  return types;
}

}  // namespace

std::optional<core::SystemTime> EarliestStart(int free, int need, std::vector<GpuRelease>& releases,
                                              core::SystemTime now) {
  if (free >= need) {
    return now;
  }
  std::sort(releases.begin(), releases.end(),
            [](const GpuRelease& a, const GpuRelease& b) { return a.at < b.at; });
  for (const GpuRelease& release : releases) {
    free += release.gpus;
    if (free >= need) {
      return std::max(release.at, now);
    }
  }
  return std::nullopt;
}

std::optional<Reservation> ComputeReservation(const Cluster& cluster, const Pipeline& pipeline,
                                              const plugins::CycleState& cycle,
                                              const JobRequest& head, int prefer_node,
                                              core::SystemTime now) {
  const int need = std::max(0, head.gpu_count);
  int best = -1;
  core::SystemTime best_at{};
  std::vector<GpuRelease> releases;
  auto consider = [&](int index) {
    const Node& node = cluster.node(index);
    if (!node.alive || !pipeline.Accepts(cycle, head, node.EmptyState())) {
      return false;
    }
    Releases(node, now, releases);
    auto at = EarliestStart(node.free, need, releases, now);
    if (at && (best < 0 || *at < best_at)) {
      best = index;
      best_at = *at;
    }
    return at.has_value();
  };
  if (prefer_node >= 0 && prefer_node < cluster.node_slots()) {
    consider(prefer_node);
  }
  int candidates = 0;
  const std::vector<int> types = TypesFor(cluster, head);
  // Nodes with more free GPUs first: they need the fewest jobs to end. (Nodes with `need` free
  // and passing every filter would have taken the head already.)
  for (int free = std::min(need - 1, cluster.max_gpus());
       free >= 0 && candidates < kReservationCandidates; --free) {
    for (int type : types) {
      for (int index : cluster.Bucket(type, free)) {
        if (index != prefer_node && consider(index) && ++candidates >= kReservationCandidates) {
          break;
        }
      }
      if (candidates >= kReservationCandidates) {
        break;
      }
    }
  }
  if (best < 0) {
    return std::nullopt;
  }
  int released = 0;
  Releases(cluster.node(best), now, releases);
  for (const GpuRelease& release : releases) {
    released += release.at <= best_at ? release.gpus : 0;
  }
  return Reservation{.job_id = head.id,
                     .node = best,
                     .at = best_at,
                     .kept_free = cluster.LowestFree(best, std::max(0, need - released))};
}

std::optional<std::vector<int>> GpusSparing(const Cluster& cluster, int node, const JobRequest& job,
                                            const Reservation& reservation, core::SystemTime now) {
  const int need = std::max(0, job.gpu_count);
  if (node != reservation.node || now + job.runtime_bound <= reservation.at) {
    return cluster.LowestFree(node, need);
  }
  std::vector<int> gpus = cluster.LowestFree(node, need, reservation.kept_free);
  if (static_cast<int>(gpus.size()) < need) {
    return std::nullopt;
  }
  return gpus;
}

}  // namespace gpuorch::scheduler::internal
