// MakeFifoScheduler: the strict first-come-first-served baseline.
#include <gtest/gtest.h>

#include "scheduler/scheduler.h"
#include "sim_driver.h"

namespace gpuorch::scheduler {
namespace {

using testing::hours;
using testing::MakeJob;
using testing::MakeNode;
using testing::minutes;
using testing::seconds;
using testing::T0;

TEST(FifoSchedulerTest, HeadOfLineBlocksEveryoneBehind) {
  auto fifo = MakeFifoScheduler({});
  auto fair = MakeScheduler({});
  for (Scheduler* s : {fifo.get(), fair.get()}) {
    s->UpsertNode(MakeNode("n1", "RTX4090", 4));
    s->MarkRunning(RunningJob{.job_id = "r",
                              .node = "n1",
                              .gpu_indices = {0, 1},
                              .started_at = T0(),
                              .expected_end = T0() + hours(1)});
    s->Enqueue(MakeJob("big", 1, 4));
    s->Enqueue(MakeJob("small", 2, 1));  // fits now, and ends before the reservation
  }
  EXPECT_TRUE(fifo->Schedule(T0()).assignments.empty());
  EXPECT_EQ(fifo->Explain("small", T0())->reason,
            "waiting behind job big (first come, first served)");
  EXPECT_EQ(fifo->Explain("big", T0())->reason,
            "needs 4 x RTX4090, node n1 has 4 x RTX4090 with 2 free");
  // The fair scheduler backfills it: small's 1h bound ends by big's reservation... at +1h.
  Plan plan = fair->Schedule(T0());
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].job_id, "small");
  EXPECT_TRUE(plan.assignments[0].backfilled);
  fifo->MarkEnded("r", T0() + hours(1));
  Plan fifo_plan = fifo->Schedule(T0() + hours(1));
  ASSERT_EQ(fifo_plan.assignments.size(), 1u);  // big takes all 4 GPUs; small still waits
  EXPECT_EQ(fifo_plan.assignments[0].job_id, "big");
  EXPECT_EQ(fifo_plan.assignments[0].gpu_indices, (std::vector<int>{0, 1, 2, 3}));
}

TEST(FifoSchedulerTest, OrderIsPriorityThenSeqWithoutFairShare) {
  auto s = MakeFifoScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 1));
  testing::Sim sim(*s);
  sim.Submit(MakeJob("a1", 1, 1, "alice"), hours(1));
  sim.Advance(hours(1));
  sim.Submit(MakeJob("a2", 2, 1, "alice"), hours(1));
  sim.Submit(MakeJob("b1", 3, 1, "bob"), hours(1));
  sim.Submit(MakeJob("c1", 4, 1, "carol", 1), hours(1));
  std::vector<std::string> order;
  for (const QueueEntry& e : s->Queue(sim.now(), 10, "")) {
    order.push_back(e.job_id);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"c1", "a2", "b1"}));  // alice's usage does not matter
  EXPECT_GT(s->FairShareUsage("alice", sim.now()), 0);             // though it is reported
  sim.RunUntil(sim.now() + hours(4));
  EXPECT_LT(sim.started().at("a2"), sim.started().at("b1"));
}

TEST(FifoSchedulerTest, FirstFittingNodeAndSkipsWhatCannotStart) {
  auto s = MakeFifoScheduler({.user_quotas = {{"capped", Quota{.max_gpus_in_use = 1}}}});
  s->UpsertNode(MakeNode("first", "RTX4090", 8));
  s->UpsertNode(MakeNode("second", "RTX4090", 2));
  JobRequest later = MakeJob("later", 1, 1);
  later.not_before = T0() + minutes(1);
  s->Enqueue(later);
  s->Enqueue(MakeJob("capped", 2, 2, "capped"));
  s->Enqueue(MakeJob("small", 3, 2));
  Plan plan = s->Schedule(T0());
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].job_id, "small");
  EXPECT_EQ(plan.assignments[0].node, "first");  // not best fit: the first node that fits
  EXPECT_EQ(s->Explain("capped", T0())->reason, "user capped uses 0 of 1 GPUs (quota)");
  EXPECT_EQ(s->Explain("later", T0())->position, 1);
  EXPECT_EQ(s->Schedule(T0() + minutes(1)).assignments.size(), 1u);
  s->Unreserve("small");
  EXPECT_EQ(s->QueuedJobs("alice"), 1);
  EXPECT_EQ(s->Schedule(T0() + minutes(1)).assignments.size(), 1u);
}

}  // namespace
}  // namespace gpuorch::scheduler
