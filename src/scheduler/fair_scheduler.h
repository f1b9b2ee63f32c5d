// FairScheduler: the Scheduler of MakeScheduler() (scheduler.h has the contract): fair-share queue
// order, best-fit gang placement through the plugin pipeline, quotas, EASY backfill with one
// reservation, and preemption.
//
// A pass has two phases. Phase one walks the queue in order from the front, starting every job that
// fits, or preempting for one that fits nowhere, until the first job that can do neither: the head,
// which gets a reservation (internal/reservation.h). Phase two (backfill) walks, behind the head,
// only the jobs of *dirty* shapes (internal/job_queue.h): a job whose shape found no room last time
// can only start once something it could use changed (GPUs freed where it fits, a new preemptible
// job below it, room in its owner's quota, a different reservation). A job there starts where it
// cannot delay the reservation and leaves its owner's quota room to the head when the head is its
// owner's; one held back only by the reservation, or fitting nowhere, may preempt on another node.
// After a pass that started and preempted nothing, the next returns at once unless something
// changed in between. Incremental passes decide exactly what full passes would (incremental_test).
//
// Preemption: the free GPUs the preemptor needs on the node are claimed for it at once, and each
// victim's GPUs when it ends (MarkEnded; until then it keeps them); claimed GPUs count against the
// preemptor's owner's quota. The pass after the last victim ended starts the preemptor there. A
// preemption is not asked for again while it is in progress.
//
// Not thread-safe: owned by one loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "scheduler/internal/cluster.h"
#include "scheduler/internal/job_queue.h"
#include "scheduler/internal/reservation.h"
#include "scheduler/registry.h"
#include "scheduler/scheduler.h"

namespace gpuorch::scheduler {

class FairScheduler final : public Scheduler {
 public:
  FairScheduler(SchedulerConfig config, Pipeline pipeline);

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

  // Every pass looks at every shape and never returns early: the reference that incremental passes
  // are tested against.
  void SetFullPassesForTest(bool full) { full_passes_ = full; }

 private:
  // Victims asked to stop for a queued job; their GPUs, and the free ones it needs on the node,
  // are claimed for it until it starts.
  struct PendingPreemption {
    int node = -1;
    int account = -1;
    int gpus = 0;  // booked in the account's gpus_claimed
    std::vector<std::string> victims_left;
    std::vector<int> claimed;
  };
  struct ShapeReasons;

  internal::QueuedJob* PlaceInOrder(core::SystemTime now, Plan& plan,
                                    std::optional<internal::Reservation>& reservation);
  void Backfill(const internal::QueuedJob& head, core::SystemTime now, Plan& plan);
  bool LeavesQuotaForHead(const internal::QueuedJob& job, const internal::QueuedJob& head) const;
  int HeadAccount() const;  // the account of the reservation's job, -1 when none
  bool TryPreempt(internal::QueuedJob& job, int exclude_node, core::SystemTime now, Plan& plan);
  void Start(internal::QueuedJob& job, int node, std::vector<int> gpus, bool backfilled,
             core::SystemTime now, Plan& plan);
  void StartPreempted(core::SystemTime now, Plan& plan);
  void NoteChanges();
  std::optional<internal::Running> EndJob(const std::string& job_id, core::SystemTime now,
                                          bool charge);
  void CancelPreemption(const std::string& job_id);
  void CancelPreemptionsOn(int node);
  // Why `job` waits; sets *needs_capacity (when given) when no node has room for it now.
  std::string ReasonFor(const internal::QueuedJob& job, core::SystemTime now,
                        ShapeReasons* cache, bool* needs_capacity = nullptr) const;

  SchedulerConfig config_;
  Pipeline pipeline_;
  internal::Cluster cluster_;
  internal::JobQueue queue_;
  std::optional<internal::Reservation> reservation_;
  std::unordered_map<std::string, PendingPreemption> pending_;  // by preemptor
  std::unordered_map<std::string, std::string> victim_of_;      // victim -> preemptor
  std::vector<std::string> ready_;          // preemptors whose victims have all stopped
  int new_preemptible_priority_ = INT_MAX;  // lowest priority made preemptible since last pass
  uint64_t pass_ = 0;
  bool changed_ = true;
  bool full_passes_ = false;
};

}  // namespace gpuorch::scheduler
