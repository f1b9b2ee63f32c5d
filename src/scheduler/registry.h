// The plugin registry (names to factories, built explicitly: no static-init registration) and the
// pipeline a scheduler runs, built from it. MakeScheduler(config) uses BuiltinPlugins(); apps/ or a
// test that wants other plugins builds its own registry and calls the overloads below.
// Pipelines are immutable once built: safe to call from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "scheduler/plugin.h"
#include "scheduler/scheduler.h"

namespace gpuorch::scheduler {

using FilterFactory = std::function<std::unique_ptr<plugins::FilterPlugin>()>;
using ScoreFactory = std::function<std::unique_ptr<plugins::ScorePlugin>()>;

struct PluginRegistry {
  std::vector<std::pair<std::string, FilterFactory>> filters;  // all run, in this order
  std::map<std::string, ScoreFactory> scores;                  // chosen by name, with weights
};

// The built-in plugins. Filters, cheapest first: quota (job-level), gpu_type, gpu_count,
// container_runtime, gpu_memory, allowed_providers, node_labels. Scores: best_fit.
PluginRegistry BuiltinPlugins();

// Filters and weighted scores, ready to run. Move-only.
class Pipeline {
 public:
  Pipeline() = default;
  Pipeline(Pipeline&&) = default;
  Pipeline& operator=(Pipeline&&) = default;

  // Every filter's job-level part; on no, the first refusal (with a reason when asked for).
  plugins::Fit PreFilter(const plugins::CycleState& cycle, const JobRequest& job) const;
  // Every filter's node part; on no, the first refusal.
  plugins::Fit Filter(const plugins::CycleState& cycle, const JobRequest& job,
                      const plugins::NodeState& node) const;
  // Hot path: Filter() without reasons, stopping at the first refusal.
  bool Accepts(const plugins::CycleState& cycle, const JobRequest& job,
               const plugins::NodeState& node) const;
  // The weighted sum of the scores of a node every filter accepted.
  int Score(const plugins::CycleState& cycle, const JobRequest& job,
            const plugins::NodeState& node) const;
  // True when the ranking is best_fit alone (or nothing): the first feasible node in order of
  // fewest free GPUs is then the best, and a search may stop there.
  bool RanksByFewestFree() const { return ranks_by_fewest_free_; }

 private:
  friend core::Result<Pipeline> BuildPipeline(const PluginRegistry&,
                                              const std::map<std::string, int>&);
  std::vector<std::unique_ptr<plugins::FilterPlugin>> filters_;
  std::vector<std::pair<std::unique_ptr<plugins::ScorePlugin>, int>> scores_;
  bool ranks_by_fewest_free_ = true;
};

// Every filter of `registry`, and the score plugins named in `score_weights` (empty: best_fit with
// weight 1). kInvalidArgument for an unknown name or a negative weight.
[[nodiscard]] core::Result<Pipeline> BuildPipeline(const PluginRegistry& registry,
                                                   const std::map<std::string, int>& score_weights);

// MakeScheduler and MakeFifoScheduler (scheduler.h) with a pipeline of the caller's choice.
// MakeScheduler(config) is this with BuildPipeline(BuiltinPlugins(), config.score_plugins), falling
// back to best_fit when that names an unknown plugin.
std::unique_ptr<Scheduler> MakeScheduler(SchedulerConfig config, Pipeline pipeline);
std::unique_ptr<Scheduler> MakeFifoScheduler(SchedulerConfig config, Pipeline pipeline);

}  // namespace gpuorch::scheduler
