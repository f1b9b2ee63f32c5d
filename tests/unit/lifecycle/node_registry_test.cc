// Tests of lifecycle::NodeRegistry and the runners it hands out, against the real SQLite store (in a
// temp dir) and a FakeClock: admission by join token, heartbeats as the runner's source of truth,
// loss of nodes, recovery after a restart of the service, and log appends by offset.
#include "lifecycle/node_registry.h"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/temp_dir.h"

namespace gpuorch::lifecycle {
namespace {

using namespace std::chrono_literals;
using agent::AttemptStatus;
using agent::ReportedState;

class RecordingListener final : public NodeListener {
 public:
  void OnNodeReady(const RemoteNode& node) override { ready.push_back(node); }
  void OnNodeLost(const std::string& node_id, const std::string& reason) override {
    lost.emplace_back(node_id, reason);
  }
  std::vector<RemoteNode> ready;
  std::vector<std::pair<std::string, std::string>> lost;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class NodeRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(store::SqliteStoreOptions{.path = dir_.File("db")});
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    registry_ = MakeRegistry();
  }

  std::unique_ptr<NodeRegistry> MakeRegistry() {
    auto registry = std::make_unique<NodeRegistry>(
        *store_, clock_,
        NodeRegistryOptions{.data_dir = DataDir(),
                            .lost_after = 60s,
                            .static_join_token = "static-secret",
                            .heartbeat_interval = 500ms});
    registry->SetListener(&listener_);
    return registry;
  }

  std::string DataDir() const { return dir_.File("data"); }
  std::string AttemptDir(const std::string& job, int attempt) const {
    return DataDir() + "/jobs/" + job + "/attempt-" + std::to_string(attempt);
  }

  // A static-token node; its runner is the one announced last.
  agent::RegisterReply Join(const std::string& name = "box-1") {
    auto reply = registry_->Register(agent::RegisterRequest{
        .join_token = "static-secret",
        .node_name = name,
        .hostname = name + ".lan",
        .gpus = {domain::GpuDevice{.index = 0, .name = "NVIDIA GeForce RTX 4090", .memory_mb = 24564}},
        .container_runtime = true});
    EXPECT_TRUE(reply) << reply.error().message;
    return reply.value_or(agent::RegisterReply{});
  }

  agent::ProcessRunner& Runner() { return *listener_.ready.back().runner; }

  agent::LaunchSpec Spec(const std::string& job, int attempt) {
    return agent::LaunchSpec{.attempt_dir = AttemptDir(job, attempt),
                             .argv = {"sh", "-c", "echo hi"},
                             .env = {{"CUDA_VISIBLE_DEVICES", "0"}},
                             .job_id = job,
                             .attempt = attempt,
                             .gpu_indices = {0}};
  }

  agent::HeartbeatReply Beat(const std::string& token, int64_t seq,
                             std::vector<agent::AttemptReport> reports = {}) {
    auto reply = registry_->Heartbeat(token, agent::HeartbeatRequest{.seq = seq,
                                                                     .attempts = std::move(reports)});
    EXPECT_TRUE(reply) << reply.error().message;
    return reply.value_or(agent::HeartbeatReply{});
  }

  static agent::AttemptReport Running(const std::string& job, int attempt, int64_t pid) {
    return agent::AttemptReport{
        .job_id = job, .attempt = attempt, .state = ReportedState::kRunning, .pid = pid};
  }

  domain::Instance InsertInstance(const std::string& id, const std::string& token) {
    domain::Instance instance{.id = id,
                              .provider = "runpod",
                              .offer = domain::Offer{.provider = "runpod",
                                                     .gpu_type = "RTX4090",
                                                     .gpu_count = 1,
                                                     .region = "us-east"},
                              .spot = true,
                              .price_per_hour = 0.7,
                              .join_token_hash = TokenHash(token),
                              .created_at = clock_.Now(),
                              .updated_at = clock_.Now()};
    auto inserted = store_->InsertInstance(instance);
    EXPECT_TRUE(inserted) << inserted.error().message;
    return instance;
  }

  gpuorch::testing::TempDir dir_;
  core::FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  RecordingListener listener_;
  std::unique_ptr<NodeRegistry> registry_;
};

TEST_F(NodeRegistryTest, InstanceTokenJoinsAndMakesTheInstanceReady) {
  InsertInstance("inst-1", "one-time-token");
  auto reply = registry_->Register(agent::RegisterRequest{
      .join_token = "one-time-token", .node_name = "Box_1", .hostname = "box-1"});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->node_id, "runpod-box-1");
  EXPECT_EQ(reply->heartbeat_interval, 500ms);
  EXPECT_EQ(reply->lost_after, 60000ms);
  ASSERT_EQ(listener_.ready.size(), 1u);
  ASSERT_NE(listener_.ready[0].runner, nullptr);

  auto instance = store_->GetInstance("inst-1");
  ASSERT_TRUE(instance);
  EXPECT_EQ(instance->state, domain::InstanceState::kReady);
  EXPECT_EQ(instance->node_id, "runpod-box-1");
  EXPECT_EQ(instance->ready_at, clock_.Now());
  EXPECT_FALSE(instance->join_token_hash.empty()) << "spent by the first heartbeat, not before";

  auto node = store_->GetNode("runpod-box-1");
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->instance_id, "inst-1");
  EXPECT_EQ(node->provider, "runpod");
  EXPECT_EQ(node->state, "active");
  EXPECT_EQ(node->labels.at("provider"), "runpod");
  EXPECT_EQ(node->labels.at("instance_id"), "inst-1");
  EXPECT_EQ(node->labels.at("region"), "us-east");
  EXPECT_EQ(node->labels.at("spot"), "true");
  // Only the digest of the node token is stored.
  EXPECT_EQ(node->token_hash, TokenHash(reply->node_token));
  EXPECT_NE(node->token_hash, reply->node_token);
  EXPECT_EQ(reply->node_token.size(), 64u);

  // The first heartbeat spends the join token for good.
  ASSERT_TRUE(registry_->Heartbeat(reply->node_token, agent::HeartbeatRequest{}));
  EXPECT_TRUE(store_->GetInstance("inst-1")->join_token_hash.empty());
  auto again = registry_->Register(agent::RegisterRequest{.join_token = "one-time-token",
                                                          .node_name = "box-2"});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, core::Code::kUnauthenticated);
  EXPECT_EQ(listener_.ready.size(), 1u);
}

// The service registered the node but the agent never got the reply (e.g. the service died right
// then): the agent's retry with the same join token gets a new node token for the same node.
TEST_F(NodeRegistryTest, LostRegistrationReplyCanBeReplayedUntilTheFirstHeartbeat) {
  InsertInstance("inst-1", "one-time-token");
  auto first = registry_->Register(agent::RegisterRequest{
      .join_token = "one-time-token", .node_name = "box-1", .hostname = "box-1"});
  ASSERT_TRUE(first) << first.error().message;
  auto second = registry_->Register(agent::RegisterRequest{
      .join_token = "one-time-token", .node_name = "box-1", .hostname = "box-1"});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->node_id, first->node_id);
  EXPECT_NE(second->node_token, first->node_token);
  EXPECT_EQ(listener_.ready.size(), 1u) << "the same node, announced once";
  EXPECT_EQ(store_->ListNodes()->size(), 1u);
  auto stale = registry_->Heartbeat(first->node_token, agent::HeartbeatRequest{});
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, core::Code::kUnauthenticated);
  ASSERT_TRUE(registry_->Heartbeat(second->node_token, agent::HeartbeatRequest{}));
  auto third = registry_->Register(agent::RegisterRequest{
      .join_token = "one-time-token", .node_name = "box-1", .hostname = "box-1"});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, core::Code::kUnauthenticated);
}

TEST_F(NodeRegistryTest, ProvisioningInstanceJoinsToo) {
  InsertInstance("inst-2", "tok-2");
  auto moved = store_->UpdateInstance(
      store::InstanceUpdate{.instance_id = "inst-2",
                            .expected_state = domain::InstanceState::kRequested,
                            .new_state = domain::InstanceState::kProvisioning},
      clock_.Now());
  ASSERT_TRUE(moved) << moved.error().message;
  // No node name: the node is named after the instance.
  auto reply = registry_->Register(agent::RegisterRequest{.join_token = "tok-2",
                                                          .hostname = "h"});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->node_id, "inst-2");
  EXPECT_EQ(store_->GetInstance("inst-2")->state, domain::InstanceState::kReady);
}

TEST_F(NodeRegistryTest, TerminatingInstanceCannotJoin) {
  InsertInstance("inst-3", "tok-3");
  ASSERT_TRUE(store_->UpdateInstance(
      store::InstanceUpdate{.instance_id = "inst-3",
                            .expected_state = domain::InstanceState::kRequested,
                            .new_state = domain::InstanceState::kTerminating},
      clock_.Now()));
  auto refused = registry_->Register(agent::RegisterRequest{.join_token = "tok-3",
                                                            .node_name = "late"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Code::kUnauthenticated);
  EXPECT_TRUE(listener_.ready.empty());
  EXPECT_TRUE(store_->ListNodes()->empty());
}

TEST_F(NodeRegistryTest, StaticTokenWrongTokenAndUniqueIds) {
  auto first = Join("My Box");
  EXPECT_EQ(first.node_id, "node-my-box");
  auto second = Join("my-box");
  EXPECT_EQ(second.node_id, "node-my-box-2");
  EXPECT_NE(first.node_token, second.node_token);
  auto record = store_->GetNode("node-my-box");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->provider, "local");
  EXPECT_EQ(record->labels.at("provider"), "local");
  ASSERT_EQ(record->gpus.size(), 1u);
  EXPECT_EQ(record->gpus[0].type, "RTX4090");  // canonicalised from the name
  EXPECT_TRUE(record->container_runtime);

  for (const char* token : {"static-secreT", "", "nope"}) {
    auto refused = registry_->Register(agent::RegisterRequest{.join_token = token,
                                                              .node_name = "x"});
    ASSERT_FALSE(refused) << token;
    EXPECT_EQ(refused.error().code, core::Code::kUnauthenticated) << token;
  }
  auto nameless = registry_->Register(agent::RegisterRequest{.join_token = "static-secret"});
  ASSERT_FALSE(nameless);
  EXPECT_EQ(nameless.error().code, core::Code::kInvalidArgument);
  EXPECT_EQ(nameless.error().field, "node_name");
  auto twice = registry_->Register(agent::RegisterRequest{
      .join_token = "static-secret",
      .node_name = "x",
      .gpus = {domain::GpuDevice{.index = 0}, domain::GpuDevice{.index = 0}}});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().field, "gpus[1].index");

  auto unknown = registry_->Heartbeat("not-a-token", agent::HeartbeatRequest{.seq = 1});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, core::Code::kUnauthenticated);
}

TEST_F(NodeRegistryTest, HeartbeatsDriveTheRunner) {
  auto node = Join();
  agent::ProcessRunner& runner = Runner();
  auto handle = runner.Launch(Spec("job-a", 1));
  ASSERT_TRUE(handle) << handle.error().message;
  EXPECT_EQ(handle->attempt_dir, AttemptDir("job-a", 1));
  EXPECT_EQ(handle->job_pid, 0);
  auto twice = runner.Launch(Spec("job-a", 1));
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, core::Code::kAlreadyExists);
  auto probe = runner.Probe(AttemptDir("job-a", 1));
  EXPECT_EQ(probe.status, AttemptStatus::kRunning);
  EXPECT_FALSE(probe.handle);

  auto reply = Beat(node.node_token, 100);
  ASSERT_EQ(reply.assignments.size(), 1u);
  EXPECT_EQ(reply.assignments[0].job_id, "job-a");
  EXPECT_EQ(reply.assignments[0].attempt, 1);
  EXPECT_EQ(reply.assignments[0].argv, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_EQ(reply.assignments[0].env.at("CUDA_VISIBLE_DEVICES"), "0");
  EXPECT_EQ(reply.assignments[0].gpu_indices, std::vector<int>{0});
  // A retry of the same heartbeat gets the same delivery; the next one does not.
  EXPECT_EQ(Beat(node.node_token, 100).assignments.size(), 1u);

  reply = Beat(node.node_token, 101, {Running("job-a", 1, 4242)});
  EXPECT_TRUE(reply.assignments.empty());
  probe = runner.Probe(AttemptDir("job-a", 1));
  EXPECT_EQ(probe.status, AttemptStatus::kRunning);
  ASSERT_TRUE(probe.handle);
  EXPECT_EQ(probe.handle->job_pid, 4242);
  EXPECT_EQ(probe.handle->attempt_dir, AttemptDir("job-a", 1));

  ASSERT_TRUE(runner.Signal(*probe.handle, SIGTERM));
  reply = Beat(node.node_token, 102, {Running("job-a", 1, 4242)});
  ASSERT_EQ(reply.signals.size(), 1u);
  EXPECT_EQ(reply.signals[0].signal, SIGTERM);
  EXPECT_EQ(reply.signals[0].job_id, "job-a");
  EXPECT_TRUE(Beat(node.node_token, 103, {Running("job-a", 1, 4242)}).signals.empty());

  auto views = registry_->Nodes();
  ASSERT_EQ(views.size(), 1u);
  ASSERT_EQ(views[0].attempts.size(), 1u);
  EXPECT_EQ(views[0].attempts[0].state, "running");
  EXPECT_EQ(views[0].attempts[0].pid, 4242);
  EXPECT_EQ(views[0].last_heartbeat, clock_.Now());

  reply = Beat(node.node_token, 104,
               {agent::AttemptReport{.job_id = "job-a",
                                     .attempt = 1,
                                     .state = ReportedState::kExited,
                                     .exit_code = 143,
                                     .pid = 4242}});
  ASSERT_EQ(reply.forget.size(), 1u);
  EXPECT_EQ(reply.forget[0], (agent::AttemptRef{.job_id = "job-a", .attempt = 1}));
  probe = runner.Probe(AttemptDir("job-a", 1));
  EXPECT_EQ(probe.status, AttemptStatus::kExited);
  EXPECT_EQ(probe.exit_code, 143);
  // Forgotten by the agent, the attempt still answers until it is pruned.
  Beat(node.node_token, 105);
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kExited);
  ASSERT_TRUE(runner.Signal(*probe.handle, SIGKILL));  // ended: ignored
  EXPECT_TRUE(Beat(node.node_token, 106).signals.empty());
  EXPECT_TRUE(registry_->Nodes()[0].attempts.empty());
  clock_.Advance(2h);
  Beat(node.node_token, 107);
  registry_->Tick();
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kLost);
}

TEST_F(NodeRegistryTest, AttemptsTheAgentDoesNotHoldAreLost) {
  auto node = Join();
  agent::ProcessRunner& runner = Runner();
  ASSERT_TRUE(runner.Launch(Spec("job-a", 1)));
  ASSERT_TRUE(runner.Launch(Spec("job-b", 1)));
  EXPECT_EQ(Beat(node.node_token, 10).assignments.size(), 2u);
  Beat(node.node_token, 10);  // a retry: still delivered at seq 10, not lost
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kRunning);
  // The next report holds job-b only: job-a never started there.
  Beat(node.node_token, 11, {Running("job-b", 1, 7)});
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kLost);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kRunning);
  // A running attempt that vanishes from the report is lost too.
  Beat(node.node_token, 12);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kLost);
  // Should the agent still run it, it is told to kill it (the job may run elsewhere now).
  auto reply = Beat(node.node_token, 13, {Running("job-b", 1, 7)});
  ASSERT_EQ(reply.signals.size(), 1u);
  EXPECT_EQ(reply.signals[0].signal, SIGKILL);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kLost);
  reply = Beat(node.node_token, 14,
               {agent::AttemptReport{.job_id = "job-b",
                                     .attempt = 1,
                                     .state = ReportedState::kExited,
                                     .exit_code = 137}});
  EXPECT_EQ(reply.forget.size(), 1u);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kLost);
  // Unknown attempts are lost; a heartbeat older than the last one changes nothing.
  EXPECT_EQ(runner.Probe(AttemptDir("job-zzz", 1)).status, AttemptStatus::kLost);
  ASSERT_TRUE(runner.Launch(Spec("job-c", 1)));
  EXPECT_TRUE(Beat(node.node_token, 9).assignments.empty());
  EXPECT_EQ(Beat(node.node_token, 15).assignments.size(), 1u);
}

TEST_F(NodeRegistryTest, SilentNodeIsLost) {
  auto node = Join();
  agent::ProcessRunner& runner = Runner();
  ASSERT_TRUE(runner.Launch(Spec("job-a", 1)));
  ASSERT_TRUE(runner.Launch(Spec("job-b", 1)));
  Beat(node.node_token, 1);
  Beat(node.node_token, 2,
       {Running("job-a", 1, 5), agent::AttemptReport{.job_id = "job-b",
                                                     .attempt = 1,
                                                     .state = ReportedState::kExited,
                                                     .exit_code = 0}});
  clock_.Advance(59s);
  registry_->Tick();
  EXPECT_TRUE(listener_.lost.empty());
  Beat(node.node_token, 3, {Running("job-a", 1, 5)});
  clock_.Advance(61s);
  registry_->Tick();
  ASSERT_EQ(listener_.lost.size(), 1u);
  EXPECT_EQ(listener_.lost[0].first, node.node_id);
  EXPECT_NE(listener_.lost[0].second.find("no heartbeat"), std::string::npos);
  EXPECT_EQ(store_->GetNode(node.node_id)->state, "lost");
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kLost);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kExited);
  auto refused = runner.Launch(Spec("job-c", 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Code::kUnavailable);
  auto gone = registry_->Heartbeat(node.node_token, agent::HeartbeatRequest{.seq = 4});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, core::Code::kFailedPrecondition);
  EXPECT_EQ(gone.error().reason, "node_gone");
  registry_->Tick();
  EXPECT_EQ(listener_.lost.size(), 1u);  // told once
}

TEST_F(NodeRegistryTest, MarkLostAndDeregister) {
  auto a = Join("a");
  auto b = Join("b");
  registry_->MarkLost(a.node_id, "spot interruption");
  ASSERT_EQ(listener_.lost.size(), 1u);
  EXPECT_EQ(listener_.lost[0], std::make_pair(a.node_id, std::string("spot interruption")));
  EXPECT_EQ(store_->GetNode(a.node_id)->state, "lost");
  registry_->MarkLost(a.node_id, "again");
  EXPECT_EQ(listener_.lost.size(), 1u);
  registry_->Deregister(a.node_id, "terminated");  // lost → gone, nobody told twice
  EXPECT_EQ(store_->GetNode(a.node_id)->state, "gone");
  EXPECT_EQ(listener_.lost.size(), 1u);
  registry_->Deregister(b.node_id, "terminated");
  EXPECT_EQ(listener_.lost.size(), 2u);
  EXPECT_EQ(store_->GetNode(b.node_id)->state, "gone");
  auto gone = registry_->Heartbeat(b.node_token, agent::HeartbeatRequest{.seq = 1});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().reason, "node_gone");
}

TEST_F(NodeRegistryTest, RecoveryTrustsTheFirstHeartbeat) {
  auto node = Join("a");
  auto lost = Join("b");
  ASSERT_TRUE(Runner().Launch(Spec("job-x", 1)));
  registry_->MarkLost(lost.node_id, "test");
  {
    agent::ProcessRunner& runner = *listener_.ready[0].runner;
    ASSERT_TRUE(runner.Launch(Spec("job-a", 1)));
    Beat(node.node_token, 1);
    Beat(node.node_token, 2, {Running("job-a", 1, 11)});
  }
  // The service restarts: a new registry over the same store.
  listener_.ready.clear();
  registry_ = MakeRegistry();
  ASSERT_TRUE(registry_->Recover());
  ASSERT_EQ(listener_.ready.size(), 1u);
  EXPECT_EQ(listener_.ready[0].record.id, node.node_id);
  agent::ProcessRunner& runner = Runner();
  // Until the node's first heartbeat, whatever the controller asks about runs.
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kRunning);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kRunning);
  EXPECT_EQ(runner.Probe("/elsewhere/job-b/attempt-1").status, AttemptStatus::kLost);
  auto reply = Beat(node.node_token, 3, {Running("job-a", 1, 11)});
  EXPECT_TRUE(reply.assignments.empty());
  auto a = runner.Probe(AttemptDir("job-a", 1));
  EXPECT_EQ(a.status, AttemptStatus::kRunning);
  ASSERT_TRUE(a.handle);
  EXPECT_EQ(a.handle->job_pid, 11);
  EXPECT_EQ(runner.Probe(AttemptDir("job-b", 1)).status, AttemptStatus::kLost);
  EXPECT_EQ(runner.Probe(AttemptDir("job-c", 1)).status, AttemptStatus::kLost);
  // The lost node's agent is told it is gone, not that it is unknown.
  auto gone = registry_->Heartbeat(lost.node_token, agent::HeartbeatRequest{.seq = 9});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().reason, "node_gone");
}

TEST_F(NodeRegistryTest, RecoveredNodeWithoutHeartbeatIsLost) {
  auto node = Join("a");
  registry_ = MakeRegistry();
  listener_.ready.clear();
  ASSERT_TRUE(registry_->Recover());
  agent::ProcessRunner& runner = Runner();
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kRunning);
  clock_.Advance(61s);
  registry_->Tick();
  ASSERT_EQ(listener_.lost.size(), 1u);
  EXPECT_EQ(runner.Probe(AttemptDir("job-a", 1)).status, AttemptStatus::kLost);
  EXPECT_EQ(store_->GetNode(node.node_id)->state, "lost");
}

TEST_F(NodeRegistryTest, LogAppendsByOffset) {
  auto node = Join();
  agent::ProcessRunner& runner = Runner();
  ASSERT_TRUE(runner.Launch(Spec("job-a", 1)));
  const std::string log = AttemptDir("job-a", 1) + "/log";
  auto append = [&](int64_t offset, std::string data) {
    return registry_->AppendLog(node.node_token, agent::LogAppend{.job_id = "job-a",
                                                                  .attempt = 1,
                                                                  .offset = offset,
                                                                  .data = std::move(data)});
  };
  auto r = append(0, "hello ");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->size, 6);
  EXPECT_FALSE(r->gap);
  EXPECT_EQ(append(6, "world")->size, 11);
  // A resend that overlaps what is stored writes only what is new.
  EXPECT_EQ(append(3, "lo world!")->size, 12);
  EXPECT_EQ(append(0, "hel")->size, 12);
  EXPECT_EQ(ReadFile(log), "hello world!");
  auto gap = append(20, "x");
  ASSERT_TRUE(gap);
  EXPECT_TRUE(gap->gap);
  EXPECT_EQ(gap->size, 12);
  EXPECT_EQ(ReadFile(log), "hello world!");
  EXPECT_EQ(append(12, "")->size, 12);

  auto big = append(12, std::string(agent::kMaxLogChunkBytes + 1, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, core::Code::kInvalidArgument);
  auto other = registry_->AppendLog(node.node_token,
                                    agent::LogAppend{.job_id = "job-b", .attempt = 1, .data = "x"});
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, core::Code::kNotFound);
  auto stranger = registry_->AppendLog("bad", agent::LogAppend{.job_id = "job-a", .attempt = 1});
  ASSERT_FALSE(stranger);
  EXPECT_EQ(stranger.error().code, core::Code::kUnauthenticated);

  // Another node may not write this node's attempts.
  auto intruder = Join("intruder");
  auto foreign = registry_->AppendLog(intruder.node_token,
                                      agent::LogAppend{.job_id = "job-a", .attempt = 1, .data = "x"});
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, core::Code::kNotFound);
  // An attempt only the agent knows of is written once the controller asked about it.
  Beat(intruder.node_token, 1, {Running("job-q", 1, 3)});
  auto unasked = registry_->AppendLog(intruder.node_token,
                                      agent::LogAppend{.job_id = "job-q", .attempt = 1, .data = "x"});
  ASSERT_FALSE(unasked);
  EXPECT_EQ(unasked.error().code, core::Code::kNotFound);
  EXPECT_EQ(Runner().Probe(AttemptDir("job-q", 1)).status, AttemptStatus::kRunning);
  EXPECT_TRUE(registry_->AppendLog(intruder.node_token,
                                   agent::LogAppend{.job_id = "job-q", .attempt = 1, .data = "x"}));
}

}  // namespace
}  // namespace gpuorch::lifecycle
