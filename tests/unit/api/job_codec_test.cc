// Tests of the submit-body codec (api/internal/job_codec.h): JSON parsing with a depth limit, the
// validation of submit bodies into JobSpecs, and the JSON shapes of jobs and transitions
// (docs/api.md). Pure functions: no I/O.
#include "api/internal/job_codec.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace gpuorch::api::internal {
namespace {

using nlohmann::json;

SubmitLimits Limits() {
  return SubmitLimits{.known_gpu_types = {"RTX4090", "A100", "H100"},
                      .default_timeout_seconds = 3600};
}

// Parses `text` (which must be valid JSON) and validates it as a submit body.
core::Result<domain::JobSpec> Parse(const std::string& text) {
  auto body = ParseJsonBody(text);
  EXPECT_TRUE(body) << text << ": " << body.error().message;
  if (!body) {
    return core::Fail(body.error());
  }
  return ParseJobSpec(*body, Limits());
}

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// Asserts `result` failed with kInvalidArgument, `field` and `reason`.
template <typename T>
void ExpectInvalid(const core::Result<T>& result, const std::string& field,
                   const std::string& reason, const std::string& context = "") {
  ASSERT_FALSE(result) << context << ": accepted";
  EXPECT_EQ(result.error().code, core::Code::kInvalidArgument) << context;
  EXPECT_EQ(result.error().field, field) << context << ": " << result.error().message;
  EXPECT_EQ(result.error().reason, reason) << context << ": " << result.error().message;
}

// ---- ParseJsonBody ----

TEST(ParseJsonBodyTest, ParsesValidJson) {
  auto body = ParseJsonBody(R"({"a": [1, 2.5, {"b": "c"}], "d": null, "e": "\u00e9t\u00e9"})");
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ((*body)["a"][0], 1);
  EXPECT_EQ((*body)["a"][2]["b"], "c");
  EXPECT_TRUE((*body)["d"].is_null());
  EXPECT_EQ((*body)["e"], "\xc3\xa9t\xc3\xa9");
  EXPECT_TRUE(ParseJsonBody("\"caf\xc3\xa9\""));  // raw UTF-8 in a string
}

TEST(ParseJsonBodyTest, RejectsMalformedJson) {
  for (const char* text : {"", "{", R"({"a":)", "{'a': 1}", R"({"a": 1,})", R"({"a": 1} x)",
                           "[1, 2", "nul", R"({"a": 01})", R"({"a": "unterminated})"}) {
    SCOPED_TRACE(text);
    ExpectInvalid(ParseJsonBody(text), "", "invalid_json", text);
  }
}

TEST(ParseJsonBodyTest, AcceptsDepth32AndRejectsDepth33) {
  EXPECT_TRUE(ParseJsonBody(Nested(kMaxJsonDepth)));
  ExpectInvalid(ParseJsonBody(Nested(kMaxJsonDepth + 1)), "", "invalid_json");

  // Objects count like arrays.
  std::string objects;
  for (int i = 0; i < kMaxJsonDepth - 1; ++i) {
    objects += R"({"a":)";
  }
  objects += "[]" + std::string(kMaxJsonDepth - 1, '}');
  EXPECT_TRUE(ParseJsonBody(objects));
  ExpectInvalid(ParseJsonBody(R"({"a":)" + objects + "}"), "", "invalid_json");

  // Depth is nesting, not the number of brackets.
  std::string wide = "[";
  for (int i = 0; i < 100; ++i) {
    wide += (i ? "," : "") + Nested(kMaxJsonDepth - 1);
  }
  EXPECT_TRUE(ParseJsonBody(wide + "]"));
}

TEST(ParseJsonBodyTest, BracketsInsideStringsDoNotCount) {
  const std::string brackets(100, '[');
  auto body = ParseJsonBody(R"({"s": ")" + brackets + R"(", "t": "]]]{{{"})");
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ((*body)["s"], brackets);

  // An escaped quote does not end the string...
  EXPECT_TRUE(ParseJsonBody(R"({"s": "\")" + brackets + R"("})"));
  // ...but an escaped backslash before a quote does: the nesting after it counts.
  EXPECT_TRUE(ParseJsonBody(R"({"s": "\\", "t": )" + Nested(kMaxJsonDepth - 1) + "}"));
  ExpectInvalid(ParseJsonBody(R"({"s": "\\", "t": )" + Nested(kMaxJsonDepth) + "}"), "",
                "invalid_json");
}

TEST(ParseJsonBodyTest, RejectsInvalidUtf8) {
  for (const std::string& text : {std::string("{\"a\": \"\xff\"}"),
                                  std::string("{\"a\": \"\xc0\xaf\"}"),      // overlong '/'
                                  std::string("{\"a\": \"\xe2\x82\"}"),      // truncated
                                  std::string("{\"a\": \"\xed\xa0\x80\"}"),  // surrogate
                                  std::string("{\"\xfe\": 1}")}) {
    ExpectInvalid(ParseJsonBody(text), "", "invalid_json", text);
  }
}

// ---- ParseJobSpec: defaults and templates ----

TEST(ParseJobSpecTest, MinimalBodyGetsDefaults) {
  auto spec = Parse(R"({"config": {"command": ["python", "train.py"]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->name, "custom-job");
  EXPECT_EQ(spec->job_type, "custom");
  EXPECT_EQ(spec->template_name, "");
  EXPECT_EQ(spec->priority, 0);
  EXPECT_EQ(spec->timeout_seconds, 3600);  // the service default from SubmitLimits
  EXPECT_EQ(spec->max_retries, 0);
  EXPECT_EQ(spec->gpu_type, "");
  EXPECT_EQ(spec->gpu_count, 1);
  EXPECT_EQ(spec->memory_gb, 0);
  EXPECT_EQ(spec->docker_image, "");
  EXPECT_EQ(spec->command, (std::vector<std::string>{"python", "train.py"}));
  EXPECT_TRUE(spec->env.empty());
}

TEST(ParseJobSpecTest, AppliesTemplateDefaults) {
  auto spec = Parse(R"({"template": "llava-1.6-34b"})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->name, "LLaVA-1.6 34B Analysis");
  EXPECT_EQ(spec->job_type, "llava");
  EXPECT_EQ(spec->template_name, "llava-1.6-34b");
  EXPECT_EQ(spec->gpu_type, "RTX4090");
  EXPECT_EQ(spec->gpu_count, 4);
  EXPECT_EQ(spec->memory_gb, 96);
  EXPECT_EQ(spec->docker_image, "aima/llava:1.6-34b");
  EXPECT_EQ(spec->model_name, "llava-v1.6-34b");
  EXPECT_EQ(spec->timeout_seconds, 3600);
  EXPECT_EQ(json::parse(spec->config_json), json::object());
}

TEST(ParseJobSpecTest, RequestOverridesTemplate) {
  auto spec = Parse(R"({"template": "llama-3.1-70b", "name": "mine", "job_type": "inference",
      "priority": 5, "timeout_seconds": 600, "max_retries": 2,
      "config": {"gpu_count": 3, "memory_gb": 60, "model_name": null,
                 "command": ["python", "gen.py"], "env": {"MODE": "test"}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->name, "mine");
  EXPECT_EQ(spec->job_type, "inference");
  EXPECT_EQ(spec->template_name, "llama-3.1-70b");
  EXPECT_EQ(spec->priority, 5);
  EXPECT_EQ(spec->timeout_seconds, 600);
  EXPECT_EQ(spec->max_retries, 2);
  EXPECT_EQ(spec->gpu_count, 3);
  EXPECT_EQ(spec->memory_gb, 60);
  EXPECT_EQ(spec->gpu_type, "RTX4090");                 // kept
  EXPECT_EQ(spec->docker_image, "aima/llama:3.1-70b");  // kept
  EXPECT_EQ(spec->model_name, "llama-3.1-70b");         // null keeps the template's value
  EXPECT_EQ(spec->command, (std::vector<std::string>{"python", "gen.py"}));
  EXPECT_EQ(spec->env, (std::map<std::string, std::string>{{"MODE", "test"}}));
}

TEST(ParseJobSpecTest, ShellStringCommandRunsUnderSh) {
  auto spec = Parse(R"({"config": {"command": "echo $CUDA_VISIBLE_DEVICES && nvidia-smi"}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->command,
            (std::vector<std::string>{"sh", "-c", "echo $CUDA_VISIBLE_DEVICES && nvidia-smi"}));

  ExpectInvalid(Parse(R"({"config": {"command": ""}})"), "config.command", "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": []}})"), "config.command", "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": 42}})"), "config.command", "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["python", 3]}})"), "config.command[1]",
                "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["", "x"]}})"), "config.command[0]",
                "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": "a\u0000b"}})"), "config.command",
                "validation_error");
}

// ---- ParseJobSpec: strict integers ----

struct IntCase {
  std::string field;  // as reported in Error::field
  std::string value;  // JSON text
};

std::string BodyWith(const IntCase& c) {
  if (c.field == "config.gpu_count") {
    return R"({"config": {"command": ["true"], "gpu_count": )" + c.value + "}}";
  }
  return R"({")" + c.field + R"(": )" + c.value + R"(, "config": {"command": ["true"]}})";
}

TEST(ParseJobSpecTest, IntegersAreStrict) {
  const std::string two_53_plus_1 = "9007199254740993";
  std::vector<IntCase> bad;
  for (const char* v : {"0", "-1", "65", "1.5", "4.0", "\"4\"", "null", "true", "[4]", "1e2"}) {
    bad.push_back({"config.gpu_count", v});
  }
  for (const char* v : {"1001", "-1001", "1.5", "4.0", "\"4\"", "null", "-0.0"}) {
    bad.push_back({"priority", v});
  }
  for (const char* v : {"0", "-1", "2592001", "1.5", "4.0", "\"4\"", "null"}) {
    bad.push_back({"timeout_seconds", v});
  }
  for (const char* v : {"-1", "21", "1.5", "4.0", "\"4\"", "null"}) {
    bad.push_back({"max_retries", v});
  }
  for (const char* f : {"config.gpu_count", "priority", "timeout_seconds", "max_retries"}) {
    bad.push_back({f, two_53_plus_1});
    bad.push_back({f, "-" + two_53_plus_1});
    bad.push_back({f, "18446744073709551615"});  // 2^64 - 1
  }
  for (const IntCase& c : bad) {
    const std::string body = BodyWith(c);
    ExpectInvalid(Parse(body), c.field, "validation_error", body);
  }

  auto ok = Parse(R"({"priority": -1, "timeout_seconds": 1, "max_retries": 0,
                      "config": {"command": ["true"], "gpu_count": 64}})");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->priority, -1);
  EXPECT_EQ(ok->timeout_seconds, 1);
  EXPECT_EQ(ok->max_retries, 0);
  EXPECT_EQ(ok->gpu_count, 64);
  ok = Parse(R"({"priority": 0, "max_retries": 20, "timeout_seconds": 2592000,
                 "config": {"command": ["true"], "gpu_count": 4}})");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->priority, 0);
  EXPECT_EQ(ok->max_retries, 20);
  EXPECT_EQ(ok->timeout_seconds, 2592000);
  EXPECT_EQ(ok->gpu_count, 4);
}

TEST(ParseJobSpecTest, MemoryGbAcceptsIntegersAndFractions) {
  auto spec = Parse(R"({"config": {"command": ["true"], "memory_gb": 16}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->memory_gb, 16.0);
  spec = Parse(R"({"config": {"command": ["true"], "memory_gb": 12.5}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->memory_gb, 12.5);
  spec = Parse(R"({"config": {"command": ["true"], "memory_gb": 0}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->memory_gb, 0);
  for (const char* v : {"-1", "-0.5", "\"16\"", "1000001", "true", "[16]"}) {
    ExpectInvalid(
        Parse(std::string(R"({"config": {"command": ["true"], "memory_gb": )") + v + "}}"),
        "config.memory_gb", "validation_error", v);
  }
}

// ---- ParseJobSpec: names that must be known ----

TEST(ParseJobSpecTest, UnknownTemplateJobTypeAndGpuType) {
  ExpectInvalid(Parse(R"({"template": "gpt-5"})"), "template", "unknown_template");
  ExpectInvalid(Parse(R"({"template": 7})"), "template", "validation_error");
  ExpectInvalid(Parse(R"({"job_type": "mining", "config": {"command": ["true"]}})"), "job_type",
                "unknown_job_type");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "gpu_type": "B200"}})"),
                "config.gpu_type", "unknown_gpu_type");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "gpu_type": 4090}})"), "config.gpu_type",
                "validation_error");

  for (const char* type : {"custom", "llava", "llama", "training", "inference", "batch"}) {
    auto spec =
        Parse(std::string(R"({"job_type": ")") + type + R"(", "config": {"command": ["true"]}})");
    ASSERT_TRUE(spec) << type;
    EXPECT_EQ(spec->job_type, type);
    EXPECT_EQ(spec->name, std::string(type) + "-job");
  }
}

TEST(ParseJobSpecTest, GpuTypeAliasesAreCanonicalized) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"RTX4090", "RTX4090"},
      {"rtx_4090", "RTX4090"},
      {"RTX 4090", "RTX4090"},
      {"NVIDIA GeForce RTX 4090", "RTX4090"},
      {"GeForce RTX 4090", "RTX4090"},
      {"nvidia h100", "H100"},
      {"a100", "A100"},
      {"any", ""},
      {"ANY", ""},
      {"", ""}};
  for (const auto& [alias, canonical] : cases) {
    auto spec = Parse(R"({"config": {"command": ["true"], "gpu_type": ")" + alias + R"("}})");
    ASSERT_TRUE(spec) << alias << ": " << spec.error().message;
    EXPECT_EQ(spec->gpu_type, canonical) << alias;
  }
  // null keeps the default (a template's type, or any).
  auto spec = Parse(R"({"template": "llava-1.6-34b", "config": {"gpu_type": null}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->gpu_type, "RTX4090");
  spec = Parse(R"({"template": "llava-1.6-34b", "config": {"gpu_type": "any"}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->gpu_type, "");
}

// ---- ParseJobSpec: env, command, keys ----

TEST(ParseJobSpecTest, RefusesReservedEnvNames) {
  for (const char* name : {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
                           "GPUORCH_JOB_ID", "GPUORCH_ATTEMPT", "GPUORCH_ANYTHING"}) {
    ExpectInvalid(
        Parse(std::string(R"({"config": {"command": ["true"], "env": {")") + name + R"(": "0"}}})"),
        std::string("config.env.") + name, "validation_error", name);
  }
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "env": {"1BAD": "x"}}})"), "config.env",
                "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "env": {"A=B": "x"}}})"), "config.env",
                "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "env": {"N": 1}}})"), "config.env.N",
                "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "env": ["A"]}})"), "config.env",
                "validation_error");
  auto spec = Parse(R"({"config": {"command": ["true"],
                       "env": {"CUDA_HOME": "/usr/local/cuda", "_x": "", "MY_GPUORCH_X": "1"}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->env.at("CUDA_HOME"), "/usr/local/cuda");
  EXPECT_EQ(spec->env.at("_x"), "");
  EXPECT_EQ(spec->env.at("MY_GPUORCH_X"), "1");
}

TEST(ParseJobSpecTest, NeedsACommandOrAnImage) {
  ExpectInvalid(Parse(R"({"config": {"gpu_count": 1}})"), "config.command", "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": null, "docker_image": null}})"), "config.command",
                "validation_error");
  ExpectInvalid(Parse(R"({"name": "x"})"), "config", "validation_error");
  ExpectInvalid(Parse(R"({"template": "llava-1.6-34b", "config": {"docker_image": ""}})"),
                "config.command", "validation_error");

  auto image_only = Parse(R"({"config": {"docker_image": "nvcr.io/nvidia/pytorch:24.01-py3"}})");
  ASSERT_TRUE(image_only) << image_only.error().message;
  EXPECT_EQ(image_only->docker_image, "nvcr.io/nvidia/pytorch:24.01-py3");
  EXPECT_TRUE(image_only->command.empty());
  ExpectInvalid(Parse(R"({"config": {"docker_image": "-rm me"}})"), "config.docker_image",
                "validation_error");
}

TEST(ParseJobSpecTest, RefusesUnknownTopLevelKeysAndNonObjects) {
  ExpectInvalid(Parse(R"({"gpus": 2, "config": {"command": ["true"]}})"), "gpus",
                "validation_error");
  ExpectInvalid(Parse(R"([{"config": {"command": ["true"]}}])"), "", "validation_error");
  ExpectInvalid(Parse(R"({"config": ["true"]})"), "config", "validation_error");
  ExpectInvalid(Parse(R"({"name": 5, "config": {"command": ["true"]}})"), "name",
                "validation_error");
}

TEST(ParseJobSpecTest, KeepsExtraConfigKeysInConfigJson) {
  auto spec = Parse(R"({"config": {"command": ["true"], "gpu_count": 2,
                       "dataset": "s3://bucket/data", "batch": {"size": 8, "shuffle": true}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  json config = json::parse(spec->config_json);
  EXPECT_EQ(config["dataset"], "s3://bucket/data");
  EXPECT_EQ(config["batch"], (json{{"size", 8}, {"shuffle", true}}));
  EXPECT_EQ(config["gpu_count"], 2);

  // Rendering keeps them beside the normalized fields.
  domain::Job job{.id = "job-1", .spec = *spec};
  json rendered = JobToJson(job)["config"];
  EXPECT_EQ(rendered["dataset"], "s3://bucket/data");
  EXPECT_EQ(rendered["batch"]["size"], 8);
  EXPECT_EQ(rendered["gpu_count"], 2);
  EXPECT_EQ(rendered["command"], (json{"true"}));
}

// ---- ParseJobSpec: scheduling fields ----

TEST(ParseJobSpecTest, PreemptibleIsAStrictBooleanDefaultingToFalse) {
  auto spec = Parse(R"({"config": {"command": ["true"]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_FALSE(spec->preemptible);
  spec = Parse(R"({"preemptible": true, "config": {"command": ["true"]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->preemptible);
  spec = Parse(R"({"preemptible": false, "template": "llava-1.6-34b"})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_FALSE(spec->preemptible);
  for (const char* v : {"\"true\"", "1", "0", "null", "[true]", "{}"}) {
    const std::string body =
        std::string(R"({"preemptible": )") + v + R"(, "config": {"command": ["true"]}})";
    ExpectInvalid(Parse(body), "preemptible", "validation_error", body);
  }
  // It is a top-level field, not a config key.
  auto in_config = Parse(R"({"config": {"command": ["true"], "preemptible": true}})");
  ASSERT_TRUE(in_config) << in_config.error().message;
  EXPECT_FALSE(in_config->preemptible);
}

TEST(ParseJobSpecTest, NodeSelectorIsAnObjectOfLabels) {
  auto spec = Parse(R"({"config": {"command": ["true"],
      "node_selector": {"zone": "us-east-1a", "gpuorch.io/pool": "spot", "A-b_c.d": "0"}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->node_selector,
            (std::map<std::string, std::string>{
                {"zone", "us-east-1a"}, {"gpuorch.io/pool", "spot"}, {"A-b_c.d", "0"}}));
  spec = Parse(R"({"config": {"command": ["true"], "node_selector": null}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->node_selector.empty());
  spec = Parse(R"({"config": {"command": ["true"], "node_selector": {}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->node_selector.empty());

  const std::string k63(63, 'k');
  spec = Parse(R"({"config": {"command": ["true"], "node_selector": {")" + k63 + R"(": ")" + k63 +
               R"("}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->node_selector.at(k63), k63);

  const std::string k64(64, 'k');
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"(["zone"])", "config.node_selector"},
      {R"("zone=a")", "config.node_selector"},
      {R"({"": "a"})", "config.node_selector"},
      {R"({"zone name": "a"})", "config.node_selector"},
      {R"({"zone:x": "a"})", "config.node_selector"},
      {R"({")" + k64 + R"(": "a"})", "config.node_selector"},
      {R"({"zone": ""})", "config.node_selector.zone"},
      {R"({"zone": "us east"})", "config.node_selector.zone"},
      {R"({"zone": ")" + k64 + R"("})", "config.node_selector.zone"},
      {R"({"zone": 1})", "config.node_selector.zone"},
      {R"({"zone": null})", "config.node_selector.zone"},
      {R"({"zone": ["a"]})", "config.node_selector.zone"},
  };
  for (const auto& [selector, field] : bad) {
    const std::string body =
        R"({"config": {"command": ["true"], "node_selector": )" + selector + "}}";
    ExpectInvalid(Parse(body), field, "validation_error", body);
  }
}

TEST(ParseJobSpecTest, AllowedProvidersAreKnownProviderNames) {
  auto spec = Parse(R"({"config": {"command": ["true"],
      "allowed_providers": ["runpod", "aws", "runpod", "local"]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->allowed_providers, (std::vector<std::string>{"runpod", "aws", "local"}));
  for (const std::string& name : KnownProviders()) {
    auto one =
        Parse(R"({"config": {"command": ["true"], "allowed_providers": [")" + name + R"("]}})");
    ASSERT_TRUE(one) << name << ": " << one.error().message;
    EXPECT_EQ(one->allowed_providers, std::vector<std::string>{name});
  }
  EXPECT_EQ(KnownProviders(),
            (std::vector<std::string>{"local", "runpod", "vastai", "aws", "slurm", "kubernetes"}));
  spec = Parse(R"({"config": {"command": ["true"], "allowed_providers": []}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->allowed_providers.empty());
  spec = Parse(R"({"config": {"command": ["true"], "allowed_providers": null}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->allowed_providers.empty());

  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "allowed_providers": ["aws", "gcp"]}})"),
                "config.allowed_providers[1]", "unknown_provider");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "allowed_providers": ["AWS"]}})"),
                "config.allowed_providers[0]", "unknown_provider");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "allowed_providers": ["aws", 7]}})"),
                "config.allowed_providers[1]", "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "allowed_providers": "aws"}})"),
                "config.allowed_providers", "validation_error");
  ExpectInvalid(Parse(R"({"config": {"command": ["true"], "allowed_providers": {"aws": 1}}})"),
                "config.allowed_providers", "validation_error");
}

TEST(JobToJsonTest, RendersSchedulingFields) {
  auto spec = Parse(R"({"preemptible": true, "config": {"command": ["true"],
      "node_selector": {"zone": "eu-1"}, "allowed_providers": ["slurm", "kubernetes"]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  json j = JobToJson(domain::Job{.id = "job-1", .spec = *spec});
  EXPECT_EQ(j["preemptible"], true);
  EXPECT_EQ(j["config"]["node_selector"], (json{{"zone", "eu-1"}}));
  EXPECT_EQ(j["config"]["allowed_providers"], (json{"slurm", "kubernetes"}));

  // Defaults render as false, {} and [].
  json plain = JobToJson(domain::Job{.id = "job-2"});
  EXPECT_EQ(plain["preemptible"], false);
  EXPECT_EQ(plain["config"]["node_selector"], json::object());
  EXPECT_EQ(plain["config"]["allowed_providers"], json::array());
}

TEST(ValidateIdempotencyKeyTest, AcceptsPrintableAsciiUpTo128) {
  EXPECT_TRUE(ValidateIdempotencyKey("abc-123_XYZ"));
  EXPECT_TRUE(ValidateIdempotencyKey(std::string(128, 'k')));
  for (const std::string& key : {std::string(), std::string(129, 'k'), std::string("a b"),
                                 std::string("caf\xc3\xa9"), std::string("a\tb")}) {
    auto status = ValidateIdempotencyKey(key);
    ASSERT_FALSE(status) << key;
    EXPECT_EQ(status.error().code, core::Code::kInvalidArgument);
    EXPECT_EQ(status.error().field, "Idempotency-Key");
  }
}

// ---- Rendering (docs/api.md) ----

TEST(JobToJsonTest, QueuedJobHasTheDocumentedShape) {
  auto spec = Parse(R"({"name": "hello", "priority": 10, "timeout_seconds": 600, "max_retries": 1,
      "config": {"gpu_type": "RTX4090", "gpu_count": 2, "memory_gb": 16,
                 "command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
                 "env": {"MODE": "test"}}})");
  ASSERT_TRUE(spec) << spec.error().message;
  domain::Job job{.id = "job-01",
                  .spec = *spec,
                  .status_message = "queued",
                  .created_at = core::FromUnixMillis(1'700'000'000'123),
                  .updated_at = core::FromUnixMillis(1'700'000'001'000)};
  json j = JobToJson(job);

  for (const char* key :
       {"job_id",      "name",           "job_type",   "template",        "owner",
        "status",      "status_message", "priority",   "timeout_seconds", "max_retries",
        "preemptible", "attempt",        "config",     "node_id",         "gpu_indices",
        "exit_code",   "created_at",     "updated_at", "started_at",      "finished_at"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["job_id"], "job-01");
  EXPECT_EQ(j["name"], "hello");
  EXPECT_EQ(j["job_type"], "custom");
  EXPECT_TRUE(j["template"].is_null());
  EXPECT_EQ(j["owner"], "default");
  EXPECT_EQ(j["status"], "queued");
  EXPECT_EQ(j["status_message"], "queued");
  EXPECT_EQ(j["priority"], 10);
  EXPECT_EQ(j["timeout_seconds"], 600);
  EXPECT_EQ(j["max_retries"], 1);
  EXPECT_EQ(j["attempt"], 0);
  EXPECT_TRUE(j["node_id"].is_null());
  EXPECT_EQ(j["gpu_indices"], json::array());
  EXPECT_TRUE(j["exit_code"].is_null());
  EXPECT_EQ(j["created_at"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["updated_at"], "2023-11-14T22:13:21.000Z");
  EXPECT_TRUE(j["started_at"].is_null());
  EXPECT_TRUE(j["finished_at"].is_null());

  const json& config = j["config"];
  EXPECT_EQ(config["gpu_type"], "RTX4090");
  EXPECT_EQ(config["gpu_count"], 2);
  EXPECT_EQ(config["memory_gb"], 16);
  EXPECT_TRUE(config["docker_image"].is_null());
  EXPECT_TRUE(config["model_name"].is_null());
  EXPECT_EQ(config["command"], (json{"sh", "-c", "echo $CUDA_VISIBLE_DEVICES"}));
  EXPECT_EQ(config["env"], (json{{"MODE", "test"}}));
}

TEST(JobToJsonTest, RunningAndEndedJobsShowPlacementTimesAndExitCode) {
  auto spec = Parse(R"({"template": "llama-3.1-70b"})");
  ASSERT_TRUE(spec) << spec.error().message;
  domain::Job job{.id = "job-02",
                  .owner = "alice",
                  .spec = *spec,
                  .state = domain::JobState::kTimedOut,
                  .attempt = 2,
                  .created_at = core::FromUnixMillis(0),
                  .updated_at = core::FromUnixMillis(3000),
                  .started_at = core::FromUnixMillis(1000),
                  .finished_at = core::FromUnixMillis(2500),
                  .exit_code = 137,
                  .node_id = "local",
                  .gpu_indices = {2, 3}};
  json j = JobToJson(job);
  EXPECT_EQ(j["status"], "timed_out");
  EXPECT_EQ(j["owner"], "alice");
  EXPECT_EQ(j["template"], "llama-3.1-70b");
  EXPECT_EQ(j["job_type"], "llama");
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["node_id"], "local");
  EXPECT_EQ(j["gpu_indices"], (json{2, 3}));
  EXPECT_EQ(j["exit_code"], 137);
  EXPECT_EQ(j["created_at"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(j["started_at"], "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(j["finished_at"], "1970-01-01T00:00:02.500Z");
  EXPECT_EQ(j["config"]["docker_image"], "aima/llama:3.1-70b");
  EXPECT_EQ(j["config"]["model_name"], "llama-3.1-70b");
  EXPECT_EQ(j["config"]["command"], json::array());
}

TEST(TransitionToJsonTest, HasTheDocumentedShape) {
  json created =
      TransitionToJson(domain::JobTransition{.job_id = "job-01",
                                             .from = std::nullopt,
                                             .to = domain::JobState::kQueued,
                                             .at = core::FromUnixMillis(1'700'000'000'123),
                                             .attempt = 0,
                                             .message = "submitted"});
  EXPECT_EQ(created, (json{{"from", nullptr},
                           {"to", "queued"},
                           {"at", "2023-11-14T22:13:20.123Z"},
                           {"attempt", 0},
                           {"message", "submitted"}}));
  json started = TransitionToJson(domain::JobTransition{.job_id = "job-01",
                                                        .from = domain::JobState::kScheduled,
                                                        .to = domain::JobState::kRunning,
                                                        .at = core::FromUnixMillis(1000),
                                                        .attempt = 1,
                                                        .message = "attempt 1 started"});
  EXPECT_EQ(started["from"], "scheduled");
  EXPECT_EQ(started["to"], "running");
  EXPECT_EQ(started["attempt"], 1);
  EXPECT_EQ(started["at"], "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(started["message"], "attempt 1 started");
}

}  // namespace
}  // namespace gpuorch::api::internal
