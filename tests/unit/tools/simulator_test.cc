#include "sim/simulator.h"

#include <gtest/gtest.h>

#include "sim/report.h"
#include "unit/tools/fake_scheduler.h"

namespace gpuorch::sim {
namespace {

using testing::FakeScheduler;

TraceJob Job(double arrival_s, int gpus, double runtime_s, int priority = 0) {
  return TraceJob{.arrival_s = arrival_s,
                  .gpus = gpus,
                  .runtime_s = runtime_s,
                  .bound_s = 3600,
                  .user = "u0",
                  .priority = priority};
}

TEST(SimulateTest, ReplaysWaitsAndUtilisation) {
  FakeScheduler fifo;
  // One node of 2 GPUs: the 2-GPU job holds it for 10 s, the 1-GPU job arriving at 1 s waits 9 s.
  std::vector<TraceJob> trace = {Job(0, 2, 10), Job(1, 1, 5)};
  auto result = Simulate(fifo, trace, ClusterOptions{.nodes = 1, .gpus_per_node = 2});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->total_gpus, 2);
  EXPECT_DOUBLE_EQ(result->makespan_s, 15);
  EXPECT_DOUBLE_EQ(result->busy_gpu_s, 25);
  EXPECT_DOUBLE_EQ(result->jobs[0].wait_s, 0);
  EXPECT_DOUBLE_EQ(result->jobs[1].wait_s, 9);
  EXPECT_DOUBLE_EQ(result->jobs[1].first_start_s, 10);
  EXPECT_DOUBLE_EQ(result->jobs[1].end_s, 15);
  EXPECT_EQ(result->starved, 0);
  EXPECT_EQ(result->stalls, 0);
  EXPECT_NEAR(Summarise(*result).utilisation, 25.0 / 30, 1e-9);
}

TEST(SimulateTest, RunsAGeneratedTraceToTheEnd) {
  FakeScheduler fifo;
  std::vector<TraceJob> trace = GenerateTrace(TraceOptions{.jobs = 400, .total_gpus = 32});
  auto result = Simulate(fifo, trace, ClusterOptions{.nodes = 4, .gpus_per_node = 8});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->starved, 0);
  double work = 0;
  for (const TraceJob& job : trace) {
    work += job.gpus * job.runtime_s;
  }
  EXPECT_NEAR(result->busy_gpu_s, work, 1.0);
  for (const JobOutcome& o : result->jobs) {
    EXPECT_GE(o.first_start_s, o.arrival_s);
    EXPECT_GT(o.end_s, o.first_start_s);
  }
}

TEST(SimulateTest, PreemptedJobsResumeWithTheirRemainingWork) {
  FakeScheduler scheduler(/*preempt=*/true);
  // A low-priority job holds the only GPU; a high-priority one arrives at 10 s and preempts it.
  std::vector<TraceJob> trace = {Job(0, 1, 100), Job(10, 1, 20, /*priority=*/1)};
  auto result = Simulate(scheduler, trace,
                         ClusterOptions{.nodes = 1, .gpus_per_node = 1, .preemption = true});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->preemptions, 1);
  EXPECT_EQ(result->wasted_preemptions, 0);
  EXPECT_DOUBLE_EQ(result->jobs[1].first_start_s, 10);
  EXPECT_DOUBLE_EQ(result->jobs[1].end_s, 30);
  EXPECT_EQ(result->jobs[0].preemptions, 1);
  EXPECT_DOUBLE_EQ(result->jobs[0].wait_s, 20);      // queued again from 10 s to 30 s
  EXPECT_DOUBLE_EQ(result->jobs[0].end_s, 30 + 90);  // 90 s of work were left
  EXPECT_DOUBLE_EQ(result->busy_gpu_s, 120);
}

TEST(SimulateTest, PreemptionOfANonPreemptibleJobIsAViolation) {
  FakeScheduler scheduler(/*preempt=*/true);
  std::vector<TraceJob> trace = {Job(0, 1, 100), Job(10, 1, 20, /*priority=*/1)};
  // Preemption off: the simulator submits nothing preemptible, so the fake asks for nothing.
  auto result = Simulate(scheduler, trace, ClusterOptions{.nodes = 1, .gpus_per_node = 1});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->preemptions, 0);
  EXPECT_DOUBLE_EQ(result->jobs[1].wait_s, 90);
}

TEST(SimulateTest, CatchesAGpuGivenTwice) {
  FakeScheduler broken(false, FakeScheduler::Misbehave::kDoubleBook);
  std::vector<TraceJob> trace = {Job(0, 1, 100), Job(1, 1, 100)};
  auto result = Simulate(broken, trace, ClusterOptions{.nodes = 1, .gpus_per_node = 2});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Code::kInternal);
  EXPECT_NE(result.error().message.find("GPU 0 of node-000 given to job-000001 while job-000000"),
            std::string::npos)
      << result.error().message;
}

TEST(SimulateTest, CatchesGpusInUseDisagreeing) {
  FakeScheduler broken(false, FakeScheduler::Misbehave::kMiscountGpus);
  auto result = Simulate(broken, {Job(0, 1, 10)}, ClusterOptions{.nodes = 1, .gpus_per_node = 1});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("GpusInUse"), std::string::npos);
}

TEST(SimulateTest, ReportsStarvedJobsInsteadOfHanging) {
  FakeScheduler idle(false, FakeScheduler::Misbehave::kNeverStart);
  std::vector<TraceJob> trace = {Job(0, 1, 10), Job(0, 2, 10)};
  auto result = Simulate(idle, trace, ClusterOptions{.nodes = 1, .gpus_per_node = 2});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->starved, 2);
  EXPECT_EQ(result->stalls, 3);
  ASSERT_EQ(result->starved_examples.size(), 2u);
  EXPECT_EQ(result->starved_examples[1], "job-000001 (2 GPUs, queued): no reason given");
  Summary s = Summarise(*result);
  ASSERT_EQ(s.by_size.size(), 2u);
  EXPECT_EQ(s.by_size[0].starved, 1);
  EXPECT_EQ(s.by_size[1].starved, 1);
}

TEST(SimulateTest, RejectsJobsLargerThanANode) {
  FakeScheduler fifo;
  auto result = Simulate(fifo, {Job(0, 4, 10)}, ClusterOptions{.nodes = 2, .gpus_per_node = 2});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Code::kInvalidArgument);
}

}  // namespace
}  // namespace gpuorch::sim
