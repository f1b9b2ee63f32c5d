// kill -9 of the service loses no accepted job, re-attaches running attempts, retries lost ones, and
// never runs a job twice at once.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

using nlohmann::json;

std::map<std::string, int> CountLines(const std::string& path) {
  std::map<std::string, int> counts;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    ++counts[line];
  }
  return counts;
}

TEST(RecoveryTest, Kill9WithManyQueuedJobsLosesNothingAndRunsEachOnce) {
  ServiceProcess svc(
      Env{{"GPUORCH_LOCAL_GPUS", "RTX4090:2"}, {"GPUORCH_SCHEDULER_INTERVAL_MS", "20"}});
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  const std::string ledger = svc.data_dir() + "/ledger";
  // A long job that will be running while the service dies.
  std::string long_id = svc.Submit(json{
      {"config", {{"gpu_count", 1}, {"command", "echo $GPUORCH_JOB_ID >> " + ledger + "; sleep 3"}}}});
  svc.WaitForStatus(long_id, "running");
  // Many queued jobs, submitted concurrently; each appends its id once to the ledger.
  std::vector<std::string> ids;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        std::string id = svc.Submit(json{
            {"config", {{"gpu_count", 1}, {"command", "echo $GPUORCH_JOB_ID >> " + ledger}}}});
        std::lock_guard lock(mu);
        ids.push_back(id);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  svc.Kill9();
  for (const auto& id : ids) {
    ASSERT_FALSE(id.empty()) << "a submit was not acknowledged";
  }
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  // Every acknowledged job is there and ends exactly once.
  for (const auto& id : ids) {
    json job = svc.WaitForStatus(id, "succeeded");
    ASSERT_EQ(job["status"], "succeeded") << id << " " << job.dump();
  }
  json long_job = svc.WaitForStatus(long_id, "succeeded");
  EXPECT_EQ(long_job["status"], "succeeded");
  EXPECT_EQ(long_job["attempt"], 1) << "the running attempt was re-attached, not restarted";
  auto counts = CountLines(ledger);
  EXPECT_EQ(counts.size(), ids.size() + 1);
  for (const auto& [id, n] : counts) {
    EXPECT_EQ(n, 1) << id << " ran " << n << " times";
  }
  EXPECT_EQ(svc.Get("/api/v1/jobs/?status=queued,scheduled,running").Json()["jobs"].size(), 0u);
}

TEST(RecoveryTest, AttemptWhoseProcessDiedWithTheServiceIsRetried) {
  ServiceProcess svc(Env{{"GPUORCH_RETRY_BACKOFF_SECONDS", "0"}});
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  std::string id = svc.Submit(json{{"max_retries", 1},
                                   {"config",
                                    {{"gpu_count", 1},
                                     {"command", "if [ $GPUORCH_ATTEMPT = 1 ]; then sleep 300; fi; echo done"}}}});
  json running = svc.WaitForStatus(id, "running");
  // The machine "reboots": the service and the job's processes die together.
  std::string pid_file = svc.data_dir() + "/data/jobs/" + id + "/attempt-1/pid";
  for (int i = 0; i < 200 && !std::filesystem::exists(pid_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  long shim = 0, job_pid = 0;
  std::ifstream(pid_file) >> shim >> job_pid;
  ASSERT_GT(job_pid, 0);
  svc.Kill9();
  kill(static_cast<pid_t>(shim), SIGKILL);
  kill(static_cast<pid_t>(-job_pid), SIGKILL);
  for (int i = 0; i < 200 && ProcessAlive(static_cast<pid_t>(job_pid)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  json job = svc.WaitForStatus(id, "succeeded");
  EXPECT_EQ(job["status"], "succeeded");
  EXPECT_EQ(job["attempt"], 2);
  bool saw_lost = false;
  for (const auto& t : job["transitions"]) {
    saw_lost |= t["message"].get<std::string>().find("lost") != std::string::npos;
  }
  EXPECT_TRUE(saw_lost) << job.dump();
}

TEST(RecoveryTest, CancelledJobStillRunningAfterRestartIsStopped) {
  ServiceProcess svc(Env{{"GPUORCH_KILL_GRACE_SECONDS", "60"}});
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  // Ignores TERM, so after cancel it is still running when the service dies.
  std::string id = svc.Submit(json{{"config", {{"gpu_count", 6}, {"command", "trap '' TERM; sleep 300"}}}});
  svc.WaitForStatus(id, "running");
  ASSERT_EQ(svc.Delete("/api/v1/jobs/" + id).status, 200);
  svc.Kill9();
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  // Its GPUs stay held: a new 1-GPU job waits while the cancelled one still has processes.
  json node = svc.Get("/api/v1/instances/local").Json();
  EXPECT_EQ(node["gpus_free"], 0) << node.dump();
  EXPECT_EQ(svc.Get("/api/v1/jobs/" + id).Json()["status"], "cancelled");
}

}  // namespace
}  // namespace gpuorch::testing
