// Filter "gpu_type": the node's GPUs are of the type the job names ("" accepts any type).
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

Fit GpuTypeFit(const JobRequest& job, const NodeInfo& node, bool want_reason);

std::unique_ptr<FilterPlugin> MakeGpuTypeFilter();

}  // namespace gpuorch::scheduler::plugins
