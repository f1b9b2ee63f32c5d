#include "scheduler/plugins/gpu_type.h"

namespace gpuorch::scheduler::plugins {
namespace {

class GpuTypeFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "gpu_type"; }
  Fit Filter(const CycleState& cycle, const JobRequest& job, const NodeState& node) const override {
    return GpuTypeFit(job, node.info, cycle.want_reasons);
  }
};

}  // namespace

Fit GpuTypeFit(const JobRequest& job, const NodeInfo& node, bool want_reason) {
  if (job.gpu_type.empty() || job.gpu_type == node.gpu_type) {
    return Fit::Yes();
  }
  return want_reason ? Fit::No("needs " + DescribeNeed(job) + ", " + DescribeNode(node))
                     : Fit::No();
}

std::unique_ptr<FilterPlugin> MakeGpuTypeFilter() { return std::make_unique<GpuTypeFilter>(); }

}  // namespace gpuorch::scheduler::plugins
