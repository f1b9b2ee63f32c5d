#include "scheduler/internal/explain.h"

namespace gpuorch::scheduler::internal {

std::string WithCommas(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string WhyNoNode(const Cluster& cluster, const Pipeline& pipeline, const JobRequest& job) {
  if (cluster.live_nodes() == 0) {
    return "no nodes registered";
  }
  const plugins::CycleState quiet{.users = cluster, .want_reasons = false};
  const plugins::CycleState loud{.users = cluster, .want_reasons = true};
  int first = -1;
  int best = -1;
  for (int index = 0; index < cluster.node_slots(); ++index) {
    const Node& node = cluster.node(index);
    if (!node.alive) {
      continue;
    }
    first = first < 0 ? index : first;
    if (pipeline.Accepts(quiet, job, node.EmptyState()) &&
        (best < 0 || node.free > cluster.node(best).free)) {
      best = index;
    }
  }
  if (cluster.live_nodes() == 1) {
    std::string reason = pipeline.Filter(loud, job, cluster.node(first).State()).reason;
    return reason.empty() ? "fits node " + cluster.node(first).info.id : reason;
  }
  const std::string head = "needs " + plugins::DescribeNeed(job) + " on one node; ";
  const std::string checked = WithCommas(cluster.live_nodes());
  if (best >= 0) {
    return head + "the best node " + cluster.node(best).info.id + " has " +
           std::to_string(cluster.node(best).free) + " free (" + checked + " nodes checked)";
  }
  return head + "none of " + checked + " nodes qualifies, e.g. " +
         pipeline.Filter(loud, job, cluster.node(first).EmptyState()).reason;
}

}  // namespace gpuorch::scheduler::internal
