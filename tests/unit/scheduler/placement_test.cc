#include "scheduler/placement.h"

#include <gtest/gtest.h>

#include <set>

namespace gpuorch::scheduler {
namespace {

NodeView SixRtx4090() {
  NodeView node{.node_id = "local", .container_runtime = false};
  for (int i = 0; i < 6; ++i) {
    node.gpus.push_back(domain::GpuDevice{
        .index = i, .name = "RTX4090", .type = "RTX4090", .memory_mb = 24 * 1024});
  }
  return node;
}

domain::Job QueuedJob(std::string id, int64_t seq, int gpus, int priority = 0) {
  domain::Job job;
  job.id = std::move(id);
  job.seq = seq;
  job.spec.gpu_type = "RTX4090";
  job.spec.gpu_count = gpus;
  job.spec.priority = priority;
  job.spec.command = {"true"};
  return job;
}

TEST(FitOnNodeTest, TakesLowestFreeGpus) {
  NodeView node = SixRtx4090();
  node.busy_gpu_indices = {0, 2};
  Fit fit = FitOnNode(node, QueuedJob("a", 1, 2).spec);
  ASSERT_TRUE(fit.fits);
  EXPECT_EQ(fit.gpu_indices, (std::vector<int>{1, 3}));
}

TEST(FitOnNodeTest, ExplainsTooFewFreeGpus) {
  NodeView node = SixRtx4090();
  node.busy_gpu_indices = {0, 1, 2, 3};
  Fit fit = FitOnNode(node, QueuedJob("a", 1, 4).spec);
  EXPECT_FALSE(fit.fits);
  EXPECT_EQ(fit.reason, "needs 4 x RTX4090, node local has 6 x RTX4090 with 2 free");
}

TEST(FitOnNodeTest, AliasesOfOneTypeMatch) {
  NodeView node = SixRtx4090();
  domain::JobSpec spec = QueuedJob("a", 1, 1).spec;
  for (const char* alias : {"rtx_4090", "NVIDIA GeForce RTX 4090", "RTX4090", "any", ""}) {
    spec.gpu_type = alias;
    EXPECT_TRUE(FitOnNode(node, spec).fits) << alias;
  }
  spec.gpu_type = "H100";
  EXPECT_FALSE(FitOnNode(node, spec).fits);
}

TEST(FitOnNodeTest, MemoryIsTotalOverTheJobsGpus) {
  NodeView node = SixRtx4090();
  domain::JobSpec spec = QueuedJob("a", 1, 4).spec;
  spec.memory_gb = 96;  // the seed's 4 x 24 GB
  EXPECT_TRUE(FitOnNode(node, spec).fits);
  spec.memory_gb = 100;  // 25 GB per GPU does not fit 24 GB cards
  Fit fit = FitOnNode(node, spec);
  EXPECT_FALSE(fit.fits);
  EXPECT_NE(fit.reason.find("25 GB each"), std::string::npos) << fit.reason;
}

TEST(FitOnNodeTest, ImageNeedsContainerRuntime) {
  NodeView node = SixRtx4090();
  domain::JobSpec spec = QueuedJob("a", 1, 1).spec;
  spec.docker_image = "aima/llava:1.6-34b";
  Fit fit = FitOnNode(node, spec);
  EXPECT_FALSE(fit.fits);
  EXPECT_NE(fit.reason.find("needs a container runtime"), std::string::npos);
  node.container_runtime = true;
  EXPECT_TRUE(FitOnNode(node, spec).fits);
}

TEST(ScheduleTest, PriorityThenAgeAndNoOvercommit) {
  std::vector<domain::Job> queued = {QueuedJob("old", 1, 4), QueuedJob("urgent", 3, 4, 10),
                                     QueuedJob("small", 2, 2)};
  SchedulePlan plan = Schedule({SixRtx4090()}, queued, core::SystemTime{});
  ASSERT_EQ(plan.assignments.size(), 2u);
  EXPECT_EQ(plan.assignments[0].job_id, "urgent");
  EXPECT_EQ(plan.assignments[1].job_id, "small");
  EXPECT_EQ(plan.waiting.count("old"), 1u);
  std::set<int> used;
  for (const auto& a : plan.assignments) {
    for (int g : a.gpu_indices) {
      EXPECT_TRUE(used.insert(g).second) << "GPU " << g << " given twice";
    }
  }
}

TEST(ScheduleTest, RetryBackoffWaits) {
  domain::Job job = QueuedJob("r", 1, 1);
  job.not_before = core::SystemTime(std::chrono::seconds(100));
  SchedulePlan plan = Schedule({SixRtx4090()}, {job}, core::SystemTime(std::chrono::seconds(99)));
  EXPECT_TRUE(plan.assignments.empty());
  EXPECT_NE(plan.waiting["r"].find("retry backoff"), std::string::npos);
  plan = Schedule({SixRtx4090()}, {job}, core::SystemTime(std::chrono::seconds(100)));
  EXPECT_EQ(plan.assignments.size(), 1u);
}

TEST(ScheduleTest, NoNodesSaysSo) {
  SchedulePlan plan = Schedule({}, {QueuedJob("a", 1, 1)}, core::SystemTime{});
  EXPECT_EQ(plan.waiting["a"], "no nodes registered");
}

}  // namespace
}  // namespace gpuorch::scheduler
