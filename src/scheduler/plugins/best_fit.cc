#include "scheduler/plugins/best_fit.h"

#include <algorithm>

namespace gpuorch::scheduler::plugins {
namespace {

class BestFit final : public ScorePlugin {
 public:
  std::string_view Name() const override { return "best_fit"; }
  int Score(const CycleState&, const JobRequest& job, const NodeState& node) const override {
    return BestFitScore(node.free_gpus - std::max(0, job.gpu_count));
  }
};

}  // namespace

int BestFitScore(int free_gpus_after) { return std::clamp(100 - 10 * free_gpus_after, 0, 100); }

std::unique_ptr<ScorePlugin> MakeBestFitScore() { return std::make_unique<BestFit>(); }

}  // namespace gpuorch::scheduler::plugins
