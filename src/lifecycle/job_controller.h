// The job controller of one node: turns scheduling decisions into store transitions and processes,
// and watches every attempt to its end. The one place where jobs on this node change state after
// submit (besides Cancel, which it also owns).
//
// Promises: a job's GPUs are held from the moment it is scheduled until its process group has exited
// (also after cancel or timeout), so no GPU is ever used by two jobs at once; at most one live attempt
// per job; every state change is a compare-and-set in the store. After a restart, Recover() re-attaches
// attempts whose processes still run, settles those that ended, and marks vanished ones lost (retried
// by the job's retry policy).
//
// Thread-safe. Tick() runs on the controller's loop; Cancel(), Node() and WaitingReason() may be
// called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/process_runner.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/periodic_loop.h"
#include "domain/gpu.h"
#include "domain/job.h"
#include "scheduler/scheduler.h"
#include "store/store.h"

namespace gpuorch::lifecycle {

struct JobControllerOptions {
  std::string data_dir;  // attempts live in <data_dir>/jobs/<job_id>/attempt-<n>/
  std::string node_id = "local";
  std::vector<domain::GpuDevice> gpus;
  std::string gpu_source = "none";  // "declared", "nvidia-smi" or "none"
  std::string container_runtime;    // CLI of a working runtime ("docker"); empty: none here
  std::chrono::seconds kill_grace{10};
  std::chrono::seconds retry_backoff_base{2};
  std::chrono::seconds retry_backoff_max{300};
  int64_t default_timeout_seconds = 24 * 3600;
  std::chrono::milliseconds loop_interval{200};
  scheduler::SchedulerConfig scheduling;  // queue order, fair share, quotas, backfill, preemption
};

struct JobControllerDeps {
  store::Store& store;
  agent::ProcessRunner& runner;  // runs attempts on the local node
  const core::Clock& clock;
};

// A node other than the local one: a machine whose agent registered (a cloud instance we rented, or
// a machine a user runs `gpuorch agent` on). Its runner hands attempts to that agent.
struct NodeSpec {
  std::string node_id;
  std::vector<domain::GpuDevice> gpus;
  std::string provider = "local";
  std::map<std::string, std::string> labels;
  std::string container_runtime;                 // CLI of a working runtime there; empty: none
  std::shared_ptr<agent::ProcessRunner> runner;  // required
  std::string instance_id;                       // the instance it runs on; empty: not rented
  double price_per_hour = 0;                     // the instance's price; 0: not billed
};

struct GpuUsage {
  domain::GpuDevice gpu;
  std::string job_id;  // empty when free
};

struct NodeStatus {
  std::string node_id;
  std::vector<GpuUsage> gpus;
  std::string gpu_source;
  bool container_runtime = false;
  int live_attempts = 0;
  std::string provider = "local";
  std::string instance_id;
  bool lost = false;
};

class JobController {
 public:
  JobController(JobControllerDeps deps, JobControllerOptions options);
  ~JobController();
  JobController(const JobController&) = delete;
  JobController& operator=(const JobController&) = delete;

  // Settles what a previous process left: call once, before Start(). Blocks on the store.
  [[nodiscard]] core::Status Recover();
  // One pass: settle ended attempts, enforce timeouts and kill escalation, start what fits.
  void Tick();
  // Runs Tick() on a background loop every loop_interval, or sooner after Notify().
  void Start();
  void Stop();
  // A job was accepted (committed as queued): queue it and schedule soon. Never blocks on the loop.
  void Submitted(const domain::Job& job);
  // Something changed outside the controller: re-read the queued jobs from the store and schedule.
  void Notify();

  // Cancels the job: queued → cancelled; scheduled/running → cancelled and its process group gets
  // SIGTERM now and SIGKILL after kill_grace. kNotFound; kFailedPrecondition (reason "conflict") when
  // the job already ended. Blocks on the store.
  [[nodiscard]] core::Result<domain::Job> Cancel(const std::string& job_id);

  // Adds (or replaces) a remote node; the scheduler may place jobs there from the next pass.
  void AddNode(NodeSpec node);
  // The node is gone (lost heartbeats, spot interruption, terminated): nothing more is placed there,
  // and attempts that were running there are requeued on the next pass without counting as failed
  // attempts (the infrastructure failed, not the job). Its runner must answer kLost for them.
  void NodeLost(const std::string& node_id, const std::string& reason);

  // The local node.
  NodeStatus Node() const;
  // Every node (local first), with GPU holders.
  std::vector<NodeStatus> Nodes() const;
  // Live attempts per node id (nodes without any are absent).
  std::map<std::string, int> LiveAttemptsByNode() const;
  // Why a queued job waits and its queue position, or nullopt when it is not queued here.
  std::optional<scheduler::WaitInfo> Explain(const std::string& job_id) const;
  // Replaces the quota of `owner` (nullopt: the configured default) from the next pass on.
  void SetQuota(const std::string& owner, const std::optional<scheduler::Quota>& quota);
  std::optional<std::string> WaitingReason(const std::string& job_id) const;
  // The first `limit` queued jobs in scheduling order, each with why it waits; a non-empty `owner`
  // keeps only that owner's jobs, at their positions in the whole queue.
  std::vector<scheduler::QueueEntry> Queue(size_t limit, std::string_view owner = {}) const;
  // True while the job's attempt `attempt` has a process on this node.
  bool IsAttemptLive(const std::string& job_id, int attempt) const;
  // Where attempt `attempt` of the job keeps its files (log, pid, exit).
  std::string AttemptDir(const std::string& job_id, int attempt) const;

 private:
  struct NodeSlot {
    NodeSpec spec;
    agent::ProcessRunner* runner = nullptr;  // spec.runner, or the local runner
    bool lost = false;
    std::string lost_reason;
  };
  struct LiveAttempt {
    std::string node_id;
    std::string job_id;
    int attempt = 0;
    agent::AttemptHandle handle;
    std::vector<int> gpu_indices;
    bool billed = false;                            // a usage record is open for it
    std::optional<core::SystemTime> deadline;       // wall-clock timeout of the attempt
    bool stopping = false;                          // cancel or timeout: the job is already terminal
    std::string preempted_by;                       // set: stopping to make room; requeued on exit
    std::optional<core::MonotonicTime> term_sent_at;
    bool kill_sent = false;
  };

  void PollAttempts(bool& freed);
  void Schedule();
  void ReloadQueue();
  void TrackRunning(const domain::Job& job, const LiveAttempt& live);
  // Starts the job on `gpu_indices`; false when it did not start (the job is requeued or failed).
  bool StartAttempt(const domain::Job& job, const std::string& node_id,
                    const std::vector<int>& gpu_indices);
  // Registers the node's GPUs with the scheduler (one scheduler node per GPU type).
  void UpsertSchedulerNodes(const NodeSlot& slot);
  agent::ProcessRunner& RunnerOf(const std::string& node_id);
  // Requeues the job of an attempt that ended because its node went away.
  void RequeueAfterNodeLoss(const domain::Job& job, const LiveAttempt& live,
                            const std::string& why);
  void CloseUsage(const LiveAttempt& live);
  // The attempt of `job` (state scheduled or running) ended or vanished: succeed, retry or fail.
  // Returns the job as stored after, when that worked.
  std::optional<domain::Job> SettleAttempt(const domain::Job& job, std::optional<int> exit_code,
                                           const std::string& why);
  void Requeue(const domain::Job& job);
  void RecordExitOfStoppedJob(const std::string& job_id, std::optional<int> exit_code);
  void BeginStopping(LiveAttempt& live);
  core::Result<domain::Job> Update(const store::JobUpdate& update);
  std::vector<std::string> BuildArgv(const domain::Job& job, const std::string& container_runtime,
                                     const std::vector<int>& gpu_indices) const;
  void PublishView();

  store::Store& store_;
  agent::ProcessRunner& runner_;
  const core::Clock& clock_;
  const JobControllerOptions options_;

  mutable std::mutex mu_;  // serializes Tick, Recover, Cancel and reads of scheduler_
  std::map<std::string, LiveAttempt> live_;  // GUARDED_BY(mu_), by job id
  std::unique_ptr<scheduler::Scheduler> scheduler_;  // GUARDED_BY(mu_)
  std::map<std::string, NodeSlot> nodes_;  // GUARDED_BY(mu_), by node id; the local node too
  // (node id, GPU index) → scheduler NodeInfo id. GUARDED_BY(mu_).
  std::map<std::pair<std::string, int>, std::string> scheduler_node_of_gpu_;
  std::atomic<bool> reload_{true};           // re-read the queue from the store on the next pass
  core::MonotonicTime last_reload_{};        // GUARDED_BY(mu_)
  std::mutex incoming_mu_;
  std::vector<domain::Job> incoming_;        // GUARDED_BY(incoming_mu_): accepted, not yet queued

  mutable std::mutex view_mu_;
  std::vector<NodeStatus> view_;                     // GUARDED_BY(view_mu_), local first
  std::map<std::string, int> live_view_;             // GUARDED_BY(view_mu_): job id → attempt

  std::unique_ptr<core::PeriodicLoop> loop_;
};

}  // namespace gpuorch::lifecycle
