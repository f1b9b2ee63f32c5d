#include "agent/gpu_probe.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace gpuorch::agent {
namespace {

using domain::GpuDevice;

TEST(ParseGpuDeclarationTest, SingleItemUsesKnownMemory) {
  auto gpus = ParseGpuDeclaration("RTX4090:6");
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(
        (*gpus)[i],
        (GpuDevice{
            .index = i, .name = "RTX4090", .type = "RTX4090", .memory_mb = 24 * 1024, .uuid = ""}));
  }
}

TEST(ParseGpuDeclarationTest, SeveralItemsIndexAcrossItems) {
  auto gpus = ParseGpuDeclaration("A100:2:80,T4:1");
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 3u);
  EXPECT_EQ((*gpus)[0].index, 0);
  EXPECT_EQ((*gpus)[1].index, 1);
  EXPECT_EQ((*gpus)[2].index, 2);
  EXPECT_EQ((*gpus)[0].type, "A100");
  EXPECT_EQ((*gpus)[0].memory_mb, 80 * 1024);
  EXPECT_EQ((*gpus)[2].type, "T4");
  EXPECT_EQ((*gpus)[2].memory_mb, 16 * 1024);
}

TEST(ParseGpuDeclarationTest, ToleratesWhitespaceAndCanonicalizesType) {
  auto gpus = ParseGpuDeclaration("  rtx_4090 : 2 : 20.5 ,\tH200:1 ");
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 3u);
  EXPECT_EQ((*gpus)[0].name, "rtx_4090");
  EXPECT_EQ((*gpus)[0].type, "RTX4090");
  EXPECT_EQ((*gpus)[0].memory_mb, 20992);  // 20.5 * 1024
  EXPECT_EQ((*gpus)[2].type, "H200");
  EXPECT_EQ((*gpus)[2].memory_mb, 141 * 1024);
}

TEST(ParseGpuDeclarationTest, UnknownTypeWithoutMemoryHasZeroMemory) {
  auto gpus = ParseGpuDeclaration("FancyGPU:1");
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].type, "FANCYGPU");
  EXPECT_EQ((*gpus)[0].memory_mb, 0);
}

TEST(ParseGpuDeclarationTest, CountBounds) {
  EXPECT_TRUE(ParseGpuDeclaration("T4:1"));
  auto many = ParseGpuDeclaration("T4:64");
  ASSERT_TRUE(many);
  EXPECT_EQ(many->size(), 64u);
  EXPECT_FALSE(ParseGpuDeclaration("T4:0"));
  EXPECT_FALSE(ParseGpuDeclaration("T4:65"));
}

TEST(ParseGpuDeclarationTest, EmptyDeclarationMeansNoGpus) {
  auto gpus = ParseGpuDeclaration("   ");
  ASSERT_TRUE(gpus);
  EXPECT_TRUE(gpus->empty());
}

TEST(ParseGpuDeclarationTest, InvalidItemsNameTheItem) {
  for (std::string bad : {"RTX4090:-1", "RTX4090", ":3", "RTX4090:2:abc", "RTX4090:2:80:1",
                          "RTX4090:two", "RTX4090:2:-5", "any:2", "RTX4090:1.5"}) {
    auto gpus = ParseGpuDeclaration("T4:1," + bad);
    ASSERT_FALSE(gpus) << bad;
    EXPECT_EQ(gpus.error().code, core::Code::kInvalidArgument) << bad;
    EXPECT_NE(gpus.error().message.find("'" + bad + "'"), std::string::npos)
        << bad << ": " << gpus.error().message;
  }
  EXPECT_FALSE(ParseGpuDeclaration("T4:1,"));
  EXPECT_FALSE(ParseGpuDeclaration(",T4:1"));
}

TEST(ParseNvidiaSmiCsvTest, ParsesLines) {
  auto gpus = ParseNvidiaSmiCsv(
      "0, NVIDIA H200, 143771, GPU-1234abcd\n"
      "1, NVIDIA GeForce RTX 4090, 24564, GPU-5678\n");
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0], (GpuDevice{.index = 0,
                                   .name = "NVIDIA H200",
                                   .type = "H200",
                                   .memory_mb = 143771,
                                   .uuid = "GPU-1234abcd"}));
  EXPECT_EQ((*gpus)[1].name, "NVIDIA GeForce RTX 4090");
  EXPECT_EQ((*gpus)[1].type, "RTX4090");
  EXPECT_EQ((*gpus)[1].memory_mb, 24564);
  EXPECT_EQ((*gpus)[1].index, 1);
}

TEST(ParseNvidiaSmiCsvTest, ToleratesCrlfTrailingSpaceAndBlankLines) {
  auto gpus =
      ParseNvidiaSmiCsv("\r\n0, Tesla T4, 15360, GPU-a   \r\n\r\n  \n1, Tesla T4, 15360, GPU-b");
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0].uuid, "GPU-a");
  EXPECT_EQ((*gpus)[0].type, "T4");
  EXPECT_EQ((*gpus)[1].uuid, "GPU-b");
}

TEST(ParseNvidiaSmiCsvTest, EmptyOutputIsNoGpus) {
  auto gpus = ParseNvidiaSmiCsv("");
  ASSERT_TRUE(gpus);
  EXPECT_TRUE(gpus->empty());
}

TEST(ParseNvidiaSmiCsvTest, MalformedLinesAreInvalidArgument) {
  for (std::string bad :
       {"garbage", "0, NVIDIA H200, 143771", "x, NVIDIA H200, 143771, GPU-1",
        "0, NVIDIA H200, lots, GPU-1", "0, , 143771, GPU-1", "-1, NVIDIA H200, 143771, GPU-1"}) {
    auto gpus = ParseNvidiaSmiCsv("0, NVIDIA H200, 143771, GPU-0\n" + bad + "\n");
    ASSERT_FALSE(gpus) << bad;
    EXPECT_EQ(gpus.error().code, core::Code::kInvalidArgument) << bad;
  }
}

class SystemGpuProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "gpuprobe-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string WriteScript(const std::string& name, const std::string& body) {
    std::string path = dir_ + "/" + name;
    {
      std::ofstream out(path);
      out << "#!/bin/sh\n" << body;
    }
    ::chmod(path.c_str(), 0755);
    return path;
  }

  std::string dir_;
};

TEST_F(SystemGpuProbeTest, DeclarationWins) {
  auto probe = MakeSystemGpuProbe("RTX4090:2", dir_ + "/never-run");
  auto gpus = probe->Discover();
  ASSERT_TRUE(gpus) << gpus.error().message;
  EXPECT_EQ(gpus->size(), 2u);
  EXPECT_EQ(probe->Source(), "declared");
}

TEST_F(SystemGpuProbeTest, BadDeclarationIsInvalidArgument) {
  auto probe = MakeSystemGpuProbe("RTX4090:-1");
  auto gpus = probe->Discover();
  ASSERT_FALSE(gpus);
  EXPECT_EQ(gpus.error().code, core::Code::kInvalidArgument);
  EXPECT_NE(gpus.error().message.find("RTX4090:-1"), std::string::npos);
}

TEST_F(SystemGpuProbeTest, FakeNvidiaSmi) {
  std::string smi = WriteScript(
      "nvidia-smi",
      "[ \"$1\" = --query-gpu=index,name,memory.total,uuid ] || exit 3\n"
      "[ \"$2\" = --format=csv,noheader,nounits ] || exit 4\n"
      "printf '0, NVIDIA H200, 143771, GPU-aaaa\\n1, NVIDIA H200, 143771, GPU-bbbb\\n'\n");
  auto probe = MakeSystemGpuProbe(std::nullopt, smi);
  EXPECT_EQ(probe->Source(), "none");
  auto gpus = probe->Discover();
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0].type, "H200");
  EXPECT_EQ((*gpus)[0].memory_mb, 143771);
  EXPECT_EQ((*gpus)[0].uuid, "GPU-aaaa");
  EXPECT_EQ((*gpus)[1].index, 1);
  EXPECT_EQ((*gpus)[1].uuid, "GPU-bbbb");
  EXPECT_EQ(probe->Source(), "nvidia-smi");
}

TEST_F(SystemGpuProbeTest, MissingCommandMeansNoGpus) {
  auto probe = MakeSystemGpuProbe(std::nullopt, dir_ + "/no-such-nvidia-smi");
  auto gpus = probe->Discover();
  ASSERT_TRUE(gpus) << gpus.error().message;
  EXPECT_TRUE(gpus->empty());
  EXPECT_EQ(probe->Source(), "none");

  auto by_name = MakeSystemGpuProbe(std::nullopt, "gpuorch-no-such-command-xyz");
  auto none = by_name->Discover();
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(by_name->Source(), "none");
}

TEST_F(SystemGpuProbeTest, FailingCommandMeansNoGpus) {
  std::string smi = WriteScript("nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2\nexit 1\n");
  auto probe = MakeSystemGpuProbe(std::nullopt, smi);
  auto gpus = probe->Discover();
  ASSERT_TRUE(gpus) << gpus.error().message;
  EXPECT_TRUE(gpus->empty());
  EXPECT_EQ(probe->Source(), "none");
}

TEST_F(SystemGpuProbeTest, GarbageOutputIsUnavailable) {
  std::string smi = WriteScript("nvidia-smi", "echo 'this is not csv'\n");
  auto probe = MakeSystemGpuProbe(std::nullopt, smi);
  auto gpus = probe->Discover();
  ASSERT_FALSE(gpus);
  EXPECT_EQ(gpus.error().code, core::Code::kUnavailable);
  EXPECT_EQ(probe->Source(), "none");
}

}  // namespace
}  // namespace gpuorch::agent
