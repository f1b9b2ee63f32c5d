#include "apps/gpuctl/spec.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/gpuctl/errors.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;

constexpr char kJsonSpec[] = R"({
  "name": "hello", "job_type": "custom", "template": null, "priority": 10,
  "timeout_seconds": 600, "max_retries": 1,
  "config": {"gpu_type": "RTX4090", "gpu_count": 2, "memory_gb": 16.5, "docker_image": null,
             "model_name": null, "command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
             "env": {"MODE": "test", "DEBUG": "1", "VERBOSE": true}}
})";

constexpr char kYamlSpec[] = R"(# the same job as kJsonSpec
name: hello
job_type: custom
template: null
priority: 10
timeout_seconds: 600
max_retries: 1
config:
  gpu_type: RTX4090
  gpu_count: 2
  memory_gb: 16.5
  docker_image: ~
  model_name:
  command: [sh, -c, "echo $CUDA_VISIBLE_DEVICES"]
  env:
    MODE: test
    DEBUG: "1"
    VERBOSE: true
)";

std::filesystem::path WriteTemp(const std::string& name, const std::string& content) {
  auto path = std::filesystem::path(::testing::TempDir()) / name;
  std::ofstream(path) << content;
  return path;
}

TEST(SpecTest, YamlGivesTheSameJsonAsJson) {
  auto from_json = ParseSpec(kJsonSpec, SpecFormat::kJson, "spec.json");
  auto from_yaml = ParseSpec(kYamlSpec, SpecFormat::kYaml, "spec.yaml");
  ASSERT_TRUE(from_json) << from_json.error().message;
  ASSERT_TRUE(from_yaml) << from_yaml.error().message;
  EXPECT_EQ(*from_yaml, *from_json);
  EXPECT_EQ(from_yaml->dump(), from_json->dump());
}

TEST(SpecTest, YamlNumbersStayNumbers) {
  auto spec = ParseSpec(kYamlSpec, SpecFormat::kYaml, "spec.yaml");
  ASSERT_TRUE(spec);
  EXPECT_TRUE((*spec)["priority"].is_number_integer());
  EXPECT_EQ((*spec)["priority"], 10);
  EXPECT_TRUE((*spec)["config"]["gpu_count"].is_number_integer());
  EXPECT_TRUE((*spec)["config"]["memory_gb"].is_number_float());
  EXPECT_DOUBLE_EQ((*spec)["config"]["memory_gb"].get<double>(), 16.5);
  // Quoted numbers stay strings; ~ and empty are null. Environment values are strings, as the
  // server requires: an unquoted `VERBOSE: true` is sent as "true".
  EXPECT_EQ((*spec)["config"]["env"]["DEBUG"], "1");
  EXPECT_EQ((*spec)["config"]["env"]["VERBOSE"], "true");
  EXPECT_TRUE((*spec)["config"]["docker_image"].is_null());
  EXPECT_TRUE((*spec)["config"]["model_name"].is_null());
  EXPECT_TRUE((*spec)["config"]["env"].is_object());
  EXPECT_TRUE((*spec)["config"]["command"].is_array());
}

TEST(SpecTest, YamlCoreSchemaScalars) {
  auto spec = ParseSpec(R"(
a: -7
b: 0x1F
c: 1e3
d: "true"
e: yes
f: 1.2.3
g: 'null'
h: +5
i: 007
)",
                        SpecFormat::kYaml, "s.yaml");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ((*spec)["a"], -7);
  EXPECT_EQ((*spec)["b"], 31);
  EXPECT_TRUE((*spec)["c"].is_number_float());
  EXPECT_EQ((*spec)["d"], "true");
  EXPECT_EQ((*spec)["e"], "yes");  // YAML 1.2: not a boolean
  EXPECT_EQ((*spec)["f"], "1.2.3");
  EXPECT_EQ((*spec)["g"], "null");
  EXPECT_EQ((*spec)["h"], 5);
  EXPECT_EQ((*spec)["i"], 7);
}

TEST(SpecTest, YamlInfinityIsAUsageErrorWithLocation) {
  auto spec = ParseSpec("a: 1\nb: .inf\n", SpecFormat::kYaml, "s.yaml");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().reason, kReasonUsage);
  EXPECT_NE(spec.error().message.find("s.yaml:2:4"), std::string::npos) << spec.error().message;
}

TEST(SpecTest, YamlSyntaxErrorSaysWhere) {
  auto spec = ParseSpec("name: hello\nconfig:\n  env: [a, b\n", SpecFormat::kYaml, "bad.yaml");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().reason, kReasonUsage);
  EXPECT_NE(spec.error().message.find("cannot parse bad.yaml as YAML: bad.yaml:"),
            std::string::npos)
      << spec.error().message;
}

TEST(SpecTest, JsonSyntaxErrorSaysWhere) {
  auto spec =
      ParseSpec("{\n  \"name\": \"x\",\n  \"priority\": ,\n}", SpecFormat::kJson, "bad.json");
  ASSERT_FALSE(spec);
  EXPECT_EQ(ExitCodeFor(spec.error()), kExitUsage);
  EXPECT_NE(spec.error().message.find("cannot parse bad.json as JSON: parse error at line 3"),
            std::string::npos)
      << spec.error().message;
}

TEST(SpecTest, TopLevelMustBeAMapping) {
  auto spec = ParseSpec("- a\n- b\n", SpecFormat::kYaml, "list.yaml");
  ASSERT_FALSE(spec);
  EXPECT_NE(spec.error().message.find("list.yaml: a job spec must be a mapping"),
            std::string::npos);
  EXPECT_FALSE(ParseSpec("\n  \n", SpecFormat::kYaml, "empty.yaml"));
  EXPECT_FALSE(ParseSpec("a: 1\n---\nb: 2\n", SpecFormat::kYaml, "two.yaml"));
}

TEST(SpecTest, LoadSpecFilePicksFormatByExtension) {
  std::istringstream no_stdin;
  auto json_path = WriteTemp("spec_test.json", kJsonSpec);
  auto yaml_path = WriteTemp("spec_test.yml", kYamlSpec);
  auto from_json = LoadSpecFile(json_path.string(), no_stdin);
  auto from_yaml = LoadSpecFile(yaml_path.string(), no_stdin);
  ASSERT_TRUE(from_json) << from_json.error().message;
  ASSERT_TRUE(from_yaml) << from_yaml.error().message;
  EXPECT_EQ(*from_json, *from_yaml);
}

TEST(SpecTest, LoadSpecFileReadsStdin) {
  std::istringstream in("name: from-stdin\nconfig: {gpu_count: 1}\n");
  auto spec = LoadSpecFile("-", in);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ((*spec)["name"], "from-stdin");
}

TEST(SpecTest, UnreadableFileIsAUsageErrorNamingIt) {
  std::istringstream no_stdin;
  auto spec = LoadSpecFile("/nonexistent/dir/job.yaml", no_stdin);
  ASSERT_FALSE(spec);
  EXPECT_EQ(ExitCodeFor(spec.error()), kExitUsage);
  EXPECT_NE(spec.error().message.find("/nonexistent/dir/job.yaml"), std::string::npos);
}

TEST(EnvAssignmentsTest, ParsesKeyValue) {
  auto env = ParseEnvAssignments({"A=1", "B=", "C=x=y", "A=2"});
  ASSERT_TRUE(env);
  EXPECT_EQ(env->at("A"), "2");
  EXPECT_EQ(env->at("B"), "");
  EXPECT_EQ(env->at("C"), "x=y");
}

TEST(EnvAssignmentsTest, KeyWithoutEqualsIsAUsageError) {
  auto env = ParseEnvAssignments({"A=1", "KEY"});
  ASSERT_FALSE(env);
  EXPECT_EQ(ExitCodeFor(env.error()), kExitUsage);
  EXPECT_EQ(env.error().field, "--env");
  EXPECT_NE(env.error().message.find("\"KEY\""), std::string::npos);
  EXPECT_FALSE(ParseEnvAssignments({"=value"}));
}

TEST(BuildSubmitBodyTest, FlagsOverrideTheFile) {
  auto base = ParseSpec(kJsonSpec, SpecFormat::kJson, "spec.json");
  ASSERT_TRUE(base);
  SubmitOverrides o;
  o.name = "renamed";
  o.priority = 99;
  o.gpu_count = 4;
  o.memory_gb = 32;
  o.docker_image = "pytorch:2";
  o.env = {"MODE=prod", "NEW=1"};
  o.command_argv = {"python", "-u", "train.py"};
  auto body = BuildSubmitBody(*base, o);
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ((*body)["name"], "renamed");
  EXPECT_EQ((*body)["priority"], 99);
  EXPECT_EQ((*body)["timeout_seconds"], 600);  // untouched
  EXPECT_EQ((*body)["config"]["gpu_count"], 4);
  EXPECT_EQ((*body)["config"]["gpu_type"], "RTX4090");  // untouched
  EXPECT_TRUE((*body)["config"]["memory_gb"].is_number_integer());
  EXPECT_EQ((*body)["config"]["docker_image"], "pytorch:2");
  EXPECT_EQ((*body)["config"]["command"], json({"python", "-u", "train.py"}));
  EXPECT_EQ((*body)["config"]["env"],
            json({{"MODE", "prod"}, {"DEBUG", "1"}, {"VERBOSE", "true"}, {"NEW", "1"}}));
}

TEST(BuildSubmitBodyTest, CommandStringAndFractionalMemory) {
  SubmitOverrides o;
  o.command_string = "echo hi && nvidia-smi";
  o.memory_gb = 7.5;
  auto body = BuildSubmitBody(json(), o);
  ASSERT_TRUE(body);
  EXPECT_EQ((*body)["config"]["command"], "echo hi && nvidia-smi");
  EXPECT_DOUBLE_EQ((*body)["config"]["memory_gb"].get<double>(), 7.5);
}

TEST(BuildSubmitBodyTest, TemplateAloneGetsAnEmptyConfig) {
  SubmitOverrides o;
  o.template_name = "llava-1.6-34b";
  auto body = BuildSubmitBody(json(), o);
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, json({{"template", "llava-1.6-34b"}, {"config", json::object()}}));
}

TEST(BuildSubmitBodyTest, FileWithoutConfigFlagsIsSentAsIs) {
  json base = {{"template", "t"}, {"name", "n"}};
  auto body = BuildSubmitBody(base, SubmitOverrides{});
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, base);
}

TEST(BuildSubmitBodyTest, UsageErrors) {
  SubmitOverrides both;
  both.command_string = "echo";
  both.command_argv = {"echo"};
  EXPECT_EQ(ExitCodeFor(BuildSubmitBody(json(), both).error()), kExitUsage);

  EXPECT_EQ(ExitCodeFor(BuildSubmitBody(json(), SubmitOverrides{}).error()), kExitUsage);

  SubmitOverrides bad_env;
  bad_env.command_argv = {"true"};
  bad_env.env = {"NOEQUALS"};
  auto body = BuildSubmitBody(json(), bad_env);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().field, "--env");

  SubmitOverrides gpus;
  gpus.gpu_count = 1;
  EXPECT_FALSE(BuildSubmitBody(json({{"config", "oops"}}), gpus));
  SubmitOverrides env;
  env.env = {"A=1"};
  EXPECT_FALSE(BuildSubmitBody(json({{"config", {{"env", json::array()}}}}), env));
}

}  // namespace
}  // namespace gpuorch::gpuctl
