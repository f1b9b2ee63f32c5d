// Filter "allowed_providers": the node is on one of the providers the job allows (empty: any).
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

Fit AllowedProvidersFit(const JobRequest& job, const NodeInfo& node, bool want_reason);

std::unique_ptr<FilterPlugin> MakeAllowedProvidersFilter();

}  // namespace gpuorch::scheduler::plugins
