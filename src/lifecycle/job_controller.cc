#include "lifecycle/job_controller.h"

#include <csignal>
#include <set>

#include <spdlog/spdlog.h>

#include "core/log.h"
#include "domain/gpu.h"

namespace gpuorch::lifecycle {
namespace {

using domain::Job;
using domain::JobState;

// How often the queued jobs are re-read from the store, to pick up what no Submitted() announced.
constexpr std::chrono::seconds kReloadEvery{30};

scheduler::JobRequest ToRequest(const Job& job) {
  return scheduler::JobRequest{
      .id = job.id,
      .owner = job.owner,
      .priority = job.spec.priority,
      .seq = job.seq,
      .gpu_type = domain::CanonicalGpuType(job.spec.gpu_type),
      .gpu_count = job.spec.gpu_count,
      .memory_gb = job.spec.memory_gb,
      .node_selector = job.spec.node_selector,
      .allowed_providers = job.spec.allowed_providers,
      .needs_container = !job.spec.docker_image.empty(),
      .preemptible = job.spec.preemptible,
      .runtime_bound = std::chrono::seconds(job.spec.timeout_seconds),
      .not_before = job.not_before};
}

std::string JoinInts(const std::vector<int>& values, const char* sep) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    out += (i ? sep : "") + std::to_string(values[i]);
  }
  return out;
}

std::string DescribeExit(std::optional<int> exit_code) {
  if (!exit_code) {
    return "exit code unknown";
  }
  if (*exit_code > 128 && *exit_code < 128 + 65) {
    return "killed by signal " + std::to_string(*exit_code - 128) + " (exit code " +
           std::to_string(*exit_code) + ")";
  }
  return "exit code " + std::to_string(*exit_code);
}

}  // namespace

JobController::JobController(JobControllerDeps deps, JobControllerOptions options)
    : store_(deps.store),
      runner_(deps.runner),
      clock_(deps.clock),
      options_(std::move(options)),
      scheduler_(scheduler::MakeScheduler(options_.scheduling)) {
  NodeSlot local{.spec = NodeSpec{.node_id = options_.node_id,
                                  .gpus = options_.gpus,
                                  .container_runtime = options_.container_runtime},
                 .runner = &runner_};
  auto [it, inserted] = nodes_.emplace(options_.node_id, std::move(local));
  UpsertSchedulerNodes(it->second);
  PublishView();
}

void JobController::UpsertSchedulerNodes(const NodeSlot& slot) {
  // The scheduler places jobs on nodes of one GPU type: a machine is one such node per type.
  const NodeSpec& spec = slot.spec;
  std::map<std::string, scheduler::NodeInfo> by_type;
  for (const auto& gpu : spec.gpus) {
    auto [it, inserted] = by_type.try_emplace(gpu.type);
    scheduler::NodeInfo& node = it->second;
    if (inserted) {
      node = scheduler::NodeInfo{
          .id = by_type.size() == 1 ? spec.node_id : spec.node_id + "/" + gpu.type,
          .node_id = spec.node_id,
          .provider = spec.provider,
          .labels = spec.labels,
          .gpu_type = gpu.type,
          .gpu_memory_gb = static_cast<double>(gpu.memory_mb) / 1024.0,
          .container_runtime = !spec.container_runtime.empty()};
    }
    node.gpu_memory_gb = std::min(node.gpu_memory_gb, static_cast<double>(gpu.memory_mb) / 1024.0);
    node.gpu_indices.push_back(gpu.index);
    scheduler_node_of_gpu_[{spec.node_id, gpu.index}] = node.id;
  }
  for (const auto& [type, node] : by_type) {
    scheduler_->UpsertNode(node);
  }
}

agent::ProcessRunner& JobController::RunnerOf(const std::string& node_id) {
  auto it = nodes_.find(node_id);
  return it != nodes_.end() && it->second.runner != nullptr ? *it->second.runner : runner_;
}

void JobController::AddNode(NodeSpec node) {
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node.node_id);
    if (it != nodes_.end() && !it->second.lost) {
      // Re-announced (a restart of the service or the agent): keep its GPUs' holders as they are.
      it->second.spec.runner = node.runner;
      it->second.runner = node.runner.get();
      it->second.spec.price_per_hour = node.price_per_hour;
      it->second.spec.instance_id = node.instance_id;
    } else {
      NodeSlot slot{.spec = std::move(node)};
      slot.runner = slot.spec.runner.get();
      const std::string id = slot.spec.node_id;
      nodes_[id] = std::move(slot);
      UpsertSchedulerNodes(nodes_[id]);
      spdlog::info("node {} joined with {} GPU(s)", id, nodes_[id].spec.gpus.size());
    }
    PublishView();
  }
  Notify();
}

void JobController::NodeLost(const std::string& node_id, const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node_id);
    if (it == nodes_.end() || it->second.lost || node_id == options_.node_id) {
      return;
    }
    it->second.lost = true;
    it->second.lost_reason = reason;
    std::set<std::string> scheduler_nodes;
    for (auto m = scheduler_node_of_gpu_.begin(); m != scheduler_node_of_gpu_.end();) {
      if (m->first.first == node_id) {
        scheduler_nodes.insert(m->second);
        m = scheduler_node_of_gpu_.erase(m);
      } else {
        ++m;
      }
    }
    for (const auto& id : scheduler_nodes) {
      scheduler_->RemoveNode(id);
    }
    spdlog::warn("node {} lost: {}", node_id, reason);
    PublishView();
  }
  Notify();
}

JobController::~JobController() { Stop(); }

std::string JobController::AttemptDir(const std::string& job_id, int attempt) const {
  return options_.data_dir + "/jobs/" + job_id + "/attempt-" + std::to_string(attempt);
}

void JobController::Start() {
  if (!loop_) {
    loop_ = std::make_unique<core::PeriodicLoop>("job-controller", options_.loop_interval,
                                                 [this] { Tick(); });
    loop_->Start();
  }
}

void JobController::Stop() {
  if (loop_) {
    loop_->Stop();
  }
}

void JobController::Notify() {
  reload_ = true;
  if (loop_) {
    loop_->Notify();
  }
}

void JobController::Submitted(const Job& job) {
  {
    std::lock_guard lock(incoming_mu_);
    incoming_.push_back(job);
  }
  if (loop_) {
    loop_->Notify();
  }
}

void JobController::TrackRunning(const Job& job, const LiveAttempt& live) {
  const core::SystemTime started = job.started_at.value_or(clock_.Now());
  scheduler_->MarkRunning(scheduler::RunningJob{
      .job_id = job.id,
      .owner = job.owner,
      .node = live.gpu_indices.empty()
                  ? live.node_id
                  : scheduler_node_of_gpu_[{live.node_id, live.gpu_indices.front()}],
      .gpu_indices = live.gpu_indices,
      .priority = job.spec.priority,
      .preemptible = job.spec.preemptible,
      .started_at = started,
      .expected_end = live.deadline.value_or(started + std::chrono::seconds(
                                                           job.spec.timeout_seconds))});
}

void JobController::ReloadQueue() {
  auto queued = store_.ListJobsInStates({JobState::kQueued});
  if (!queued) {
    spdlog::warn("scheduler: cannot read the queue: {}", queued.error().message);
    reload_ = true;
    return;
  }
  for (const Job& job : *queued) {
    scheduler_->Enqueue(ToRequest(job));
  }
}

void JobController::Requeue(const Job& job) {
  if (job.state == JobState::kQueued) {
    scheduler_->Enqueue(ToRequest(job));
  } else {
    scheduler_->Dequeue(job.id);
  }
}

core::Result<Job> JobController::Update(const store::JobUpdate& update) {
  auto result = store_.UpdateJob(update, clock_.Now());
  if (!result && result.error().code != core::Code::kAborted) {
    spdlog::error("job {}: store update failed: {}", update.job_id, result.error().message);
  }
  return result;
}

core::Status JobController::Recover() {
  std::lock_guard lock(mu_);
  auto active = store_.ListJobsInStates({JobState::kScheduled, JobState::kRunning});
  if (!active) {
    return core::Fail(active.error().WithContext("recover"));
  }
  int reattached = 0;
  int settled = 0;
  for (const Job& job : *active) {
    const std::string node_id = job.node_id.empty() ? options_.node_id : job.node_id;
    auto slot = nodes_.find(node_id);
    if (slot == nodes_.end() || slot->second.lost) {
      // Its node did not come back: nothing of the attempt can be reached, so it runs nowhere.
      LiveAttempt gone{.node_id = node_id, .job_id = job.id, .attempt = job.attempt};
      RequeueAfterNodeLoss(job, gone, "node " + node_id + " is gone");
      ++settled;
      continue;
    }
    agent::AttemptProbe probe = RunnerOf(node_id).Probe(AttemptDir(job.id, job.attempt));
    if (probe.status == agent::AttemptStatus::kNotStarted && job.state == JobState::kScheduled) {
      // The service stopped between choosing GPUs and starting the process: nothing ran, so the
      // attempt does not count against the job's retries.
      (void)Update({.job_id = job.id,
                    .expected_state = JobState::kScheduled,
                    .new_state = JobState::kQueued,
                    .status_message = std::string("queued"),
                    .attempt = job.attempt - 1,
                    .transition_message = "attempt " + std::to_string(job.attempt) +
                                          " never started (the service stopped while starting "
                                          "it); requeued"});
      ++settled;
      continue;
    }
    Job current = job;
    if ((probe.status == agent::AttemptStatus::kRunning ||
         probe.status == agent::AttemptStatus::kExited) &&
        job.state == JobState::kScheduled) {
      auto moved = Update({.job_id = job.id,
                           .expected_state = JobState::kScheduled,
                           .new_state = JobState::kRunning,
                           .started_at = std::optional(clock_.Now()),
                           .transition_message = "running (found after restart)"});
      if (!moved) {
        continue;
      }
      current = *moved;
    }
    if (probe.status == agent::AttemptStatus::kRunning) {
      // Without a handle yet, the shim is still writing its pid file; PollAttempts picks it up.
      LiveAttempt live{.node_id = node_id,
                       .job_id = job.id,
                       .attempt = job.attempt,
                       .handle = probe.handle.value_or(agent::AttemptHandle{
                           .attempt_dir = AttemptDir(job.id, job.attempt)}),
                       .gpu_indices = job.gpu_indices,
                       .billed = slot->second.spec.price_per_hour > 0};
      int64_t timeout = job.spec.timeout_seconds > 0 ? job.spec.timeout_seconds
                                                     : options_.default_timeout_seconds;
      if (current.started_at) {
        live.deadline = *current.started_at + std::chrono::seconds(timeout);
      }
      live_[job.id] = live;
      TrackRunning(current, live);
      ++reattached;
    } else if (probe.status == agent::AttemptStatus::kExited) {
      SettleAttempt(current, probe.exit_code, "exited while the service was down");
      (void)store_.CloseUsage(job.id, job.attempt, clock_.Now());
      ++settled;
    } else {
      (void)store_.CloseUsage(job.id, job.attempt, clock_.Now());
      SettleAttempt(current, std::nullopt, "attempt lost: its process was gone after a restart");
      ++settled;
    }
  }
  // Jobs cancelled or timed out whose processes may not have been seen to exit yet.
  auto stopped = store_.ListJobsInStates({JobState::kCancelled, JobState::kTimedOut});
  if (!stopped) {
    return core::Fail(stopped.error().WithContext("recover"));
  }
  for (const Job& job : *stopped) {
    const std::string node_id = job.node_id.empty() ? options_.node_id : job.node_id;
    auto slot = nodes_.find(node_id);
    if (job.exit_code || !job.started_at || job.attempt == 0) {
      continue;
    }
    if (slot == nodes_.end() || slot->second.lost) {
      RecordExitOfStoppedJob(job.id, std::nullopt);
      continue;
    }
    agent::AttemptProbe probe = RunnerOf(node_id).Probe(AttemptDir(job.id, job.attempt));
    if (probe.status == agent::AttemptStatus::kRunning) {
      LiveAttempt live{.node_id = node_id,
                       .job_id = job.id,
                       .attempt = job.attempt,
                       .handle = probe.handle.value_or(agent::AttemptHandle{
                           .attempt_dir = AttemptDir(job.id, job.attempt)}),
                       .gpu_indices = job.gpu_indices,
                       .billed = slot->second.spec.price_per_hour > 0,
                       .stopping = true};
      BeginStopping(live);
      live_[job.id] = live;
      TrackRunning(job, live);
      ++reattached;
    } else {
      // Ended while the service was down (exit known), or gone without a trace: settle it once.
      RecordExitOfStoppedJob(job.id, probe.exit_code);
    }
  }
  if (reattached + settled > 0) {
    spdlog::info("recovery: re-attached {} attempt(s), settled {}", reattached, settled);
  }
  reload_ = true;
  PublishView();
  return core::Ok();
}

void JobController::Tick() {
  std::lock_guard lock(mu_);
  std::vector<Job> incoming;
  {
    std::lock_guard incoming_lock(incoming_mu_);
    incoming.swap(incoming_);
  }
  for (const Job& job : incoming) {
    scheduler_->Enqueue(ToRequest(job));
  }
  const auto mono_now = clock_.MonotonicNow();
  if (reload_.exchange(false) || mono_now - last_reload_ >= kReloadEvery) {
    last_reload_ = mono_now;
    ReloadQueue();
  }
  bool freed = false;
  PollAttempts(freed);
  Schedule();
  PublishView();
}

void JobController::PollAttempts(bool& freed) {
  const auto now = clock_.Now();
  const auto mono_now = clock_.MonotonicNow();
  for (auto it = live_.begin(); it != live_.end();) {
    LiveAttempt& live = it->second;
    agent::ProcessRunner& runner = RunnerOf(live.node_id);
    agent::AttemptProbe probe = runner.Probe(live.handle.attempt_dir);
    if (probe.handle && live.handle.job_pid <= 0) {
      live.handle = *probe.handle;
      if (live.stopping) {
        BeginStopping(live);
      }
    }
    if (probe.status != agent::AttemptStatus::kRunning) {
      std::optional<int> exit_code = probe.exit_code;
      scheduler_->MarkEnded(live.job_id, now);
      CloseUsage(live);
      auto node = nodes_.find(live.node_id);
      const bool node_lost = node != nodes_.end() && node->second.lost &&
                             probe.status != agent::AttemptStatus::kExited;
      if (live.stopping) {
        RecordExitOfStoppedJob(live.job_id, exit_code);
      } else if (auto job = store_.GetJob(live.job_id);
                 job && job->attempt == live.attempt && !domain::IsTerminal(job->state)) {
        if (node_lost) {
          RequeueAfterNodeLoss(*job, live, "node " + live.node_id + " lost (" +
                                               node->second.lost_reason + ")");
        } else if (!live.preempted_by.empty()) {
          auto requeued = Update({.job_id = job->id,
                                  .expected_state = job->state,
                                  .new_state = JobState::kQueued,
                                  .status_message = "preempted by " + live.preempted_by + "; queued",
                                  .started_at = std::optional<std::optional<core::SystemTime>>(
                                      std::in_place),
                                  .exit_code = std::optional(exit_code),
                                  .transition_message = "attempt " + std::to_string(live.attempt) +
                                                        " preempted by " + live.preempted_by});
          if (requeued) {
            Requeue(*requeued);
          }
        } else if (auto settled = SettleAttempt(
                       *job, exit_code,
                       probe.status != agent::AttemptStatus::kExited
                           ? "attempt lost: its process vanished without an exit status"
                           : "")) {
          Requeue(*settled);
        }
      }
      it = live_.erase(it);
      freed = true;
      continue;
    }
    if (!live.stopping && live.preempted_by.empty() && live.deadline && now >= *live.deadline) {
      auto job = Update({.job_id = live.job_id,
                         .expected_state = JobState::kRunning,
                         .new_state = JobState::kTimedOut,
                         .status_message = std::string("timed out; stopping its processes"),
                         .finished_at = std::optional(now),
                         .transition_message = "timeout reached"});
      if (job) {
        live.stopping = true;
        BeginStopping(live);
      }
    }
    if (live.term_sent_at && !live.kill_sent &&
        mono_now - *live.term_sent_at >= options_.kill_grace) {
      (void)runner.Signal(live.handle, SIGKILL);
      live.kill_sent = true;
      spdlog::info("job {}: grace period over, sent SIGKILL", live.job_id);
    }
    ++it;
  }
}

void JobController::BeginStopping(LiveAttempt& live) {
  if (live.term_sent_at || live.handle.job_pid <= 0) {
    return;  // already stopping, or the pid is not known yet (PollAttempts calls again)
  }
  agent::ProcessRunner& runner = RunnerOf(live.node_id);
  (void)runner.Signal(live.handle, SIGTERM);
  live.term_sent_at = clock_.MonotonicNow();
  if (options_.kill_grace.count() == 0) {
    (void)runner.Signal(live.handle, SIGKILL);
    live.kill_sent = true;
  }
}

void JobController::RecordExitOfStoppedJob(const std::string& job_id,
                                           std::optional<int> exit_code) {
  auto job = store_.GetJob(job_id);
  if (!job || !domain::IsTerminal(job->state)) {
    return;
  }
  std::string message = job->status_message;
  const std::string suffix = "; stopping its processes";
  if (message.size() >= suffix.size() &&
      message.compare(message.size() - suffix.size(), suffix.size(), suffix) == 0) {
    message.resize(message.size() - suffix.size());
  }
  (void)Update({.job_id = job_id,
                .expected_state = job->state,
                .status_message = message + "; processes ended (" + DescribeExit(exit_code) + ")",
                .exit_code = std::optional(exit_code ? exit_code : std::optional<int>(-1))});
}

std::optional<Job> JobController::SettleAttempt(const Job& job, std::optional<int> exit_code,
                                                const std::string& why) {
  const auto now = clock_.Now();
  const std::string attempt_text = "attempt " + std::to_string(job.attempt);
  auto stored = [](core::Result<Job> result) -> std::optional<Job> {
    return result ? std::optional<Job>(std::move(*result)) : std::nullopt;
  };
  if (exit_code && *exit_code == 0) {
    return stored(Update({.job_id = job.id,
                  .expected_state = job.state,
                  .new_state = JobState::kSucceeded,
                  .status_message = "succeeded (exit code 0)",
                  .finished_at = std::optional(now),
                  .exit_code = std::optional(exit_code),
                  .transition_message = attempt_text + " exited with code 0"}));
  }
  const std::string cause = why.empty() ? DescribeExit(exit_code) : why;
  if (job.attempt <= job.spec.max_retries) {
    auto backoff = options_.retry_backoff_base * (1LL << std::min(job.attempt - 1, 20));
    if (backoff > options_.retry_backoff_max) {
      backoff = options_.retry_backoff_max;
    }
    return stored(Update({.job_id = job.id,
                  .expected_state = job.state,
                  .new_state = JobState::kQueued,
                  .status_message = attempt_text + " failed (" + cause + "); retry " +
                                    std::to_string(job.attempt) + " of " +
                                    std::to_string(job.spec.max_retries) + " after " +
                                    std::to_string(backoff.count()) + " s",
                  .started_at = std::optional<std::optional<core::SystemTime>>(std::in_place),
                  .not_before = std::optional(std::optional(now + backoff)),
                  .exit_code = std::optional(exit_code),
                  .transition_message = attempt_text + " failed: " + cause}));
  }
  return stored(Update({.job_id = job.id,
                .expected_state = job.state,
                .new_state = JobState::kFailed,
                .status_message = "failed: " + cause,
                .finished_at = std::optional(now),
                .exit_code = std::optional(exit_code),
                .transition_message = attempt_text + " failed: " + cause}));
}

void JobController::Schedule() {
  const scheduler::Plan plan = scheduler_->Schedule(clock_.Now());
  for (const auto& preemption : plan.preemptions) {
    for (const auto& victim : preemption.victims) {
      auto it = live_.find(victim);
      if (it != live_.end() && !it->second.stopping && it->second.preempted_by.empty()) {
        spdlog::info("job {}: preempted by job {}", victim, preemption.job_id);
        it->second.preempted_by = preemption.job_id;
        BeginStopping(it->second);
      }
    }
  }
  for (const auto& assignment : plan.assignments) {
    auto job = store_.GetJob(assignment.job_id);
    if (!job || job->state != JobState::kQueued) {
      // Cancelled (or changed) since it was queued: give the GPUs back and forget it.
      scheduler_->Unreserve(assignment.job_id);
      scheduler_->Dequeue(assignment.job_id);
      continue;
    }
    if (!StartAttempt(*job, assignment.node_id, assignment.gpu_indices)) {
      scheduler_->Unreserve(assignment.job_id);
      if (auto now_stored = store_.GetJob(assignment.job_id)) {
        Requeue(*now_stored);
      }
    }
  }
}

std::vector<std::string> JobController::BuildArgv(const Job& job,
                                                  const std::string& container_runtime,
                                                  const std::vector<int>& gpu_indices) const {
  if (job.spec.docker_image.empty()) {
    return job.spec.command;
  }
  const std::string& rt = container_runtime;
  std::vector<std::string> argv = {rt, "run", "--rm", "--init", "--name",
                                   "gpuorch-" + job.id + "-" + std::to_string(job.attempt + 1)};
  if (!gpu_indices.empty()) {
    argv.insert(argv.end(), {"--gpus", "\"device=" + JoinInts(gpu_indices, ",") + "\""});
  }
  argv.insert(argv.end(), {"-e", "GPUORCH_JOB_ID=" + job.id});
  for (const auto& [key, value] : job.spec.env) {
    argv.insert(argv.end(), {"-e", key + "=" + value});
  }
  argv.push_back(job.spec.docker_image);
  argv.insert(argv.end(), job.spec.command.begin(), job.spec.command.end());
  return argv;
}

bool JobController::StartAttempt(const Job& job, const std::string& node_id,
                                 const std::vector<int>& gpu_indices) {
  auto slot_it = nodes_.find(node_id);
  if (slot_it == nodes_.end() || slot_it->second.lost) {
    return false;
  }
  const NodeSlot& slot = slot_it->second;
  const int attempt = job.attempt + 1;
  const std::string gpus = JoinInts(gpu_indices, ",");
  auto scheduled = Update({.job_id = job.id,
                           .expected_state = JobState::kQueued,
                           .new_state = JobState::kScheduled,
                           .status_message = "starting on node " + node_id,
                           .attempt = attempt,
                           .node_id = node_id,
                           .gpu_indices = gpu_indices,
                           // in_place: set to "no value" (clears); optional(nullopt) would keep it.
                           .not_before = std::optional<std::optional<core::SystemTime>>(std::in_place),
                           .exit_code = std::optional<std::optional<int>>(std::in_place),
                           .transition_message = "scheduled on node " + node_id + " GPUs [" +
                                                 gpus + "]"});
  if (!scheduled) {
    return false;
  }
  agent::LaunchSpec spec{.attempt_dir = AttemptDir(job.id, attempt),
                         .argv = BuildArgv(job, slot.spec.container_runtime, gpu_indices),
                         .env = job.spec.env,
                         .job_id = job.id,
                         .attempt = attempt,
                         .gpu_indices = gpu_indices};
  spec.env["CUDA_VISIBLE_DEVICES"] = gpus;
  spec.env["NVIDIA_VISIBLE_DEVICES"] = gpus.empty() ? "none" : gpus;
  spec.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
  spec.env["GPUORCH_JOB_ID"] = job.id;
  spec.env["GPUORCH_ATTEMPT"] = std::to_string(attempt);
  auto handle = slot.runner->Launch(spec);
  if (!handle) {
    spdlog::warn("job {}: cannot start attempt {} on node {}: {}", job.id, attempt, node_id,
                 handle.error().message);
    SettleAttempt(*scheduled, std::nullopt, "could not start: " + handle.error().message);
    return false;
  }
  const auto now = clock_.Now();
  int64_t timeout = job.spec.timeout_seconds > 0 ? job.spec.timeout_seconds
                                                 : options_.default_timeout_seconds;
  bool billed = false;
  if (slot.spec.price_per_hour > 0) {
    // The job pays for its share of the instance's GPUs while its attempt runs.
    const double share = slot.spec.gpus.empty()
                             ? 1.0
                             : static_cast<double>(std::max<size_t>(gpu_indices.size(), 1)) /
                                   static_cast<double>(slot.spec.gpus.size());
    auto opened = store_.OpenUsage(store::UsageRecord{.job_id = job.id,
                                                      .attempt = attempt,
                                                      .owner = job.owner,
                                                      .instance_id = slot.spec.instance_id,
                                                      .provider = slot.spec.provider,
                                                      .node_id = node_id,
                                                      .usd_per_hour = slot.spec.price_per_hour *
                                                                      std::min(share, 1.0),
                                                      .started_at = now});
    if (!opened) {
      spdlog::error("job {}: cannot record usage: {}", job.id, opened.error().message);
    }
    billed = true;
  }
  live_[job.id] = LiveAttempt{.node_id = node_id,
                              .job_id = job.id,
                              .attempt = attempt,
                              .handle = *handle,
                              .gpu_indices = gpu_indices,
                              .billed = billed,
                              .deadline = now + std::chrono::seconds(timeout)};
  const std::string where =
      slot.spec.provider == "local" && slot.spec.instance_id.empty()
          ? "node " + node_id
          : "node " + node_id + " (" + slot.spec.provider + " instance " + slot.spec.instance_id + ")";
  auto running = Update({.job_id = job.id,
                         .expected_state = JobState::kScheduled,
                         .new_state = JobState::kRunning,
                         .status_message = "running on " + where + " (GPUs " +
                                           (gpus.empty() ? "none" : gpus) + ")",
                         .started_at = std::optional(std::optional(now)),
                         .transition_message =
                             "attempt " + std::to_string(attempt) + " started on " + where +
                             (handle->job_pid > 0 ? ", pid " + std::to_string(handle->job_pid)
                                                  : "")});
  if (!running) {
    // The job changed under us (it cannot while we hold mu_, but never leave a process orphaned).
    live_[job.id].stopping = true;
    BeginStopping(live_[job.id]);
  }
  spdlog::info("job {}: attempt {} running on {} GPUs [{}]", job.id, attempt, where, gpus);
  return true;
}

void JobController::CloseUsage(const LiveAttempt& live) {
  if (live.billed) {
    auto closed = store_.CloseUsage(live.job_id, live.attempt, clock_.Now());
    if (!closed) {
      spdlog::error("job {}: cannot close usage: {}", live.job_id, closed.error().message);
    }
  }
}

void JobController::RequeueAfterNodeLoss(const Job& job, const LiveAttempt& live,
                                         const std::string& why) {
  if (domain::IsTerminal(job.state)) {
    RecordExitOfStoppedJob(job.id, std::nullopt);
    return;
  }
  auto requeued = Update({.job_id = job.id,
                          .expected_state = job.state,
                          .new_state = JobState::kQueued,
                          .status_message = "attempt " + std::to_string(live.attempt) +
                                            " ended: " + why + "; queued to run elsewhere",
                          .started_at = std::optional<std::optional<core::SystemTime>>(std::in_place),
                          .exit_code = std::optional<std::optional<int>>(std::in_place),
                          .transition_message = "attempt " + std::to_string(live.attempt) +
                                                " ended: " + why + "; requeued"});
  if (requeued) {
    Requeue(*requeued);
  }
}

core::Result<Job> JobController::Cancel(const std::string& job_id) {
  std::lock_guard lock(mu_);
  for (int tries = 0; tries < 3; ++tries) {
    GPUORCH_ASSIGN_OR_RETURN(Job job, store_.GetJob(job_id));
    if (domain::IsTerminal(job.state)) {
      return core::Fail(core::Code::kFailedPrecondition,
                        "job " + job_id + " already ended (" +
                            std::string(domain::ToString(job.state)) + ")",
                        "", "conflict");
    }
    auto live = live_.find(job_id);
    const bool has_process = live != live_.end();
    auto updated = Update({.job_id = job_id,
                           .expected_state = job.state,
                           .new_state = JobState::kCancelled,
                           .status_message = std::string(has_process
                                                             ? "cancelled by user; stopping its processes"
                                                             : "cancelled by user"),
                           .finished_at = std::optional(clock_.Now()),
                           .transition_message = "cancelled by user"});
    if (!updated && updated.error().code == core::Code::kAborted) {
      continue;
    }
    if (updated && has_process) {
      live->second.stopping = true;
      BeginStopping(live->second);
    } else if (updated) {
      scheduler_->Dequeue(job_id);
    }
    PublishView();
    return updated;
  }
  return core::Fail(core::Code::kAborted, "job " + job_id + " kept changing; try again");
}

void JobController::PublishView() {
  std::map<std::pair<std::string, int>, std::string> holder;
  std::map<std::string, int> live_view;
  std::map<std::string, int> live_by_node;
  for (const auto& [id, live] : live_) {
    for (int g : live.gpu_indices) {
      holder[{live.node_id, g}] = id;
    }
    live_view[id] = live.attempt;
    ++live_by_node[live.node_id];
  }
  std::vector<NodeStatus> views;
  auto add = [&](const NodeSlot& slot) {
    NodeStatus view{.node_id = slot.spec.node_id,
                    .gpu_source = slot.spec.node_id == options_.node_id ? options_.gpu_source
                                                                        : "agent",
                    .container_runtime = !slot.spec.container_runtime.empty(),
                    .live_attempts = live_by_node[slot.spec.node_id],
                    .provider = slot.spec.provider,
                    .instance_id = slot.spec.instance_id,
                    .lost = slot.lost};
    for (const auto& gpu : slot.spec.gpus) {
      auto it = holder.find({slot.spec.node_id, gpu.index});
      view.gpus.push_back(GpuUsage{gpu, it == holder.end() ? "" : it->second});
    }
    views.push_back(std::move(view));
  };
  add(nodes_.at(options_.node_id));
  for (const auto& [id, slot] : nodes_) {
    if (id != options_.node_id) {
      add(slot);
    }
  }
  std::lock_guard lock(view_mu_);
  view_ = std::move(views);
  live_view_ = std::move(live_view);
}

NodeStatus JobController::Node() const {
  std::lock_guard lock(view_mu_);
  return view_.front();
}

std::vector<NodeStatus> JobController::Nodes() const {
  std::lock_guard lock(view_mu_);
  return view_;
}

std::map<std::string, int> JobController::LiveAttemptsByNode() const {
  std::lock_guard lock(view_mu_);
  std::map<std::string, int> out;
  for (const auto& view : view_) {
    if (view.live_attempts > 0) {
      out[view.node_id] = view.live_attempts;
    }
  }
  return out;
}

std::optional<scheduler::WaitInfo> JobController::Explain(const std::string& job_id) const {
  std::lock_guard lock(mu_);
  return scheduler_->Explain(job_id, clock_.Now());
}

void JobController::SetQuota(const std::string& owner,
                             const std::optional<scheduler::Quota>& quota) {
  std::lock_guard lock(mu_);
  scheduler_->SetQuota(owner, quota);
}

std::optional<std::string> JobController::WaitingReason(const std::string& job_id) const {
  auto info = Explain(job_id);
  if (!info) {
    return std::nullopt;
  }
  return info->reason;
}

std::vector<scheduler::QueueEntry> JobController::Queue(size_t limit,
                                                       std::string_view owner) const {
  std::lock_guard lock(mu_);
  return scheduler_->Queue(clock_.Now(), limit, owner);
}

bool JobController::IsAttemptLive(const std::string& job_id, int attempt) const {
  std::lock_guard lock(view_mu_);
  auto it = live_view_.find(job_id);
  return it != live_view_.end() && it->second == attempt;
}

}  // namespace gpuorch::lifecycle
