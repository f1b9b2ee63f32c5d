#include "scheduler/registry.h"

#include "scheduler/plugins/allowed_providers.h"
#include "scheduler/plugins/best_fit.h"
#include "scheduler/plugins/container_runtime.h"
#include "scheduler/plugins/gpu_count.h"
#include "scheduler/plugins/gpu_memory.h"
#include "scheduler/plugins/gpu_type.h"
#include "scheduler/plugins/node_labels.h"
#include "scheduler/plugins/quota.h"

namespace gpuorch::scheduler {

PluginRegistry BuiltinPlugins() {
  PluginRegistry registry;
  registry.filters = {
      {"quota", plugins::MakeQuotaFilter},
      {"gpu_type", plugins::MakeGpuTypeFilter},
      {"gpu_count", plugins::MakeGpuCountFilter},
      {"container_runtime", plugins::MakeContainerRuntimeFilter},
      {"gpu_memory", plugins::MakeGpuMemoryFilter},
      {"allowed_providers", plugins::MakeAllowedProvidersFilter},
      {"node_labels", plugins::MakeNodeLabelsFilter},
  };
  registry.scores = {{"best_fit", plugins::MakeBestFitScore}};
  return registry;
}

core::Result<Pipeline> BuildPipeline(const PluginRegistry& registry,
                                     const std::map<std::string, int>& score_weights) {
  Pipeline pipeline;
  for (const auto& [name, factory] : registry.filters) {
    pipeline.filters_.push_back(factory());
  }
  const std::map<std::string, int> defaults = {{"best_fit", 1}};
  const auto& wanted = score_weights.empty() ? defaults : score_weights;
  for (const auto& [name, weight] : wanted) {
    auto it = registry.scores.find(name);
    if (it == registry.scores.end()) {
      return core::Fail(core::Code::kInvalidArgument, "unknown score plugin '" + name + "'",
                        "score_plugins");
    }
    if (weight < 0) {
      return core::Fail(core::Code::kInvalidArgument,
                        "score plugin '" + name + "' has a negative weight", "score_plugins");
    }
    if (weight > 0) {
      pipeline.scores_.emplace_back(it->second(), weight);
    }
  }
  pipeline.ranks_by_fewest_free_ =
      pipeline.scores_.empty() ||
      (pipeline.scores_.size() == 1 && pipeline.scores_[0].first->Name() == "best_fit");
  return pipeline;
}

plugins::Fit Pipeline::PreFilter(const plugins::CycleState& cycle, const JobRequest& job) const {
  for (const auto& filter : filters_) {
    plugins::Fit fit = filter->PreFilter(cycle, job);
    if (!fit.ok) {
      return fit;
    }
  }
  return plugins::Fit::Yes();
}

plugins::Fit Pipeline::Filter(const plugins::CycleState& cycle, const JobRequest& job,
                              const plugins::NodeState& node) const {
  for (const auto& filter : filters_) {
    plugins::Fit fit = filter->Filter(cycle, job, node);
    if (!fit.ok) {
      return fit;
    }
  }
  return plugins::Fit::Yes();
}

bool Pipeline::Accepts(const plugins::CycleState& cycle, const JobRequest& job,
                       const plugins::NodeState& node) const {
  for (const auto& filter : filters_) {
    if (!filter->Filter(cycle, job, node).ok) {
      return false;
    }
  }
  return true;
}

int Pipeline::Score(const plugins::CycleState& cycle, const JobRequest& job,
                    const plugins::NodeState& node) const {
  int total = 0;
  for (const auto& [plugin, weight] : scores_) {
    total += weight * plugin->Score(cycle, job, node);
  }
  return total;
}

}  // namespace gpuorch::scheduler
