// Fair share over hours: two users with weights 1 and 2, both with more work than the cluster can
// run, get GPU-seconds in proportion to their weights.
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
using testing::Sim;
using testing::T0;

TEST(FairnessTest, GpuSecondsFollowWeightsOverHours) {
  auto s = MakeScheduler({.fair_share_half_life = hours(1), .user_weights = {{"heavy", 2}}});
  s->UpsertNode(MakeNode("n1", "RTX4090", 4));
  s->UpsertNode(MakeNode("n2", "RTX4090", 4));
  Sim sim(*s);
  int64_t seq = 0;
  // Each user keeps 40 jobs queued: 1 or 2 GPUs, 10..45 minutes.
  auto top_up = [&](const std::string& user) {
    while (s->QueuedJobs(user) < 40) {
      ++seq;
      const int gpus = 1 + static_cast<int>(seq % 2);
      const seconds run = minutes(10 + (seq * 13) % 36);
      JobRequest job = MakeJob(user + std::to_string(seq), seq, gpus, user);
      job.runtime_bound = run + minutes(5);
      sim.Submit(job, run);
    }
  };
  const core::SystemTime end = T0() + hours(12);
  double light_start = 0;
  double heavy_start = 0;
  while (sim.now() < end) {
    top_up("light");
    top_up("heavy");
    sim.Advance(minutes(5));
    if (sim.now() == T0() + hours(2)) {  // measure after a warm-up
      light_start = sim.GpuSeconds("light");
      heavy_start = sim.GpuSeconds("heavy");
    }
  }
  const double light = sim.GpuSeconds("light") - light_start;
  const double heavy = sim.GpuSeconds("heavy") - heavy_start;
  ASSERT_GT(light + heavy, 0.9 * 8 * 10 * 3600.0 * 0.8);  // the cluster stayed busy
  const double heavy_share = heavy / (light + heavy);
  EXPECT_NEAR(heavy_share, 2.0 / 3.0, 0.1 * 2.0 / 3.0) << "light " << light << " heavy " << heavy;
  EXPECT_NEAR(light / (light + heavy), 1.0 / 3.0, 0.1 * 1.0 / 3.0);
}

}  // namespace
}  // namespace gpuorch::scheduler
