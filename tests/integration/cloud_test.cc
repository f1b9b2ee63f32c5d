// End to end over the real binaries: `gpuorch serve` against `fake_cloud` (wire-level fake RunPod,
// Vast.ai and EC2), whose creates boot real `gpuorch agent` processes on this machine. The local
// node has one RTX 4090, so A100 jobs must go to the cloud. The test catalog makes Vast.ai the
// cheapest A100 (spot bid $0.60/h, on-demand $1.10/h), then RunPod ($1.64/h), then AWS (8 GPUs).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kReconcileMs = 1000;

class FakeCloud {
 public:
  FakeCloud() {
    char tmpl[] = "/tmp/gpuorch-cloud-XXXXXX";
    dir_ = mkdtemp(tmpl);
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = std::fopen((dir_ + "/fake_cloud.out").c_str(), "a");
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
      std::string bin = BinPath("fake_cloud");
      std::string agent = BinPath("gpuorch");
      std::string work = dir_ + "/agents";
      execl(bin.c_str(), bin.c_str(), "--agent-binary", agent.c_str(), "--work-dir", work.c_str(),
            "--catalog", "test", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 500 && control_.empty(); ++i) {
      std::ifstream in(dir_ + "/fake_cloud.out");
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("fake_cloud: ", 0) == 0) {
          std::istringstream words(line.substr(12));
          std::string word;
          while (words >> word) {
            auto eq = word.find('=');
            urls_[word.substr(0, eq)] = word.substr(eq + 1);
          }
          control_ = urls_["control"];
        }
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  ~FakeCloud() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool ok() const { return !control_.empty(); }

  // What the service needs to reach the fakes, with short loop intervals for tests.
  Env ServiceEnv(int port) const {
    return Env{{"RUNPOD_API_KEY", "runpod-test-key"},
               {"RUNPOD_API_URL", urls_.at("runpod")},
               {"VAST_API_KEY", "vast-test-key"},
               {"VAST_API_URL", urls_.at("vastai")},
               {"AWS_ACCESS_KEY_ID", "AKIDFAKECLOUD"},
               {"AWS_SECRET_ACCESS_KEY", "fake-cloud-secret"},
               {"AWS_EC2_ENDPOINT", urls_.at("aws")},
               {"GPUORCH_LOCAL_GPUS", "RTX4090:1"},
               {"GPUORCH_PUBLIC_URL", "http://127.0.0.1:" + std::to_string(port)},
               {"GPUORCH_PROVISION_AFTER_MS", "0"},
               {"GPUORCH_INSTANCE_LOOP_MS", "200"},
               {"GPUORCH_RECONCILE_INTERVAL_MS", std::to_string(kReconcileMs)},
               {"GPUORCH_CREATE_GRACE_MS", "2000"},
               {"GPUORCH_IDLE_TIMEOUT_SECONDS", "2"},
               {"GPUORCH_NODE_LOST_SECONDS", "5"},
               {"GPUORCH_OFFER_REFRESH_SECONDS", "1"},
               {"GPUORCH_RETRY_BACKOFF_SECONDS", "0"}};
  }

  json Ledger() const { return HttpCall("GET", control_ + "/ledger").Json(); }
  bool Control(const std::string& route, const json& body) const {
    return HttpCall("POST", control_ + route, body.dump(), {"Content-Type: application/json"})
               .status == 200;
  }
  int Live() const {
    int live = 0;
    const json ledger = Ledger();
    for (const auto& [provider, entries] : ledger.items()) {
      for (const auto& e : entries) {
        live += e["live"].get<bool>() ? 1 : 0;
      }
    }
    return live;
  }
  // Waits until no fake instance is live; false on timeout.
  bool WaitNoneLive(milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Live() == 0) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  }
  std::string agents_log() const {
    std::string all;
    std::error_code ec;
    for (auto& e : std::filesystem::recursive_directory_iterator(dir_ + "/agents", ec)) {
      if (e.path().filename() == "agent.log") {
        std::ifstream in(e.path());
        all += std::string((std::istreambuf_iterator<char>(in)), {});
      }
    }
    return all;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  std::map<std::string, std::string> urls_;
  std::string control_;
};

class CloudTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cloud_.ok()) << "fake_cloud did not start";
    port_ = FreePort();
    service_ = std::make_unique<ServiceProcess>(cloud_.ServiceEnv(port_));
    service_->SetListen("127.0.0.1:" + std::to_string(port_));
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- service output ---\n" << service_->last_output().substr(0, 20000)
                << "\n--- agents ---\n" << cloud_.agents_log().substr(0, 8000) << "\n";
    }
  }

  json A100Job(const std::string& command) const {
    return json{{"config", {{"gpu_type", "A100"}, {"gpu_count", 1},
                            {"command", {"sh", "-c", command}}}}};
  }

  // Every instance a fake ever created is known to the store, and none is billed by the fake for
  // longer than one reconcile interval (plus a second of slack) after the store stopped wanting it.
  void ExpectNoLeak() {
    ASSERT_TRUE(cloud_.WaitNoneLive(seconds(30))) << cloud_.Ledger().dump(2);
    const json ledger = cloud_.Ledger();
    for (const auto& [provider, entries] : ledger.items()) {
      for (const auto& e : entries) {
        const std::string id = e["instance_id"].get<std::string>();
        auto got = service_->Get("/api/v1/instances/" + id);
        ASSERT_EQ(got.status, 200) << "fake " << provider << " instance " << e.dump()
                                   << " is not in the store";
        json instance = got.Json();
        // The provider confirms a terminate a moment before the store records it.
        for (int i = 0; i < 50 && instance["status"] == "terminating"; ++i) {
          std::this_thread::sleep_for(milliseconds(100));
          instance = service_->Get("/api/v1/instances/" + id).Json();
        }
        EXPECT_TRUE(instance["status"] == "terminated" || instance["status"] == "lost" ||
                    instance["status"] == "failed")
            << instance.dump();
      }
    }
  }

  json WaitForInstance(const std::function<bool(const json&)>& pred, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const json list = service_->Get("/api/v1/instances/").Json();
      for (const auto& i : list["instances"]) {
        if (i["provider"] != "local" && pred(i)) {
          return i;
        }
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    return json();
  }

  FakeCloud cloud_;
  int port_ = 0;
  std::unique_ptr<ServiceProcess> service_;
};

TEST_F(CloudTest, JobThatDoesNotFitLocallyRunsOnCheapestCloudAndInstanceIsTerminated) {
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(A100Job("echo hello from the cloud; echo gpus=$CUDA_VISIBLE_DEVICES"));
  ASSERT_FALSE(id.empty());
  json job = service_->WaitForStatus(id, "succeeded", seconds(60));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2);
  EXPECT_NE(job.dump().find("vastai"), std::string::npos) << job.dump(2);
  EXPECT_GT(job["cost_usd"].get<double>(), 0.0);
  auto logs = service_->Get("/api/v1/jobs/" + id + "/logs");
  EXPECT_NE(logs.body.find("hello from the cloud"), std::string::npos) << logs.body;
  EXPECT_NE(logs.body.find("gpus=0"), std::string::npos) << logs.body;
  ExpectNoLeak();
  json ledger = cloud_.Ledger();
  ASSERT_EQ(ledger["vastai"].size(), 1u) << ledger.dump(2);
  EXPECT_EQ(ledger["runpod"].size(), 0u);
  EXPECT_EQ(ledger["aws"].size(), 0u);
  json costs = service_->Get("/api/v1/costs").Json();
  EXPECT_GT(costs["by_provider"]["vastai"].get<double>(), 0.0) << costs.dump();
  EXPECT_GT(costs["by_user"]["admin"].get<double>(), 0.0) << costs.dump();
}

TEST_F(CloudTest, NoCapacityAtCheapestProviderFailsOverToTheNext) {
  // Vast.ai lists the offer as in stock, but its create answers "no such ask" every time.
  ASSERT_TRUE(cloud_.Control("/faults", {{"provider", "vastai"}, {"kind", "no_capacity"},
                                         {"operation", "create"}, {"times", -1}}));
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(A100Job("echo ran"));
  json job = service_->WaitForStatus(id, "succeeded", seconds(60));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2);
  EXPECT_NE(job.dump().find("runpod"), std::string::npos) << job.dump(2);
  json instances = service_->Get("/api/v1/instances/").Json()["instances"];
  bool saw_failed_vast = false;
  for (const auto& i : instances) {
    if (i["provider"] == "vastai") {
      saw_failed_vast = i["status"] == "failed" &&
                        i["status_message"].get<std::string>().find("no_capacity") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_failed_vast) << instances.dump(2);
  ExpectNoLeak();
  EXPECT_EQ(cloud_.Ledger()["runpod"].size(), 1u);
}

TEST_F(CloudTest, SpotInterruptionMidJobResumesTheJobElsewhere) {
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(
      A100Job("if [ \"$GPUORCH_ATTEMPT\" = 1 ]; then sleep 120; fi; echo done attempt $GPUORCH_ATTEMPT"));
  json running = service_->WaitForStatus(id, "running", seconds(60));
  ASSERT_EQ(running["status"], "running") << running.dump(2);
  json first = WaitForInstance([](const json& i) { return i["status"] == "ready"; }, seconds(10));
  ASSERT_FALSE(first.is_null());
  ASSERT_TRUE(first["spot"].get<bool>()) << first.dump(2);
  ASSERT_TRUE(cloud_.Control("/interrupt", {{"provider", first["provider"]},
                                            {"provider_instance_id", first["provider_instance_id"]}}));
  json job = service_->WaitForStatus(id, "succeeded", seconds(90));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2);
  EXPECT_EQ(job["attempt"], 2) << job.dump(2);
  EXPECT_NE(job["node_id"], first["node_id"]) << job.dump(2);
  auto logs = service_->Get("/api/v1/jobs/" + id + "/logs");
  EXPECT_NE(logs.body.find("done attempt 2"), std::string::npos) << logs.body;
  bool requeued = false;
  for (const auto& t : job["transitions"]) {
    requeued |= t["message"].get<std::string>().find("requeued") != std::string::npos;
  }
  EXPECT_TRUE(requeued) << job["transitions"].dump(2);
  json lost = service_->Get("/api/v1/instances/" + first["instance_id"].get<std::string>()).Json();
  EXPECT_EQ(lost["status"], "lost") << lost.dump(2);
  ExpectNoLeak();
}

TEST_F(CloudTest, DryRunRanksOffersAndRentsNothing) {
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  json providers;
  for (int i = 0; i < 50; ++i) {
    providers = service_->Get("/api/v1/providers/").Json();
    if (providers["providers"].size() == 3 && providers["providers"][1]["offers_count"] == 1) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  json body = A100Job("true");
  body["dry_run"] = true;
  auto answer = service_->Post("/api/v1/jobs/submit", body.dump());
  ASSERT_EQ(answer.status, 200) << answer.body;
  json dry = answer.Json();
  ASSERT_GE(dry["offers"].size(), 2u) << dry.dump(2);
  EXPECT_EQ(dry["offers"][0]["provider"], "vastai");
  EXPECT_EQ(dry["offers"][1]["provider"], "runpod");
  EXPECT_GT(dry["estimated_cost_usd"].get<double>(), 0.0);
  EXPECT_NE(dry["explanation"].get<std::string>().find("runner-up"), std::string::npos);
  auto status = service_->Get("/api/v1/providers/runpod/status").Json();
  EXPECT_EQ(status["configured"], true);
  EXPECT_EQ(status["reachable"], true);
  auto pricing = service_->Get("/api/v1/providers/vastai/pricing").Json();
  EXPECT_EQ(pricing["offers"].size(), 1u) << pricing.dump();
  EXPECT_EQ(service_->Get("/api/v1/providers/nope/status").status, 404);
  EXPECT_EQ(service_->Get("/api/v1/jobs/?limit=10").Json()["jobs"].size(), 0u);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(cloud_.Ledger()["vastai"].size(), 0u);
}

// kill -9 (here: an abrupt exit at a fault-injection point) at each step of provisioning; after a
// restart the job still runs once, and no instance stays billed that the store does not want.
TEST_F(CloudTest, CrashBeforeProviderCallLeaksNothing) {
  service_->SetEnv("GPUORCH_CRASH_POINT", "before_provider_call");
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(A100Job("echo survived"));
  ASSERT_FALSE(id.empty());
  ASSERT_NE(service_->WaitExit(seconds(30)), -1) << "the crash point was not reached";
  EXPECT_EQ(cloud_.Live(), 0);
  service_->SetEnv("GPUORCH_CRASH_POINT", "");
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  json job = service_->WaitForStatus(id, "succeeded", seconds(60));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2);
  ExpectNoLeak();
  EXPECT_EQ(cloud_.Ledger()["vastai"].size(), 1u) << "the crashed attempt created nothing";
}

TEST_F(CloudTest, CrashAfterProviderCallAdoptsTheInstanceAndLeaksNothing) {
  service_->SetEnv("GPUORCH_CRASH_POINT", "after_provider_call");
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(A100Job("echo survived"));
  ASSERT_NE(service_->WaitExit(seconds(30)), -1) << "the crash point was not reached";
  EXPECT_EQ(cloud_.Live(), 1) << "the provider created the instance before the crash";
  service_->SetEnv("GPUORCH_CRASH_POINT", "");
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  json job = service_->WaitForStatus(id, "succeeded", seconds(60));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2) << service_->last_output();
  ExpectNoLeak();
  EXPECT_EQ(cloud_.Ledger()["vastai"].size(), 1u) << "the instance was adopted, not rented twice";
}

TEST_F(CloudTest, CrashBeforeAgentRegistersLeaksNothing) {
  for (const char* provider : {"vastai", "runpod", "aws"}) {
    ASSERT_TRUE(cloud_.Control("/agents", {{"provider", provider}, {"start", false}}));
  }
  service_->SetEnv("GPUORCH_BOOT_TIMEOUT_SECONDS", "3");
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(A100Job("echo survived"));
  json booting = WaitForInstance([](const json& i) { return i["status"] == "provisioning"; },
                                 seconds(30));
  ASSERT_FALSE(booting.is_null());
  service_->Kill9();
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  // The agent never comes: the boot timeout ends the instance; the job stays queued.
  json ended = WaitForInstance(
      [&](const json& i) {
        return i["instance_id"] == booting["instance_id"] && i["status"] == "terminated";
      },
      seconds(30));
  ASSERT_FALSE(ended.is_null()) << service_->Get("/api/v1/instances/").body;
  for (const char* provider : {"vastai", "runpod", "aws"}) {
    ASSERT_TRUE(cloud_.Control("/agents", {{"provider", provider}, {"start", true}}));
  }
  json job = service_->WaitForStatus(id, "succeeded", seconds(60));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2);
  ExpectNoLeak();
}

TEST_F(CloudTest, UserTerminatesAnInstanceAndItsJobIsRequeued) {
  ASSERT_TRUE(service_->Start()) << service_->last_output();
  const std::string id = service_->Submit(
      A100Job("if [ \"$GPUORCH_ATTEMPT\" = 1 ]; then sleep 120; fi; echo second"));
  ASSERT_EQ(service_->WaitForStatus(id, "running", seconds(60))["status"], "running");
  json ready = WaitForInstance([](const json& i) { return i["status"] == "ready"; }, seconds(10));
  ASSERT_FALSE(ready.is_null());
  auto deleted = service_->Delete("/api/v1/instances/" + ready["instance_id"].get<std::string>());
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(deleted.Json()["status"], "terminated") << deleted.body;
  auto again = service_->Delete("/api/v1/instances/" + ready["instance_id"].get<std::string>());
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(service_->Delete("/api/v1/instances/inst-nope").status, 404);
  json job = service_->WaitForStatus(id, "succeeded", seconds(90));
  ASSERT_EQ(job["status"], "succeeded") << job.dump(2);
  EXPECT_EQ(job["attempt"], 2);
  ExpectNoLeak();
}

}  // namespace
}  // namespace gpuorch::testing
