// Filter "container_runtime": a job with a container image needs a node that can run containers.
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

Fit ContainerRuntimeFit(const JobRequest& job, const NodeInfo& node, bool want_reason);

std::unique_ptr<FilterPlugin> MakeContainerRuntimeFilter();

}  // namespace gpuorch::scheduler::plugins
