#include "scheduler/plugins/container_runtime.h"

namespace gpuorch::scheduler::plugins {
namespace {

class ContainerRuntimeFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "container_runtime"; }
  Fit Filter(const CycleState& cycle, const JobRequest& job, const NodeState& node) const override {
    return ContainerRuntimeFit(job, node.info, cycle.want_reasons);
  }
};

}  // namespace

Fit ContainerRuntimeFit(const JobRequest& job, const NodeInfo& node, bool want_reason) {
  if (!job.needs_container || node.container_runtime) {
    return Fit::Yes();
  }
  return want_reason ? Fit::No("needs a container runtime, none on node " + node.id) : Fit::No();
}

std::unique_ptr<FilterPlugin> MakeContainerRuntimeFilter() {
  return std::make_unique<ContainerRuntimeFilter>();
}

}  // namespace gpuorch::scheduler::plugins
