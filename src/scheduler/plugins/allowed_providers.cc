#include "scheduler/plugins/allowed_providers.h"

#include <algorithm>

namespace gpuorch::scheduler::plugins {
namespace {

class AllowedProvidersFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "allowed_providers"; }
  Fit Filter(const CycleState& cycle, const JobRequest& job, const NodeState& node) const override {
    return AllowedProvidersFit(job, node.info, cycle.want_reasons);
  }
};

}  // namespace

Fit AllowedProvidersFit(const JobRequest& job, const NodeInfo& node, bool want_reason) {
  const auto& allowed = job.allowed_providers;
  if (allowed.empty() ||
      std::find(allowed.begin(), allowed.end(), node.provider) != allowed.end()) {
    return Fit::Yes();
  }
  if (!want_reason) {
    return Fit::No();
  }
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + allowed[i];
  }
  return Fit::No("needs provider " + list + ", node " + node.id + " is on " + node.provider);
}

std::unique_ptr<FilterPlugin> MakeAllowedProvidersFilter() {
  return std::make_unique<AllowedProvidersFilter>();
}

}  // namespace gpuorch::scheduler::plugins
