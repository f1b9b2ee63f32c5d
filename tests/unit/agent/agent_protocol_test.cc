// The agent protocol's codecs: every message survives encode → decode, and decoders name what is
// wrong (invalid_json for non-JSON, the offending field for wrong shapes). Also the nvidia-smi
// metrics parser the agent reports from.
#include "agent/agent_protocol.h"

#include <gtest/gtest.h>

#include <string>

#include "agent/gpu_metrics.h"

namespace gpuorch::agent {
namespace {

using namespace std::chrono_literals;

TEST(AgentProtocolTest, RegisterRoundTrips) {
  RegisterRequest request{
      .join_token = "tok",
      .node_name = "gpu-box-1",
      .hostname = "gpu-box-1.lan",
      .gpus = {domain::GpuDevice{.index = 0,
                                 .name = "NVIDIA GeForce RTX 4090",
                                 .type = "RTX4090",
                                 .memory_mb = 24564,
                                 .uuid = "GPU-1"},
               domain::GpuDevice{.index = 1, .name = "", .type = "RTX4090", .memory_mb = 24576}},
      .container_runtime = true,
      .agent_version = "0.1.0"};
  auto decoded = DecodeRegisterRequest(EncodeRegisterRequest(request));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, request);

  RegisterReply reply{.node_id = "node-a",
                      .node_token = "secret",
                      .heartbeat_interval = 250ms,
                      .lost_after = 30000ms};
  auto back = DecodeRegisterReply(EncodeRegisterReply(reply));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, reply);
}

TEST(AgentProtocolTest, HeartbeatRoundTrips) {
  HeartbeatRequest request{
      .seq = 1'800'000'000'123,
      .attempts = {AttemptReport{.job_id = "job-1", .attempt = 2, .state = ReportedState::kRunning,
                                 .pid = 4242},
                   AttemptReport{.job_id = "job-2",
                                 .attempt = 1,
                                 .state = ReportedState::kExited,
                                 .exit_code = 137,
                                 .pid = 99},
                   AttemptReport{.job_id = "job-3", .attempt = 1, .state = ReportedState::kLost}},
      .gpu_metrics = {GpuMetric{.index = 0,
                                .utilization_pct = 87.5,
                                .memory_used_mb = 1024,
                                .memory_total_mb = 24564}}};
  auto decoded = DecodeHeartbeatRequest(EncodeHeartbeatRequest(request));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, request);

  HeartbeatReply reply{
      .assignments = {Assignment{.job_id = "job-1",
                                 .attempt = 3,
                                 .argv = {"sh", "-c", "echo \"hi\"; exit 3"},
                                 .env = {{"CUDA_VISIBLE_DEVICES", "0,1"}, {"EMPTY", ""}},
                                 .gpu_indices = {0, 1},
                                 .working_dir = "/tmp"}},
      .signals = {SignalOrder{.job_id = "job-1", .attempt = 2, .signal = 15}},
      .forget = {AttemptRef{.job_id = "job-2", .attempt = 1}}};
  auto back = DecodeHeartbeatReply(EncodeHeartbeatReply(reply));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, reply);
}

TEST(AgentProtocolTest, LogReplyAndErrorMessages) {
  auto size = DecodeLogAppendReply(EncodeLogAppendReply(LogAppendReply{.size = 12345}));
  ASSERT_TRUE(size);
  EXPECT_EQ(size->size, 12345);
  // The 409 body carries "size" beside "error".
  auto gap = DecodeLogAppendReply(R"({"error":{"code":"offset_gap","message":"m"},"size":7})");
  ASSERT_TRUE(gap);
  EXPECT_EQ(gap->size, 7);
  EXPECT_EQ(ErrorMessageOf(R"({"error":{"code":"x","message":"node is lost","field":null}})"),
            "node is lost");
  EXPECT_EQ(ErrorMessageOf("plain text"), "plain text");
}

TEST(AgentProtocolTest, MalformedJsonIsInvalidJson) {
  for (const char* body : {"", "{", "not json", "{\"seq\": }"}) {
    auto decoded = DecodeHeartbeatRequest(body);
    ASSERT_FALSE(decoded) << body;
    EXPECT_EQ(decoded.error().code, core::Code::kInvalidArgument);
    EXPECT_EQ(decoded.error().reason, "invalid_json") << body;
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  auto too_deep = DecodeRegisterRequest("{\"x\":" + deep + "}");
  ASSERT_FALSE(too_deep);
  EXPECT_EQ(too_deep.error().reason, "invalid_json");
}

struct BadShape {
  const char* body;
  const char* field;
};

TEST(AgentProtocolTest, WrongShapesNameTheField) {
  const BadShape cases[] = {
      {R"([1,2])", "body"},
      {R"({"attempts":[]})", "seq"},
      {R"({"seq":"1"})", "seq"},
      {R"({"seq":-1})", "seq"},
      {R"({"seq":1,"attempts":{}})", "attempts"},
      {R"({"seq":1,"attempts":[{"job_id":"../x","attempt":1,"state":"running"}]})",
       "attempts[0].job_id"},
      {R"({"seq":1,"attempts":[{"job_id":"j","attempt":0,"state":"running"}]})",
       "attempts[0].attempt"},
      {R"({"seq":1,"attempts":[{"job_id":"j","attempt":1,"state":"sleeping"}]})",
       "attempts[0].state"},
      {R"({"seq":1,"attempts":[{"job_id":"j","attempt":1,"state":"exited","exit_code":1.5}]})",
       "attempts[0].exit_code"},
      {R"({"seq":1,"gpu_metrics":[{"index":0,"utilization_pct":"high"}]})",
       "gpu_metrics[0].utilization_pct"},
  };
  for (const auto& c : cases) {
    auto decoded = DecodeHeartbeatRequest(c.body);
    ASSERT_FALSE(decoded) << c.body;
    EXPECT_EQ(decoded.error().reason, "validation_error") << c.body;
    EXPECT_EQ(decoded.error().field, c.field) << c.body;
  }
  auto no_token = DecodeRegisterRequest(R"({"node_name":"a"})");
  ASSERT_FALSE(no_token);
  EXPECT_EQ(no_token.error().field, "join_token");
  auto bad_gpu = DecodeRegisterRequest(R"({"join_token":"t","gpus":[{"index":-1}]})");
  ASSERT_FALSE(bad_gpu);
  EXPECT_EQ(bad_gpu.error().field, "gpus[0].index");
  auto bad_runtime = DecodeRegisterRequest(R"({"join_token":"t","container_runtime":"yes"})");
  ASSERT_FALSE(bad_runtime);
  EXPECT_EQ(bad_runtime.error().field, "container_runtime");
  auto empty_argv = DecodeHeartbeatReply(R"({"assignments":[{"job_id":"j","attempt":1,"argv":[]}]})");
  ASSERT_FALSE(empty_argv);
  EXPECT_EQ(empty_argv.error().field, "assignments[0].argv");
  auto bad_env = DecodeHeartbeatReply(
      R"({"assignments":[{"job_id":"j","attempt":1,"argv":["x"],"env":{"A=B":"c"}}]})");
  ASSERT_FALSE(bad_env);
  EXPECT_EQ(bad_env.error().field, "assignments[0].env.A=B");
  auto bad_signal = DecodeHeartbeatReply(R"({"signals":[{"job_id":"j","attempt":1,"signal":0}]})");
  ASSERT_FALSE(bad_signal);
  EXPECT_EQ(bad_signal.error().field, "signals[0].signal");
  auto no_token_reply = DecodeRegisterReply(R"({"node_id":"n","node_token":""})");
  ASSERT_FALSE(no_token_reply);
  EXPECT_EQ(no_token_reply.error().field, "node_token");
}

TEST(AgentProtocolTest, OptionalMembersDefault) {
  auto decoded = DecodeHeartbeatRequest(R"({"seq":5})");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->seq, 5);
  EXPECT_TRUE(decoded->attempts.empty());
  EXPECT_TRUE(decoded->gpu_metrics.empty());
  auto reply = DecodeHeartbeatReply("{}");
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, HeartbeatReply{});
  auto exited = DecodeHeartbeatRequest(
      R"({"seq":1,"attempts":[{"job_id":"j","attempt":1,"state":"exited","exit_code":null}]})");
  ASSERT_TRUE(exited);
  EXPECT_FALSE(exited->attempts[0].exit_code.has_value());
}

TEST(AgentProtocolTest, JobIds) {
  EXPECT_TRUE(IsValidJobId("job-01hx7k2m3n4p5q6r7s8t9v0w1x"));
  EXPECT_TRUE(IsValidJobId("a.b_c-D"));
  EXPECT_FALSE(IsValidJobId(""));
  EXPECT_FALSE(IsValidJobId("."));
  EXPECT_FALSE(IsValidJobId(".."));
  EXPECT_FALSE(IsValidJobId("a/b"));
  EXPECT_FALSE(IsValidJobId("a b"));
  EXPECT_FALSE(IsValidJobId(std::string(129, 'a')));
}

TEST(AgentProtocolTest, StatesParseBothWays) {
  for (auto state : {ReportedState::kStarting, ReportedState::kRunning, ReportedState::kExited,
                     ReportedState::kLost}) {
    EXPECT_EQ(ParseReportedState(ToString(state)), state);
  }
  EXPECT_FALSE(ParseReportedState("done"));
  EXPECT_TRUE(IsFinal(ReportedState::kExited));
  EXPECT_TRUE(IsFinal(ReportedState::kLost));
  EXPECT_FALSE(IsFinal(ReportedState::kRunning));
}

TEST(GpuMetricsTest, ParsesNvidiaSmiOutput) {
  auto metrics = ParseGpuMetricsCsv("0, 87, 1024, 24564\n1, [N/A], 0, 24564\n\n");
  ASSERT_TRUE(metrics) << metrics.error().message;
  ASSERT_EQ(metrics->size(), 2u);
  EXPECT_EQ((*metrics)[0], (GpuMetric{.index = 0,
                                      .utilization_pct = 87,
                                      .memory_used_mb = 1024,
                                      .memory_total_mb = 24564}));
  EXPECT_EQ((*metrics)[1].utilization_pct, 0);
  EXPECT_FALSE(ParseGpuMetricsCsv("0, 87, 1024\n"));
  EXPECT_FALSE(ParseGpuMetricsCsv("0, lots, 1024, 2048\n"));
  EXPECT_TRUE(ParseGpuMetricsCsv("")->empty());
}

TEST(GpuMetricsTest, MissingBinaryIsUnavailable) {
  auto metrics = QueryGpuMetrics("/nonexistent/nvidia-smi");
  ASSERT_FALSE(metrics);
  EXPECT_EQ(metrics.error().code, core::Code::kUnavailable);
}

}  // namespace
}  // namespace gpuorch::agent
