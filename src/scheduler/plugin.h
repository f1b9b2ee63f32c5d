// The extension points of the scheduler's placement pipeline (STYLE.md section 8): filters decide
// whether a node can take a job, scores rank the nodes that can. Each plugin keeps its logic in a
// pure function beside it (plugins/<name>.h) and is a thin adapter around that function.
//
// Plugins are stateless after construction: const methods, safe to call from any thread.
#pragma once

#include <string>
#include <string_view>

#include "scheduler/scheduler.h"

namespace gpuorch::scheduler::plugins {

// A filter's decision: ok, or not with a reason (empty unless the cycle asked for reasons).
struct Fit {
  bool ok = true;
  std::string reason;  // e.g. "needs 4 x RTX4090, node n1 has 8 x RTX4090 with 2 free"

  static Fit Yes() { return Fit{}; }
  static Fit No(std::string reason = {}) { return Fit{.ok = false, .reason = std::move(reason)}; }
};

// What a plugin may read about users beyond the job and the node. Owned by the scheduler; borrowed
// for one call.
class UserView {
 public:
  UserView(const UserView&) = delete;
  UserView& operator=(const UserView&) = delete;
  virtual ~UserView() = default;

  // GPUs held right now by the owner's running jobs (including ones started earlier in this cycle).
  virtual int GpusInUse(const std::string& owner) const = 0;
  virtual Quota QuotaOf(const std::string& owner) const = 0;

 protected:
  UserView() = default;
};

// One scheduling cycle's context. `want_reasons` false is the hot path: filters then decide without
// formatting a reason.
struct CycleState {
  const UserView& users;
  bool want_reasons = false;
};

// A node as a filter sees it: its description and how many of its GPUs are free now.
struct NodeState {
  const NodeInfo& info;
  int free_gpus = 0;
};

class FilterPlugin {
 public:
  FilterPlugin(const FilterPlugin&) = delete;
  FilterPlugin& operator=(const FilterPlugin&) = delete;
  virtual ~FilterPlugin() = default;

  // The registry name, e.g. "gpu_type".
  virtual std::string_view Name() const = 0;
  // The job-level part, run once per job before any node (k8s PreFilter); default: ok.
  virtual Fit PreFilter(const CycleState& cycle, const JobRequest& job) const { return Fit::Yes(); }
  // Whether `node` can take `job` now.
  virtual Fit Filter(const CycleState& cycle, const JobRequest& job,
                     const NodeState& node) const = 0;

 protected:
  FilterPlugin() = default;
};

class ScorePlugin {
 public:
  ScorePlugin(const ScorePlugin&) = delete;
  ScorePlugin& operator=(const ScorePlugin&) = delete;
  virtual ~ScorePlugin() = default;

  virtual std::string_view Name() const = 0;
  // 0..100, higher is better, for a node every filter accepted.
  virtual int Score(const CycleState& cycle, const JobRequest& job,
                    const NodeState& node) const = 0;

 protected:
  ScorePlugin() = default;
};

// "4 x RTX4090" ("4 x GPU" when any type will do).
std::string DescribeNeed(const JobRequest& job);
// "node n1 has 8 x RTX4090" ("no GPUs" when it has none).
std::string DescribeNode(const NodeInfo& node);

}  // namespace gpuorch::scheduler::plugins
