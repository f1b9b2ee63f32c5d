// EASY backfill: jobs behind a blocked head start only where they cannot delay its reservation, and
// the head does not starve.
#include <gtest/gtest.h>

#include "scheduler/internal/reservation.h"
#include "scheduler/scheduler.h"
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

JobRequest Bounded(JobRequest job, seconds bound) {
  job.runtime_bound = bound;
  return job;
}

TEST(EarliestStartTest, AccumulatesReleasesInTimeOrder) {
  using internal::GpuRelease;
  const core::SystemTime now = T0();
  auto earliest = [&](int free, int need, std::vector<GpuRelease> releases) {
    return internal::EarliestStart(free, need, releases, now);
  };
  EXPECT_EQ(earliest(4, 4, {}), now);
  const std::vector<GpuRelease> three = {
      {now + hours(3), 2}, {now + hours(1), 1}, {now + hours(2), 1}};
  EXPECT_EQ(earliest(1, 4, three), now + hours(3));
  EXPECT_EQ(earliest(2, 4, three), now + hours(2));
  EXPECT_EQ(earliest(0, 4, {{now - hours(1), 4}}), now);  // overdue: ends any moment
  EXPECT_FALSE(earliest(0, 4, {{now + hours(1), 2}}));
}

// One 4-GPU node: r1 holds 2 GPUs until +1h, r2 holds 1 until +2h; 1 GPU is free. The head needs
// all 4: its reservation is node n1 at +2h. Short jobs (ending by then) backfill the free GPU; a
// long one does not, and the head starts exactly at its reservation.
TEST(BackfillTest, BackfillDoesNotDelayTheHeadsReservation) {
  for (bool backfill : {true, false}) {
    SCOPED_TRACE(backfill ? "backfill on" : "backfill off");
    auto s = MakeScheduler({.backfill = backfill});
    s->UpsertNode(MakeNode("n1", "RTX4090", 4));
    Sim sim(*s);
    sim.Submit(Bounded(MakeJob("r1", 1, 2), hours(1)), hours(1));
    sim.Submit(Bounded(MakeJob("r2", 2, 1), hours(2)), hours(2));
    sim.Step();
    sim.Submit(MakeJob("head", 3, 4), hours(1));
    sim.Submit(Bounded(MakeJob("long", 4, 1), hours(3)), hours(3));
    sim.Step();
    const core::SystemTime reserved = T0() + hours(2);
    const std::string head_reason =
        "needs 4 x RTX4090, node n1 has 4 x RTX4090 with 1 free; GPUs "
        "reserved on node n1 at " +
        core::FormatRfc3339(reserved);
    EXPECT_EQ(s->Explain("head", T0())->reason, head_reason);
    EXPECT_EQ(s->Explain("long", T0())->reason,
              backfill
                  ? "waiting for GPUs reserved for job head at " + core::FormatRfc3339(reserved)
                  : "waiting behind job head (backfill is off)");
    sim.Submit(Bounded(MakeJob("short", 5, 1), minutes(50)), minutes(50));
    sim.Submit(Bounded(MakeJob("short2", 6, 1), minutes(60)), minutes(60));
    sim.Step();
    EXPECT_EQ(sim.IsRunning("short"), backfill);
    sim.RunUntil(T0() + hours(8));
    ASSERT_TRUE(sim.started().contains("head"));
    EXPECT_LE(sim.started().at("head"), reserved);
    EXPECT_EQ(sim.started().at("head"), reserved);
    EXPECT_GE(sim.started().at("long"), sim.started().at("head"));
    EXPECT_EQ(sim.backfilled() > 0, backfill);
    if (backfill) {
      EXPECT_TRUE(sim.placed().at("short").backfilled);
      EXPECT_EQ(sim.started().at("short"), T0());
      // short2 (1h bound) took the GPU short left at +50 min: it ends by +2h, the reserved time.
      EXPECT_EQ(sim.started().at("short2"), T0() + minutes(50));
    }
  }
}

// Backfill may use GPUs the reservation does not need, whatever their runtime.
TEST(BackfillTest, LongJobsMayUseGpusTheReservationDoesNotNeed) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 8));
  Sim sim(*s);
  sim.Submit(Bounded(MakeJob("r", 1, 6), hours(2)), hours(2));
  sim.Step();
  sim.Submit(MakeJob("head", 2, 7), hours(1));                        // needs 6 back + 1 free
  sim.Submit(Bounded(MakeJob("long", 3, 1), hours(10)), hours(10));   // the other free GPU
  sim.Submit(Bounded(MakeJob("long2", 4, 1), hours(10)), hours(10));  // no room left
  Plan plan = sim.Step();
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].job_id, "long");
  EXPECT_TRUE(plan.assignments[0].backfilled);
  EXPECT_EQ(plan.assignments[0].gpu_indices, (std::vector<int>{7}));  // 6 is kept for the head
  sim.RunUntil(T0() + hours(3));
  EXPECT_EQ(sim.started().at("head"), T0() + hours(2));
}

// Backfill on other nodes is free: the reservation is on one node only.
TEST(BackfillTest, OtherNodesBackfillFreely) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("big", "RTX4090", 8));
  s->UpsertNode(MakeNode("small", "RTX4090", 2));
  Sim sim(*s);
  sim.Submit(Bounded(MakeJob("r", 1, 8), hours(1)), hours(1));
  sim.Step();
  sim.Submit(MakeJob("head", 2, 8), hours(1));
  sim.Submit(Bounded(MakeJob("long", 3, 2), hours(5)), hours(5));
  Plan plan = sim.Step();
  ASSERT_EQ(plan.assignments.size(), 1u);
  EXPECT_EQ(plan.assignments[0].node, "small");
  EXPECT_TRUE(plan.assignments[0].backfilled);
}

// The head's owner may backfill only within the quota room the head needs, even with a job that
// would end before the reserved time; other users are not limited.
TEST(BackfillTest, TheHeadKeepsItsOwnersQuotaRoom) {
  auto s = MakeScheduler({.user_quotas = {{"alice", Quota{.max_gpus_in_use = 8}}}});
  s->UpsertNode(MakeNode("n1", "RTX4090", 8));
  s->UpsertNode(MakeNode("n2", "RTX4090", 4));
  s->MarkRunning(RunningJob{.job_id = "bob",
                            .owner = "bob",
                            .node = "n1",
                            .gpu_indices = {0, 1, 2, 3},
                            .started_at = T0(),
                            .expected_end = T0() + hours(1)});  // half of n1 for an hour
  Sim sim(*s);
  sim.Submit(MakeJob("head", 2, 8, "alice"), hours(1));
  sim.Submit(Bounded(MakeJob("long", 3, 2, "alice"), hours(3)), hours(3));
  sim.Submit(Bounded(MakeJob("short", 4, 1, "alice"), minutes(30)), minutes(30));
  sim.Submit(Bounded(MakeJob("carol", 5, 2, "carol"), hours(3)), hours(3));
  Plan plan = sim.Step();
  std::map<std::string, std::string> node_of;
  for (const Assignment& a : plan.assignments) {
    node_of[a.job_id] = a.node;
    EXPECT_TRUE(a.backfilled);
  }
  EXPECT_EQ(node_of, (std::map<std::string, std::string>{{"carol", "n2"}}));
  EXPECT_EQ(s->Explain("short", T0())->reason,
            "user alice keeps 8 GPUs of quota for job head, reserved at " +
                core::FormatRfc3339(T0() + hours(1)));
  sim.RunUntil(T0() + hours(1));
  EXPECT_FALSE(sim.started().contains("long"));
  EXPECT_FALSE(sim.started().contains("short"));
  s->MarkEnded("bob", sim.now());
  sim.Step();
  EXPECT_EQ(sim.started().at("head"), T0() + hours(1));
  sim.RunUntil(T0() + hours(3));
  EXPECT_EQ(sim.started().at("long"), T0() + hours(2));  // when the head gave its quota back
}

// A 4-GPU job behind an endless stream of 1-GPU jobs on a small cluster starts within a bounded
// time: the longest runtime bound of what ran when it arrived (64 min). Without the reservation the
// 1-GPU jobs would keep both nodes partly busy forever.
TEST(BackfillTest, HeadJobDoesNotStarveBehindAStreamOfSmallJobs) {
  auto s = MakeScheduler({});
  s->UpsertNode(MakeNode("n1", "RTX4090", 4));
  s->UpsertNode(MakeNode("n2", "RTX4090", 4));
  Sim sim(*s);
  int64_t seq = 0;
  auto submit_small = [&] {
    ++seq;
    // Runtimes 20..59 min, bounds a little longer.
    const seconds run = minutes(20 + (seq * 7) % 40);
    sim.Submit(Bounded(MakeJob("s" + std::to_string(seq), seq, 1, "stream"), run + minutes(5)),
               run);
  };
  for (int i = 0; i < 8; ++i) {  // fills both nodes
    submit_small();
  }
  sim.Step();
  sim.Advance(minutes(5));
  ++seq;
  sim.Submit(MakeJob("big", seq, 4, "stream"), hours(1));
  const core::SystemTime arrived = sim.now();
  // Two new small jobs every 5 minutes, forever (more than the cluster can run).
  while (sim.now() < T0() + hours(6)) {
    submit_small();
    submit_small();
    sim.Advance(minutes(5));
  }
  ASSERT_TRUE(sim.started().contains("big"));
  EXPECT_LE(sim.started().at("big") - arrived, minutes(65));
  EXPECT_GT(sim.backfilled(), 0);
}

}  // namespace
}  // namespace gpuorch::scheduler
