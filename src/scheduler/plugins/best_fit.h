// Score "best_fit": the node left with the fewest free GPUs after placing the job scores highest,
// so small jobs fill fragmented nodes and whole free blocks stay whole for big jobs.
#pragma once

#include <memory>

#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

// 100 when placing leaves no GPU free, 10 less per GPU left free, 0 from 10 left.
int BestFitScore(int free_gpus_after);

std::unique_ptr<ScorePlugin> MakeBestFitScore();

}  // namespace gpuorch::scheduler::plugins
