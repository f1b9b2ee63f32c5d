// MakeScheduler and MakeFifoScheduler (scheduler.h, registry.h).
#include <memory>
#include <utility>

#include "scheduler/fair_scheduler.h"
#include "scheduler/fifo_scheduler.h"
#include "scheduler/registry.h"

namespace gpuorch::scheduler {
namespace {

Pipeline BuiltinPipeline(const std::map<std::string, int>& score_weights) {
  core::Result<Pipeline> pipeline = BuildPipeline(BuiltinPlugins(), score_weights);
  if (!pipeline) {
    // An unknown score name: rank by best fit alone. Callers that must refuse such a config call
    // BuildPipeline() themselves.
    pipeline = BuildPipeline(BuiltinPlugins(), {});
  }
  return std::move(*pipeline);
}

}  // namespace

std::unique_ptr<Scheduler> MakeScheduler(SchedulerConfig config, Pipeline pipeline) {
  return std::make_unique<FairScheduler>(std::move(config), std::move(pipeline));
}

std::unique_ptr<Scheduler> MakeFifoScheduler(SchedulerConfig config, Pipeline pipeline) {
  return std::make_unique<FifoScheduler>(std::move(config), std::move(pipeline));
}

std::unique_ptr<Scheduler> MakeScheduler(SchedulerConfig config) {
  Pipeline pipeline = BuiltinPipeline(config.score_plugins);
  return MakeScheduler(std::move(config), std::move(pipeline));
}

std::unique_ptr<Scheduler> MakeFifoScheduler(SchedulerConfig config) {
  Pipeline pipeline = BuiltinPipeline(config.score_plugins);
  return MakeFifoScheduler(std::move(config), std::move(pipeline));
}

}  // namespace gpuorch::scheduler
