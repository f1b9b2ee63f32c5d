// MakeScheduler: queue order, placement, quotas, backoff, Unreserve, Explain and Queue.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include "sim_driver.h"

namespace gpuorch::scheduler {
namespace {

using testing::hours;
using testing::MakeJob;
using testing::MakeNode;
using testing::minutes;
using testing::seconds;
using testing::Sim;
using testing::T0;

std::vector<std::string> Ids(const Plan& plan) {
  std::vector<std::string> ids;
  for (const Assignment& a : plan.assignments) {
    ids.push_back(a.job_id);
  }
  return ids;
}

std::vector<std::string> QueueIds(const Scheduler& s) {
  std::vector<std::string> ids;
  for (const QueueEntry& e : s.Queue(T0(), 100, "")) {
    ids.push_back(e.job_id);
  }
  return ids;
}

TEST(SchedulerTest, OrdersByPriorityThenSeq) {
  auto s = MakeScheduler({});
  s->Enqueue(MakeJob("old", 1, 1));
  s->Enqueue(MakeJob("new", 2, 1));
  s->Enqueue(MakeJob("urgent", 3, 1, "alice", 5));
  EXPECT_EQ(QueueIds(*s), (std::vector<std::string>{"urgent", "old", "new"}));
  s->UpsertNode(MakeNode("n1", "RTX4090", 2));
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"urgent", "old"}));
  EXPECT_EQ(s->Explain("new", T0())->position, 1);
}

TEST(SchedulerTest, LighterUserGoesFirstAtEqualPriority) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 1));
  Sim sim(*s);
  sim.Submit(MakeJob("a1", 1, 1, "alice"), hours(1));
  sim.Advance(hours(1));  // alice ran 1 GPU-hour
  EXPECT_GT(s->FairShareUsage("alice", sim.now()), 3000);
  EXPECT_EQ(s->FairShareUsage("bob", sim.now()), 0);
  s->UpsertNode(MakeNode("n1", "RTX4090", 0));  // hold the queue while it fills
  sim.Submit(MakeJob("a2", 2, 1, "alice"), hours(1));
  sim.Submit(MakeJob("b1", 3, 1, "bob"), hours(1));
  sim.Submit(MakeJob("a3", 4, 1, "alice", 1), hours(1));
  std::vector<std::string> order;
  for (const QueueEntry& e : s->Queue(sim.now(), 10, "")) {
    order.push_back(e.job_id);
  }
  // Priority first, then bob (no usage) before alice despite the later seq.
  EXPECT_EQ(order, (std::vector<std::string>{"a3", "b1", "a2"}));
}

TEST(SchedulerTest, FairShareDecaysWithHalfLife) {
  auto s = MakeScheduler({.fair_share_half_life = hours(1), .user_weights = {{"bob", 2}}});
  s->UpsertNode(MakeNode("n1", "RTX4090", 4));
  Sim sim(*s);
  sim.Submit(MakeJob("a", 1, 2, "alice"), seconds(1000));
  sim.Submit(MakeJob("b", 2, 2, "bob"), seconds(1000));
  sim.Advance(seconds(1000));
  EXPECT_DOUBLE_EQ(s->FairShareUsage("alice", sim.now()), 2000);
  EXPECT_DOUBLE_EQ(s->FairShareUsage("bob", sim.now()), 1000);  // weight 2
  EXPECT_NEAR(s->FairShareUsage("alice", sim.now() + hours(1)), 1000, 1e-6);
  EXPECT_NEAR(s->FairShareUsage("alice", sim.now() + hours(2)), 500, 1e-6);
}

TEST(SchedulerTest, GangOnOneNodeWithLowestFreeGpus) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 4));
  s->MarkRunning(RunningJob{.job_id = "r",
                            .node = "n1",
                            .gpu_indices = {1},
                            .started_at = T0(),
                            .expected_end = T0() + hours(1)});
  s->Enqueue(MakeJob("a", 1, 2));
  s->Enqueue(MakeJob("b", 2, 2));
  Plan plan = s->Schedule(T0());
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].node, "n1");
  EXPECT_EQ(plan.assignments[0].node_id, "n1");
  EXPECT_EQ(plan.assignments[0].gpu_indices, (std::vector<int>{0, 2}));
  EXPECT_FALSE(plan.assignments[0].backfilled);
  EXPECT_EQ(s->Explain("b", T0())->reason,
            "needs 2 x RTX4090, node n1 has 4 x RTX4090 with 1 free; GPUs reserved on node n1 at " +
                core::FormatRfc3339(T0() + hours(1)));
}

TEST(SchedulerTest, BestFitKeepsAFreeBlockForABigJob) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("whole", "RTX4090", 4));
  s->UpsertNode(MakeNode("half", "RTX4090", 4));
  s->MarkRunning(RunningJob{.job_id = "r",
                            .node = "half",
                            .gpu_indices = {0, 1},
                            .started_at = T0(),
                            .expected_end = T0() + hours(1)});
  s->Enqueue(MakeJob("small", 1, 2));
  s->Enqueue(MakeJob("big", 2, 4));
  Plan plan = s->Schedule(T0());
  ASSERT_EQ(plan.assignments.size(), 2u);
  EXPECT_EQ(plan.assignments[0].job_id, "small");
  EXPECT_EQ(plan.assignments[0].node, "half");
  EXPECT_EQ(plan.assignments[0].gpu_indices, (std::vector<int>{2, 3}));
  EXPECT_EQ(plan.assignments[1].job_id, "big");
  EXPECT_EQ(plan.assignments[1].node, "whole");
}

TEST(SchedulerTest, FiltersChooseTheNode) {
  auto s = MakeScheduler({});
  NodeInfo plain = MakeNode("plain", "A100", 8, 40);
  NodeInfo docker = MakeNode("docker", "A100", 8, 80);
  docker.container_runtime = true;
  docker.labels = {{"zone", "eu"}};
  docker.provider = "runpod";
  s->UpsertNode(plain);
  s->UpsertNode(docker);
  JobRequest image = MakeJob("image", 1, 1, "alice", 0, "A100");
  image.needs_container = true;
  JobRequest big_memory = MakeJob("mem", 2, 2, "alice", 0, "a100");  // canonicalized
  big_memory.memory_gb = 120;
  JobRequest zone = MakeJob("zone", 3, 1, "alice", 0, "");
  zone.node_selector = {{"zone", "eu"}};
  JobRequest provider = MakeJob("provider", 4, 1, "alice", 0, "A100");
  provider.allowed_providers = {"runpod"};
  JobRequest anywhere = MakeJob("anywhere", 5, 1, "alice", 0, "A100");
  for (const JobRequest& job : {image, big_memory, zone, provider, anywhere}) {
    s->Enqueue(job);
  }
  std::map<std::string, std::string> node_of;
  for (const Assignment& a : s->Schedule(T0()).assignments) {
    node_of[a.job_id] = a.node;
  }
  EXPECT_EQ(node_of, (std::map<std::string, std::string>{{"image", "docker"},
                                                         {"mem", "docker"},
                                                         {"zone", "docker"},
                                                         {"provider", "docker"},
                                                         {"anywhere", "docker"}}));
  // "anywhere" went to the fuller node (best fit); a job needing 16 GPUs fits nowhere.
  s->Enqueue(MakeJob("huge", 6, 16, "alice", 0, "A100"));
  EXPECT_TRUE(s->Schedule(T0()).assignments.empty());
  EXPECT_EQ(s->Explain("huge", T0())->reason,
            "needs 16 x A100 on one node; none of 2 nodes qualifies, e.g. needs 16 x A100, node "
            "plain has 8 x A100");
}

TEST(SchedulerTest, QuotaWaitsWithoutBlockingOthers) {
  auto s = MakeScheduler({.user_quotas = {{"alice", Quota{.max_gpus_in_use = 4}}}});
  s->UpsertNode(MakeNode("n1", "RTX4090", 8));
  s->Enqueue(MakeJob("a1", 1, 4, "alice"));
  s->Enqueue(MakeJob("a2", 2, 2, "alice"));
  s->Enqueue(MakeJob("b1", 3, 2, "bob"));
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"a1", "b1"}));
  EXPECT_EQ(s->Explain("a2", T0())->reason, "user alice uses 4 of 4 GPUs (quota)");
  EXPECT_EQ(s->GpusInUse("alice"), 4);
  EXPECT_EQ(s->QueuedJobs("alice"), 1);
  EXPECT_EQ(s->QuotaOf("alice").max_gpus_in_use, 4);
  s->MarkEnded("a1", T0() + minutes(1));
  EXPECT_EQ(Ids(s->Schedule(T0() + minutes(1))), (std::vector<std::string>{"a2"}));
}

// Quotas set by admins at run time (apps: UserLimits) apply from the next pass, both ways.
TEST(SchedulerTest, SetQuotaAppliesFromTheNextPassBothWays) {
  for (bool fifo : {false, true}) {
    SCOPED_TRACE(fifo ? "fifo" : "fair");
    auto s = fifo ? MakeFifoScheduler({}) : MakeScheduler({});
    s->UpsertNode(MakeNode("n1", "RTX4090", 8));
    s->Enqueue(MakeJob("a1", 1, 2, "alice"));
    ASSERT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"a1"}));
    s->SetQuota("alice", Quota{.max_gpus_in_use = 2});
    s->Enqueue(MakeJob("a2", 2, 1, "alice"));
    EXPECT_TRUE(s->Schedule(T0()).assignments.empty());
    EXPECT_EQ(s->Explain("a2", T0())->reason, "user alice uses 2 of 2 GPUs (quota)");
    EXPECT_FALSE(s->Explain("a2", T0())->needs_capacity);
    s->SetQuota("alice", std::nullopt);  // back to the default: unlimited
    EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"a2"}));
  }
}

TEST(SchedulerTest, HeldOwnerWaitsWithTheHoldReasonAndNeedsNoCapacity) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 8));
  s->SetQuota("bob", Quota{.hold_reason = "monthly budget of $5.00 spent ($5.10 this month)"});
  s->Enqueue(MakeJob("b1", 1, 1, "bob"));
  s->Enqueue(MakeJob("c1", 2, 1, "carol"));
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"c1"}));
  auto wait = s->Explain("b1", T0());
  ASSERT_TRUE(wait);
  EXPECT_EQ(wait->reason, "monthly budget of $5.00 spent ($5.10 this month)");
  EXPECT_FALSE(wait->needs_capacity) << "a held job must not make the service rent capacity";
  s->SetQuota("bob", Quota{});
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"b1"}));
}

TEST(SchedulerTest, RetryBackoffIsRespected) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 8));
  JobRequest job = MakeJob("retry", 1, 1);
  job.not_before = T0() + seconds(60);
  s->Enqueue(job);
  s->Enqueue(MakeJob("other", 2, 1));
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"other"}));
  EXPECT_EQ(s->Explain("retry", T0())->reason,
            "retry backoff until " + core::FormatRfc3339(T0() + seconds(60)));
  EXPECT_TRUE(s->Schedule(T0() + seconds(59)).assignments.empty());
  EXPECT_EQ(Ids(s->Schedule(T0() + seconds(60))), (std::vector<std::string>{"retry"}));
}

TEST(SchedulerTest, UnreservePutsTheJobBack) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 2));
  s->Enqueue(MakeJob("a", 1, 2));
  ASSERT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"a"}));
  EXPECT_EQ(s->GpusInUse("alice"), 2);
  EXPECT_FALSE(s->Explain("a", T0()));
  s->Unreserve("a");
  EXPECT_EQ(s->GpusInUse("alice"), 0);
  EXPECT_EQ(s->FairShareUsage("alice", T0()), 0);  // not charged
  EXPECT_EQ(s->Explain("a", T0())->position, 1);
  Plan again = s->Schedule(T0());
  ASSERT_EQ(Ids(again), (std::vector<std::string>{"a"}));
  EXPECT_EQ(again.assignments[0].gpu_indices, (std::vector<int>{0, 1}));
  s->Unreserve("unknown");  // no-op
}

TEST(SchedulerTest, ExplainAndQueueGivePositionsAndReasons) {
  auto s = MakeScheduler({});
  EXPECT_FALSE(s->Explain("nope", T0()));
  s->Enqueue(MakeJob("a", 1, 4));
  EXPECT_EQ(s->Explain("a", T0())->reason, "no nodes registered");
  NodeInfo n1 = MakeNode("n1", "RTX4090", 8);
  s->UpsertNode(n1);
  EXPECT_EQ(s->Explain("a", T0())->reason, "fits node n1; starts at the next pass");
  s->MarkRunning(RunningJob{.job_id = "r",
                            .owner = "carol",
                            .node = "n1",
                            .gpu_indices = {0, 1, 2, 3, 4, 5},
                            .started_at = T0(),
                            .expected_end = T0() + hours(2)});
  s->Enqueue(MakeJob("b", 2, 1, "bob"));
  s->Enqueue(MakeJob("c", 3, 4, "bob"));
  Plan plan = s->Schedule(T0());
  // a (head) reserves n1 at +2h; b (1 GPU, 1h bound) backfills; c waits behind the reservation.
  EXPECT_EQ(Ids(plan), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(plan.assignments[0].backfilled);
  std::vector<QueueEntry> queue = s->Queue(T0(), 10, "");
  ASSERT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue[0].job_id, "a");
  EXPECT_EQ(queue[0].wait.position, 1);
  EXPECT_EQ(queue[0].gpu_count, 4);
  EXPECT_EQ(queue[0].wait.reason,
            "needs 4 x RTX4090, node n1 has 8 x RTX4090 with 1 free; GPUs reserved on node n1 at " +
                core::FormatRfc3339(T0() + hours(2)));
  EXPECT_EQ(queue[1].job_id, "c");
  EXPECT_EQ(queue[1].owner, "bob");
  EXPECT_EQ(queue[1].wait.position, 2);
  EXPECT_EQ(queue[1].wait.reason, queue[0].wait.reason.substr(0, queue[0].wait.reason.find(';')));
  EXPECT_EQ(s->Queue(T0(), 1, "").size(), 1u);
  EXPECT_EQ(s->Explain("c", T0())->position, 2);
}

TEST(SchedulerTest, QueueOfOneOwnerKeepsPositionsInTheWholeQueue) {
  auto fair = MakeScheduler({});
  auto fifo = MakeFifoScheduler({});
  for (Scheduler* s : {fair.get(), fifo.get()}) {
    for (int i = 1; i <= 4; ++i) {
      s->Enqueue(MakeJob("a" + std::to_string(i), i, 1, "alice", 5));  // ahead of every bob job
    }
    for (int i = 1; i <= 3; ++i) {
      s->Enqueue(MakeJob("b" + std::to_string(i), 10 + i, 1, "bob"));
    }
    // The first two of bob's jobs, though four of alice's come first in the queue.
    std::vector<QueueEntry> bobs = s->Queue(T0(), 2, "bob");
    ASSERT_EQ(bobs.size(), 2u);
    EXPECT_EQ(bobs[0].job_id, "b1");
    EXPECT_EQ(bobs[0].wait.position, 5);
    EXPECT_EQ(bobs[1].job_id, "b2");
    EXPECT_EQ(bobs[1].wait.position, 6);
    EXPECT_EQ(s->Explain("b2", T0())->position, 6);
    EXPECT_EQ(s->Queue(T0(), 100, "bob").size(), 3u);
    EXPECT_EQ(s->Queue(T0(), 100, "alice").size(), 4u);
    EXPECT_TRUE(s->Queue(T0(), 100, "carol").empty());
    EXPECT_EQ(s->Queue(T0(), 100, "").size(), 7u);
  }
}

TEST(SchedulerTest, ManyNodesAreSummarized) {
  auto s = MakeScheduler({});
  for (int i = 0; i < 1204; ++i) {
    s->UpsertNode(MakeNode("n" + std::to_string(i), "RTX4090", 8));
    s->MarkRunning(RunningJob{.job_id = "r" + std::to_string(i),
                              .node = "n" + std::to_string(i),
                              .gpu_indices = {0, 1, 2, 3, 4, 5, 6, i == 17 ? 6 : 7},
                              .started_at = T0(),
                              .expected_end = T0() + hours(1)});
  }
  s->Enqueue(MakeJob("a", 1, 4));
  s->Schedule(T0());
  EXPECT_EQ(s->Explain("a", T0())->reason,
            "needs 4 x RTX4090 on one node; the best node n17 has 1 free (1,204 nodes checked); "
            "GPUs reserved on node n17 at " +
                core::FormatRfc3339(T0() + hours(1)));
}

TEST(SchedulerTest, DequeueAndRemoveNode) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 2));
  s->Enqueue(MakeJob("a", 1, 2));
  s->Enqueue(MakeJob("b", 2, 2));
  s->Dequeue("a");
  s->Dequeue("missing");
  EXPECT_EQ(s->QueuedJobs("alice"), 1);
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"b"}));
  s->RemoveNode("n1");
  EXPECT_EQ(s->GpusInUse("alice"), 0);  // forgotten with its node
  s->Enqueue(MakeJob("b", 2, 2));
  EXPECT_TRUE(s->Schedule(T0()).assignments.empty());
  s->UpsertNode(MakeNode("n2", "RTX4090", 2));
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"b"}));
}

TEST(SchedulerTest, RemovingTheReservedNodeMovesTheReservation) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 4));
  s->UpsertNode(MakeNode("n2", "RTX4090", 4));
  s->MarkRunning(RunningJob{.job_id = "r1",
                            .node = "n1",
                            .gpu_indices = {0, 1},
                            .started_at = T0(),
                            .expected_end = T0() + hours(1)});
  s->MarkRunning(RunningJob{.job_id = "r2",
                            .node = "n2",
                            .gpu_indices = {0, 1},
                            .started_at = T0(),
                            .expected_end = T0() + hours(2)});
  s->Enqueue(MakeJob("head", 1, 4));
  EXPECT_TRUE(s->Schedule(T0()).assignments.empty());
  EXPECT_NE(s->Explain("head", T0())->reason.find("reserved on node n1 at"), std::string::npos);
  s->RemoveNode("n1");
  EXPECT_EQ(s->Explain("head", T0())->reason,
            "needs 4 x RTX4090, node n2 has 4 x RTX4090 with 2 free");
  s->UpsertNode(MakeNode("n3", "RTX4090", 2));  // takes n1's slot
  EXPECT_TRUE(s->Schedule(T0()).assignments.empty());
  EXPECT_EQ(s->Explain("head", T0())->reason,
            "needs 4 x RTX4090 on one node; the best node n2 has 2 free (2 nodes checked); GPUs "
            "reserved on node n2 at " +
                core::FormatRfc3339(T0() + hours(2)));
}

TEST(SchedulerTest, RunningJobsOnAnUnknownNodeAttachWhenItArrives) {
  auto s = MakeScheduler({});
  s->MarkRunning(RunningJob{.job_id = "r",
                            .node = "late",
                            .gpu_indices = {0, 1},
                            .started_at = T0(),
                            .expected_end = T0() + hours(1)});
  EXPECT_EQ(s->GpusInUse("default"), 2);
  s->UpsertNode(MakeNode("late", "RTX4090", 2));
  s->Enqueue(MakeJob("a", 1, 1));
  EXPECT_TRUE(s->Schedule(T0()).assignments.empty());
  s->MarkEnded("r", T0() + minutes(5));
  EXPECT_EQ(Ids(s->Schedule(T0() + minutes(5))), (std::vector<std::string>{"a"}));
}

TEST(SchedulerTest, NothingChangedMeansNothingToDo) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 2));
  s->Enqueue(MakeJob("a", 1, 2));
  s->Enqueue(MakeJob("b", 2, 2));
  EXPECT_EQ(Ids(s->Schedule(T0())), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(s->Schedule(T0() + minutes(1)).assignments.empty());
  s->MarkEnded("a", T0() + minutes(2));
  EXPECT_EQ(Ids(s->Schedule(T0() + minutes(2))), (std::vector<std::string>{"b"}));
}

}  // namespace
}  // namespace gpuorch::scheduler
