#include "api/internal/route_util.h"

#include <algorithm>
#include <cctype>

#include "api/api_router.h"
#include "api/internal/job_codec.h"

namespace gpuorch::api::internal {

HttpResponse JsonResponse(int status, const nlohmann::json& body) {
  return HttpResponse{.status = status, .body = body.dump()};
}

core::Error NotFound(const std::string& what) {
  return core::Error{core::Code::kNotFound, what + " not found", "", "not_found"};
}

HttpResponse MethodNotAllowed(const std::string& method, const char* allowed) {
  HttpResponse r = ErrorResponse(core::Error{core::Code::kInvalidArgument,
                                             "method " + method + " not allowed here", "",
                                             "method_not_allowed"});
  r.headers.emplace_back("Allow", allowed);
  return r;
}

core::Error BadRequest(std::string message, std::string field) {
  return core::Error{core::Code::kInvalidArgument, std::move(message), std::move(field),
                     "bad_request"};
}

bool IsJsonContentType(const std::optional<std::string>& value) {
  if (!value) {
    return false;
  }
  std::string v;
  for (char c : *value) {
    v.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  v.erase(std::remove(v.begin(), v.end(), ' '), v.end());
  return v == "application/json" || v == "application/json;charset=utf-8";
}

// Splits "/api/v1/jobs/abc/logs" after `prefix` into segments, ignoring one trailing slash.
std::vector<std::string> Segments(const std::string& path, const std::string& prefix) {
  std::vector<std::string> out;
  std::string rest = path.substr(prefix.size());
  size_t start = 0;
  while (start <= rest.size()) {
    size_t slash = rest.find('/', start);
    std::string seg = rest.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    out.push_back(seg);
    if (slash == std::string::npos) {
      break;
    }
    start = slash + 1;
  }
  if (!out.empty() && out.back().empty()) {
    out.pop_back();
  }
  return out;
}

nlohmann::json NodeJson(const lifecycle::NodeStatus& node) {
  nlohmann::json gpus = nlohmann::json::array();
  int free = 0;
  std::string type;
  for (const auto& usage : node.gpus) {
    free += usage.job_id.empty() ? 1 : 0;
    if (type.empty()) {
      type = usage.gpu.type;
    } else if (type != usage.gpu.type) {
      type = "mixed";
    }
    gpus.push_back({{"index", usage.gpu.index},
                    {"name", usage.gpu.name},
                    {"type", usage.gpu.type},
                    {"memory_mb", usage.gpu.memory_mb},
                    {"uuid", usage.gpu.uuid.empty() ? nlohmann::json(nullptr) : nlohmann::json(usage.gpu.uuid)},
                    {"job_id", usage.job_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(usage.job_id)}});
  }
  return nlohmann::json{{"instance_id", node.node_id},
              {"provider", node.provider},
              {"status", node.lost ? "lost" : "running"},
              {"gpu_type", type.empty() ? nlohmann::json(nullptr) : nlohmann::json(type)},
              {"gpu_count", node.gpus.size()},
              {"gpus_free", free},
              {"gpu_source", node.gpu_source},
              {"container_runtime", node.container_runtime},
              {"running_attempts", node.live_attempts},
              {"gpus", gpus}};
}

nlohmann::json TimeOrNull(const std::optional<core::SystemTime>& t) {
  return t ? nlohmann::json(core::FormatRfc3339(*t)) : nlohmann::json(nullptr);
}

core::Error Forbidden(const std::string& message) {
  return core::Error{core::Code::kPermissionDenied, message, "", "forbidden"};
}

core::Error Unavailable(const std::string& message) {
  return core::Error{core::Code::kUnavailable, message, "", "unavailable"};
}

core::Result<nlohmann::json> JsonObjectBody(const HttpRequest& request,
                                            std::initializer_list<const char*> allowed) {
  if (!IsJsonContentType(request.Header("content-type"))) {
    return core::Fail(core::Error{core::Code::kInvalidArgument,
                                  "Content-Type must be application/json (UTF-8)", "Content-Type",
                                  "unsupported_media_type"});
  }
  GPUORCH_ASSIGN_OR_RETURN(nlohmann::json body, ParseJsonBody(request.body));
  if (!body.is_object()) {
    return core::Fail(BadRequest("the body must be a JSON object", ""));
  }
  if (allowed.size() > 0) {
    GPUORCH_TRY(OnlyFields(body, allowed));
  }
  return body;
}

core::Result<std::optional<std::string>> OptionalString(const nlohmann::json& body,
                                                        const char* field) {
  if (!body.contains(field) || body[field].is_null()) {
    return std::optional<std::string>();
  }
  if (!body[field].is_string()) {
    return core::Fail(core::Code::kInvalidArgument, std::string(field) + " must be a string",
                      field);
  }
  return std::optional<std::string>(body[field].get<std::string>());
}

core::Status OnlyFields(const nlohmann::json& body, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : body.items()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      return core::Fail(core::Code::kInvalidArgument, "unknown field", key);
    }
  }
  return core::Ok();
}

}  // namespace gpuorch::api::internal
