// Filter "quota": a job starts only while its owner's GPUs in use plus its own stay within the
// owner's max_gpus_in_use. Node-independent, so it runs as a PreFilter (once per job).
#pragma once

#include <memory>
#include <string>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

bool QuotaAllows(int gpus_in_use, int gpu_count, const Quota& quota);
// "user alice uses 6 of 8 GPUs (quota)" when it does not allow.
Fit QuotaFit(const std::string& owner, int gpus_in_use, int gpu_count, const Quota& quota,
             bool want_reason);

std::unique_ptr<FilterPlugin> MakeQuotaFilter();

}  // namespace gpuorch::scheduler::plugins
