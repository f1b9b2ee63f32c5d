// The simulator against the real schedulers (MakeScheduler, MakeFifoScheduler) on a small mixed
// trace: no invariant broken (a GPU given twice, a wrong-size or unknown assignment, GpusInUse
// disagreeing), every job of every size finishes, and when saturated the scheduler keeps more GPUs
// busy than FIFO.
#include <gtest/gtest.h>

#include "scheduler/scheduler.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace gpuorch::sim {
namespace {

constexpr int kNodes = 8;

std::vector<TraceJob> MixedTrace(uint64_t seed, double load) {
  return GenerateTrace(
      TraceOptions{.jobs = 600, .seed = seed, .load = load, .total_gpus = kNodes * 8});
}

Summary SimulateChecked(scheduler::Scheduler& s, const std::vector<TraceJob>& trace,
                        bool preemption) {
  auto result = Simulate(s, trace, ClusterOptions{.nodes = kNodes, .preemption = preemption});
  EXPECT_TRUE(result) << result.error().message;
  if (!result) {
    return {};
  }
  Summary summary = Summarise(*result);
  EXPECT_EQ(summary.starved, 0) << (summary.starved_examples.empty()
                                        ? ""
                                        : summary.starved_examples.front());
  EXPECT_EQ(summary.stalls, 0);
  return summary;
}

class SchedulerSimTest : public ::testing::TestWithParam<bool> {};

TEST_P(SchedulerSimTest, KeepsInvariantsStarvesNothingAndPacksBetterThanFifo) {
  bool preemption = GetParam();
  for (uint64_t seed : {1, 2}) {
    for (double load : {0.8, 1.2}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " load " + std::to_string(load));
      std::vector<TraceJob> trace = MixedTrace(seed, load);
      scheduler::SchedulerConfig config;
      config.preemption = preemption;
      auto real = scheduler::MakeScheduler(config);
      auto fifo = scheduler::MakeFifoScheduler(config);
      Summary a = SimulateChecked(*real, trace, preemption);
      Summary b = SimulateChecked(*fifo, trace, preemption);
      EXPECT_EQ(b.backfilled, 0);
      EXPECT_EQ(b.preemptions, 0);
      if (!preemption) {
        EXPECT_EQ(a.preemptions, 0);
      }
      if (load > 1) {
        // Saturated: while jobs arrive, backfill and best fit must keep more GPUs busy than FIFO.
        EXPECT_GE(a.utilisation_arriving, b.utilisation_arriving);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Preemption, SchedulerSimTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "On" : "Off"; });

}  // namespace
}  // namespace gpuorch::sim
