// Scheduling through the real service: queued-jobs quota at submit, GPU quota, preemption of
// preemptible lower-priority work, and the queue view.
#include <gtest/gtest.h>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

using nlohmann::json;

json Job(const std::string& command, int gpus, json extra = json::object()) {
  json body{{"config", {{"gpu_count", gpus}, {"command", command}}}};
  for (auto& [k, v] : extra.items()) {
    body[k] = v;
  }
  return body;
}

TEST(SchedulingTest, SubmitOverTheQueuedJobsQuotaIs429AndCreatesNothing) {
  ServiceProcess svc(Env{{"GPUORCH_LOCAL_GPUS", ""}, {"GPUORCH_QUOTA_MAX_QUEUED_JOBS", "2"}});
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  EXPECT_FALSE(svc.Submit(Job("true", 1)).empty());
  EXPECT_FALSE(svc.Submit(Job("true", 1)).empty());
  HttpResult third = svc.Post("/api/v1/jobs/submit", Job("true", 1).dump());
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_EQ(third.Json()["error"]["code"], "quota_exceeded");
  EXPECT_EQ(svc.Get("/api/v1/jobs/").Json()["jobs"].size(), 2u);
}

TEST(SchedulingTest, WorkOverTheGpuQuotaWaitsAndSaysSo) {
  ServiceProcess svc(Env{{"GPUORCH_QUOTA_MAX_GPUS", "2"}});
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  std::string first = svc.Submit(Job("sleep 30", 2));
  svc.WaitForStatus(first, "running");
  std::string second = svc.Submit(Job("true", 1));
  json job = svc.WaitForJob(second, [](const json& j) {
    return j.value("status_message", "").find("quota") != std::string::npos;
  });
  EXPECT_EQ(job["status"], "queued") << job.dump();
  EXPECT_NE(job["status_message"].get<std::string>().find("uses 2 of 2 GPUs"), std::string::npos)
      << job.dump();
  ASSERT_EQ(svc.Delete("/api/v1/jobs/" + first).status, 200);
  EXPECT_EQ(svc.WaitForStatus(second, "succeeded")["status"], "succeeded");
}

TEST(SchedulingTest, HigherPriorityJobPreemptsPreemptibleWorkWhichIsRequeued) {
  ServiceProcess svc(Env{{"GPUORCH_RETRY_BACKOFF_SECONDS", "0"}, {"GPUORCH_KILL_GRACE_SECONDS", "2"}});
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  // Low-priority preemptible work fills the node; its second attempt finishes at once.
  std::string low = svc.Submit(Job("if [ $GPUORCH_ATTEMPT = 1 ]; then sleep 300; fi; echo resumed", 6,
                                   {{"priority", 0}, {"preemptible", true}}));
  svc.WaitForStatus(low, "running");
  std::string urgent = svc.Submit(Job("echo urgent", 4, {{"priority", 10}}));
  json done = svc.WaitForStatus(urgent, "succeeded");
  EXPECT_EQ(done["status"], "succeeded") << done.dump();
  json low_job = svc.WaitForStatus(low, "succeeded");
  EXPECT_EQ(low_job["status"], "succeeded") << low_job.dump();
  EXPECT_EQ(low_job["attempt"], 2);
  bool preempted = false;
  for (const auto& t : low_job["transitions"]) {
    preempted |= t["message"].get<std::string>().find("preempted by " + urgent) != std::string::npos;
  }
  EXPECT_TRUE(preempted) << low_job.dump();
}

TEST(SchedulingTest, NonPreemptibleWorkIsNotPreempted) {
  ServiceProcess svc;
  ASSERT_TRUE(svc.Start()) << svc.last_output();
  std::string low = svc.Submit(Job("sleep 300", 6, {{"priority", 0}}));
  svc.WaitForStatus(low, "running");
  std::string urgent = svc.Submit(Job("echo urgent", 4, {{"priority", 10}}));
  json waiting = svc.WaitForJob(urgent, [](const json& j) { return !j["queue_position"].is_null(); });
  EXPECT_EQ(waiting["status"], "queued");
  EXPECT_EQ(waiting["queue_position"], 1);
  EXPECT_EQ(svc.Get("/api/v1/jobs/" + low).Json()["status"], "running");
  ASSERT_EQ(svc.Delete("/api/v1/jobs/" + low).status, 200);
  EXPECT_EQ(svc.WaitForStatus(urgent, "succeeded")["status"], "succeeded");
}

}  // namespace
}  // namespace gpuorch::testing
