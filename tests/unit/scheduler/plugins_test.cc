// The filter and score plugins as pure functions, and the registry that builds the pipeline.
#include <gtest/gtest.h>

#include "scheduler/plugins/allowed_providers.h"
#include "scheduler/plugins/best_fit.h"
#include "scheduler/plugins/container_runtime.h"
#include "scheduler/plugins/gpu_count.h"
#include "scheduler/plugins/gpu_memory.h"
#include "scheduler/plugins/gpu_type.h"
#include "scheduler/plugins/node_labels.h"
#include "scheduler/plugins/quota.h"
#include "scheduler/registry.h"
#include "sim_driver.h"

namespace gpuorch::scheduler::plugins {
namespace {

using scheduler::testing::MakeJob;
using scheduler::testing::MakeNode;

TEST(GpuTypeFitTest, MatchesTypeOrAny) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8);
  EXPECT_TRUE(GpuTypeFit(MakeJob("a", 1, 4), node, true).ok);
  EXPECT_TRUE(GpuTypeFit(MakeJob("a", 1, 4, "alice", 0, ""), node, true).ok);
  Fit fit = GpuTypeFit(MakeJob("a", 1, 4, "alice", 0, "A100"), node, true);
  EXPECT_FALSE(fit.ok);
  EXPECT_EQ(fit.reason, "needs 4 x A100, node n1 has 8 x RTX4090");
  EXPECT_EQ(GpuTypeFit(MakeJob("a", 1, 4, "alice", 0, "A100"), node, false).reason, "");
}

TEST(GpuCountFitTest, NeedsEnoughFreeAndInAll) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8);
  EXPECT_TRUE(GpuCountFit(MakeJob("a", 1, 4), node, 4, true).ok);
  Fit few_free = GpuCountFit(MakeJob("a", 1, 4), node, 2, true);
  EXPECT_FALSE(few_free.ok);
  EXPECT_EQ(few_free.reason, "needs 4 x RTX4090, node n1 has 8 x RTX4090 with 2 free");
  Fit too_big = GpuCountFit(MakeJob("a", 1, 16), node, 8, true);
  EXPECT_FALSE(too_big.ok);
  EXPECT_EQ(too_big.reason, "needs 16 x RTX4090, node n1 has 8 x RTX4090");
}

TEST(GpuMemoryFitTest, ComparesPerGpuNeed) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8, 24);
  JobRequest job = MakeJob("a", 1, 4);
  job.memory_gb = 96;  // 24 per GPU
  EXPECT_DOUBLE_EQ(PerGpuMemoryGb(job), 24);
  EXPECT_TRUE(GpuMemoryFit(job, node, true).ok);
  job.memory_gb = 100;
  Fit fit = GpuMemoryFit(job, node, true);
  EXPECT_FALSE(fit.ok);
  EXPECT_EQ(fit.reason,
            "needs 4 x RTX4090 with 25 GB each (100 GB in all), node n1 has 8 x RTX4090 with 24 GB "
            "each");
  job.memory_gb = 0;
  EXPECT_TRUE(GpuMemoryFit(job, node, true).ok);
}

TEST(GpuMemoryFitTest, UnknownNodeMemoryUsesTheKnownTypeMemory) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8, 0);
  JobRequest job = MakeJob("a", 1, 1);
  job.memory_gb = 20;
  EXPECT_TRUE(GpuMemoryFit(job, node, true).ok);
  job.memory_gb = 30;
  EXPECT_FALSE(GpuMemoryFit(job, node, true).ok);
}

TEST(NodeLabelsFitTest, SelectorMustBeASubsetOfTheLabels) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8);
  node.labels = {{"zone", "a"}, {"disk", "ssd"}};
  JobRequest job = MakeJob("a", 1, 1);
  EXPECT_TRUE(NodeLabelsFit(job, node, true).ok);
  job.node_selector = {{"zone", "a"}};
  EXPECT_TRUE(NodeLabelsFit(job, node, true).ok);
  job.node_selector = {{"zone", "b"}};
  EXPECT_EQ(NodeLabelsFit(job, node, true).reason, "needs label zone=b, node n1 has zone=a");
  job.node_selector = {{"gpu", "nvlink"}};
  EXPECT_EQ(NodeLabelsFit(job, node, true).reason,
            "needs label gpu=nvlink, node n1 has no label gpu");
}

TEST(AllowedProvidersFitTest, EmptyMeansAny) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8);
  node.provider = "runpod";
  JobRequest job = MakeJob("a", 1, 1);
  EXPECT_TRUE(AllowedProvidersFit(job, node, true).ok);
  job.allowed_providers = {"aws", "runpod"};
  EXPECT_TRUE(AllowedProvidersFit(job, node, true).ok);
  job.allowed_providers = {"aws", "vastai", "local"};
  EXPECT_EQ(AllowedProvidersFit(job, node, true).reason,
            "needs provider aws, vastai or local, node n1 is on runpod");
}

TEST(ContainerRuntimeFitTest, OnlyJobsWithAnImageNeedIt) {
  NodeInfo node = MakeNode("n1", "RTX4090", 8);
  JobRequest job = MakeJob("a", 1, 1);
  EXPECT_TRUE(ContainerRuntimeFit(job, node, true).ok);
  job.needs_container = true;
  EXPECT_EQ(ContainerRuntimeFit(job, node, true).reason,
            "needs a container runtime, none on node n1");
  node.container_runtime = true;
  EXPECT_TRUE(ContainerRuntimeFit(job, node, true).ok);
}

TEST(QuotaFitTest, InUsePlusJobWithinMax) {
  const Quota quota{.max_gpus_in_use = 8};
  EXPECT_TRUE(QuotaAllows(4, 4, quota));
  EXPECT_FALSE(QuotaAllows(6, 4, quota));
  EXPECT_TRUE(QuotaAllows(1'000'000, 8, Quota{}));
  Fit fit = QuotaFit("alice", 6, 4, quota, true);
  EXPECT_FALSE(fit.ok);
  EXPECT_EQ(fit.reason, "user alice uses 6 of 8 GPUs (quota)");
}

TEST(BestFitScoreTest, FewerFreeGpusLeftScoresHigher) {
  EXPECT_EQ(BestFitScore(0), 100);
  EXPECT_EQ(BestFitScore(1), 90);
  EXPECT_GT(BestFitScore(2), BestFitScore(4));
  EXPECT_EQ(BestFitScore(10), 0);
  EXPECT_EQ(BestFitScore(50), 0);
}

TEST(RegistryTest, BuiltinPluginsHaveTheirNames) {
  PluginRegistry registry = BuiltinPlugins();
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry.filters) {
    EXPECT_EQ(factory()->Name(), name);
    names.push_back(name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"quota", "gpu_type", "gpu_count", "container_runtime",
                                             "gpu_memory", "allowed_providers", "node_labels"}));
  EXPECT_EQ(registry.scores.at("best_fit")()->Name(), "best_fit");
}

TEST(RegistryTest, UnknownScorePluginIsAnError) {
  auto pipeline = BuildPipeline(BuiltinPlugins(), {{"spread", 1}});
  ASSERT_FALSE(pipeline);
  EXPECT_EQ(pipeline.error().code, core::Code::kInvalidArgument);
  EXPECT_TRUE(BuildPipeline(BuiltinPlugins(), {})->RanksByFewestFree());
}

class FakeUsers final : public UserView {
 public:
  int GpusInUse(const std::string& owner) const override { return owner == "alice" ? 6 : 0; }
  Quota QuotaOf(const std::string&) const override { return Quota{.max_gpus_in_use = 8}; }
};

TEST(PipelineTest, ReportsTheFirstRefusal) {
  auto pipeline = BuildPipeline(BuiltinPlugins(), {});
  ASSERT_TRUE(pipeline);
  FakeUsers users;
  const CycleState cycle{.users = users, .want_reasons = true};
  NodeInfo node = MakeNode("n1", "RTX4090", 8);
  JobRequest job = MakeJob("a", 1, 4);
  EXPECT_EQ(pipeline->PreFilter(cycle, job).reason, "user alice uses 6 of 8 GPUs (quota)");
  EXPECT_TRUE(pipeline->PreFilter(cycle, MakeJob("b", 2, 4, "bob")).ok);
  EXPECT_TRUE(pipeline->Filter(cycle, job, NodeState{node, 4}).ok);
  EXPECT_EQ(pipeline->Filter(cycle, job, NodeState{node, 3}).reason,
            "needs 4 x RTX4090, node n1 has 8 x RTX4090 with 3 free");
  EXPECT_FALSE(pipeline->Accepts(cycle, job, NodeState{node, 3}));
  EXPECT_EQ(pipeline->Score(cycle, job, NodeState{node, 4}), 100);
  EXPECT_EQ(pipeline->Score(cycle, job, NodeState{node, 6}), 80);
}

}  // namespace
}  // namespace gpuorch::scheduler::plugins
