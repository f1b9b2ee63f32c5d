// Filter "node_labels": the node carries every label of the job's node_selector, with that value.
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

Fit NodeLabelsFit(const JobRequest& job, const NodeInfo& node, bool want_reason);

std::unique_ptr<FilterPlugin> MakeNodeLabelsFilter();

}  // namespace gpuorch::scheduler::plugins
