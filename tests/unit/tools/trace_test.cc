#include "sim/trace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>

namespace gpuorch::sim {
namespace {

TEST(ParseMixTest, ParsesSizesAndPercents) {
  auto mix = ParseMix("1:50, 2:25,4:15,8:10");
  ASSERT_TRUE(mix) << mix.error().message;
  EXPECT_EQ(*mix, (std::vector<MixEntry>{{1, 50}, {2, 25}, {4, 15}, {8, 10}}));
}

TEST(ParseMixTest, RejectsMalformedEntries) {
  for (const char* bad : {"", "1", "1:50,x", "0:10", "1:-1", "1:0", "1:10,1:20", "a:b", "2:1:1"}) {
    auto mix = ParseMix(bad);
    ASSERT_FALSE(mix) << bad;
    EXPECT_EQ(mix.error().code, core::Code::kInvalidArgument);
    EXPECT_EQ(mix.error().field, "mix");
  }
}

TEST(BoundBucketTest, RoundsUpToHourBuckets) {
  EXPECT_EQ(BoundBucketFor(60), 3600);
  EXPECT_EQ(BoundBucketFor(3600), 3600);
  EXPECT_EQ(BoundBucketFor(3601), 7200);
  EXPECT_EQ(BoundBucketFor(5 * 3600), 8 * 3600);
  EXPECT_EQ(BoundBucketFor(8 * 3600), 8 * 3600);
  EXPECT_EQ(BoundBucketFor(9.5 * 3600), 10 * 3600);
}

TEST(GenerateTraceTest, IsDeterministicPerSeed) {
  TraceOptions options{.jobs = 200, .seed = 7};
  EXPECT_EQ(GenerateTrace(options), GenerateTrace(options));
  TraceOptions other = options;
  other.seed = 8;
  EXPECT_NE(GenerateTrace(options), GenerateTrace(other));
}

TEST(GenerateTraceTest, JobsAreSaneAndSorted) {
  TraceOptions options{.jobs = 4000, .seed = 3};
  std::vector<TraceJob> trace = GenerateTrace(options);
  ASSERT_EQ(trace.size(), 4000u);
  EXPECT_EQ(trace.front().arrival_s, 0);
  std::map<int, int> sizes;
  std::map<std::string, int> users;
  int high = 0;
  for (size_t i = 0; i < trace.size(); ++i) {
    const TraceJob& job = trace[i];
    if (i > 0) {
      EXPECT_GE(job.arrival_s, trace[i - 1].arrival_s);
    }
    EXPECT_GE(job.runtime_s, 60);
    EXPECT_LE(job.runtime_s, 8 * 3600);
    EXPECT_EQ(job.bound_s, BoundBucketFor(job.runtime_s));
    EXPECT_LE(job.runtime_s, job.bound_s);
    ++sizes[job.gpus];
    ++users[job.user];
    high += job.priority;
  }
  EXPECT_NEAR(sizes[1] / 4000.0, 0.50, 0.03);
  EXPECT_NEAR(sizes[2] / 4000.0, 0.25, 0.03);
  EXPECT_NEAR(sizes[4] / 4000.0, 0.15, 0.03);
  EXPECT_NEAR(sizes[8] / 4000.0, 0.10, 0.03);
  EXPECT_EQ(users.size(), 4u);
  EXPECT_GT(users["u0"], users["u1"]);
  EXPECT_GT(users["u1"], users["u3"]);
  EXPECT_NEAR(high / 4000.0, 0.1, 0.02);
}

TEST(GenerateTraceTest, OffersTheRequestedLoad) {
  for (double load : {0.5, 0.95, 1.2}) {
    TraceOptions options{.jobs = 5000, .seed = 11, .load = load, .total_gpus = 256};
    EXPECT_NEAR(OfferedLoad(GenerateTrace(options), 256), load, load * 0.05) << load;
  }
}

TEST(UtilisationCeilingTest, IsWorkOverTheEarliestPossibleMakespan) {
  // 2 GPUs: 10 GPU-s of work arriving by 0 s, but a job arriving at 4 s runs 6 s: makespan >= 10 s.
  std::vector<TraceJob> trace = {TraceJob{.arrival_s = 0, .gpus = 2, .runtime_s = 2},
                                 TraceJob{.arrival_s = 4, .gpus = 1, .runtime_s = 6}};
  EXPECT_DOUBLE_EQ(UtilisationCeiling(trace, 2), 10.0 / 20);
  // 1 GPU: the work alone (10 GPU-s) outlasts every arrival + runtime.
  EXPECT_DOUBLE_EQ(UtilisationCeiling(trace, 1), 1.0);
}

TEST(TraceCsvTest, RoundTrips) {
  std::vector<TraceJob> trace = GenerateTrace(TraceOptions{.jobs = 300, .seed = 5});
  std::stringstream csv;
  WriteTraceCsv(csv, trace);
  auto back = ReadTraceCsv(csv);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, trace);
}

TEST(TraceCsvTest, SortsClampsAndSkipsHeaderAndBlankLines) {
  std::stringstream csv(
      "arrival_s,gpus,runtime_s,bound_s,user,priority\n"
      "10,2,100,3600,alice,0\n"
      "\n"
      "5,1,5000,3600,bob,1\n");
  auto trace = ReadTraceCsv(csv);
  ASSERT_TRUE(trace) << trace.error().message;
  ASSERT_EQ(trace->size(), 2u);
  EXPECT_EQ((*trace)[0], (TraceJob{.arrival_s = 5,
                                   .gpus = 1,
                                   .runtime_s = 3600,
                                   .bound_s = 3600,
                                   .user = "bob",
                                   .priority = 1}));
  EXPECT_EQ((*trace)[1].user, "alice");
}

TEST(TraceCsvTest, NamesTheBadLine) {
  std::stringstream csv("0,1,10,3600,u0,0\n1,0,10,3600,u0,0\n");
  auto trace = ReadTraceCsv(csv);
  ASSERT_FALSE(trace);
  EXPECT_EQ(trace.error().code, core::Code::kInvalidArgument);
  EXPECT_NE(trace.error().message.find("line 2"), std::string::npos) << trace.error().message;
  std::stringstream short_row("0,1,10\n");
  EXPECT_FALSE(ReadTraceCsv(short_row));
}

}  // namespace
}  // namespace gpuorch::sim
