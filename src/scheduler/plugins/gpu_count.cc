#include "scheduler/plugins/gpu_count.h"

namespace gpuorch::scheduler::plugins {
namespace {

class GpuCountFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "gpu_count"; }
  Fit Filter(const CycleState& cycle, const JobRequest& job, const NodeState& node) const override {
    return GpuCountFit(job, node.info, node.free_gpus, cycle.want_reasons);
  }
};

}  // namespace

Fit GpuCountFit(const JobRequest& job, const NodeInfo& node, int free_gpus, bool want_reason) {
  const int total = static_cast<int>(node.gpu_indices.size());
  if (job.gpu_count <= free_gpus && job.gpu_count <= total) {
    return Fit::Yes();
  }
  if (!want_reason) {
    return Fit::No();
  }
  std::string reason = "needs " + DescribeNeed(job) + ", " + DescribeNode(node);
  if (job.gpu_count <= total) {
    reason += " with " + std::to_string(free_gpus) + " free";
  }
  return Fit::No(std::move(reason));
}

std::unique_ptr<FilterPlugin> MakeGpuCountFilter() { return std::make_unique<GpuCountFilter>(); }

}  // namespace gpuorch::scheduler::plugins
