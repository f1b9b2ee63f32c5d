// Small helpers shared by the route handlers: JSON answers, common errors, path segments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/http_server.h"
#include "core/error.h"
#include "lifecycle/job_controller.h"

namespace gpuorch::api::internal {

HttpResponse JsonResponse(int status, const nlohmann::json& body);
core::Error NotFound(const std::string& what);  // reason "not_found"
core::Error BadRequest(std::string message, std::string field);
// 405 method_not_allowed for `method`, with the Allow header listing `allowed`.
HttpResponse MethodNotAllowed(const std::string& method, const char* allowed);
// True for "application/json" with an optional "charset=utf-8".
bool IsJsonContentType(const std::optional<std::string>& value);
// Splits "/api/v1/jobs/abc/logs" after `prefix` into segments, ignoring one trailing slash.
std::vector<std::string> Segments(const std::string& path, const std::string& prefix);
// A node (the local machine or an agent's) as GET /api/v1/instances and /api/v1/nodes show it.
nlohmann::json NodeJson(const lifecycle::NodeStatus& node);

}  // namespace gpuorch::api::internal
