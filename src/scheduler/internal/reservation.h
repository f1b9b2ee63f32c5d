// EASY backfill's reservation for the head job (the first job in queue order that can neither start
// nor preempt): the earliest time one node will have enough free GPUs for it, judged from the
// expected ends of the jobs running there, and which of the node's free GPUs it keeps.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "scheduler/internal/cluster.h"
#include "scheduler/registry.h"

namespace gpuorch::scheduler::internal {

struct Reservation {
  std::string job_id;
  int node = -1;
  core::SystemTime at{};
  std::vector<int> kept_free;  // GPUs free now that the head will need at `at`

  bool operator==(const Reservation&) const = default;
};

// How many nodes (passing the head's filters) a reservation looks at, most free GPUs first.
inline constexpr int kReservationCandidates = 64;

struct GpuRelease {
  core::SystemTime at;
  int gpus = 0;
};

// Pure: when `need` GPUs are first free on a node with `free` free now, given when its jobs release
// theirs (sorted here, in place); nullopt when never. Releases in the past count as at `now`.
std::optional<core::SystemTime> EarliestStart(int free, int need, std::vector<GpuRelease>& releases,
                                              core::SystemTime now);

// The reservation for `head`, or nullopt when no node could ever take it (unschedulable). Looks at
// `prefer_node` (the last reservation's node, kept on ties) and up to kReservationCandidates
// others.
std::optional<Reservation> ComputeReservation(const Cluster& cluster, const Pipeline& pipeline,
                                              const plugins::CycleState& cycle,
                                              const JobRequest& head, int prefer_node,
                                              core::SystemTime now);

// The GPUs `job` may take on `node` now without delaying `reservation` (lowest first): any free
// ones on another node or when it ends by the reserved time, else only free GPUs the reservation
// does not keep. nullopt when there are not enough of those.
std::optional<std::vector<int>> GpusSparing(const Cluster& cluster, int node, const JobRequest& job,
                                            const Reservation& reservation, core::SystemTime now);

}  // namespace gpuorch::scheduler::internal
