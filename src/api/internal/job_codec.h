// JSON ⇄ domain for jobs: parsing and validating submit bodies, rendering jobs and transitions.
// Internal to api/. Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "domain/job.h"

namespace gpuorch::api::internal {

inline constexpr int kMaxJsonDepth = 32;
inline constexpr int kMaxGpuCount = 64;

struct SubmitLimits {
  std::set<std::string> known_gpu_types;  // canonical; "" (any) is always allowed
  int64_t default_timeout_seconds = 24 * 3600;
};

// The provider names config.allowed_providers may list.
const std::vector<std::string>& KnownProviders();

// Parses `body` as JSON with a nesting limit. kInvalidArgument reason "invalid_json" (HTTP 400) for
// malformed JSON, invalid UTF-8, or nesting deeper than kMaxJsonDepth.
core::Result<nlohmann::json> ParseJsonBody(std::string_view body);

// Validates a submit body (template shape) and builds the JobSpec with template defaults applied and
// overridden by the request. kInvalidArgument with the offending `field` and reason
// "validation_error", "unknown_template", "unknown_job_type", "unknown_gpu_type" or
// "unknown_provider" (HTTP 422).
core::Result<domain::JobSpec> ParseJobSpec(const nlohmann::json& body, const SubmitLimits& limits);

// Validates an Idempotency-Key header value (1..128 printable ASCII chars).
core::Status ValidateIdempotencyKey(std::string_view key);

nlohmann::json JobToJson(const domain::Job& job);
nlohmann::json TransitionToJson(const domain::JobTransition& transition);
nlohmann::json SpecConfigToJson(const domain::JobSpec& spec);

}  // namespace gpuorch::api::internal
