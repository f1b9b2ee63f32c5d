// Reasons in words for jobs that wait, shared by both schedulers. Computed on demand (Explain,
// Queue), never by a scheduling pass.
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/internal/cluster.h"
#include "scheduler/registry.h"

namespace gpuorch::scheduler::internal {

// Why no node takes `job` now. With one node: that node's refusal, e.g. "needs 4 x RTX4090, node n1
// has 8 x RTX4090 with 2 free". With several: "needs 4 x RTX4090 on one node; the best node n17 has
// 3 free (1,204 nodes checked)", or, when none qualifies even empty, "needs 16 x H100 on one node;
// none of 3 nodes qualifies, e.g. needs 16 x H100, node n1 has 8 x H100". "no nodes registered"
// without nodes. Costs one filter run per node.
std::string WhyNoNode(const Cluster& cluster, const Pipeline& pipeline, const JobRequest& job);

// "1,204".
std::string WithCommas(int64_t value);

}  // namespace gpuorch::scheduler::internal
