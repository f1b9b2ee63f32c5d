#include "scheduler/plugins/node_labels.h"

namespace gpuorch::scheduler::plugins {
namespace {

class NodeLabelsFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "node_labels"; }
  Fit Filter(const CycleState& cycle, const JobRequest& job, const NodeState& node) const override {
    return NodeLabelsFit(job, node.info, cycle.want_reasons);
  }
};

}  // namespace

Fit NodeLabelsFit(const JobRequest& job, const NodeInfo& node, bool want_reason) {
  for (const auto& [key, value] : job.node_selector) {
    auto it = node.labels.find(key);
    if (it != node.labels.end() && it->second == value) {
      continue;
    }
    if (!want_reason) {
      return Fit::No();
    }
    return Fit::No(
        "needs label " + key + "=" + value + ", node " + node.id +
        (it == node.labels.end() ? " has no label " + key : " has " + key + "=" + it->second));
  }
  return Fit::Yes();
}

std::unique_ptr<FilterPlugin> MakeNodeLabelsFilter() {
  return std::make_unique<NodeLabelsFilter>();
}

}  // namespace gpuorch::scheduler::plugins
