// End-to-end behaviour of the real `gpuorch serve` binary over HTTP: jobs run on the declared GPUs,
// GPUs are never overcommitted, cancel, timeout, retries, logs and idempotency.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

using nlohmann::json;

json ShellJob(const std::string& script, int gpus = 1, json extra = json::object()) {
  json body{{"name", "t"},
            {"job_type", "custom"},
            {"config", {{"gpu_type", "RTX4090"}, {"gpu_count", gpus}, {"command", script}}}};
  for (auto& [k, v] : extra.items()) {
    body[k] = v;
  }
  return body;
}

std::string Logs(const ServiceProcess& svc, const std::string& id, const std::string& query = "") {
  return svc.Get("/api/v1/jobs/" + id + "/logs" + query).body;
}

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(svc_.Start()) << svc_.last_output(); }
  ServiceProcess svc_{{{"GPUORCH_RETRY_BACKOFF_SECONDS", "0"}, {"GPUORCH_KILL_GRACE_SECONDS", "2"}}};
};

TEST_F(JobsTest, JobRunsAndSeesItsGpus) {
  json body{{"name", "hello"},
            {"job_type", "custom"},
            {"priority", 10},
            {"timeout_seconds", 600},
            {"max_retries", 1},
            {"config",
             {{"gpu_type", "RTX4090"},
              {"gpu_count", 2},
              {"memory_gb", 16},
              {"command", {"sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES nv=$NVIDIA_VISIBLE_DEVICES id=$GPUORCH_JOB_ID mode=$MODE"}},
              {"env", {{"MODE", "test"}}}}}};
  HttpResult r = svc_.Post("/api/v1/jobs/submit", body.dump());
  ASSERT_EQ(r.status, 201) << r.body;
  json job = r.Json();
  EXPECT_EQ(job["status"], "queued");
  std::string id = job["job_id"];
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(r.headers["location"], "/api/v1/jobs/" + id);

  json done = svc_.WaitForStatus(id, "succeeded");
  ASSERT_EQ(done["status"], "succeeded") << done.dump();
  EXPECT_EQ(done["exit_code"], 0);
  EXPECT_EQ(done["gpu_indices"], json::array({0, 1}));
  EXPECT_EQ(done["node_id"], "local");
  EXPECT_EQ(done["owner"], "admin");  // the caller: the admin whose token the harness sends
  EXPECT_EQ(done["attempt"], 1);
  EXPECT_EQ(Logs(svc_, id), "gpus=0,1 nv=0,1 id=" + id + " mode=test\n");
  std::vector<std::string> states;
  for (const auto& t : done["transitions"]) {
    states.push_back(t["to"]);
    EXPECT_TRUE(t["at"].is_string());
  }
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "scheduled", "running", "succeeded"}));
}

TEST_F(JobsTest, GpusAreNeverOvercommittedUnderConcurrentJobs) {
  // Each job claims its GPUs with atomic mkdir; a second holder of a GPU fails the claim.
  std::string claims = svc_.data_dir() + "/claims";
  std::filesystem::create_directories(claims);
  std::string script = "IFS=,; for g in $CUDA_VISIBLE_DEVICES; do mkdir " + claims +
                       "/gpu$g || { echo OVERCOMMIT $g; exit 1; }; done; sleep 0.3; "
                       "for g in $CUDA_VISIBLE_DEVICES; do rmdir " + claims + "/gpu$g; done";
  std::vector<std::string> ids;
  std::vector<std::thread> threads;
  std::mutex mu;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        std::string id = svc_.Submit(ShellJob(script, 1 + (t + i) % 4));
        std::lock_guard lock(mu);
        ids.push_back(id);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  ASSERT_EQ(ids.size(), 24u);
  for (const auto& id : ids) {
    ASSERT_FALSE(id.empty());
    json job = svc_.WaitForJob(id, [](const json& j) {
      std::string s = j.value("status", "");
      return s == "succeeded" || s == "failed";
    });
    EXPECT_EQ(job["status"], "succeeded") << Logs(svc_, id);
  }
}

TEST_F(JobsTest, WaitingJobSaysWhy) {
  std::string big = svc_.Submit(ShellJob("sleep 30", 4));
  svc_.WaitForStatus(big, "running");
  std::string second = svc_.Submit(ShellJob("true", 4));
  json waiting = svc_.WaitForJob(second, [](const json& j) {
    return j.value("status_message", "").find("waiting") != std::string::npos;
  });
  EXPECT_EQ(waiting["status"], "queued");
  const std::string message = waiting["status_message"];
  EXPECT_EQ(message.rfind("waiting: needs 4 x RTX4090, node local has 6 x RTX4090 with 2 free", 0),
            0u)
      << message;
  EXPECT_EQ(waiting["queue_position"], 1);
  json queue = svc_.Get("/api/v1/queue").Json()["queue"];
  ASSERT_EQ(queue.size(), 1u) << queue.dump();
  EXPECT_EQ(queue[0]["job_id"], second);
  EXPECT_EQ(queue[0]["position"], 1);
  EXPECT_EQ("waiting: " + queue[0]["reason"].get<std::string>(), message);
  ASSERT_EQ(svc_.Delete("/api/v1/jobs/" + big).status, 200);
  EXPECT_EQ(svc_.WaitForStatus(second, "succeeded")["status"], "succeeded");
}

TEST_F(JobsTest, CancelStopsTheWholeProcessGroup) {
  std::string id = svc_.Submit(ShellJob("sleep 300 & echo child=$!; echo leader=$$; wait", 1));
  svc_.WaitForStatus(id, "running");
  std::string logs;
  for (int i = 0; i < 200 && logs.find("leader=") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    logs = Logs(svc_, id);
  }
  pid_t child = std::atoi(logs.c_str() + logs.find("child=") + 6);
  pid_t leader = std::atoi(logs.c_str() + logs.find("leader=") + 7);
  ASSERT_TRUE(ProcessAlive(child));
  HttpResult r = svc_.Delete("/api/v1/jobs/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["status"], "cancelled");
  json job = svc_.WaitForJob(id, [](const json& j) { return !j["exit_code"].is_null(); });
  EXPECT_EQ(job["status"], "cancelled");
  EXPECT_EQ(job["exit_code"], 143);  // SIGTERM
  EXPECT_FALSE(ProcessAlive(child));
  EXPECT_FALSE(ProcessAlive(leader));
  // A second cancel of an ended job is a conflict, and the GPU is free again.
  EXPECT_EQ(svc_.Delete("/api/v1/jobs/" + id).status, 409);
  EXPECT_EQ(svc_.Get("/api/v1/instances/local").Json()["gpus_free"], 6);
}

TEST_F(JobsTest, CancelEscalatesToKillAfterGrace) {
  std::string id = svc_.Submit(ShellJob("trap '' TERM; echo ready; sleep 300", 1));
  svc_.WaitForStatus(id, "running");
  for (int i = 0; i < 200 && Logs(svc_, id).find("ready") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(svc_.Delete("/api/v1/jobs/" + id).status, 200);
  json job = svc_.WaitForJob(id, [](const json& j) { return !j["exit_code"].is_null(); });
  EXPECT_EQ(job["status"], "cancelled");
  EXPECT_EQ(job["exit_code"], 137);  // SIGKILL after the grace period
}

TEST_F(JobsTest, CancelQueuedJob) {
  std::string blocker = svc_.Submit(ShellJob("sleep 300", 6));
  svc_.WaitForStatus(blocker, "running");
  std::string id = svc_.Submit(ShellJob("echo never", 1));
  HttpResult r = svc_.Delete("/api/v1/jobs/" + id);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["status"], "cancelled");
  svc_.Delete("/api/v1/jobs/" + blocker);
  svc_.WaitForJob(blocker, [](const json& j) { return !j["exit_code"].is_null(); });
  EXPECT_EQ(svc_.Get("/api/v1/jobs/" + id).Json()["attempt"], 0);
}

TEST_F(JobsTest, TimeoutStopsTheJob) {
  std::string id = svc_.Submit(ShellJob("sleep 300", 1, {{"timeout_seconds", 1}}));
  json job = svc_.WaitForJob(id, [](const json& j) { return !j["exit_code"].is_null(); });
  EXPECT_EQ(job["status"], "timed_out");
  EXPECT_EQ(job["exit_code"], 143);
}

TEST_F(JobsTest, FailedAttemptIsRetriedThenFails) {
  std::string id = svc_.Submit(ShellJob("echo try $GPUORCH_ATTEMPT; exit 3", 1, {{"max_retries", 1}}));
  json job = svc_.WaitForStatus(id, "failed");
  EXPECT_EQ(job["attempt"], 2);
  EXPECT_EQ(job["exit_code"], 3);
  EXPECT_EQ(Logs(svc_, id), "try 2\n");
  EXPECT_EQ(Logs(svc_, id, "?attempt=1"), "try 1\n");
  int requeues = 0;
  for (const auto& t : job["transitions"]) {
    requeues += (t["from"] == "running" && t["to"] == "queued") ? 1 : 0;
  }
  EXPECT_EQ(requeues, 1);
}

TEST_F(JobsTest, LogsFollowStreamsUntilTheJobEnds) {
  std::string id = svc_.Submit(ShellJob("for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; echo err >&2", 1));
  HttpResult r = svc_.Get("/api/v1/jobs/" + id + "/logs?follow=true");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "line 1\nline 2\nline 3\nline 4\nline 5\nerr\n");
  EXPECT_EQ(svc_.Get("/api/v1/jobs/" + id).Json()["status"], "succeeded");
}

TEST_F(JobsTest, IdempotencyKeyMakesOneJob) {
  std::string body = ShellJob("true", 1).dump();
  std::vector<std::string> headers = {"Content-Type: application/json", "Idempotency-Key: abc-123"};
  HttpResult first = svc_.Post("/api/v1/jobs/submit", body, headers);
  HttpResult second = svc_.Post("/api/v1/jobs/submit", body, headers);
  ASSERT_EQ(first.status, 201);
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(first.Json()["job_id"], second.Json()["job_id"]);
  EXPECT_EQ(svc_.Get("/api/v1/jobs/").Json()["jobs"].size(), 1u);
}

TEST_F(JobsTest, SeedTemplatesAreAcceptedAndExplainWhyTheyWait) {
  json llava = json::parse(R"({"name": "LLaVA-1.6 34B Analysis", "job_type": "llava",
    "config": {"model_name": "llava-v1.6-34b", "gpu_type": "RTX4090", "gpu_count": 4,
               "memory_gb": 96, "docker_image": "aima/llava:1.6-34b"}})");
  json llama = json::parse(R"({"name": "Llama 3.1 70B Text Generation", "job_type": "llama",
    "config": {"model_name": "llama-3.1-70b", "gpu_type": "RTX4090", "gpu_count": 2,
               "memory_gb": 48, "docker_image": "aima/llama:3.1-70b"}})");
  std::string a = svc_.Submit(llava);
  std::string b = svc_.Submit(llama);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  json job = svc_.WaitForJob(a, [](const json& j) {
    return j.value("status_message", "").find("container runtime") != std::string::npos;
  });
  EXPECT_EQ(job["status"], "queued");
  EXPECT_EQ(job["config"]["memory_gb"], 96);
  // A template by name, with an override.
  json by_name{{"template", "llama-3.1-70b"}, {"priority", 5}, {"config", {{"gpu_count", 3}}}};
  HttpResult r = svc_.Post("/api/v1/jobs/submit", by_name.dump());
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["config"]["gpu_count"], 3);
  EXPECT_EQ(r.Json()["config"]["docker_image"], "aima/llama:3.1-70b");
  EXPECT_EQ(r.Json()["job_type"], "llama");
}

TEST_F(JobsTest, ListFiltersAndPaginatesNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    json body = ShellJob("true", 1);
    body["job_type"] = i % 2 ? "training" : "custom";
    ids.push_back(svc_.Submit(body));
  }
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    HttpResult r = svc_.Get("/api/v1/jobs/?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200);
    json page_body = r.Json();
    for (const auto& j : page_body["jobs"]) {
      seen.push_back(j["job_id"]);
    }
    if (page_body["next_cursor"].is_null()) {
      break;
    }
    cursor = page_body["next_cursor"];
  }
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(svc_.Get("/api/v1/jobs/?job_type=training").Json()["jobs"].size(), 3u);
  for (const auto& id : ids) {
    svc_.WaitForStatus(id, "succeeded");
  }
  EXPECT_EQ(svc_.Get("/api/v1/jobs/?status=succeeded").Json()["jobs"].size(), 7u);
  EXPECT_EQ(svc_.Get("/api/v1/jobs/?status=queued,running").Json()["jobs"].size(), 0u);
}

TEST_F(JobsTest, TemplatesInstancesAndHealth) {
  json templates = svc_.Get("/api/v1/templates").Json()["templates"];
  ASSERT_EQ(templates.size(), 2u);
  EXPECT_EQ(templates[0]["name"], "llava-1.6-34b");
  EXPECT_EQ(templates[0]["config"]["gpu_count"], 4);
  json instances = svc_.Get("/api/v1/instances/").Json()["instances"];
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0]["instance_id"], "local");
  EXPECT_EQ(instances[0]["provider"], "local");
  EXPECT_EQ(instances[0]["gpu_count"], 6);
  EXPECT_EQ(instances[0]["gpu_type"], "RTX4090");
  EXPECT_EQ(instances[0]["gpu_source"], "declared");
  EXPECT_EQ(svc_.Get("/api/v1/instances/nope").status, 404);
  HttpResult health = svc_.Get("/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.Json()["status"], "ok");
}

TEST_F(JobsTest, SigtermStopsTheServiceCleanly) { EXPECT_EQ(svc_.Terminate(), 0); }

}  // namespace
}  // namespace gpuorch::testing
