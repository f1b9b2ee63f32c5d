// Filter "gpu_memory": each of the node's GPUs has the memory the job needs per GPU. A job's
// memory_gb is over all its GPUs, so it needs memory_gb / gpu_count on each. A node that does not
// say (0) is taken to have the well-known memory of its type (domain::KnownGpuMemoryGb).
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

// GB the job needs on each GPU; 0 when it states no need.
double PerGpuMemoryGb(const JobRequest& job);

Fit GpuMemoryFit(const JobRequest& job, const NodeInfo& node, bool want_reason);

std::unique_ptr<FilterPlugin> MakeGpuMemoryFilter();

}  // namespace gpuorch::scheduler::plugins
