// FifoScheduler: the baseline of MakeFifoScheduler() (scheduler.h). Strict first come, first
// served: queue order is priority, then seq; a pass starts jobs from the front, each on the first
// node (in the order nodes were added) that every filter accepts, and stops at the first job that
// fits nowhere: it blocks everyone behind it. Jobs in retry backoff or over their owner's quota
// cannot start at all, so they are passed over rather than blocking. No fair share in the order
// (usage is still reported), no backfill, no preemption.
//
// Not thread-safe: owned by one loop.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "scheduler/internal/cluster.h"
#include "scheduler/registry.h"
#include "scheduler/scheduler.h"

namespace gpuorch::scheduler {

class FifoScheduler final : public Scheduler {
 public:
  FifoScheduler(SchedulerConfig config, Pipeline pipeline);

  void UpsertNode(const NodeInfo& node) override;
  void RemoveNode(const std::string& id) override;
  void Enqueue(const JobRequest& job) override;
  void Dequeue(const std::string& job_id) override;
  void MarkRunning(const RunningJob& job) override;
  void MarkEnded(const std::string& job_id, core::SystemTime now) override;
  void Unreserve(const std::string& job_id) override;
  Plan Schedule(core::SystemTime now) override;
  std::optional<WaitInfo> Explain(const std::string& job_id, core::SystemTime now) const override;
  std::vector<QueueEntry> Queue(core::SystemTime now, size_t limit,
                                std::string_view owner) const override;
  int QueuedJobs(const std::string& owner) const override;
  int GpusInUse(const std::string& owner) const override;
  double FairShareUsage(const std::string& owner, core::SystemTime now) const override;
  Quota QuotaOf(const std::string& owner) const override;
  void SetQuota(const std::string& owner, const std::optional<Quota>& quota) override;

 private:
  using Key = std::tuple<int, int64_t, std::string>;  // -priority, seq, id
  struct Queued {
    JobRequest req;
    int account = -1;
  };

  static Key KeyOf(const JobRequest& req) { return {-req.priority, req.seq, req.id}; }
  bool Ready(const Queued& job, core::SystemTime now) const;
  const Queued* HeadAt(core::SystemTime now) const;
  std::string ReasonFor(const Queued& job, const Queued* head, core::SystemTime now) const;

  Pipeline pipeline_;
  internal::Cluster cluster_;
  std::map<Key, Queued> queue_;
  std::unordered_map<std::string, Key> keys_;
  bool changed_ = true;
};

}  // namespace gpuorch::scheduler
