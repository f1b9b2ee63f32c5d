// Runs the whole client (flag parsing, libcurl, output, exit codes) against FakeHttpServer.
#include "apps/gpuctl/cli.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/gpuctl/errors.h"
#include "apps/gpuctl/format.h"
#include "unit/gpuctl/fake_http_server.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;
using testing::CannedResponse;
using testing::FakeHttpServer;

constexpr char kJob[] = R"({"job_id":"job-01abc","name":"hello","job_type":"custom",
  "template":null,"owner":"default","status":"queued","status_message":"waiting",
  "priority":10,"timeout_seconds":600,"max_retries":1,"attempt":0,
  "config":{"gpu_type":"RTX4090","gpu_count":2,"memory_gb":16,"docker_image":null,
            "model_name":null,"command":["sh","-c","echo hi"],"env":{"MODE":"test"}},
  "node_id":null,"gpu_indices":[],"exit_code":null,"created_at":"2026-11-28T19:43:01.123Z",
  "updated_at":"2026-11-28T19:43:01.123Z","started_at":null,"finished_at":null})";

class CliTest : public ::testing::Test {
 protected:
  // Runs gpuctl with `args` (without the program name); stdout/stderr land in out_/err_.
  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "gpuctl");
    out_.str("");
    err_.str("");
    CliDeps deps{.env_server = env_server_,
                 .env_token = env_token_,
                 .in = in_,
                 .out = out_,
                 .err = err_,
                 .clock = clock_};
    return RunGpuctl(args, deps);
  }

  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }

  std::optional<std::string> env_server_;
  std::optional<std::string> env_token_;
  std::istringstream in_;
  std::ostringstream out_;
  std::ostringstream err_;
  core::FakeClock clock_{*ParseRfc3339("2026-11-28T19:53:02Z")};
};

TEST_F(CliTest, SubmitSendsBodyHeadersAndIdempotencyKey) {
  FakeHttpServer server({{.status = 201, .body = kJob}});
  env_token_ = "s3cret-token";
  int rc = Run(
      {"--server",   server.url(),        "submit",   "--name",    "hello", "--gpus", "2",
       "--gpu-type", "RTX4090",           "--env",    "MODE=test", "--env", "X=1",    "--priority",
       "10",         "--idempotency-key", "retry-42", "--",        "sh",    "-c",     "echo hi"});
  ASSERT_EQ(rc, kExitOk) << err();
  EXPECT_EQ(out(), "submitted job-01abc (queued)\n");
  EXPECT_EQ(out().find("s3cret"), std::string::npos);
  EXPECT_EQ(err().find("s3cret"), std::string::npos);

  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/v1/jobs/submit");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.Header("Idempotency-Key"), "retry-42");
  EXPECT_EQ(r.Header("Authorization"), "Bearer s3cret-token");
  EXPECT_FALSE(r.HasHeader("Expect"));
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"name":"hello","priority":10,
              "config":{"gpu_type":"RTX4090","gpu_count":2,"command":["sh","-c","echo hi"],
                        "env":{"MODE":"test","X":"1"}}})"));
}

TEST_F(CliTest, SubmitFromYamlFileWithOverridesAndJsonOutput) {
  auto path = std::filesystem::path(::testing::TempDir()) / "cli_test_job.yaml";
  std::ofstream(path) << "name: from-file\npriority: 1\nconfig:\n  gpu_count: 1\n"
                         "  command: python train.py\n  env: {A: a}\n";
  FakeHttpServer server({{.status = 200, .body = kJob}});
  int rc = Run({"submit", "-f", path.string(), "--priority", "5", "--env", "B=b", "--server",
                server.url(), "-o", "json"});
  ASSERT_EQ(rc, kExitOk) << err();
  EXPECT_EQ(json::parse(out())["job_id"], "job-01abc");
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].HasHeader("Idempotency-Key"));
  EXPECT_FALSE(requests[0].HasHeader("Authorization"));  // no GPUORCH_TOKEN
  EXPECT_EQ(json::parse(requests[0].body), json::parse(R"({"name":"from-file","priority":5,
              "config":{"gpu_count":1,"command":"python train.py","env":{"A":"a","B":"b"}}})"));
}

TEST_F(CliTest, IdempotentReplaySaysSo) {
  FakeHttpServer server({{.status = 200, .body = kJob}});
  ASSERT_EQ(Run({"--server", server.url(), "submit", "--template", "t", "--idempotency-key", "k"}),
            kExitOk);
  EXPECT_EQ(out(), "already submitted job-01abc (queued)\n");
}

TEST_F(CliTest, DryRunPrintsTheBodyAndSendsNothing) {
  env_server_ = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort());
  ASSERT_EQ(Run({"submit", "--dry-run", "--command", "nvidia-smi", "--gpus", "1"}), kExitOk)
      << err();
  EXPECT_EQ(json::parse(out()),
            json::parse(R"({"config":{"command":"nvidia-smi","gpu_count":1}})"));
}

TEST_F(CliTest, ListSendsQueryParametersAndPrintsTable) {
  FakeHttpServer server(
      {{.body = std::string(R"({"jobs":[)") + kJob + R"(],"next_cursor":null})"}});
  env_server_ = server.url();
  ASSERT_EQ(Run({"list", "--status", "queued,running", "--job-type", "custom", "--limit", "5"}),
            kExitOk)
      << err();
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/api/v1/jobs/?status=queued%2Crunning&job_type=custom&limit=5");
  EXPECT_EQ(out(),
            "JOB ID      NAME    TYPE     STATUS   GPUS        PRIORITY   AGE   MESSAGE\n"
            "job-01abc   hello   custom   queued   2xRTX4090   10         10m   waiting\n");
}

TEST_F(CliTest, ListAllFollowsCursors) {
  FakeHttpServer server({
      {.body = std::string(R"({"jobs":[)") + kJob + R"(],"next_cursor":"c/1"})"},
      {.body = std::string(R"({"jobs":[)") + kJob + R"(],"next_cursor":null})"},
  });
  ASSERT_EQ(Run({"--server", server.url(), "list", "--all", "--limit", "1", "-o", "json"}), kExitOk)
      << err();
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/api/v1/jobs/?limit=1");
  EXPECT_EQ(requests[1].target, "/api/v1/jobs/?limit=1&cursor=c%2F1");
  auto answer = json::parse(out());
  EXPECT_EQ(answer["jobs"].size(), 2u);
  EXPECT_TRUE(answer["next_cursor"].is_null());
}

TEST_F(CliTest, CancelSendsDelete) {
  json job = json::parse(kJob);
  job["status"] = "cancelled";
  std::string cancelled = job.dump();
  FakeHttpServer server({{.body = cancelled}});
  ASSERT_EQ(Run({"--server", server.url(), "cancel", "job-01abc"}), kExitOk) << err();
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "DELETE");
  EXPECT_EQ(requests[0].target, "/api/v1/jobs/job-01abc");
  EXPECT_EQ(out(), "cancelled job-01abc (cancelled)\n");
}

TEST_F(CliTest, CancelOfEndedJobExitsOne) {
  FakeHttpServer server(
      {{.status = 409,
        .body =
            R"({"error":{"code":"conflict","message":"job job-1 already ended","field":null}})"}});
  EXPECT_EQ(Run({"--server", server.url(), "cancel", "job-1"}), kExitServerError);
  EXPECT_EQ(err(), "error: job job-1 already ended [conflict]\n");
}

TEST_F(CliTest, GetUnknownJobExitsThree) {
  FakeHttpServer server(
      {{.status = 404,
        .body = R"({"error":{"code":"not_found","message":"no job with id job-nope",)"
                R"("field":"job_id"}})"}});
  EXPECT_EQ(Run({"--server", server.url(), "get", "job-nope"}), kExitNotFound);
  EXPECT_EQ(out(), "");
  EXPECT_EQ(err(), "error: no job with id job-nope (field: job_id) [not_found]\n");
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/api/v1/jobs/job-nope");
}

TEST_F(CliTest, GetShowsDetail) {
  FakeHttpServer server({{.body = kJob}});
  ASSERT_EQ(Run({"--server", server.url(), "get", "job-01abc"}), kExitOk) << err();
  EXPECT_NE(out().find("Status:           queued\n"), std::string::npos) << out();
}

TEST_F(CliTest, ValidationErrorExitsOne) {
  FakeHttpServer server(
      {{.status = 422,
        .body =
            R"({"error":{"code":"validation_error","message":)"
            R"("config.gpu_count must be an integer in [1, 64]","field":"config.gpu_count"}})"}});
  EXPECT_EQ(Run({"--server", server.url(), "submit", "--gpus", "99", "--", "true"}),
            kExitServerError);
  EXPECT_EQ(err(),
            "error: config.gpu_count must be an integer in [1, 64] (field: config.gpu_count) "
            "[validation_error]\n");
}

TEST_F(CliTest, LogsFollowStreamsBytes) {
  FakeHttpServer server(
      {{.content_type = "text/plain", .chunks = {"line 1\n", "line 2\n", "partial", " line 3\n"}}});
  ASSERT_EQ(Run({"--server", server.url(), "logs", "job-01abc", "-f", "--attempt", "1"}), kExitOk)
      << err();
  EXPECT_EQ(out(), "line 1\nline 2\npartial line 3\n");
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/api/v1/jobs/job-01abc/logs?attempt=1&follow=true");
}

TEST_F(CliTest, LogsErrorBodyNeverReachesStdout) {
  FakeHttpServer server(
      {{.status = 404, .body = R"({"error":{"code":"not_found","message":"no job job-x"}})"}});
  EXPECT_EQ(Run({"--server", server.url(), "logs", "job-x"}), kExitNotFound);
  EXPECT_EQ(out(), "");
  EXPECT_EQ(err(), "error: no job job-x [not_found]\n");
}

TEST_F(CliTest, InstancesAndTemplates) {
  FakeHttpServer server({
      {.body = R"({"instances":[{"instance_id":"local","provider":"local","status":"running",
                   "gpu_type":"RTX4090","gpu_count":6,"gpus_free":4}]})"},
      {.body = R"({"templates":[{"name":"t1","title":"T one","job_type":"custom","config":{}}]})"},
  });
  ASSERT_EQ(Run({"--server", server.url(), "instances"}), kExitOk) << err();
  EXPECT_EQ(out(),
            "ID      PROVIDER   STATUS    GPU TYPE   GPUS   FREE\n"
            "local   local      running   RTX4090    6      4\n");
  ASSERT_EQ(Run({"--server", server.url() + "/", "templates"}), kExitOk) << err();
  EXPECT_EQ(out(), "NAME   JOB TYPE   GPUS   TITLE\nt1     custom     -      T one\n");
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/api/v1/instances/");
  EXPECT_EQ(requests[1].target, "/api/v1/templates");
}

TEST_F(CliTest, UnreachableServerExitsFourAndSuggestsServe) {
  std::string url = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort());
  EXPECT_EQ(Run({"--server", url, "list"}), kExitUnreachable);
  EXPECT_NE(err().find("cannot connect to the gpuorch server at " + url), std::string::npos)
      << err();
  EXPECT_NE(err().find("gpuorch serve"), std::string::npos) << err();
}

TEST_F(CliTest, SilentServerTimesOutWithExitFour) {
  // A listening socket that never accepts: the connection completes, no answer ever comes.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  EXPECT_EQ(Run({"--server", url, "--timeout", "0.2", "get", "job-1"}), kExitUnreachable);
  EXPECT_NE(err().find("no answer from the gpuorch server at " + url + " within 0.2s"),
            std::string::npos)
      << err();
  EXPECT_NE(err().find("[timeout]"), std::string::npos) << err();
  ::close(fd);
}

TEST_F(CliTest, UsageErrorsExitTwoWithoutSending) {
  env_server_ = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort());
  EXPECT_EQ(Run({"submit", "--env", "KEY", "--", "true"}), kExitUsage);
  EXPECT_NE(err().find("bad --env \"KEY\": expected KEY=VALUE"), std::string::npos) << err();
  EXPECT_EQ(Run({"submit", "-f", "/nonexistent/job.yaml"}), kExitUsage);
  EXPECT_NE(err().find("/nonexistent/job.yaml"), std::string::npos) << err();
  EXPECT_EQ(Run({"list", "--bogus"}), kExitUsage);
  EXPECT_EQ(Run({"list", "--limit", "0"}), kExitUsage);
  EXPECT_EQ(Run({"--output", "xml", "list"}), kExitUsage);
  EXPECT_EQ(Run({}), kExitUsage);
  EXPECT_EQ(Run({"get"}), kExitUsage);
  EXPECT_EQ(Run({"get", "job-1", "--", "x"}), kExitUsage);
  EXPECT_EQ(Run({"--server", "127.0.0.1:8000", "list"}), kExitUsage);
  EXPECT_EQ(Run({"submit", "--idempotency-key", std::string(129, 'k'), "--", "true"}), kExitUsage);
  EXPECT_EQ(Run({"submit", "--env", "A=1", "B=2", "--", "true"}), kExitUsage);
  EXPECT_EQ(Run({"--timeout", "0", "list"}), kExitUsage);
  EXPECT_EQ(Run({"submit", "--command", "echo", "--", "echo"}), kExitUsage);
  EXPECT_EQ(Run({"submit", "--gpus", "two", "--", "true"}), kExitUsage);
  EXPECT_NE(err().find("Run 'gpuctl submit --help'"), std::string::npos) << err();
}

TEST_F(CliTest, VersionAndHelpExitZero) {
  EXPECT_EQ(Run({"--version"}), kExitOk);
  EXPECT_EQ(out(), "gpuctl 0.1.0\n");
  EXPECT_EQ(Run({"--help"}), kExitOk);
  EXPECT_NE(out().find("submit"), std::string::npos);
  EXPECT_EQ(Run({"submit", "--help"}), kExitOk);
  EXPECT_NE(out().find("--idempotency-key"), std::string::npos);
}

}  // namespace
}  // namespace gpuorch::gpuctl
