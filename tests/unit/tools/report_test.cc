#include "sim/report.h"

#include <gtest/gtest.h>

namespace gpuorch::sim {
namespace {

JobOutcome Done(int gpus, double wait_s) {
  return JobOutcome{.gpus = gpus, .first_start_s = wait_s, .end_s = wait_s + 1, .wait_s = wait_s};
}

TEST(SummariseTest, UtilisationAndWaitsPerSize) {
  SimResult r{.total_gpus = 10, .makespan_s = 100, .busy_gpu_s = 800, .backfilled = 3};
  for (int i = 1; i <= 100; ++i) {
    r.jobs.push_back(Done(1, i));  // waits 1..100 s
  }
  r.jobs.push_back(Done(8, 3600));
  r.jobs.push_back(JobOutcome{.gpus = 8});  // never started
  r.starved = 1;
  Summary s = Summarise(r);
  EXPECT_DOUBLE_EQ(s.utilisation, 0.8);
  ASSERT_EQ(s.by_size.size(), 2u);
  EXPECT_EQ(s.by_size[0].gpus, 1);
  EXPECT_DOUBLE_EQ(s.by_size[0].mean_s, 50.5);
  EXPECT_DOUBLE_EQ(s.by_size[0].p99_s, 99);
  EXPECT_DOUBLE_EQ(s.by_size[0].max_s, 100);
  EXPECT_EQ(s.by_size[1].jobs, 2);
  EXPECT_EQ(s.by_size[1].started, 1);
  EXPECT_EQ(s.by_size[1].starved, 1);
  EXPECT_DOUBLE_EQ(s.by_size[1].p99_s, 3600);
  EXPECT_EQ(s.all.jobs, 102);
  EXPECT_EQ(s.all.started, 101);
  EXPECT_EQ(s.backfilled, 3);
}

TEST(FormatReportTest, ShowsBothColumnsAndTheGain) {
  Summary a{.utilisation = 0.912,
            .makespan_s = 52.3 * 3600,
            .by_size = {WaitStats{.gpus = 8, .started = 1, .mean_s = 1800, .p99_s = 7200}}};
  Summary b{.utilisation = 0.715,
            .makespan_s = 66.1 * 3600,
            .by_size = {WaitStats{.gpus = 8, .started = 1, .mean_s = 3600, .p99_s = 36000}},
            .starved = 2};
  b.by_size[0].starved = 2;
  std::string out = FormatReport(
      ReportHeader{
          .nodes = 64, .gpus_per_node = 8, .jobs = 5000, .offered_load = 0.95, .source = "seed 1"},
      a, b);
  EXPECT_NE(out.find("cluster 64 nodes x 8 GPUs, 5000 jobs, offered load 0.95"), std::string::npos);
  EXPECT_NE(out.find("91.2 %"), std::string::npos) << out;
  EXPECT_NE(out.find("66.1 h"), std::string::npos) << out;
  EXPECT_NE(out.find("wait 8-GPU mean/p99"), std::string::npos) << out;
  EXPECT_NE(out.find("1.00/10.00 h"), std::string::npos) << out;
  EXPECT_NE(out.find("2 (8g:2)"), std::string::npos) << out;
  EXPECT_NE(out.find("utilisation gain: +19.7 points\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace gpuorch::sim
