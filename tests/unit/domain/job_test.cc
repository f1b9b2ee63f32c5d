#include "domain/job.h"

#include <gtest/gtest.h>

#include "domain/gpu.h"
#include "domain/templates.h"

namespace gpuorch::domain {
namespace {

TEST(JobStateTest, NamesRoundTrip) {
  for (JobState s : AllJobStates()) {
    EXPECT_EQ(ParseJobState(ToString(s)), s);
  }
  EXPECT_EQ(ParseJobState("pending"), std::nullopt);
}

TEST(JobStateTest, TerminalStatesAreFinal) {
  for (JobState from : AllJobStates()) {
    if (!IsTerminal(from)) {
      continue;
    }
    for (JobState to : AllJobStates()) {
      EXPECT_FALSE(CanTransition(from, to)) << ToString(from) << " -> " << ToString(to);
    }
  }
}

TEST(JobStateTest, TheDocumentedArrows) {
  using S = JobState;
  EXPECT_TRUE(CanTransition(S::kQueued, S::kScheduled));
  EXPECT_TRUE(CanTransition(S::kQueued, S::kCancelled));
  EXPECT_TRUE(CanTransition(S::kScheduled, S::kRunning));
  EXPECT_TRUE(CanTransition(S::kScheduled, S::kQueued));
  EXPECT_TRUE(CanTransition(S::kRunning, S::kSucceeded));
  EXPECT_TRUE(CanTransition(S::kRunning, S::kFailed));
  EXPECT_TRUE(CanTransition(S::kRunning, S::kCancelled));
  EXPECT_TRUE(CanTransition(S::kRunning, S::kTimedOut));
  EXPECT_TRUE(CanTransition(S::kRunning, S::kQueued));
  // Not arrows: skipping scheduling, succeeding without running, time out while queued.
  EXPECT_FALSE(CanTransition(S::kQueued, S::kRunning));
  EXPECT_FALSE(CanTransition(S::kQueued, S::kSucceeded));
  EXPECT_FALSE(CanTransition(S::kScheduled, S::kSucceeded));
  EXPECT_FALSE(CanTransition(S::kQueued, S::kTimedOut));
  EXPECT_FALSE(CanTransition(S::kRunning, S::kScheduled));
  EXPECT_FALSE(CanTransition(S::kQueued, S::kQueued));
}

TEST(GpuTypeTest, AliasesAreOneType) {
  EXPECT_EQ(CanonicalGpuType("RTX4090"), "RTX4090");
  EXPECT_EQ(CanonicalGpuType("rtx_4090"), "RTX4090");
  EXPECT_EQ(CanonicalGpuType("NVIDIA GeForce RTX 4090"), "RTX4090");
  EXPECT_EQ(CanonicalGpuType("NVIDIA H200"), "H200");
  EXPECT_EQ(CanonicalGpuType("any"), "");
  EXPECT_EQ(KnownGpuMemoryGb("RTX4090"), 24);
  EXPECT_EQ(KnownGpuMemoryGb("NOPE"), 0);
}

TEST(TemplatesTest, SeedTemplates) {
  const JobTemplate* llava = FindTemplate("llava-1.6-34b");
  ASSERT_NE(llava, nullptr);
  EXPECT_EQ(llava->defaults.gpu_count, 4);
  EXPECT_EQ(llava->defaults.memory_gb, 96);
  EXPECT_EQ(llava->defaults.docker_image, "aima/llava:1.6-34b");
  const JobTemplate* llama = FindTemplate("llama-3.1-70b");
  ASSERT_NE(llama, nullptr);
  EXPECT_EQ(llama->defaults.gpu_count, 2);
  EXPECT_EQ(llama->defaults.memory_gb, 48);
  EXPECT_EQ(FindTemplate("gpt-5"), nullptr);
}

}  // namespace
}  // namespace gpuorch::domain
