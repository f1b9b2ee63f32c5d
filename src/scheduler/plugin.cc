#include "scheduler/plugin.h"

namespace gpuorch::scheduler::plugins {

std::string DescribeNeed(const JobRequest& job) {
  return std::to_string(job.gpu_count) + " x " + (job.gpu_type.empty() ? "GPU" : job.gpu_type);
}

std::string DescribeNode(const NodeInfo& node) {
  const size_t n = node.gpu_indices.size();
  return "node " + node.id + " has " +
         (n == 0 ? std::string("no GPUs")
                 : std::to_string(n) + " x " + (node.gpu_type.empty() ? "GPU" : node.gpu_type));
}

}  // namespace gpuorch::scheduler::plugins
