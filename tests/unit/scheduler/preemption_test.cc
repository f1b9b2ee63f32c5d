// Preemption: the fewest preemptible, strictly lower-priority victims on one node; their GPUs stay
// held until they end, and go to the preemptor.
#include "scheduler/internal/preemption.h"

#include <gtest/gtest.h>

#include "scheduler/scheduler.h"
#include "sim_driver.h"

namespace gpuorch::scheduler {
namespace {

using internal::ChooseVictims;
using internal::VictimCandidate;
using testing::hours;
using testing::MakeJob;
using testing::MakeNode;
using testing::minutes;
using testing::T0;

TEST(ChooseVictimsTest, FewestThenLeastLostWorkThenFewestGpus) {
  EXPECT_TRUE(ChooseVictims(4, 4, {{1, 10}})->chosen.empty());
  EXPECT_FALSE(ChooseVictims(0, 4, {{1, 10}, {2, 10}}));
  // One 4-GPU victim beats two 2-GPU ones even though it lost more work.
  EXPECT_EQ(ChooseVictims(0, 4, {{2, 1}, {2, 1}, {4, 100}})->chosen, (std::vector<int>{2}));
  // Among single victims, the least work lost.
  EXPECT_EQ(ChooseVictims(1, 3, {{2, 50}, {4, 20}, {2, 30}})->chosen, (std::vector<int>{1}));
  // Equal work lost: the fewest GPUs.
  EXPECT_EQ(ChooseVictims(1, 3, {{4, 20}, {2, 20}})->chosen, (std::vector<int>{1}));
  // Many candidates fall back to a greedy choice that still suffices.
  std::vector<VictimCandidate> many(20, VictimCandidate{1, 5});
  auto greedy = ChooseVictims(0, 3, many);
  ASSERT_TRUE(greedy);
  EXPECT_EQ(greedy->chosen.size(), 3u);
}

RunningJob Running(std::string id, std::string node, std::vector<int> gpus, int priority,
                   bool preemptible, core::SystemTime started = T0()) {
  return RunningJob{.job_id = std::move(id),
                    .owner = "low",
                    .node = std::move(node),
                    .gpu_indices = std::move(gpus),
                    .priority = priority,
                    .preemptible = preemptible,
                    .started_at = started,
                    .expected_end = started + hours(10)};
}

TEST(PreemptionTest, StopsTheFewestLowerPriorityPreemptibleJobs) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("a", "RTX4090", 4));
  s->UpsertNode(MakeNode("b", "RTX4090", 4));
  s->UpsertNode(MakeNode("c", "RTX4090", 4));
  // a: two preemptible 2-GPU jobs (two victims needed).
  s->MarkRunning(Running("a1", "a", {0, 1}, 0, true));
  s->MarkRunning(Running("a2", "a", {2, 3}, 0, true));
  // b: one preemptible 3-GPU job and one not preemptible: one victim + the free GPU? No free GPU.
  s->MarkRunning(Running("b1", "b", {0, 1, 2}, 0, true));
  s->MarkRunning(Running("b2", "b", {3}, 0, false));
  // c: a 4-GPU job of equal priority: not a candidate.
  s->MarkRunning(Running("c1", "c", {0, 1, 2, 3}, 5, true));
  s->Enqueue(MakeJob("urgent", 1, 4, "high", 5));
  Plan plan = s->Schedule(T0() + minutes(1));
  EXPECT_TRUE(plan.assignments.empty());
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_EQ(plan.preemptions[0],
            (Preemption{.job_id = "urgent", .node = "a", .victims = {"a1", "a2"}}));
  // b1 is lower priority but b2 is not preemptible: b cannot free 4 GPUs.

  // Victims keep their GPUs until they end; the preemption is not asked for again.
  s->Enqueue(MakeJob("filler", 2, 1, "low"));
  for (int i = 0; i < 3; ++i) {
    Plan again = s->Schedule(T0() + minutes(2 + i));
    EXPECT_TRUE(again.preemptions.empty());
    EXPECT_TRUE(again.assignments.empty());
  }
  EXPECT_EQ(s->Explain("urgent", T0() + minutes(2))->reason,
            "waiting for preempted jobs a1, a2 to stop on node a");
  EXPECT_EQ(s->GpusInUse("low"), 12);  // nothing freed yet
  s->MarkEnded("a1", T0() + minutes(5));
  EXPECT_TRUE(s->Schedule(T0() + minutes(5)).assignments.empty());  // a1's GPUs wait for urgent
  s->MarkEnded("a2", T0() + minutes(6));
  Plan started = s->Schedule(T0() + minutes(6));
  ASSERT_EQ(started.assignments.size(), 1u);
  EXPECT_EQ(started.assignments[0].job_id, "urgent");
  EXPECT_EQ(started.assignments[0].node, "a");
  EXPECT_EQ(started.assignments[0].gpu_indices, (std::vector<int>{0, 1, 2, 3}));
}

TEST(PreemptionTest, PrefersLeastLostWorkAndUsesFreeGpus) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("old", "RTX4090", 4));
  s->UpsertNode(MakeNode("young", "RTX4090", 4));
  s->MarkRunning(Running("o1", "old", {0, 1}, 0, true, T0() - hours(5)));
  s->MarkRunning(Running("o2", "old", {2}, 3, false, T0() - hours(5)));
  s->MarkRunning(Running("y1", "young", {0, 1}, 0, true, T0() - hours(1)));
  s->MarkRunning(Running("y2", "young", {2}, 3, false, T0() - hours(1)));
  s->Enqueue(MakeJob("p", 1, 3, "high", 1));
  Plan plan = s->Schedule(T0());
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_EQ(plan.preemptions[0].node, "young");
  EXPECT_EQ(plan.preemptions[0].victims, (std::vector<std::string>{"y1"}));
  // The free GPU 3 of "young" is claimed for p: a 1-GPU job goes to "old".
  s->Enqueue(MakeJob("one", 2, 1, "other", 0));
  Plan next = s->Schedule(T0());
  ASSERT_EQ(next.assignments.size(), 1u);
  EXPECT_EQ(next.assignments[0].node, "old");
  s->MarkEnded("y1", T0() + minutes(1));
  Plan started = s->Schedule(T0() + minutes(1));
  ASSERT_EQ(started.assignments.size(), 1u);
  EXPECT_EQ(started.assignments[0].gpu_indices, (std::vector<int>{0, 1, 3}));
}

TEST(PreemptionTest, NeverPreemptsEqualPriorityOrNonPreemptibleOrWhenDisabled) {
  for (bool enabled : {true, false}) {
    auto s = MakeScheduler({.preemption = enabled});
    s->UpsertNode(MakeNode("n", "RTX4090", 2));
    s->MarkRunning(Running("same", "n", {0}, 2, true));
    s->MarkRunning(Running("pinned", "n", {1}, 0, false));
    s->Enqueue(MakeJob("p", 1, 1, "high", 2));
    EXPECT_TRUE(s->Schedule(T0()).preemptions.empty());
    s->MarkRunning(Running("pinned", "n", {1}, 0, true));  // now preemptible
    EXPECT_EQ(s->Schedule(T0()).preemptions.size(), enabled ? 1u : 0u);
  }
}

TEST(PreemptionTest, GpusBeingFreedCountAgainstThePreemptorsQuota) {
  auto s = MakeScheduler({.user_quotas = {{"high", Quota{.max_gpus_in_use = 4}}}});
  s->UpsertNode(MakeNode("n", "RTX4090", 4));
  s->UpsertNode(MakeNode("spare", "A100", 1));
  s->MarkRunning(Running("v", "n", {0, 1, 2, 3}, 0, true));
  s->Enqueue(MakeJob("p", 1, 4, "high", 5));
  s->Enqueue(MakeJob("q", 2, 1, "high", 5, "A100"));
  Plan plan = s->Schedule(T0());
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_TRUE(plan.assignments.empty());  // q would fit on "spare", but p's GPUs are on the way
  EXPECT_EQ(s->Explain("q", T0())->reason, "user high uses 4 of 4 GPUs (quota)");
  EXPECT_EQ(s->GpusInUse("high"), 0);
  s->MarkEnded("v", T0() + minutes(1));
  plan = s->Schedule(T0() + minutes(1));
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].job_id, "p");
  EXPECT_EQ(s->GpusInUse("high"), 4);
}

TEST(PreemptionTest, DequeuedPreemptorReleasesItsClaim) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n", "RTX4090", 2));
  s->MarkRunning(Running("v", "n", {0}, 0, true));
  s->Enqueue(MakeJob("p", 1, 2, "high", 1));
  ASSERT_EQ(s->Schedule(T0()).preemptions.size(), 1u);
  s->Dequeue("p");
  s->Enqueue(MakeJob("small", 2, 1, "other"));
  Plan plan = s->Schedule(T0());
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].gpu_indices, (std::vector<int>{1}));
}

TEST(PreemptionTest, SimulatedVictimsAreRequeuedAndThePreemptorRuns) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 4));
  s->UpsertNode(MakeNode("n2", "RTX4090", 4));
  testing::Sim sim(*s);
  for (int i = 0; i < 8; ++i) {
    JobRequest low = MakeJob("low" + std::to_string(i), i + 1, 1, "batch");
    low.preemptible = true;
    sim.Submit(low, hours(3));
  }
  sim.Step();
  sim.Submit(MakeJob("vip", 100, 4, "boss", 10), hours(1));
  Plan plan = sim.Step();
  ASSERT_EQ(plan.preemptions.size(), 1u);
  EXPECT_EQ(plan.preemptions[0].victims.size(), 4u);
  EXPECT_TRUE(sim.IsRunning("vip"));
  sim.RunUntil(T0() + hours(8));
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(sim.IsRunning("low" + std::to_string(i)));  // all finished in the end
  }
}

}  // namespace
}  // namespace gpuorch::scheduler
