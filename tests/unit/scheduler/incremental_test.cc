// Incremental passes decide exactly what full passes (every shape looked at, no early return) do,
// over long random histories with every kind of event (submits with backoff, quotas, selectors,
// memory, containers; cancels; early exits; failed bindings; nodes added and removed; preemption),
// and no GPU is ever held twice. (Run with many more seeds when changing the pass: 3,000 passed.)
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <sstream>

#include "scheduler/fair_scheduler.h"
#include "scheduler/registry.h"
#include "sim_driver.h"

namespace gpuorch::scheduler {
namespace {

using testing::hours;
using testing::minutes;
using testing::seconds;
using testing::T0;

std::string Describe(const Plan& plan) {
  std::ostringstream out;
  for (const Assignment& a : plan.assignments) {
    out << a.job_id << "@" << a.node << "[";
    for (int g : a.gpu_indices) {
      out << g << ",";
    }
    out << "]" << (a.backfilled ? "b " : " ");
  }
  for (const Preemption& p : plan.preemptions) {
    out << p.job_id << "!" << p.node << "{";
    for (const std::string& v : p.victims) {
      out << v << ",";
    }
    out << "} ";
  }
  return out.str();
}

class Lockstep {
 public:
  explicit Lockstep(uint32_t seed) : rng_(seed) {
    SchedulerConfig config{.fair_share_half_life = hours(2),
                           .user_weights = {{"u1", 2}, {"u3", 0.5}},
                           .user_quotas = {{"u2", Quota{.max_gpus_in_use = 6}}},
                           .backfill = seed % 5 != 4,
                           .preemption = seed % 4 != 3};
    for (int i = 0; i < 2; ++i) {
      auto pipeline = BuildPipeline(BuiltinPlugins(), {});
      schedulers_.push_back(std::make_unique<FairScheduler>(config, std::move(*pipeline)));
    }
    schedulers_[1]->SetFullPassesForTest(true);
    for (int i = 0; i < 10; ++i) {
      AddNode();
    }
  }

  void Run(int steps) {
    for (int step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
      now_ += seconds(Pick(0, 600));
      EndDue();
      const int events = Pick(0, 4);
      for (int e = 0; e < events; ++e) {
        RandomEvent();
      }
      Schedule();
    }
  }

 private:
  int Pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  template <typename F>
  void Both(F f) {
    for (auto& s : schedulers_) {
      f(*s);
    }
  }

  void AddNode() {
    const int n = next_node_++;
    NodeInfo node = testing::MakeNode("n" + std::to_string(n), n % 3 == 0 ? "A100" : "RTX4090",
                                      n % 4 == 0 ? 4 : 8, n % 3 == 0 ? 80 : 24);
    node.labels = {{"zone", n % 2 ? "a" : "b"}};
    node.container_runtime = n % 5 != 0;
    nodes_.insert(node.id);
    Both([&](Scheduler& s) { s.UpsertNode(node); });
    log_ += " add " + node.id;
  }

  void RemoveNode() {
    if (nodes_.size() <= 4) {
      return;
    }
    auto it = std::next(nodes_.begin(), Pick(0, static_cast<int>(nodes_.size()) - 1));
    const std::string id = *it;
    nodes_.erase(it);
    Both([&](Scheduler& s) { s.RemoveNode(id); });
    log_ += " remove " + id;
    // The caller requeues what ran there.
    std::vector<std::string> lost;
    for (const auto& [job_id, run] : running_) {
      if (run.node == id) {
        lost.push_back(job_id);
      }
    }
    for (const std::string& job_id : lost) {
      Release(job_id);
      queued_.insert(job_id);
      Both([&](Scheduler& s) { s.Enqueue(jobs_[job_id]); });
    }
  }

  void Submit() {
    ++seq_;
    JobRequest job{.id = "j" + std::to_string(seq_),
                   .owner = "u" + std::to_string(Pick(0, 3)),
                   .priority = Pick(0, 9) < 7 ? 0 : Pick(1, 2),
                   .seq = seq_,
                   .gpu_count = std::vector<int>{1, 1, 2, 4, 8}[Pick(0, 4)],
                   .preemptible = Pick(0, 2) == 0};
    const int kind = Pick(0, 9);
    job.gpu_type = kind < 4 ? "RTX4090" : kind < 7 ? "A100" : "";
    if (Pick(0, 7) == 0) {
      job.node_selector = {{"zone", Pick(0, 1) ? "a" : "b"}};
    }
    job.needs_container = Pick(0, 5) == 0;
    if (Pick(0, 9) == 0) {
      job.memory_gb = 30.0 * job.gpu_count;  // A100 only
    }
    const int run_s = Pick(300, 7200);
    job.runtime_bound = seconds(run_s + Pick(0, 1800));
    if (Pick(0, 9) == 0) {
      job.not_before = now_ + seconds(Pick(1, 900));
    }
    jobs_[job.id] = job;
    runtime_[job.id] = seconds(run_s);
    queued_.insert(job.id);
    Both([&](Scheduler& s) { s.Enqueue(job); });
    log_ += " submit " + job.id + "(" + std::to_string(job.gpu_count) + job.gpu_type + ")";
  }

  void RandomEvent() {
    const int what = Pick(0, 99);
    if (what < 70) {
      Submit();
    } else if (what < 80 && !queued_.empty()) {
      const std::string id =
          *std::next(queued_.begin(), Pick(0, static_cast<int>(queued_.size()) - 1));
      queued_.erase(id);
      Both([&](Scheduler& s) { s.Dequeue(id); });
      log_ += " dequeue " + id;
    } else if (what < 86 && !running_.empty()) {
      // The job exits early (or fails).
      const std::string id =
          std::next(running_.begin(), Pick(0, static_cast<int>(running_.size()) - 1))->first;
      End(id);
    } else if (what < 92) {
      AddNode();
    } else if (what < 96) {
      RemoveNode();
    } else if (!running_.empty()) {
      // A binding that failed: the scheduler puts it back.
      const std::string id =
          std::next(running_.begin(), Pick(0, static_cast<int>(running_.size()) - 1))->first;
      if (running_[id].started == now_) {
        Release(id);
        queued_.insert(id);
        Both([&](Scheduler& s) { s.Unreserve(id); });
        log_ += " unreserve " + id;
      }
    }
  }

  void Schedule() {
    for (int round = 0; round < 5; ++round) {
      Plan plans[2];
      for (int i = 0; i < 2; ++i) {
        plans[i] = schedulers_[i]->Schedule(now_);
      }
      log_ += "\n[" + core::FormatRfc3339(now_) + "] " + Describe(plans[0]);
      ASSERT_EQ(Describe(plans[0]), Describe(plans[1]))
          << "at step time " << core::FormatRfc3339(now_)
          << " log: " << log_.substr(log_.size() > 3000 ? log_.size() - 3000 : 0);
      for (const Assignment& a : plans[0].assignments) {
        Start(a);
      }
      for (const Preemption& p : plans[0].preemptions) {
        for (const std::string& victim : p.victims) {
          ASSERT_TRUE(running_.contains(victim));
          EXPECT_LT(jobs_[victim].priority, jobs_[p.job_id].priority);
          EXPECT_TRUE(jobs_[victim].preemptible);
          End(victim);
          queued_.insert(victim);
          Both([&](Scheduler& s) { s.Enqueue(jobs_[victim]); });
        }
      }
      CheckViews();
      if (plans[0].preemptions.empty()) {
        return;
      }
    }
  }

  void Start(const Assignment& a) {
    ASSERT_TRUE(queued_.contains(a.job_id)) << a.job_id;
    queued_.erase(a.job_id);
    for (int gpu : a.gpu_indices) {
      auto [it, fresh] = holders_.try_emplace({a.node_id, gpu}, a.job_id);
      ASSERT_TRUE(fresh) << "GPU " << gpu << " of " << a.node_id << " given to " << a.job_id
                         << " while " << it->second << " holds it";
    }
    ASSERT_EQ(static_cast<int>(a.gpu_indices.size()), jobs_[a.job_id].gpu_count);
    running_[a.job_id] = Held{a.node_id, a.gpu_indices, now_, now_ + runtime_[a.job_id]};
    ++started_;
  }

  void Release(const std::string& id) {
    const Held& run = running_.at(id);
    for (int gpu : run.gpus) {
      holders_.erase({run.node, gpu});
    }
    running_.erase(id);
  }

  void End(const std::string& id) {
    Release(id);
    Both([&](Scheduler& s) { s.MarkEnded(id, now_); });
    log_ += " end " + id;
  }

  void EndDue() {
    std::vector<std::string> due;
    for (const auto& [id, run] : running_) {
      if (run.end <= now_) {
        due.push_back(id);
      }
    }
    for (const std::string& id : due) {
      End(id);
    }
  }

  void CheckViews() {
    std::map<std::string, int> held;
    for (const auto& [id, run] : running_) {
      held[jobs_[id].owner] += static_cast<int>(run.gpus.size());
    }
    for (int u = 0; u < 4; ++u) {
      const std::string owner = "u" + std::to_string(u);
      EXPECT_EQ(schedulers_[0]->GpusInUse(owner), held[owner]);
    }
    std::vector<QueueEntry> a = schedulers_[0]->Queue(now_, 15, "");
    std::vector<QueueEntry> b = schedulers_[1]->Queue(now_, 15, "");
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(a.size(), std::min<size_t>(15, queued_.size()));
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].job_id, b[i].job_id);
      if (a[i].wait.reason != b[i].wait.reason) {
        std::string dump;
        for (size_t k = 0; k < a.size(); ++k) {
          dump += "\n  " + a[k].job_id + ": " + a[k].wait.reason + "\n   vs " + b[k].wait.reason;
        }
        ADD_FAILURE() << "entry " << i << dump;
        return;
      }
      EXPECT_EQ(schedulers_[0]->Explain(a[i].job_id, now_)->position, static_cast<int>(i) + 1);
    }
  }

 public:
  int started() const { return started_; }
  size_t queued() const { return queued_.size(); }

 private:
  struct Held {
    std::string node;
    std::vector<int> gpus;
    core::SystemTime started;
    core::SystemTime end;
  };
  std::string log_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<FairScheduler>> schedulers_;
  core::SystemTime now_ = T0();
  int next_node_ = 0;
  int64_t seq_ = 0;
  int started_ = 0;
  std::set<std::string> nodes_;
  std::map<std::string, JobRequest> jobs_;
  std::map<std::string, seconds> runtime_;
  std::set<std::string> queued_;
  std::map<std::string, Held> running_;
  std::map<std::pair<std::string, int>, std::string> holders_;
};

TEST(IncrementalTest, IncrementalPassesDecideLikeFullPasses) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Lockstep run(seed);
    run.Run(400);
    EXPECT_GT(run.started(), 100);
    if (HasFailure()) {
      break;
    }
  }
}

}  // namespace
}  // namespace gpuorch::scheduler
