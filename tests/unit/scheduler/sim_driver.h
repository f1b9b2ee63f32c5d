// A tiny deterministic driver for Scheduler tests: it owns simulated time, starts what a Plan
// assigns, ends jobs when their runtime is up (MarkEnded, then Schedule again), stops preempted
// jobs at once and queues them again, and checks after every step that no (node_id, GPU index) is
// held twice and that GpusInUse adds up.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "scheduler/scheduler.h"

namespace gpuorch::scheduler::testing {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

inline core::SystemTime T0() { return core::SystemTime(seconds(1'800'000'000)); }

inline NodeInfo MakeNode(std::string id, std::string type, int gpus, double memory_gb = 24) {
  NodeInfo node{
      .id = id, .node_id = std::move(id), .gpu_type = std::move(type), .gpu_memory_gb = memory_gb};
  for (int i = 0; i < gpus; ++i) {
    node.gpu_indices.push_back(i);
  }
  return node;
}

inline JobRequest MakeJob(std::string id, int64_t seq, int gpus, std::string owner = "alice",
                          int priority = 0, std::string type = "RTX4090") {
  return JobRequest{.id = std::move(id),
                    .owner = std::move(owner),
                    .priority = priority,
                    .seq = seq,
                    .gpu_type = std::move(type),
                    .gpu_count = gpus};
}

class Sim {
 public:
  explicit Sim(Scheduler& scheduler, core::SystemTime start = T0())
      : scheduler_(scheduler), now_(start) {}

  core::SystemTime now() const { return now_; }

  // Queues `job`; once started it runs for `runtime` (at most its runtime bound).
  void Submit(const JobRequest& job, seconds runtime) {
    runtime_[job.id] = std::min(runtime, job.runtime_bound);
    requests_[job.id] = job;
    scheduler_.Enqueue(job);
  }

  // One pass at the current time; applies the plan (repeats while it preempts).
  Plan Step() {
    Plan all;
    for (int round = 0; round < 10; ++round) {
      Plan plan = scheduler_.Schedule(now_);
      for (const Assignment& a : plan.assignments) {
        Start(a);
        all.assignments.push_back(a);
      }
      for (const Preemption& p : plan.preemptions) {
        all.preemptions.push_back(p);
        if (stop_victims_) {
          for (const std::string& victim : p.victims) {
            End(victim);
            ++preempted_[victim];
            scheduler_.Enqueue(requests_[victim]);
          }
        }
      }
      CheckInvariants();
      if (plan.preemptions.empty() || !stop_victims_) {
        break;
      }
    }
    return all;
  }

  // Ends due jobs in time order, each instant followed by a pass, until `until`.
  void RunUntil(core::SystemTime until) {
    Step();
    while (true) {
      core::SystemTime next = until;
      for (const auto& [id, end] : ends_) {
        next = std::min(next, end);
      }
      now_ = std::max(now_, next);
      std::vector<std::string> due;
      for (const auto& [id, end] : ends_) {
        if (end <= now_) {
          due.push_back(id);
        }
      }
      for (const std::string& id : due) {
        End(id);
      }
      Step();
      if (next >= until) {
        break;
      }
    }
  }

  void Advance(seconds by) { RunUntil(now_ + by); }
  void set_stop_victims(bool stop) { stop_victims_ = stop; }

  bool IsRunning(const std::string& id) const { return ends_.contains(id); }
  const std::map<std::string, core::SystemTime>& started() const { return started_; }
  const std::map<std::string, Assignment>& placed() const { return placed_; }
  double GpuSeconds(const std::string& owner) const {
    auto it = gpu_seconds_.find(owner);
    return it == gpu_seconds_.end() ? 0 : it->second;
  }
  int preempted(const std::string& id) const {
    auto it = preempted_.find(id);
    return it == preempted_.end() ? 0 : it->second;
  }
  int backfilled() const { return backfilled_; }

  // Ends a running job now (as if its process exited).
  void End(const std::string& id) {
    auto end = ends_.find(id);
    if (end == ends_.end()) {
      return;
    }
    const Assignment& a = placed_[id];
    for (int gpu : a.gpu_indices) {
      holders_.erase({a.node_id, gpu});
    }
    const JobRequest& req = requests_[id];
    gpu_seconds_[req.owner] +=
        a.gpu_indices.size() * std::chrono::duration<double>(now_ - started_[id]).count();
    held_[req.owner] -= static_cast<int>(a.gpu_indices.size());
    ends_.erase(end);
    scheduler_.MarkEnded(id, now_);
  }

 private:
  void Start(const Assignment& a) {
    ASSERT_TRUE(requests_.contains(a.job_id)) << a.job_id;
    const JobRequest& req = requests_[a.job_id];
    EXPECT_FALSE(ends_.contains(a.job_id)) << a.job_id << " started twice";
    EXPECT_EQ(static_cast<int>(a.gpu_indices.size()), req.gpu_count) << a.job_id;
    EXPECT_TRUE(std::is_sorted(a.gpu_indices.begin(), a.gpu_indices.end()));
    for (int gpu : a.gpu_indices) {
      auto [it, fresh] = holders_.try_emplace({a.node_id, gpu}, a.job_id);
      EXPECT_TRUE(fresh) << "GPU " << gpu << " of " << a.node_id << " given to " << a.job_id
                         << " while " << it->second << " holds it";
    }
    held_[req.owner] += req.gpu_count;
    started_.try_emplace(a.job_id, now_);
    placed_[a.job_id] = a;
    ends_[a.job_id] = now_ + runtime_[a.job_id];
    backfilled_ += a.backfilled ? 1 : 0;
  }

  void CheckInvariants() {
    for (const auto& [owner, gpus] : held_) {
      EXPECT_EQ(scheduler_.GpusInUse(owner), gpus) << owner << " at " << core::FormatRfc3339(now_);
    }
  }

  Scheduler& scheduler_;
  core::SystemTime now_;
  bool stop_victims_ = true;
  std::map<std::string, JobRequest> requests_;
  std::map<std::string, seconds> runtime_;
  std::map<std::string, core::SystemTime> ends_;
  std::map<std::string, core::SystemTime> started_;  // first start
  std::map<std::string, Assignment> placed_;         // latest start
  std::map<std::pair<std::string, int>, std::string> holders_;
  std::map<std::string, int> held_;
  std::map<std::string, double> gpu_seconds_;
  std::map<std::string, int> preempted_;
  int backfilled_ = 0;
};

}  // namespace gpuorch::scheduler::testing
