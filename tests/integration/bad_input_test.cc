// Bad input gets a clear 4xx JSON error, creates nothing and leaves the service healthy
// (../shared/design/ADVERSARIAL.md T1-T12).
#include <gtest/gtest.h>

#include <cctype>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

using nlohmann::json;

struct BadCase {
  std::string name;
  std::string body;
  long status;
  std::string code;
  std::string field;  // "" when not checked
  std::vector<std::string> headers = {"Content-Type: application/json"};
};

std::string WithConfig(const std::string& config_fields) {
  return R"({"name":"x","config":{"command":["true"],)" + config_fields + "}}";
}

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    svc_ = new ServiceProcess();
    ASSERT_TRUE(svc_->Start()) << svc_->last_output();
  }
  static void TearDownTestSuite() {
    delete svc_;
    svc_ = nullptr;
  }
  static ServiceProcess* svc_;
};
ServiceProcess* BadInputTest::svc_ = nullptr;

std::vector<BadCase> BadCases() {
  return {
      {"not json", R"({"gpu_count":1,)", 400, "invalid_json", ""},
      {"truncated", R"({"name": "a)", 400, "invalid_json", ""},
      {"empty body", "", 400, "invalid_json", ""},
      {"deep nesting", std::string(60000, '['), 400, "invalid_json", ""},
      {"500 nested arrays", std::string(500, '[') + std::string(500, ']'), 400, "invalid_json", ""},
      {"invalid utf-8", "{\"name\":\"\xff\xfe\",\"config\":{\"command\":\"true\"}}", 400, "invalid_json", ""},
      {"lone surrogate", R"({"name":"\uD800","config":{"command":"true"}})", 400, "invalid_json", ""},
      {"not an object", "[1,2]", 422, "validation_error", ""},
      {"gpu_count -1", WithConfig(R"("gpu_count":-1)"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count 0", WithConfig(R"("gpu_count":0)"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count 1.5", WithConfig(R"("gpu_count":1.5)"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count 4.0", WithConfig(R"("gpu_count":4.0)"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count string", WithConfig(R"("gpu_count":"4")"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count null", WithConfig(R"("gpu_count":null)"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count 2^53+1", WithConfig(R"("gpu_count":9007199254740993)"), 422, "validation_error", "config.gpu_count"},
      {"gpu_count 1e400", WithConfig(R"("gpu_count":1e400)"), 0, "", ""},  // 400 or 422, see below
      {"gpu_count 65", WithConfig(R"("gpu_count":65)"), 422, "validation_error", "config.gpu_count"},
      {"negative memory", WithConfig(R"("memory_gb":-1)"), 422, "validation_error", "config.memory_gb"},
      {"priority float", R"({"priority":1.5,"config":{"command":"true"}})", 422, "validation_error", "priority"},
      {"priority huge", R"({"priority":100000,"config":{"command":"true"}})", 422, "validation_error", "priority"},
      {"timeout zero", R"({"timeout_seconds":0,"config":{"command":"true"}})", 422, "validation_error", "timeout_seconds"},
      {"retries negative", R"({"max_retries":-1,"config":{"command":"true"}})", 422, "validation_error", "max_retries"},
      {"unknown template", R"({"template":"gpt-9"})", 422, "unknown_template", "template"},
      {"unknown job_type", R"({"job_type":"mining","config":{"command":"true"}})", 422, "unknown_job_type", "job_type"},
      {"unknown gpu_type", WithConfig(R"("gpu_type":"Voodoo5")"), 422, "unknown_gpu_type", "config.gpu_type"},
      {"unknown field", R"({"nmae":"x","config":{"command":"true"}})", 422, "validation_error", "nmae"},
      {"no config", R"({"name":"x"})", 422, "validation_error", "config"},
      {"no command nor image", R"({"config":{"gpu_count":1}})", 422, "validation_error", "config.command"},
      {"command empty array", R"({"config":{"command":[]}})", 422, "validation_error", "config.command"},
      {"command non-string item", R"({"config":{"command":["echo",1]}})", 422, "validation_error", "config.command[1]"},
      {"command with NUL", R"({"config":{"command":["echo","a\u0000b"]}})", 422, "validation_error", "config.command[1]"},
      {"env not object", R"({"config":{"command":"true","env":["A=1"]}})", 422, "validation_error", "config.env"},
      {"env bad name", R"({"config":{"command":"true","env":{"A B":"1"}}})", 422, "validation_error", "config.env"},
      {"env reserved", R"({"config":{"command":"true","env":{"CUDA_VISIBLE_DEVICES":"0"}}})", 422, "validation_error", "config.env.CUDA_VISIBLE_DEVICES"},
      {"env value number", R"({"config":{"command":"true","env":{"A":1}}})", 422, "validation_error", "config.env.A"},
      {"bad image", R"({"config":{"docker_image":"rm -rf /"}})", 422, "validation_error", "config.docker_image"},
      {"name too long", R"({"name":")" + std::string(300, 'a') + R"(","config":{"command":"true"}})", 422, "validation_error", "name"},
      {"text/plain", R"({"config":{"command":"true"}})", 415, "unsupported_media_type", "Content-Type", {"Content-Type: text/plain"}},
      {"latin1 charset", R"({"config":{"command":"true"}})", 415, "unsupported_media_type", "Content-Type", {"Content-Type: application/json; charset=latin1"}},
      {"no content type", R"({"config":{"command":"true"}})", 415, "unsupported_media_type", "Content-Type", {"Content-Type:"}},
      {"bad idempotency key", R"({"config":{"command":"true"}})", 400, "bad_request", "Idempotency-Key", {"Content-Type: application/json", "Idempotency-Key: " + std::string(200, 'k')}},
      {"oversize body", R"({"name":")" + std::string(70 * 1024, 'a') + R"(","config":{"command":"true"}})", 413, "body_too_large", ""},
  };
}

// One named test per bad input: its documented answer, nothing created, the service still healthy.
class BadSubmitTest : public BadInputTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(BadSubmitTest, GetsItsErrorAndCreatesNothing) {
  const BadCase& c = GetParam();
  HttpResult r = svc_->Post("/api/v1/jobs/submit", c.body, c.headers);
  json err = r.Json();
  ASSERT_TRUE(err.is_object()) << r.status << " " << r.body;
  ASSERT_TRUE(err.contains("error")) << r.status << " " << r.body;
  EXPECT_TRUE(err["error"]["message"].is_string());
  if (c.status == 0) {
    EXPECT_TRUE(r.status == 400 || r.status == 422) << r.status;
  } else {
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(err["error"]["code"], c.code) << r.body;
    if (!c.field.empty()) {
      EXPECT_EQ(err["error"]["field"], c.field) << r.body;
    }
  }
  EXPECT_EQ(svc_->Get("/api/v1/jobs/").Json()["jobs"].size(), 0u);
  EXPECT_EQ(svc_->Get("/health").status, 200);
}

std::string CaseName(const ::testing::TestParamInfo<BadCase>& info) {
  std::string name;
  for (char c : info.param.name) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AdversarialInputs, BadSubmitTest, ::testing::ValuesIn(BadCases()),
                         CaseName);

TEST_F(BadInputTest, ShellMetacharactersAreInertData) {
  json body{{"name", "a\r\nFAKE LOG LINE; $(touch /tmp/pwned) `id`"},
            {"config", {{"command", {"echo", "$(id); rm -rf /; `uname`"}}}}};
  std::string id = svc_->Submit(body);
  ASSERT_FALSE(id.empty());
  json job = svc_->WaitForStatus(id, "succeeded");
  EXPECT_EQ(job["name"], body["name"]);
  EXPECT_EQ(svc_->Get("/api/v1/jobs/" + id + "/logs").body, "$(id); rm -rf /; `uname`\n");
  EXPECT_EQ(svc_->last_output().find("FAKE LOG LINE\n"), std::string::npos);
}

TEST_F(BadInputTest, UnknownIdsAndRoutes) {
  for (const char* path : {"/api/v1/jobs/job-nope", "/api/v1/jobs/job-nope/logs", "/api/v1/nope",
                           "/api/v1/instances/x"}) {
    HttpResult r = svc_->Get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.Json()["error"]["code"], "not_found") << path;
  }
  EXPECT_EQ(svc_->Delete("/api/v1/jobs/job-nope").status, 404);
  EXPECT_EQ(svc_->Post("/api/v1/jobs/job-nope", "{}").status, 405);
  EXPECT_EQ(svc_->Get("/api/v1/jobs/?limit=0").status, 400);
  EXPECT_EQ(svc_->Get("/api/v1/jobs/?limit=abc").status, 400);
  EXPECT_EQ(svc_->Get("/api/v1/jobs/?status=pending").status, 400);
  EXPECT_EQ(svc_->Get("/api/v1/jobs/?cursor=-5").status, 400);
  EXPECT_EQ(svc_->Get("/api/v1/jobs/job-nope/logs?attempt=x").status, 400);
}

}  // namespace
}  // namespace gpuorch::testing
