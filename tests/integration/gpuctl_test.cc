// The `gpuctl` binary against the real service: submit (flags, YAML file, template), get, list, logs,
// cancel, templates, instances, and its exit codes.
#include <gtest/gtest.h>

#include <fstream>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

class GpuctlTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(svc_.Start()) << svc_.last_output(); }
  std::pair<int, std::string> Gpuctl(const std::string& args) const {
    // The token comes from the file the service wrote on its first start.
    return RunCommand("GPUORCH_TOKEN_FILE=" + svc_.data_dir() + "/data/admin.token " +
                      BinPath("gpuctl") + " --server " + svc_.url() + " " + args);
  }
  std::string SubmitJson(const std::string& args) const {
    auto [rc, out] = Gpuctl("--output json submit " + args);
    EXPECT_EQ(rc, 0) << out;
    return nlohmann::json::parse(out, nullptr, false).value("job_id", "");
  }
  ServiceProcess svc_;
};

TEST_F(GpuctlTest, SubmitFromFlagsThenGetLogsAndList) {
  std::string id = SubmitJson("--name hello --gpus 2 --env MODE=test -- sh -c 'echo gpus=$CUDA_VISIBLE_DEVICES $MODE'");
  ASSERT_FALSE(id.empty());
  svc_.WaitForStatus(id, "succeeded");
  auto [rc, logs] = Gpuctl("logs " + id);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(logs, "gpus=0,1 test\n");
  auto [get_rc, get] = Gpuctl("get " + id);
  EXPECT_EQ(get_rc, 0);
  EXPECT_NE(get.find("succeeded"), std::string::npos) << get;
  auto [list_rc, list] = Gpuctl("list");
  EXPECT_EQ(list_rc, 0);
  EXPECT_NE(list.find(id), std::string::npos) << list;
  EXPECT_NE(list.find("JOB ID"), std::string::npos) << list;
}

TEST_F(GpuctlTest, SubmitFromYamlFileAndFollowLogs) {
  std::string file = svc_.data_dir() + "/job.yaml";
  std::ofstream(file) << "name: from-yaml\njob_type: custom\nmax_retries: 0\nconfig:\n"
                         "  gpu_type: RTX4090\n  gpu_count: 1\n"
                         "  command: [sh, -c, 'for i in 1 2 3; do echo $i; sleep 0.1; done']\n";
  std::string id = SubmitJson("-f " + file);
  ASSERT_FALSE(id.empty());
  auto [rc, out] = Gpuctl("logs -f " + id);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out, "1\n2\n3\n");
}

TEST_F(GpuctlTest, CancelTemplatesAndInstances) {
  std::string id = SubmitJson("--command 'sleep 300'");
  svc_.WaitForStatus(id, "running");
  auto [rc, out] = Gpuctl("cancel " + id);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(svc_.Get("/api/v1/jobs/" + id).Json()["status"], "cancelled");
  auto [trc, templates] = Gpuctl("templates");
  EXPECT_EQ(trc, 0);
  EXPECT_NE(templates.find("llava-1.6-34b"), std::string::npos);
  EXPECT_NE(templates.find("llama-3.1-70b"), std::string::npos);
  auto [irc, instances] = Gpuctl("instances");
  EXPECT_EQ(irc, 0);
  EXPECT_NE(instances.find("local"), std::string::npos);
  EXPECT_NE(instances.find("RTX4090"), std::string::npos);
  std::string llava = SubmitJson("--template llava-1.6-34b");
  EXPECT_FALSE(llava.empty());
}

TEST_F(GpuctlTest, ExitCodesAndErrorMessages) {
  auto [nf_rc, nf] = Gpuctl("get job-does-not-exist");
  EXPECT_EQ(nf_rc, 3) << nf;
  EXPECT_NE(nf.find("not found"), std::string::npos) << nf;
  auto [bad_rc, bad] = Gpuctl("submit --gpus 0 --command true");
  EXPECT_EQ(bad_rc, 1) << bad;
  EXPECT_NE(bad.find("config.gpu_count"), std::string::npos) << bad;
  auto [use_rc, use] = Gpuctl("submit --env NOEQUALS --command true");
  EXPECT_EQ(use_rc, 2) << use;
  auto [down_rc, down] = RunCommand(BinPath("gpuctl") + " --server http://127.0.0.1:1 list");
  EXPECT_EQ(down_rc, 4) << down;
  EXPECT_EQ(svc_.Get("/api/v1/jobs/").Json()["jobs"].size(), 0u);
}

}  // namespace
}  // namespace gpuorch::testing
