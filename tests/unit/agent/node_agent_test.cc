// The real node agent against a real service front on loopback: an HTTP server serving AgentApi over
// a NodeRegistry (SQLite store in a temp dir). The test plays the job controller: it drives the
// node's runner (Launch, Probe, Signal) and watches real jobs run under the real gpuorch-shim.
// Real clock, heartbeats every 20 ms.
#include "agent/node_agent.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/agent_api.h"
#include "api/http_server.h"
#include "core/clock.h"
#include "core/worker_pool.h"
#include "lifecycle/node_registry.h"
#include "providers/http_client.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/temp_dir.h"

namespace gpuorch::agent {
namespace {

using namespace std::chrono_literals;

const char* const kStaticToken = "static-join-token";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class Listener final : public lifecycle::NodeListener {
 public:
  void OnNodeReady(const lifecycle::RemoteNode& node) override {
    std::lock_guard lock(mu_);
    ready_.push_back(node);
  }
  void OnNodeLost(const std::string& node_id, const std::string& reason) override {
    std::lock_guard lock(mu_);
    lost_.push_back(node_id);
  }
  size_t ready_count() const {
    std::lock_guard lock(mu_);
    return ready_.size();
  }
  std::shared_ptr<ProcessRunner> runner() const {
    std::lock_guard lock(mu_);
    return ready_.empty() ? nullptr : ready_.back().runner;
  }
  std::string node_id() const {
    std::lock_guard lock(mu_);
    return ready_.empty() ? "" : ready_.back().record.id;
  }

 private:
  mutable std::mutex mu_;
  std::vector<lifecycle::RemoteNode> ready_;
  std::vector<std::string> lost_;
};

// The service side: store, registry, AgentApi, HTTP server on a free loopback port.
class Service {
 public:
  explicit Service(const std::string& dir) : data_dir_(dir + "/service") {
    auto store = store::OpenSqliteStore(store::SqliteStoreOptions{.path = dir + "/db"});
    EXPECT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    registry_ = std::make_unique<lifecycle::NodeRegistry>(
        *store_, core::RealClock::Instance(),
        lifecycle::NodeRegistryOptions{.data_dir = data_dir_,
                                       .lost_after = 60s,
                                       .static_join_token = kStaticToken,
                                       .heartbeat_interval = 20ms});
    registry_->SetListener(&listener_);
    api_ = std::make_unique<api::AgentApi>(*registry_,
                                           std::make_shared<core::WorkerPool>("agent-api", 2));
    Start();
  }
  ~Service() { Stop(); }

  void Start() {
    auto server = api::StartHttpServer(
        api::HttpServerOptions{.port = port_, .threads = 2, .max_body_bytes = 1 << 20},
        [this](api::HttpRequest request, api::Responder respond) {
          if (!api_->Handle(request, respond)) {
            respond(api::HttpResponse{.status = 404, .body = R"({"fallthrough":true})"});
          }
        });
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    port_ = server_->port();
  }
  void Stop() {
    if (server_) {
      server_->Stop();
      server_.reset();
    }
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string AttemptDir(const std::string& job, int attempt) const {
    return data_dir_ + "/jobs/" + job + "/attempt-" + std::to_string(attempt);
  }
  lifecycle::NodeRegistry& registry() { return *registry_; }
  const Listener& listener() const { return listener_; }

 private:
  const std::string data_dir_;
  std::unique_ptr<store::Store> store_;
  Listener listener_;
  std::unique_ptr<lifecycle::NodeRegistry> registry_;
  std::unique_ptr<api::AgentApi> api_;
  std::unique_ptr<api::HttpServer> server_;
  uint16_t port_ = 0;
};

class NodeAgentTest : public ::testing::Test {
 protected:
  void SetUp() override { service_ = std::make_unique<Service>(dir_.path().string()); }

  void TearDown() override {
    StopAgent();
    for (int64_t pgid : groups_) {
      ::kill(-static_cast<pid_t>(pgid), SIGKILL);
    }
    service_.reset();
  }

  NodeAgentOptions Options() {
    return NodeAgentOptions{.server_url = service_->url(),
                            .join_token = kStaticToken,
                            .data_dir = AgentDir(),
                            .node_name = "worker-1",
                            .local_gpus = std::string("RTX4090:2"),
                            .container_runtime = "",
                            .fence_after = 60s,
                            .shim_path = std::string(GPUORCH_BIN_DIR) + "/gpuorch-shim",
                            .nvidia_smi = dir_.File("no-nvidia-smi"),
                            .max_register_backoff = 200ms};
  }

  void StartAgent(NodeAgentOptions options) {
    auto agent = NodeAgent::Create(std::move(options), core::RealClock::Instance());
    ASSERT_TRUE(agent) << agent.error().message;
    agent_ = std::move(*agent);
    finished_ = false;
    thread_ = std::thread([this] {
      run_result_ = agent_->Run();
      finished_ = true;
    });
  }

  void StopAgent() {
    if (agent_) {
      agent_->Stop();
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  // Starts the agent and waits until the service knows the node.
  std::shared_ptr<ProcessRunner> JoinedRunner(size_t ready_before = 0) {
    StartAgent(Options());
    EXPECT_TRUE(Eventually([&] { return service_->listener().ready_count() > ready_before; }));
    return service_->listener().runner();
  }

  static bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 8s) {
    for (auto waited = 0ms; waited < limit; waited += 10ms) {
      if (done()) {
        return true;
      }
      core::RealClock::Instance().SleepFor(10ms);
    }
    return done();
  }

  LaunchSpec Spec(const std::string& job, std::vector<std::string> argv) {
    return LaunchSpec{.attempt_dir = service_->AttemptDir(job, 1),
                      .argv = std::move(argv),
                      .env = {{"GREETING", "hello from the service"}},
                      .job_id = job,
                      .attempt = 1,
                      .gpu_indices = {1}};
  }

  // Waits until the agent reported the job's pid; returns the handle.
  AttemptHandle AwaitRunning(ProcessRunner& runner, const std::string& job) {
    AttemptProbe probe;
    EXPECT_TRUE(Eventually([&] {
      probe = runner.Probe(service_->AttemptDir(job, 1));
      return probe.status == AttemptStatus::kRunning && probe.handle.has_value();
    }));
    if (!probe.handle) {
      return AttemptHandle{};
    }
    groups_.insert(probe.handle->job_pid);
    return *probe.handle;
  }

  AttemptProbe AwaitEnd(ProcessRunner& runner, const std::string& job) {
    AttemptProbe probe;
    EXPECT_TRUE(Eventually([&] {
      probe = runner.Probe(service_->AttemptDir(job, 1));
      return probe.status != AttemptStatus::kRunning;
    }));
    return probe;
  }

  std::string AgentDir() const { return dir_.File("agent"); }
  std::string AgentAttemptDir(const std::string& job) const {
    return AgentDir() + "/jobs/" + job + "/attempt-1";
  }

  gpuorch::testing::TempDir dir_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<NodeAgent> agent_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  core::Status run_result_;
  std::set<int64_t> groups_;
};

TEST_F(NodeAgentTest, RunsAJobAndShipsItsLogAndExitCode) {
  auto runner = JoinedRunner();
  ASSERT_NE(runner, nullptr);
  EXPECT_EQ(service_->listener().node_id(), "node-worker-1");
  EXPECT_TRUE(Eventually([&] { return agent_->node_id() == "node-worker-1"; }));
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(AgentDir() + "/node.json"); }));
  struct stat st {};
  ASSERT_EQ(::stat((AgentDir() + "/node.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto handle = runner->Launch(Spec(
      "job-1", {"sh", "-c",
                "echo \"$GREETING on GPU $CUDA_VISIBLE_DEVICES\"; echo oops >&2; exit 3"}));
  ASSERT_TRUE(handle) << handle.error().message;
  auto probe = AwaitEnd(*runner, "job-1");
  EXPECT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 3);
  // The final state is reported only after the whole log arrived.
  const std::string log = ReadFile(service_->AttemptDir("job-1", 1) + "/log");
  EXPECT_NE(log.find("hello from the service on GPU"), std::string::npos) << log;
  EXPECT_NE(log.find("oops"), std::string::npos) << log;
  EXPECT_EQ(log, ReadFile(AgentAttemptDir("job-1") + "/log"));
  // The service has seen the end: the agent is told to forget the attempt.
  EXPECT_TRUE(Eventually([&] {
    return std::filesystem::exists(AgentAttemptDir("job-1") + "/forgotten");
  }));
  auto nodes = service_->registry().Nodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_TRUE(nodes[0].last_heartbeat.has_value());
  ASSERT_EQ(nodes[0].record.gpus.size(), 2u);
  EXPECT_EQ(nodes[0].record.gpus[1].type, "RTX4090");
  StopAgent();
  EXPECT_TRUE(run_result_) << run_result_.error().message;
}

TEST_F(NodeAgentTest, ReportsGpuMetricsFromNvidiaSmi) {
  const std::string fake = dir_.File("nvidia-smi");
  {
    std::ofstream out(fake);
    out << "#!/bin/sh\necho '0, 55, 2048, 24564'\necho '1, 0, 0, 24564'\n";
  }
  ::chmod(fake.c_str(), 0755);
  NodeAgentOptions options = Options();
  options.nvidia_smi = fake;
  StartAgent(options);
  EXPECT_TRUE(Eventually([&] {
    auto nodes = service_->registry().Nodes();
    return nodes.size() == 1 && nodes[0].gpu_metrics.size() == 2;
  }));
  auto metrics = service_->registry().Nodes()[0].gpu_metrics;
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_EQ(metrics[0], (GpuMetric{.index = 0,
                                   .utilization_pct = 55,
                                   .memory_used_mb = 2048,
                                   .memory_total_mb = 24564}));
}

TEST_F(NodeAgentTest, DeliversSignals) {
  auto runner = JoinedRunner();
  ASSERT_NE(runner, nullptr);
  ASSERT_TRUE(runner->Launch(Spec("job-2", {"sleep", "30"})));
  AttemptHandle handle = AwaitRunning(*runner, "job-2");
  ASSERT_GT(handle.job_pid, 1);
  EXPECT_EQ(::kill(static_cast<pid_t>(handle.job_pid), 0), 0);
  ASSERT_TRUE(runner->Signal(handle, SIGTERM));
  auto probe = AwaitEnd(*runner, "job-2");
  EXPECT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 128 + SIGTERM);
}

TEST_F(NodeAgentTest, GoneNodeKillsItsJobsAndStops) {
  auto runner = JoinedRunner();
  ASSERT_NE(runner, nullptr);
  ASSERT_TRUE(runner->Launch(Spec("job-3", {"sleep", "30"})));
  AttemptHandle handle = AwaitRunning(*runner, "job-3");
  ASSERT_GT(handle.job_pid, 1);
  service_->registry().Deregister(service_->listener().node_id(), "instance terminated");
  ASSERT_TRUE(Eventually([&] { return finished_.load(); }));
  thread_.join();
  ASSERT_FALSE(run_result_);
  EXPECT_EQ(run_result_.error().reason, "node_gone");
  // The shim records the kill once nothing of the job's group is left.
  EXPECT_EQ(ReadFile(AgentAttemptDir("job-3") + "/exit"), "137\n");
  EXPECT_NE(::kill(static_cast<pid_t>(handle.job_pid), 0), 0);
  EXPECT_FALSE(std::filesystem::exists(AgentDir() + "/node.json"));
  EXPECT_TRUE(std::filesystem::exists(AgentAttemptDir("job-3") + "/forgotten"));
}

TEST_F(NodeAgentTest, FencesItselfWhenTheServiceIsGone) {
  NodeAgentOptions options = Options();
  options.fence_after = std::chrono::seconds(1);
  StartAgent(options);
  ASSERT_TRUE(Eventually([&] { return service_->listener().ready_count() == 1; }));
  auto runner = service_->listener().runner();
  ASSERT_TRUE(runner->Launch(Spec("job-4", {"sleep", "30"})));
  AttemptHandle handle = AwaitRunning(*runner, "job-4");
  ASSERT_GT(handle.job_pid, 1);
  service_->Stop();
  EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(AgentAttemptDir("job-4") + "/exit"); },
                         5s));
  EXPECT_EQ(ReadFile(AgentAttemptDir("job-4") + "/exit"), "137\n");
  EXPECT_FALSE(finished_.load());  // still trying to reach the service
  // Once the service is back, the end of the attempt is reported.
  service_->Start();
  auto probe = AwaitEnd(*runner, "job-4");
  EXPECT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 137);
  StopAgent();
  EXPECT_TRUE(run_result_);
}

TEST_F(NodeAgentTest, RestartedAgentReattachesItsJobs) {
  auto runner = JoinedRunner();
  ASSERT_NE(runner, nullptr);
  ASSERT_TRUE(runner->Launch(Spec("job-5", {"sh", "-c", "echo started; exec sleep 30"})));
  AttemptHandle handle = AwaitRunning(*runner, "job-5");
  ASSERT_GT(handle.job_pid, 1);
  EXPECT_TRUE(Eventually([&] {
    return ReadFile(service_->AttemptDir("job-5", 1) + "/log") == "started\n";
  }));
  StopAgent();
  ASSERT_TRUE(run_result_) << run_result_.error().message;
  EXPECT_EQ(::kill(static_cast<pid_t>(handle.job_pid), 0), 0);  // left running under its shim

  // The same node comes back from node.json, without a join token, and still holds the job.
  NodeAgentOptions options = Options();
  options.join_token.clear();
  StartAgent(options);
  EXPECT_TRUE(Eventually([&] { return agent_->node_id() == "node-worker-1"; }));
  EXPECT_EQ(service_->listener().ready_count(), 1u);
  const auto before = service_->registry().Nodes()[0].last_heartbeat;
  EXPECT_TRUE(Eventually([&] { return service_->registry().Nodes()[0].last_heartbeat != before; }));
  EXPECT_TRUE(Eventually([&] {
    auto nodes = service_->registry().Nodes();
    return nodes[0].last_heartbeat != before && nodes[0].attempts.size() == 1;
  }));
  EXPECT_EQ(runner->Probe(service_->AttemptDir("job-5", 1)).status, AttemptStatus::kRunning);
  ASSERT_TRUE(runner->Signal(handle, SIGTERM));
  auto probe = AwaitEnd(*runner, "job-5");
  EXPECT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 128 + SIGTERM);
  // The re-attached attempt's log was not sent twice.
  EXPECT_EQ(ReadFile(service_->AttemptDir("job-5", 1) + "/log"), "started\n");
}

TEST_F(NodeAgentTest, RefusedJoinTokenEndsRun) {
  NodeAgentOptions options = Options();
  options.join_token = "wrong";
  StartAgent(options);
  ASSERT_TRUE(Eventually([&] { return finished_.load(); }));
  thread_.join();
  ASSERT_FALSE(run_result_);
  EXPECT_EQ(run_result_.error().code, core::Code::kUnauthenticated);
  options.join_token.clear();
  auto agent = NodeAgent::Create(options, core::RealClock::Instance());
  ASSERT_TRUE(agent);
  auto no_token = (*agent)->Run();
  ASSERT_FALSE(no_token);
  EXPECT_EQ(no_token.error().code, core::Code::kInvalidArgument);
}

TEST_F(NodeAgentTest, RegistersOnceTheServiceIsUp) {
  service_->Stop();
  StartAgent(Options());
  core::RealClock::Instance().SleepFor(300ms);
  EXPECT_EQ(service_->listener().ready_count(), 0u);
  service_->Start();
  EXPECT_TRUE(Eventually([&] { return service_->listener().ready_count() == 1; }));
}

// The HTTP surface of AgentApi, spoken to directly.
class AgentApiTest : public NodeAgentTest {
 protected:
  void SetUp() override {
    NodeAgentTest::SetUp();
    http_ = providers::MakeCurlHttpClient(core::RealClock::Instance(),
                                          providers::HttpClientOptions{.max_attempts = 1});
  }

  providers::HttpReply Post(const std::string& path, std::string body,
                            const std::string& token = "", const std::string& method = "POST") {
    providers::HttpCall call{.method = method, .url = service_->url() + path, .body = body};
    if (!token.empty()) {
      call.headers.emplace_back("Authorization", "Bearer " + token);
    }
    auto reply = http_->Send(call);
    EXPECT_TRUE(reply) << reply.error().message;
    return reply.value_or(providers::HttpReply{});
  }

  std::unique_ptr<providers::HttpClient> http_;
};

TEST_F(AgentApiTest, AnswersTheProtocolAndItsErrors) {
  auto registered = Post("/api/v1/agent/register",
                         EncodeRegisterRequest(RegisterRequest{.join_token = kStaticToken,
                                                               .node_name = "api-node"}));
  ASSERT_EQ(registered.status, 201) << registered.body;
  auto reply = DecodeRegisterReply(registered.body);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->heartbeat_interval, 20ms);
  const std::string token = reply->node_token;

  auto bad_json = Post("/api/v1/agent/heartbeat", "{nope", token);
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_NE(bad_json.body.find("invalid_json"), std::string::npos);
  auto bad_shape = Post("/api/v1/agent/heartbeat", R"({"seq":"x"})", token);
  EXPECT_EQ(bad_shape.status, 422);
  EXPECT_NE(bad_shape.body.find("\"field\":\"seq\""), std::string::npos) << bad_shape.body;
  EXPECT_EQ(Post("/api/v1/agent/heartbeat", R"({"seq":1})").status, 401);
  EXPECT_EQ(Post("/api/v1/agent/heartbeat", R"({"seq":1})", "wrong").status, 401);
  EXPECT_EQ(Post("/api/v1/agent/heartbeat", R"({"seq":1})", token).status, 200);
  EXPECT_EQ(Post("/api/v1/agent/register", R"({"join_token":"bad","node_name":"x"})").status,
            401);
  auto wrong_method = Post("/api/v1/agent/heartbeat", "", token, "GET");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(Post("/api/v1/agent/nothing", "{}").status, 404);
  auto elsewhere = Post("/api/v1/agentx", "{}");
  EXPECT_EQ(elsewhere.status, 404);
  EXPECT_NE(elsewhere.body.find("fallthrough"), std::string::npos);

  auto runner = service_->listener().runner();
  ASSERT_TRUE(runner->Launch(Spec("job-9", {"true"})));
  auto logs = Post("/api/v1/agent/logs?job_id=job-9&attempt=1&offset=0", "abc", token);
  EXPECT_EQ(logs.status, 200);
  EXPECT_EQ(DecodeLogAppendReply(logs.body)->size, 3);
  auto gap = Post("/api/v1/agent/logs?job_id=job-9&attempt=1&offset=10", "x", token);
  EXPECT_EQ(gap.status, 409);
  EXPECT_EQ(DecodeLogAppendReply(gap.body)->size, 3);
  EXPECT_EQ(Post("/api/v1/agent/logs?job_id=job-8&attempt=1&offset=0", "x", token).status, 404);
  auto bad_attempt = Post("/api/v1/agent/logs?job_id=job-9&attempt=x&offset=0", "x", token);
  EXPECT_EQ(bad_attempt.status, 422);
  EXPECT_NE(bad_attempt.body.find("\"field\":\"attempt\""), std::string::npos);
  EXPECT_EQ(ReadFile(service_->AttemptDir("job-9", 1) + "/log"), "abc");

  service_->registry().MarkLost(reply->node_id, "test");
  auto gone = Post("/api/v1/agent/heartbeat", R"({"seq":2})", token);
  EXPECT_EQ(gone.status, 410);
  EXPECT_NE(gone.body.find("node_gone"), std::string::npos);
}

}  // namespace
}  // namespace gpuorch::agent
