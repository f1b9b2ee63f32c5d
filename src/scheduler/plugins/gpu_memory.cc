#include "scheduler/plugins/gpu_memory.h"

#include <cmath>
#include <sstream>

#include "domain/gpu.h"

namespace gpuorch::scheduler::plugins {
namespace {

std::string FormatGb(double gb) {
  std::ostringstream out;
  out << (std::round(gb * 10) / 10);
  return out.str();
}

class GpuMemoryFilter final : public FilterPlugin {
 public:
  std::string_view Name() const override { return "gpu_memory"; }
  Fit Filter(const CycleState& cycle, const JobRequest& job, const NodeState& node) const override {
    return GpuMemoryFit(job, node.info, cycle.want_reasons);
  }
};

}  // namespace

double PerGpuMemoryGb(const JobRequest& job) {
  return job.gpu_count > 0 && job.memory_gb > 0 ? job.memory_gb / job.gpu_count : 0;
}

Fit GpuMemoryFit(const JobRequest& job, const NodeInfo& node, bool want_reason) {
  const double need = PerGpuMemoryGb(job);
  if (need <= 0) {
    return Fit::Yes();
  }
  const double have =
      node.gpu_memory_gb > 0 ? node.gpu_memory_gb : domain::KnownGpuMemoryGb(node.gpu_type);
  if (have + 1e-9 >= need) {
    return Fit::Yes();
  }
  if (!want_reason) {
    return Fit::No();
  }
  return Fit::No("needs " + DescribeNeed(job) + " with " + FormatGb(need) + " GB each (" +
                 FormatGb(job.memory_gb) + " GB in all), " + DescribeNode(node) +
                 (have > 0 ? " with " + FormatGb(have) + " GB each" : " of unknown memory"));
}

std::unique_ptr<FilterPlugin> MakeGpuMemoryFilter() { return std::make_unique<GpuMemoryFilter>(); }

}  // namespace gpuorch::scheduler::plugins
