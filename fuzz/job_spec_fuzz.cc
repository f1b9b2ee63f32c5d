// Fuzzes a submit body the way POST /api/v1/jobs/submit handles it: ParseJsonBody, then
// ParseJobSpec with the known GPU types, then (for an accepted spec) JobToJson and
// optimizer::RequirementsFor.
//
// Invariants checked beyond "no crash, no sanitizer report, no escaping exception":
// - an accepted spec is within the documented limits (priority, timeout, retries, GPU count, a
//   command or an image, a canonical known GPU type, a config_json that is a JSON object);
// - rendering never throws (the service dumps strictly) and its "config" is an object;
// - without a template, the rendered job submitted again yields the same spec (config_json aside):
//   what GET shows is what the service runs;
// - RequirementsFor copies the spec's GPU type and count.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "api/internal/job_codec.h"
#include "domain/gpu.h"
#include "domain/job.h"
#include "fuzz_check.h"
#include "optimizer/ranking.h"

namespace {

using gpuorch::api::internal::JobToJson;
using gpuorch::api::internal::ParseJobSpec;
using gpuorch::api::internal::ParseJsonBody;
using gpuorch::api::internal::SubmitLimits;
using nlohmann::json;

const SubmitLimits& Limits() {
  static const SubmitLimits limits{.known_gpu_types = gpuorch::domain::KnownGpuTypes()};
  return limits;
}

void CheckSpecLimits(const gpuorch::domain::JobSpec& spec) {
  FUZZ_CHECK(spec.priority >= -1000 && spec.priority <= 1000);
  FUZZ_CHECK(spec.timeout_seconds >= 1 && spec.timeout_seconds <= 30LL * 24 * 3600);
  FUZZ_CHECK(spec.max_retries >= 0 && spec.max_retries <= 20);
  FUZZ_CHECK(spec.gpu_count >= 1 && spec.gpu_count <= gpuorch::api::internal::kMaxGpuCount);
  FUZZ_CHECK(!spec.command.empty() || !spec.docker_image.empty());
  FUZZ_CHECK(!spec.name.empty());
  FUZZ_CHECK(spec.gpu_type.empty() || Limits().known_gpu_types.count(spec.gpu_type) == 1);
  FUZZ_CHECK(gpuorch::domain::CanonicalGpuType(spec.gpu_type) == spec.gpu_type);
  const json config = json::parse(spec.config_json, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(config.is_object());
}

// The submit body a client would send to recreate `rendered` (a JobToJson answer). An image-only
// job renders "command": [], which a submit refuses (a command array must not be empty), so the
// client leaves it out.
json ResubmitBody(const json& rendered) {
  json config = rendered["config"];
  if (config["command"].empty()) {
    config.erase("command");
  }
  return json{{"name", rendered["name"]},
              {"job_type", rendered["job_type"]},
              {"priority", rendered["priority"]},
              {"timeout_seconds", rendered["timeout_seconds"]},
              {"max_retries", rendered["max_retries"]},
              {"preemptible", rendered["preemptible"]},
              {"config", std::move(config)}};
}

void CheckRoundTrip(const gpuorch::domain::JobSpec& spec, const json& rendered) {
  auto again = ParseJobSpec(ResubmitBody(rendered), Limits());
  FUZZ_CHECK(again.has_value());
  gpuorch::domain::JobSpec expected = spec;
  expected.config_json = again->config_json;
  FUZZ_CHECK(*again == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseJsonBody(body);
  if (!parsed) {
    FUZZ_CHECK(parsed.error().code == gpuorch::core::Code::kInvalidArgument);
    return 0;
  }
  auto spec = ParseJobSpec(*parsed, Limits());
  if (!spec) {
    FUZZ_CHECK(spec.error().code == gpuorch::core::Code::kInvalidArgument);
    return 0;
  }
  CheckSpecLimits(*spec);

  gpuorch::domain::Job job{.id = "job-fuzz", .spec = *spec};
  const json rendered = JobToJson(job);
  const std::string text = rendered.dump();  // strict: throws (and so fails) on invalid UTF-8
  FUZZ_CHECK(!text.empty());
  FUZZ_CHECK(rendered["config"].is_object());
  if (spec->template_name.empty()) {
    CheckRoundTrip(*spec, rendered);
  }

  auto requirements = gpuorch::optimizer::RequirementsFor(*spec);
  if (requirements) {
    FUZZ_CHECK(requirements->gpu_type == spec->gpu_type);
    FUZZ_CHECK(requirements->gpu_count == spec->gpu_count);
  } else {
    FUZZ_CHECK(requirements.error().code == gpuorch::core::Code::kInvalidArgument);
  }
  return 0;
}
