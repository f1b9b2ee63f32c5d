// Tests of the service configuration (core/config.h): the scheduling keys (quotas, weights, fair
// share, backfill, preemption), their strict parsing and their defaults. No environment access: the
// keys are applied directly or through a config file in a temp dir.
#include "core/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/env.h"

namespace gpuorch::core {
namespace {

using namespace std::chrono_literals;

// Applies `key`=`value` to a default Config; the test fails when it is refused.
Config Applied(const std::string& key, const std::string& value) {
  Config config;
  auto status = ApplyConfigValue(key, value, config);
  EXPECT_TRUE(status) << key << "=" << value << ": " << status.error().message;
  return config;
}

// Asserts that `key`=`value` is refused with a message naming the key.
void ExpectRefused(const std::string& key, const std::string& value) {
  Config config;
  const Config before = config;
  auto status = ApplyConfigValue(key, value, config);
  ASSERT_FALSE(status) << key << "=" << value << " accepted";
  EXPECT_EQ(status.error().code, Code::kInvalidArgument) << value;
  EXPECT_EQ(status.error().field, key) << value;
  EXPECT_EQ(status.error().reason, "invalid_config") << value;
  EXPECT_NE(status.error().message.find(key), std::string::npos) << status.error().message;
  EXPECT_EQ(config.default_quota, before.default_quota) << value;
  EXPECT_EQ(config.user_quotas, before.user_quotas) << value;
  EXPECT_EQ(config.user_weights, before.user_weights) << value;
}

TEST(ConfigTest, SchedulingDefaults) {
  const Config config;
  EXPECT_FALSE(config.default_quota.max_gpus.has_value());
  EXPECT_EQ(config.default_quota.max_queued_jobs, 10000);
  EXPECT_TRUE(config.user_quotas.empty());
  EXPECT_TRUE(config.user_weights.empty());
  EXPECT_EQ(config.fair_share_half_life, 3600s);
  EXPECT_TRUE(config.backfill);
  EXPECT_TRUE(config.preemption);
}

TEST(ConfigTest, DefaultQuota) {
  EXPECT_EQ(Applied("GPUORCH_QUOTA_MAX_GPUS", "8").default_quota.max_gpus, 8);
  EXPECT_EQ(Applied("GPUORCH_QUOTA_MAX_GPUS", "0").default_quota.max_gpus, 0);
  EXPECT_FALSE(Applied("GPUORCH_QUOTA_MAX_GPUS", "unlimited").default_quota.max_gpus.has_value());
  EXPECT_EQ(Applied("GPUORCH_QUOTA_MAX_QUEUED_JOBS", "100").default_quota.max_queued_jobs, 100);
  EXPECT_EQ(Applied("GPUORCH_QUOTA_MAX_QUEUED_JOBS", "0").default_quota.max_queued_jobs, 0);
  for (const char* v : {"", "-1", "8.5", "8 ", "eight", "Unlimited", "1000001", "0x10"}) {
    ExpectRefused("GPUORCH_QUOTA_MAX_GPUS", v);
  }
  for (const char* v : {"", "-1", "1.5", "unlimited", "100000001", "99999999999999999999"}) {
    ExpectRefused("GPUORCH_QUOTA_MAX_QUEUED_JOBS", v);
  }
}

TEST(ConfigTest, UserQuotas) {
  const Config config = Applied("GPUORCH_USER_QUOTAS", "alice:8:100,bob:4:50");
  EXPECT_EQ(config.user_quotas,
            (std::map<std::string, UserQuota>{
                {"alice", UserQuota{.max_gpus = 8, .max_queued_jobs = 100}},
                {"bob", UserQuota{.max_gpus = 4, .max_queued_jobs = 50}}}));
  EXPECT_EQ(QuotaFor(config, "alice").max_queued_jobs, 100);
  EXPECT_EQ(QuotaFor(config, "bob").max_gpus, 4);
  EXPECT_EQ(QuotaFor(config, "carol"), config.default_quota);

  const Config spaced =
      Applied("GPUORCH_USER_QUOTAS", " alice : unlimited : 7 , ml-team@x.io:0:0 ");
  EXPECT_EQ(spaced.user_quotas,
            (std::map<std::string, UserQuota>{
                {"alice", UserQuota{.max_gpus = std::nullopt, .max_queued_jobs = 7}},
                {"ml-team@x.io", UserQuota{.max_gpus = 0, .max_queued_jobs = 0}}}));
  EXPECT_TRUE(Applied("GPUORCH_USER_QUOTAS", "").user_quotas.empty());

  for (const char* v : {"alice", "alice:8", "alice:8:100:1", "alice:8:100,", ",alice:8:100",
                        "alice:8:100,,bob:1:1", ":8:100", "al ice:8:100", "alice:x:100",
                        "alice:8:x", "alice:-1:100", "alice:8:-5", "alice:8:1.5",
                        "alice:8:100,alice:4:50", "alice:8:unlimited"}) {
    ExpectRefused("GPUORCH_USER_QUOTAS", v);
  }
}

TEST(ConfigTest, UserWeights) {
  const Config config = Applied("GPUORCH_USER_WEIGHTS", "alice:2,bob:1, carol : 0.25");
  EXPECT_EQ(config.user_weights,
            (std::map<std::string, double>{{"alice", 2.0}, {"bob", 1.0}, {"carol", 0.25}}));
  EXPECT_TRUE(Applied("GPUORCH_USER_WEIGHTS", "").user_weights.empty());
  for (const char* v : {"alice", "alice:", "alice:0", "alice:-1", "alice:two", "alice:nan",
                        "alice:inf", "alice:1e7", "alice:2,alice:3", "alice:2,", "alice:1:2",
                        "alice:2x"}) {
    ExpectRefused("GPUORCH_USER_WEIGHTS", v);
  }
}

TEST(ConfigTest, FairShareHalfLife) {
  EXPECT_EQ(Applied("GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS", "60").fair_share_half_life, 60s);
  for (const char* v : {"0", "-5", "1h", "", "2592001"}) {
    ExpectRefused("GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS", v);
  }
}

TEST(ConfigTest, BackfillAndPreemptionAreStrictBooleans) {
  EXPECT_FALSE(Applied("GPUORCH_BACKFILL", "false").backfill);
  EXPECT_TRUE(Applied("GPUORCH_BACKFILL", "true").backfill);
  EXPECT_FALSE(Applied("GPUORCH_PREEMPTION", "false").preemption);
  EXPECT_TRUE(Applied("GPUORCH_PREEMPTION", "true").preemption);
  for (const char* key : {"GPUORCH_BACKFILL", "GPUORCH_PREEMPTION"}) {
    for (const char* v : {"", "1", "0", "yes", "TRUE", "False", " true"}) {
      ExpectRefused(key, v);
    }
  }
}

TEST(ConfigTest, UnknownKeyIsRefused) {
  Config config;
  auto status = ApplyConfigValue("GPUORCH_QUOTA_MAX_CPUS", "4", config);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().field, "GPUORCH_QUOTA_MAX_CPUS");
  EXPECT_NE(status.error().message.find("unknown configuration key"), std::string::npos);
}

// A config file in a fresh temp dir, removed afterwards.
class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "gpuorch-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& text) {
    const std::string path = (dir_ / "gpuorch.conf").string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFileTest, ReadsSchedulingKeysFromTheFile) {
  // Only keys this test does not set may come from the environment.
  for (const char* key : {"GPUORCH_QUOTA_MAX_GPUS", "GPUORCH_QUOTA_MAX_QUEUED_JOBS",
                          "GPUORCH_USER_QUOTAS", "GPUORCH_USER_WEIGHTS",
                          "GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS", "GPUORCH_BACKFILL",
                          "GPUORCH_PREEMPTION"}) {
    if (GetEnv(key)) {
      GTEST_SKIP() << key << " is set in the environment";
    }
  }
  auto config = LoadConfig(Write(
      "# scheduling\n"
      "GPUORCH_QUOTA_MAX_GPUS=16\n"
      "GPUORCH_QUOTA_MAX_QUEUED_JOBS=500\n"
      "GPUORCH_USER_QUOTAS=alice:8:100,bob:4:50\n"
      "GPUORCH_USER_WEIGHTS=alice:2,bob:1\n"
      "GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS=7200\n"
      "GPUORCH_BACKFILL=false\n"
      "GPUORCH_PREEMPTION=false\n"));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->default_quota, (UserQuota{.max_gpus = 16, .max_queued_jobs = 500}));
  EXPECT_EQ(config->user_quotas.size(), 2u);
  EXPECT_EQ(QuotaFor(*config, "bob"), (UserQuota{.max_gpus = 4, .max_queued_jobs = 50}));
  EXPECT_EQ(QuotaFor(*config, "carol"), (UserQuota{.max_gpus = 16, .max_queued_jobs = 500}));
  EXPECT_EQ(config->user_weights.at("alice"), 2.0);
  EXPECT_EQ(config->fair_share_half_life, 7200s);
  EXPECT_FALSE(config->backfill);
  EXPECT_FALSE(config->preemption);
}

TEST_F(ConfigFileTest, BadValueNamesTheFileLineAndKey) {
  auto config = LoadConfig(Write("GPUORCH_BACKFILL=true\nGPUORCH_USER_QUOTAS=alice:8\n"));
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().field, "GPUORCH_USER_QUOTAS");
  EXPECT_NE(config.error().message.find("gpuorch.conf:2"), std::string::npos)
      << config.error().message;
  EXPECT_NE(config.error().message.find("user:max_gpus:max_queued_jobs"), std::string::npos)
      << config.error().message;
}

}  // namespace
}  // namespace gpuorch::core
