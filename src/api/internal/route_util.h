// Small helpers shared by the route handlers: JSON answers, common errors, path segments.
#pragma once

#include <initializer_list>
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
core::Error Forbidden(const std::string& message);    // reason "forbidden" (403)
core::Error Unavailable(const std::string& message);  // reason "unavailable" (503)
// An RFC 3339 string, or null when `t` is empty.
nlohmann::json TimeOrNull(const std::optional<core::SystemTime>& t);
// The JSON object body of a request, or the error to answer (415 for another Content-Type, 400 for
// bad JSON or a non-object); with `allowed` non-empty, a field not in it is an error too.
core::Result<nlohmann::json> JsonObjectBody(const HttpRequest& request,
                                            std::initializer_list<const char*> allowed = {});
// kInvalidArgument "unknown field" naming the first field of `body` not in `allowed`.
core::Status OnlyFields(const nlohmann::json& body, std::initializer_list<const char*> allowed);
// `body[field]` as a string: nullopt when absent or null; an error when present but not a string.
core::Result<std::optional<std::string>> OptionalString(const nlohmann::json& body,
                                                        const char* field);
// A node (the local machine or an agent's) as GET /api/v1/instances and /api/v1/nodes show it.
nlohmann::json NodeJson(const lifecycle::NodeStatus& node);

}  // namespace gpuorch::api::internal
