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
  agent::ProcessRunner& runner;
  const core::Clock& clock;
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

  NodeStatus Node() const;
  // Why a queued job waits and its queue position, or nullopt when it is not queued here.
  std::optional<scheduler::WaitInfo> Explain(const std::string& job_id) const;
  std::optional<std::string> WaitingReason(const std::string& job_id) const;
  // The first `limit` queued jobs in scheduling order, each with why it waits.
  std::vector<scheduler::QueueEntry> Queue(size_t limit) const;
  // True while the job's attempt `attempt` has a process on this node.
  bool IsAttemptLive(const std::string& job_id, int attempt) const;
  // Where attempt `attempt` of the job keeps its files (log, pid, exit).
  std::string AttemptDir(const std::string& job_id, int attempt) const;

 private:
  struct LiveAttempt {
    std::string job_id;
    int attempt = 0;
    agent::AttemptHandle handle;
    std::vector<int> gpu_indices;
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
  bool StartAttempt(const domain::Job& job, const std::vector<int>& gpu_indices);
  // The attempt of `job` (state scheduled or running) ended or vanished: succeed, retry or fail.
  // Returns the job as stored after, when that worked.
  std::optional<domain::Job> SettleAttempt(const domain::Job& job, std::optional<int> exit_code,
                                           const std::string& why);
  void Requeue(const domain::Job& job);
  void RecordExitOfStoppedJob(const std::string& job_id, std::optional<int> exit_code);
  void BeginStopping(LiveAttempt& live);
  core::Result<domain::Job> Update(const store::JobUpdate& update);
  std::vector<std::string> BuildArgv(const domain::Job& job,
                                     const std::vector<int>& gpu_indices) const;
  void PublishView();

  store::Store& store_;
  agent::ProcessRunner& runner_;
  const core::Clock& clock_;
  const JobControllerOptions options_;

  mutable std::mutex mu_;  // serializes Tick, Recover, Cancel and reads of scheduler_
  std::map<std::string, LiveAttempt> live_;  // GUARDED_BY(mu_), by job id
  std::unique_ptr<scheduler::Scheduler> scheduler_;  // GUARDED_BY(mu_)
  std::map<int, std::string> scheduler_node_of_gpu_;  // GPU index → scheduler NodeInfo id
  std::atomic<bool> reload_{true};           // re-read the queue from the store on the next pass
  core::MonotonicTime last_reload_{};        // GUARDED_BY(mu_)
  std::mutex incoming_mu_;
  std::vector<domain::Job> incoming_;        // GUARDED_BY(incoming_mu_): accepted, not yet queued

  mutable std::mutex view_mu_;
  NodeStatus view_;                                  // GUARDED_BY(view_mu_)
  std::map<std::string, int> live_view_;             // GUARDED_BY(view_mu_): job id → attempt

  std::unique_ptr<core::PeriodicLoop> loop_;
};

}  // namespace gpuorch::lifecycle
