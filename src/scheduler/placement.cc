#include "scheduler/placement.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace gpuorch::scheduler {
namespace {

std::string FormatGb(double gb) {
  std::ostringstream out;
  out << (std::round(gb * 10) / 10);
  return out.str();
}

// "6 x RTX4090" or "4 x RTX4090 + 2 x A100" for a node's GPUs.
std::string DescribeGpus(const std::vector<domain::GpuDevice>& gpus) {
  std::map<std::string, int> counts;
  for (const auto& gpu : gpus) {
    ++counts[gpu.type];
  }
  std::string out;
  for (const auto& [type, count] : counts) {
    if (!out.empty()) {
      out += " + ";
    }
    out += std::to_string(count) + " x " + type;
  }
  return out.empty() ? "no GPUs" : out;
}

std::string Needs(const domain::JobSpec& spec) {
  std::string type = domain::CanonicalGpuType(spec.gpu_type);
  return std::to_string(spec.gpu_count) + " x " + (type.empty() ? "GPU" : type);
}

}  // namespace

Fit FitOnNode(const NodeView& node, const domain::JobSpec& spec) {
  const std::string node_label = "node " + node.node_id;
  if (!spec.docker_image.empty() && !node.container_runtime) {
    return Fit{.reason = "needs a container runtime for image " + spec.docker_image + ", none on " +
                         node_label};
  }
  const std::string want_type = domain::CanonicalGpuType(spec.gpu_type);
  const double per_gpu_gb = spec.gpu_count > 0 ? spec.memory_gb / spec.gpu_count : 0;
  std::set<int> busy(node.busy_gpu_indices.begin(), node.busy_gpu_indices.end());

  int matching = 0;
  std::vector<int> free_matching;
  for (const auto& gpu : node.gpus) {
    if (!want_type.empty() && gpu.type != want_type) {
      continue;
    }
    if (per_gpu_gb > 0 && static_cast<double>(gpu.memory_mb) / 1024.0 + 1e-9 < per_gpu_gb) {
      continue;
    }
    ++matching;
    if (!busy.count(gpu.index)) {
      free_matching.push_back(gpu.index);
    }
  }
  if (matching < spec.gpu_count) {
    std::string reason = "needs " + Needs(spec);
    if (per_gpu_gb > 0) {
      reason += " with " + FormatGb(per_gpu_gb) + " GB each (" + FormatGb(spec.memory_gb) +
                " GB in all)";
    }
    return Fit{.reason = reason + ", " + node_label + " has " + DescribeGpus(node.gpus) +
                         (matching > 0 ? " of which " + std::to_string(matching) + " match" : "")};
  }
  if (static_cast<int>(free_matching.size()) < spec.gpu_count) {
    return Fit{.reason = "needs " + Needs(spec) + ", " + node_label + " has " +
                         DescribeGpus(node.gpus) + " with " +
                         std::to_string(free_matching.size()) + " free"};
  }
  std::sort(free_matching.begin(), free_matching.end());
  free_matching.resize(spec.gpu_count);
  return Fit{.fits = true, .gpu_indices = free_matching};
}

SchedulePlan Schedule(const std::vector<NodeView>& nodes, const std::vector<domain::Job>& queued,
                      core::SystemTime now) {
  std::vector<const domain::Job*> order;
  order.reserve(queued.size());
  for (const auto& job : queued) {
    if (job.state == domain::JobState::kQueued) {
      order.push_back(&job);
    }
  }
  std::stable_sort(order.begin(), order.end(), [](const domain::Job* a, const domain::Job* b) {
    if (a->spec.priority != b->spec.priority) {
      return a->spec.priority > b->spec.priority;
    }
    return a->seq < b->seq;
  });

  std::vector<NodeView> working = nodes;
  SchedulePlan plan;
  for (const domain::Job* job : order) {
    if (job->not_before && *job->not_before > now) {
      plan.waiting[job->id] = "retry backoff until " + core::FormatRfc3339(*job->not_before);
      continue;
    }
    std::string reasons;
    bool placed = false;
    for (auto& node : working) {
      Fit fit = FitOnNode(node, job->spec);
      if (fit.fits) {
        node.busy_gpu_indices.insert(node.busy_gpu_indices.end(), fit.gpu_indices.begin(),
                                     fit.gpu_indices.end());
        plan.assignments.push_back(Assignment{job->id, node.node_id, fit.gpu_indices});
        placed = true;
        break;
      }
      reasons += (reasons.empty() ? "" : "; ") + fit.reason;
    }
    if (!placed) {
      plan.waiting[job->id] = nodes.empty() ? "no nodes registered" : reasons;
    }
  }
  return plan;
}

}  // namespace gpuorch::scheduler
