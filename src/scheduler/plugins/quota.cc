#include "scheduler/plugins/quota.h"

namespace gpuorch::scheduler::plugins {
namespace {

class QuotaFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "quota"; }
  Fit PreFilter(const CycleState& cycle, const JobRequest& job) const override {
    return QuotaFit(job.owner, cycle.users.GpusInUse(job.owner), job.gpu_count,
                    cycle.users.QuotaOf(job.owner), cycle.want_reasons);
  }
  Fit Filter(const CycleState&, const JobRequest&, const NodeState&) const override {
    return Fit::Yes();
  }
};

}  // namespace

bool QuotaAllows(int gpus_in_use, int gpu_count, const Quota& quota) {
  if (!quota.hold_reason.empty() && gpu_count > 0) {
    return false;
  }
  return static_cast<int64_t>(gpus_in_use) + gpu_count <= quota.max_gpus_in_use;
}

Fit QuotaFit(const std::string& owner, int gpus_in_use, int gpu_count, const Quota& quota,
             bool want_reason) {
  if (QuotaAllows(gpus_in_use, gpu_count, quota)) {
    return Fit::Yes();
  }
  if (want_reason && !quota.hold_reason.empty()) {
    return Fit::No(quota.hold_reason);
  }
  return want_reason ? Fit::No("user " + owner + " uses " + std::to_string(gpus_in_use) + " of " +
                               std::to_string(quota.max_gpus_in_use) + " GPUs (quota)")
                     : Fit::No();
}

std::unique_ptr<FilterPlugin> MakeQuotaFilter() { return std::make_unique<QuotaFilter>(); }

}  // namespace gpuorch::scheduler::plugins
