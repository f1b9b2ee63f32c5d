#include <gtest/gtest.h>

#include "domain/gpu.h"

namespace gpuorch::domain {
namespace {

TEST(CanonicalGpuModelTest, DropsVendorFormFactorAndMemoryWords) {
  EXPECT_EQ(CanonicalGpuModel("NVIDIA A100-SXM4-80GB"), "A100");
  EXPECT_EQ(CanonicalGpuModel("NVIDIA H100 80GB HBM3"), "H100");
  EXPECT_EQ(CanonicalGpuModel("A100 PCIE"), "A100");
  EXPECT_EQ(CanonicalGpuModel("Tesla V100"), "V100");
  EXPECT_EQ(CanonicalGpuModel("NVIDIA GeForce RTX 4090"), "RTX4090");
  EXPECT_EQ(CanonicalGpuModel("RTX A6000"), "RTXA6000");
  EXPECT_EQ(CanonicalGpuModel("H100 SXM"), "H100");
}

TEST(CanonicalGpuModelTest, KeepsModelNumbersThatLookLikeNoMemory) {
  EXPECT_EQ(CanonicalGpuModel("L40S"), "L40S");
  EXPECT_EQ(CanonicalGpuModel(""), "");
}

}  // namespace
}  // namespace gpuorch::domain
