#include "scheduler/fifo_scheduler.h"

#include <algorithm>
#include <utility>

#include "domain/gpu.h"
#include "scheduler/internal/explain.h"
#include "scheduler/internal/node_search.h"
#include "scheduler/plugins/quota.h"

namespace gpuorch::scheduler {

FifoScheduler::FifoScheduler(SchedulerConfig config, Pipeline pipeline)
    : pipeline_(std::move(pipeline)), cluster_(config) {}

void FifoScheduler::UpsertNode(const NodeInfo& node) {
  cluster_.UpsertNode(node);
  changed_ = true;
}

void FifoScheduler::RemoveNode(const std::string& id) {
  cluster_.RemoveNode(id);
  changed_ = true;
}

void FifoScheduler::Enqueue(const JobRequest& job) {
  cluster_.End(job.id, core::SystemTime{}, /*charge=*/false);  // queued again: holds no GPUs
  Dequeue(job.id);
  Queued queued{.req = job, .account = cluster_.AccountOf(job.owner)};
  queued.req.gpu_type = domain::CanonicalGpuType(job.gpu_type);
  keys_[job.id] = KeyOf(job);
  queue_.emplace(KeyOf(job), std::move(queued));
  ++cluster_.account(cluster_.AccountOf(job.owner)).queued_jobs;
  changed_ = true;
}

void FifoScheduler::Dequeue(const std::string& job_id) {
  auto it = keys_.find(job_id);
  if (it == keys_.end()) {
    return;
  }
  auto queued = queue_.find(it->second);
  --cluster_.account(queued->second.account).queued_jobs;
  queue_.erase(queued);
  keys_.erase(it);
  changed_ = true;
}

void FifoScheduler::MarkRunning(const RunningJob& job) {
  Dequeue(job.job_id);
  cluster_.Record(job);
  changed_ = true;
}

void FifoScheduler::MarkEnded(const std::string& job_id, core::SystemTime now) {
  if (cluster_.End(job_id, now, /*charge=*/true)) {
    changed_ = true;
  }
}

void FifoScheduler::Unreserve(const std::string& job_id) {
  const internal::Running* running = cluster_.FindRunning(job_id);
  if (running == nullptr) {
    return;
  }
  std::optional<internal::Running> ended = cluster_.End(job_id, running->job.started_at, false);
  if (ended && ended->request) {
    Enqueue(*ended->request);
  }
  changed_ = true;
}

bool FifoScheduler::Ready(const Queued& job, core::SystemTime now) const {
  const internal::Account& account = cluster_.account(job.account);
  return !(job.req.not_before && *job.req.not_before > now) &&
         plugins::QuotaAllows(account.gpus_in_use, job.req.gpu_count, account.quota);
}

Plan FifoScheduler::Schedule(core::SystemTime now) {
  Plan plan;
  // Backoff ends with time alone; a pass over a blocked head is cheap, so only an idle queue
  // returns early.
  if (!changed_ && queue_.empty()) {
    return plan;
  }
  changed_ = false;
  cluster_.TakeFreedNodes();
  cluster_.TakeTouchedAccounts();
  const plugins::CycleState cycle{.users = cluster_};
  for (auto it = queue_.begin(); it != queue_.end();) {
    Queued& job = it->second;
    if (!Ready(job, now)) {
      ++it;
      continue;
    }
    internal::NodeChoice choice = internal::FindFirstNode(cluster_, pipeline_, cycle, job.req);
    if (choice.node < 0) {
      break;  // the head blocks everyone behind it
    }
    const internal::Node& node = cluster_.node(choice.node);
    const Assignment assignment{.job_id = job.req.id,
                                .node = node.info.id,
                                .node_id = node.info.node_id,
                                .gpu_indices = choice.gpus};
    plan.assignments.push_back(assignment);
    --cluster_.account(job.account).queued_jobs;
    keys_.erase(job.req.id);
    cluster_.Start(std::move(job.req), choice.node, std::move(choice.gpus), now);
    it = queue_.erase(it);
  }
  return plan;
}

const FifoScheduler::Queued* FifoScheduler::HeadAt(core::SystemTime now) const {
  for (const auto& [key, job] : queue_) {
    if (Ready(job, now)) {
      return &job;
    }
  }
  return nullptr;
}

std::string FifoScheduler::ReasonFor(const Queued& job, const Queued* head,
                                     core::SystemTime now) const {
  const JobRequest& req = job.req;
  if (req.not_before && *req.not_before > now) {
    return "retry backoff until " + core::FormatRfc3339(*req.not_before);
  }
  const internal::Account& account = cluster_.account(job.account);
  plugins::Fit quota =
      plugins::QuotaFit(req.owner, account.gpus_in_use, req.gpu_count, account.quota, true);
  if (!quota.ok) {
    return quota.reason;
  }
  if (head != nullptr && head != &job) {
    return "waiting behind job " + head->req.id + " (first come, first served)";
  }
  const plugins::CycleState cycle{.users = cluster_};
  internal::NodeChoice choice = internal::FindFirstNode(cluster_, pipeline_, cycle, req);
  if (choice.node >= 0) {
    return "fits node " + cluster_.node(choice.node).info.id + "; starts at the next pass";
  }
  return internal::WhyNoNode(cluster_, pipeline_, req);
}

std::optional<WaitInfo> FifoScheduler::Explain(const std::string& job_id,
                                               core::SystemTime now) const {
  auto key = keys_.find(job_id);
  if (key == keys_.end()) {
    return std::nullopt;
  }
  auto it = queue_.find(key->second);
  const int position = static_cast<int>(std::distance(queue_.begin(), it)) + 1;
  return WaitInfo{.position = position, .reason = ReasonFor(it->second, HeadAt(now), now)};
}

std::vector<QueueEntry> FifoScheduler::Queue(core::SystemTime now, size_t limit,
                                             std::string_view owner) const {
  const Queued* head = HeadAt(now);
  std::vector<QueueEntry> out;
  int position = 0;
  for (const auto& [key, job] : queue_) {
    if (out.size() >= limit) {
      break;
    }
    ++position;
    if (!owner.empty() && job.req.owner != owner) {
      continue;
    }
    out.push_back(QueueEntry{.job_id = job.req.id,
                             .owner = job.req.owner,
                             .priority = job.req.priority,
                             .gpu_count = job.req.gpu_count,
                             .wait = WaitInfo{.position = position,
                                              .reason = ReasonFor(job, head, now)}});
  }
  return out;
}

int FifoScheduler::QueuedJobs(const std::string& owner) const {
  const int index = cluster_.FindAccount(owner);
  return index < 0 ? 0 : cluster_.account(index).queued_jobs;
}

int FifoScheduler::GpusInUse(const std::string& owner) const { return cluster_.GpusInUse(owner); }

double FifoScheduler::FairShareUsage(const std::string& owner, core::SystemTime now) const {
  const int index = cluster_.FindAccount(owner);
  return index < 0 ? 0 : cluster_.ShareAt(index, now);
}

Quota FifoScheduler::QuotaOf(const std::string& owner) const { return cluster_.QuotaOf(owner); }

void FifoScheduler::SetQuota(const std::string& owner, const std::optional<Quota>& quota) {
  cluster_.SetQuota(owner, quota);
  changed_ = true;
}

}  // namespace gpuorch::scheduler
