// The cluster as both schedulers see it: nodes and which of their GPUs are held, jobs holding GPUs,
// and per-user accounts (GPUs in use, decayed usage, weight, quota).
//
// Nodes are indexed in buckets keyed by (GPU type, free GPU count), so a best-fit search for a job
// walks free counts upward from its gpu_count and looks at O(buckets) lists, not at every node.
// Changes are fed to the incremental scheduler as two lists: nodes whose free count grew, and
// accounts whose GPUs in use or usage changed.
//
// Not thread-safe: owned by its scheduler's loop.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "scheduler/plugin.h"
#include "scheduler/scheduler.h"

namespace gpuorch::scheduler::internal {

struct Account {
  std::string owner;
  double weight = 1;
  Quota quota;
  int gpus_in_use = 0;
  int gpus_claimed = 0;    // GPUs being freed by preemption for the user's queued jobs
  int queued_jobs = 0;     // kept by the scheduler that owns the queue
  double usage_gpu_s = 0;  // as of usage_at
  core::SystemTime usage_at{};
  double share_key = -std::numeric_limits<double>::infinity();  // fair_share.h ShareKey
  bool touched = false;

  // What counts against max_gpus_in_use: held GPUs and those being freed for the user.
  int QuotaUse() const { return gpus_in_use + gpus_claimed; }
};

struct Running {
  RunningJob job;
  int account = -1;
  int node = -1;                      // -1 while its node is not (or no longer) known
  std::optional<JobRequest> request;  // when a Plan started it: Unreserve() queues it again
  bool victim = false;                // a Preemption asked it to stop
};

struct Node {
  NodeInfo info;
  int type = 0;
  std::vector<int> gpus;        // info.gpu_indices, ascending, unique
  std::vector<uint16_t> holds;  // per gpus[i]: running jobs and claims holding it
  int free = 0;
  int bucket_slot = -1;
  std::vector<Running*> running;
  int preemptible = 0;  // running preemptible jobs here
  int preemptible_slot = -1;
  bool alive = false;
  bool freed = false;  // listed for TakeFreedNodes()

  plugins::NodeState State() const { return plugins::NodeState{info, free}; }
  plugins::NodeState EmptyState() const {
    return plugins::NodeState{info, static_cast<int>(gpus.size())};
  }
};

class Cluster final : public plugins::UserView {
 public:
  explicit Cluster(const SchedulerConfig& config);

  // Nodes. UpsertNode keeps the jobs running on a replaced node (holding those of their GPUs that
  // still exist); RemoveNode forgets them and returns their ids.
  int UpsertNode(const NodeInfo& info);
  std::vector<std::string> RemoveNode(const std::string& id);
  int FindNode(const std::string& id) const;
  const Node& node(int index) const { return nodes_[index]; }
  int node_slots() const { return static_cast<int>(nodes_.size()); }
  int live_nodes() const { return static_cast<int>(index_.size()); }
  int num_types() const { return static_cast<int>(type_names_.size()); }
  int TypeIndex(const std::string& type) const;  // -1 when no node ever had it
  int max_gpus() const { return max_gpus_; }     // the most GPUs of any node
  // Live nodes of `type` with exactly `free` free GPUs, in no particular order.
  const std::vector<int>& Bucket(int type, int free) const;
  // Bumped by every node upsert and removal.
  uint64_t nodes_version() const { return nodes_version_; }

  // GPUs. LowestFree returns the `count` lowest free GPUs of the node not in `exclude` (fewer when
  // there are not that many). Hold and Release take and give back GPUs outside any job (claims).
  std::vector<int> LowestFree(int node, int count, const std::vector<int>& exclude = {}) const;
  void Hold(int node, const std::vector<int>& gpus);
  void Release(int node, const std::vector<int>& gpus);

  // Jobs holding GPUs.
  Running* FindRunning(const std::string& job_id);
  const Running* FindRunning(const std::string& job_id) const;
  // A Plan's assignment: holds `gpus` of `node` for `request` from `now` until its runtime bound.
  Running& Start(JobRequest request, int node, std::vector<int> gpus, core::SystemTime now);
  // MarkRunning: records (or replaces) a job holding GPUs.
  Running& Record(const RunningJob& job);
  // Frees the job's GPUs and forgets it; with `charge`, books gpus x seconds run to its owner.
  // Returns what it was (`node` still names where it ran), nullopt for an unknown job.
  std::optional<Running> End(const std::string& job_id, core::SystemTime now, bool charge);
  size_t running_jobs() const { return running_.size(); }
  // Nodes with at least one running preemptible job, and the lowest priority among those jobs.
  const std::vector<int>& NodesWithPreemptible() const { return preemptible_nodes_; }
  int LowestPreemptiblePriority() const;

  // Accounts, created on first mention.
  int AccountOf(const std::string& owner);
  int FindAccount(const std::string& owner) const;  // -1 when never seen
  Account& account(int index) { return accounts_[index]; }
  const Account& account(int index) const { return accounts_[index]; }
  int num_accounts() const { return static_cast<int>(accounts_.size()); }
  // The owner's decayed GPU-seconds divided by their weight at `now`.
  double ShareAt(int account, core::SystemTime now) const;
  void TouchAccount(int account);

  // Books GPUs being freed by preemption for one of the account's queued jobs (negative: no more).
  void Claim(int account, int gpus);

  // plugins::UserView. GpusInUse counts claimed GPUs too: they are the user's as far as quota goes.
  int GpusInUse(const std::string& owner) const override;
  Quota QuotaOf(const std::string& owner) const override;
  // Replaces the owner's quota (nullopt: the configured default) and touches their account.
  void SetQuota(const std::string& owner, const std::optional<Quota>& quota);

  // Change feeds: what grew free, whose accounts changed, since the last call.
  std::vector<int> TakeFreedNodes();
  std::vector<int> TakeTouchedAccounts();

 private:
  void SetHolds(Node& node, const std::vector<int>& gpus, int delta);
  void Rebucket(int index, int new_free);
  void Unbucket(int index);
  void Attach(Running& running, int node);
  void Detach(Running& running);
  void CountPreemptible(Running& running, int delta);
  void NoteFreed(int index);

  SchedulerConfig config_;
  std::vector<Node> nodes_;
  std::vector<int> spare_slots_;
  std::unordered_map<std::string, int> index_;
  std::vector<std::string> type_names_;
  std::unordered_map<std::string, int> type_index_;
  std::vector<std::vector<std::vector<int>>> buckets_;  // [type][free] -> node indices
  int max_gpus_ = 0;
  uint64_t nodes_version_ = 0;

  std::unordered_map<std::string, Running> running_;
  std::unordered_map<std::string, std::vector<std::string>> waiting_for_node_;  // node id -> jobs
  std::vector<int> preemptible_nodes_;
  std::map<int, int> preemptible_priorities_;  // priority -> running preemptible jobs

  std::vector<Account> accounts_;
  std::unordered_map<std::string, int> account_index_;

  std::vector<int> freed_nodes_;
  std::vector<int> touched_accounts_;
};

}  // namespace gpuorch::scheduler::internal
