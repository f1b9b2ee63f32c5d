// Filter "gpu_count": the node has at least as many GPUs as the job needs, in all and free now
// (gang placement: all of a job's GPUs on one node).
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

Fit GpuCountFit(const JobRequest& job, const NodeInfo& node, int free_gpus, bool want_reason);

std::unique_ptr<FilterPlugin> MakeGpuCountFilter();

}  // namespace gpuorch::scheduler::plugins
