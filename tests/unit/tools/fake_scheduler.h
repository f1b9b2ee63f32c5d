// A small in-memory Scheduler for the simulator's tests: strict FIFO (priority, then seq; the head
// blocks), first fitting node, lowest free GPU indices. With `preempt`, a blocked head of priority
// > 0 asks to stop the preemptible lower-priority jobs of the first node where that frees enough
// GPUs. `Misbehave` makes it break the contract on purpose. Not thread-safe.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "scheduler/scheduler.h"

namespace gpuorch::sim::testing {

class FakeScheduler final : public scheduler::Scheduler {
 public:
  enum class Misbehave { kNone, kDoubleBook, kNeverStart, kMiscountGpus };

  explicit FakeScheduler(bool preempt = false, Misbehave misbehave = Misbehave::kNone)
      : preempt_(preempt), misbehave_(misbehave) {}

  void UpsertNode(const scheduler::NodeInfo& node) override {
    nodes_[node.id] = node;
    order_.push_back(node.id);
  }
  void RemoveNode(const std::string& id) override { nodes_.erase(id); }
  void Enqueue(const scheduler::JobRequest& job) override { queue_[job.id] = job; }
  void Dequeue(const std::string& job_id) override { queue_.erase(job_id); }
  void MarkRunning(const scheduler::RunningJob& job) override { running_[job.job_id] = job; }
  void MarkEnded(const std::string& job_id, core::SystemTime) override { running_.erase(job_id); }
  void Unreserve(const std::string& job_id) override { running_.erase(job_id); }

  scheduler::Plan Schedule(core::SystemTime now) override {
    scheduler::Plan plan;
    if (misbehave_ == Misbehave::kNeverStart) {
      return plan;
    }
    while (!queue_.empty()) {
      const scheduler::JobRequest head = Head();
      auto fit = FirstFit(head.gpu_count);
      if (!fit) {
        if (preempt_ && head.priority > 0) {
          AddPreemption(head, plan);
        }
        break;
      }
      auto& [node, gpus] = *fit;
      plan.assignments.push_back(scheduler::Assignment{
          .job_id = head.id, .node = node, .node_id = node, .gpu_indices = gpus});
      running_[head.id] = scheduler::RunningJob{.job_id = head.id,
                                                .owner = head.owner,
                                                .node = node,
                                                .gpu_indices = gpus,
                                                .priority = head.priority,
                                                .preemptible = head.preemptible,
                                                .started_at = now,
                                                .expected_end = now + head.runtime_bound};
      queue_.erase(head.id);
    }
    return plan;
  }

  std::optional<scheduler::WaitInfo> Explain(const std::string&, core::SystemTime) const override {
    return std::nullopt;
  }
  std::vector<scheduler::QueueEntry> Queue(core::SystemTime, size_t,
                                           std::string_view) const override {
    return {};
  }
  int QueuedJobs(const std::string&) const override { return static_cast<int>(queue_.size()); }
  int GpusInUse(const std::string& owner) const override {
    int n = misbehave_ == Misbehave::kMiscountGpus ? 1 : 0;
    for (const auto& [id, job] : running_) {
      n += job.owner == owner ? static_cast<int>(job.gpu_indices.size()) : 0;
    }
    return n;
  }
  double FairShareUsage(const std::string&, core::SystemTime) const override { return 0; }
  scheduler::Quota QuotaOf(const std::string&) const override { return {}; }
  void SetQuota(const std::string&, const std::optional<scheduler::Quota>&) override {}

 private:
  scheduler::JobRequest Head() const {
    return std::min_element(queue_.begin(), queue_.end(),
                            [](const auto& a, const auto& b) {
                              return std::pair(-a.second.priority, a.second.seq) <
                                     std::pair(-b.second.priority, b.second.seq);
                            })
        ->second;
  }

  std::set<int> Busy(const std::string& node) const {
    std::set<int> busy;
    for (const auto& [id, job] : running_) {
      if (job.node == node) {
        busy.insert(job.gpu_indices.begin(), job.gpu_indices.end());
      }
    }
    return busy;
  }

  std::optional<std::pair<std::string, std::vector<int>>> FirstFit(int count) const {
    for (const std::string& id : order_) {
      std::set<int> busy = misbehave_ == Misbehave::kDoubleBook ? std::set<int>{} : Busy(id);
      std::vector<int> free;
      for (int g : nodes_.at(id).gpu_indices) {
        if (!busy.count(g) && static_cast<int>(free.size()) < count) {
          free.push_back(g);
        }
      }
      if (static_cast<int>(free.size()) == count) {
        return std::pair(id, free);
      }
    }
    return std::nullopt;
  }

  void AddPreemption(const scheduler::JobRequest& head, scheduler::Plan& plan) const {
    for (const std::string& id : order_) {
      int free = static_cast<int>(nodes_.at(id).gpu_indices.size() - Busy(id).size());
      std::vector<std::string> victims;
      for (const auto& [job_id, job] : running_) {
        if (free < head.gpu_count && job.node == id && job.preemptible &&
            job.priority < head.priority) {
          victims.push_back(job_id);
          free += static_cast<int>(job.gpu_indices.size());
        }
      }
      if (free >= head.gpu_count && !victims.empty()) {
        plan.preemptions.push_back(
            scheduler::Preemption{.job_id = head.id, .node = id, .victims = victims});
        return;
      }
    }
  }

  bool preempt_;
  Misbehave misbehave_;
  std::map<std::string, scheduler::NodeInfo> nodes_;
  std::vector<std::string> order_;
  std::map<std::string, scheduler::JobRequest> queue_;
  std::map<std::string, scheduler::RunningJob> running_;
};

}  // namespace gpuorch::sim::testing
