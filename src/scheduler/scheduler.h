// The cluster scheduler: which queued job runs next, and on which node's GPUs.
//
// Queue order: `priority` (higher first), then fair share between users (a user's recent GPU-seconds,
// decayed with a half-life, divided by the user's weight: the lighter user goes first), then
// submission order (`seq`). Placement is filter → score → bind: every filter plugin must accept a
// node, score plugins rank the feasible ones (best fit by default: the node left with the fewest free
// GPUs, so a 2-GPU job does not break the only free 4-GPU block), and the job is bound to that node.
// All of a job's GPUs are on one node (gang placement); a GPU is never given to two jobs.
//
// Quotas per user: a job whose owner would exceed max_gpus_in_use waits (and says so);
// max_queued_jobs is enforced at submit by the caller (the store), and reported here for views.
// Backfill: when the head job cannot start, it gets a reservation (the earliest time enough GPUs free
// up on one node, from running jobs' runtime bounds); jobs behind it may start now only where they
// cannot delay that reservation. Preemption (opt in per job, `preemptible`): a job that cannot
// otherwise start may stop the fewest lower-priority preemptible jobs on one node.
//
// The Scheduler is a pure, in-memory state machine: no I/O, time passed in. Schedule() returns a Plan
// and updates its own state as if every assignment were bound (the job moves from the queue to the
// running set); the caller binds each assignment and calls Unreserve() when binding fails.
// Not thread-safe: owned by one loop.
#pragma once

#include <chrono>
#include <climits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace gpuorch::scheduler {

// A queued job as the scheduler sees it.
struct JobRequest {
  std::string id;
  std::string owner = "default";
  int priority = 0;
  int64_t seq = 0;                                    // submission order, unique
  std::string gpu_type;                               // canonical (domain::CanonicalGpuType); "" any
  int gpu_count = 1;
  double memory_gb = 0;                               // GPU memory needed over all its GPUs
  std::map<std::string, std::string> node_selector;   // labels a node must carry, all of them
  std::vector<std::string> allowed_providers;         // empty: any provider
  bool needs_container = false;                       // names a docker_image
  bool preemptible = false;
  std::chrono::seconds runtime_bound{3600};           // its timeout: it ends by start + this
  std::optional<core::SystemTime> not_before;         // retry backoff: not before this

  bool operator==(const JobRequest&) const = default;
};

// A node with GPUs of one type. A machine with several GPU types is given as one NodeInfo per type
// with the same `node_id` but different `id`s (e.g. "local" and "local/T4").
struct NodeInfo {
  std::string id;                                     // unique among nodes
  std::string node_id;                                // the machine; assignments name this
  std::string provider = "local";
  std::map<std::string, std::string> labels;
  std::string gpu_type;                               // canonical
  double gpu_memory_gb = 0;                           // per GPU
  std::vector<int> gpu_indices;                       // the machine's indices of these GPUs
  bool container_runtime = false;

  bool operator==(const NodeInfo&) const = default;
};

// A job holding GPUs: started by a Plan, or found running (recovery, another replica).
struct RunningJob {
  std::string job_id;
  std::string owner = "default";
  std::string node;                                   // NodeInfo::id
  std::vector<int> gpu_indices;
  int priority = 0;
  bool preemptible = false;
  core::SystemTime started_at{};
  core::SystemTime expected_end{};                    // started_at + runtime bound

  bool operator==(const RunningJob&) const = default;
};

struct Quota {
  int max_gpus_in_use = INT_MAX;
  int max_queued_jobs = INT_MAX;
  // When set, the owner's jobs that need GPUs wait with this reason (e.g. a spent monthly budget),
  // whatever max_gpus_in_use allows.
  std::string hold_reason;

  bool operator==(const Quota&) const = default;
};

struct SchedulerConfig {
  std::chrono::seconds fair_share_half_life{3600};
  double default_weight = 1.0;
  std::map<std::string, double> user_weights;
  Quota default_quota;
  std::map<std::string, Quota> user_quotas;
  bool backfill = true;
  bool preemption = true;
  // Score plugins by registry name, with weights; empty: {"best_fit": 1}.
  std::map<std::string, int> score_plugins;
};

struct Assignment {
  std::string job_id;
  std::string node;                                   // NodeInfo::id
  std::string node_id;                                // NodeInfo::node_id
  std::vector<int> gpu_indices;                       // ascending
  bool backfilled = false;                            // started ahead of a blocked, earlier job

  bool operator==(const Assignment&) const = default;
};

// `job_id` may start once `victims` (running, preemptible, lower priority) have stopped. The victims'
// GPUs stay held until the caller reports them ended (MarkEnded) and requeues them (Enqueue).
struct Preemption {
  std::string job_id;
  std::string node;
  std::vector<std::string> victims;

  bool operator==(const Preemption&) const = default;
};

struct Plan {
  std::vector<Assignment> assignments;                // in the order to bind them
  std::vector<Preemption> preemptions;
};

// Why a queued job waits, and where it stands.
struct WaitInfo {
  int position = 0;                                   // 1 = next in queue order
  std::string reason;  // e.g. "needs 4 x RTX4090, node local has 6 x RTX4090 with 2 free"
  // True when it waits only because no node has room for it now (not for quota, backoff, a
  // reservation or preemption): more capacity would let it start.
  bool needs_capacity = false;
};

struct QueueEntry {
  std::string job_id;
  std::string owner;
  int priority = 0;
  int gpu_count = 0;
  WaitInfo wait;
};

class Scheduler {
 public:
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  virtual ~Scheduler() = default;

  // Adds or replaces a node. REQUIRES: gpu_indices unique within node_id.
  virtual void UpsertNode(const NodeInfo& node) = 0;
  // Removes a node; jobs running there are forgotten (the caller requeues them).
  virtual void RemoveNode(const std::string& id) = 0;

  // Adds (or replaces) a queued job.
  virtual void Enqueue(const JobRequest& job) = 0;
  // Removes a queued job (cancelled). No-op when not queued.
  virtual void Dequeue(const std::string& job_id) = 0;

  // Records a job holding GPUs (recovery, or a binding made outside a Plan).
  virtual void MarkRunning(const RunningJob& job) = 0;
  // The job's processes ended at `now`: frees its GPUs and charges its GPU-seconds to its owner's
  // fair share. No-op for unknown jobs.
  virtual void MarkEnded(const std::string& job_id, core::SystemTime now) = 0;
  // Binding an assignment failed: frees its GPUs and puts the job back in the queue.
  virtual void Unreserve(const std::string& job_id) = 0;

  // One scheduling pass at `now`. Cheap when little changed since the last pass (incremental).
  virtual Plan Schedule(core::SystemTime now) = 0;

  // Why the queued job waits, as of `now`; nullopt when it is not queued.
  virtual std::optional<WaitInfo> Explain(const std::string& job_id, core::SystemTime now) const = 0;
  // The queue in order, at most `limit` entries, each with its reason. A non-empty `owner` keeps
  // only that owner's jobs (still up to `limit` of them); positions stay those in the whole queue.
  virtual std::vector<QueueEntry> Queue(core::SystemTime now, size_t limit,
                                        std::string_view owner) const = 0;

  virtual int QueuedJobs(const std::string& owner) const = 0;
  virtual int GpusInUse(const std::string& owner) const = 0;
  // The owner's decayed GPU-seconds divided by their weight, at `now`.
  virtual double FairShareUsage(const std::string& owner, core::SystemTime now) const = 0;
  virtual Quota QuotaOf(const std::string& owner) const = 0;
  // Replaces the quota of `owner` (nullopt: back to the configured default); the next pass applies
  // it. Running jobs are not stopped by a smaller quota.
  virtual void SetQuota(const std::string& owner, const std::optional<Quota>& quota) = 0;

 protected:
  Scheduler() = default;
};

// The scheduler with the built-in plugins (filters: gpu type, gpu count, gpu memory, node labels,
// allowed providers, container runtime, quota; scores: best_fit).
std::unique_ptr<Scheduler> MakeScheduler(SchedulerConfig config);

// Strict first-come-first-served over the same nodes and filters: queue order is priority then seq,
// the head job blocks every job behind it until it starts, first fitting node, no fair share,
// backfill or preemption. The baseline the simulator compares against.
std::unique_ptr<Scheduler> MakeFifoScheduler(SchedulerConfig config);

}  // namespace gpuorch::scheduler
