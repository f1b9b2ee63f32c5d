#include "api/agent_api.h"

#include <cctype>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/agent_protocol.h"
#include "api/api_router.h"

namespace gpuorch::api {
namespace {

constexpr std::string_view kPrefix = "/api/v1/agent";

HttpResponse Json(int status, std::string body) {
  return HttpResponse{.status = status, .body = std::move(body)};
}

HttpResponse AgentError(const core::Error& error) {
  if (error.code == core::Code::kFailedPrecondition && error.reason == "node_gone") {
    return HttpResponse{.status = 410,
                        .body = ErrorBody("node_gone", error.message, error.field)};
  }
  return ErrorResponse(error);
}

core::Error Invalid(std::string message, std::string field) {
  return core::Error{core::Code::kInvalidArgument, std::move(message), std::move(field),
                     "validation_error"};
}

// The token of "Authorization: Bearer <token>" (scheme case-insensitive), or empty.
std::string BearerToken(const HttpRequest& request) {
  auto header = request.Header("authorization");
  if (!header || header->size() < 7) {
    return "";
  }
  std::string scheme = header->substr(0, 7);
  for (char& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (scheme != "bearer ") {
    return "";
  }
  std::string token = header->substr(7);
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
    token.erase(token.begin());
  }
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  return token;
}

std::optional<int64_t> ParseNonNegative(const std::optional<std::string>& text, int64_t max) {
  if (!text || text->empty() || text->size() > 18) {
    return std::nullopt;
  }
  int64_t value = 0;
  for (char c : *text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  return value <= max ? std::optional(value) : std::nullopt;
}

// Runs `work` on the pool; answers 500 if it throws instead of answering.
void RunOnPool(core::WorkerPool& pool, Responder respond,
               std::function<HttpResponse()> work) {
  pool.Post([respond = std::move(respond), work = std::move(work)] {
    HttpResponse response;
    try {
      response = work();
    } catch (const std::exception& e) {
      response = ErrorResponse(core::Error{core::Code::kInternal,
                                           std::string("agent api: ") + e.what()});
    }
    respond(std::move(response));
  });
}

}  // namespace

AgentApi::AgentApi(lifecycle::NodeRegistry& registry, std::shared_ptr<core::WorkerPool> workers)
    : registry_(registry), workers_(std::move(workers)) {}

bool AgentApi::Handle(HttpRequest& request, Responder& respond) {
  const std::string& path = request.path;
  if (path.compare(0, kPrefix.size(), kPrefix) != 0 ||
      (path.size() > kPrefix.size() && path[kPrefix.size()] != '/')) {
    return false;
  }
  std::string route = path.substr(kPrefix.size());
  if (route.size() > 1 && route.back() == '/') {
    route.pop_back();
  }
  Responder answer = std::move(respond);
  if (route != "/register" && route != "/heartbeat" && route != "/logs") {
    answer(ErrorResponse(core::Error{core::Code::kNotFound, "route " + path + " not found", "",
                                     "not_found"}));
    return true;
  }
  if (request.method != "POST") {
    HttpResponse r = ErrorResponse(core::Error{core::Code::kInvalidArgument,
                                               "method " + request.method + " not allowed here",
                                               "", "method_not_allowed"});
    r.headers.emplace_back("Allow", "POST");
    answer(std::move(r));
    return true;
  }
  if (route == "/register") {
    Register(std::move(request), std::move(answer));
  } else if (route == "/heartbeat") {
    Heartbeat(std::move(request), std::move(answer));
  } else {
    Logs(std::move(request), std::move(answer));
  }
  return true;
}

void AgentApi::Register(HttpRequest request, Responder respond) {
  auto decoded = agent::DecodeRegisterRequest(request.body);
  if (!decoded) {
    return respond(AgentError(decoded.error()));
  }
  RunOnPool(*workers_, std::move(respond),
            [&registry = registry_, decoded = std::move(*decoded)]() -> HttpResponse {
              auto reply = registry.Register(decoded);
              if (!reply) {
                return AgentError(reply.error());
              }
              return Json(201, agent::EncodeRegisterReply(*reply));
            });
}

void AgentApi::Heartbeat(HttpRequest request, Responder respond) {
  std::string token = BearerToken(request);
  if (token.empty()) {
    return respond(AgentError(core::Error{core::Code::kUnauthenticated,
                                          "Authorization: Bearer <node token> is required", "",
                                          "unauthenticated"}));
  }
  auto decoded = agent::DecodeHeartbeatRequest(request.body);
  if (!decoded) {
    return respond(AgentError(decoded.error()));
  }
  RunOnPool(*workers_, std::move(respond),
            [&registry = registry_, token = std::move(token),
             decoded = std::move(*decoded)]() -> HttpResponse {
              auto reply = registry.Heartbeat(token, decoded);
              if (!reply) {
                return AgentError(reply.error());
              }
              return Json(200, agent::EncodeHeartbeatReply(*reply));
            });
}

void AgentApi::Logs(HttpRequest request, Responder respond) {
  std::string token = BearerToken(request);
  if (token.empty()) {
    return respond(AgentError(core::Error{core::Code::kUnauthenticated,
                                          "Authorization: Bearer <node token> is required", "",
                                          "unauthenticated"}));
  }
  agent::LogAppend append;
  auto job_id = request.Query("job_id");
  if (!job_id || !agent::IsValidJobId(*job_id)) {
    return respond(AgentError(Invalid("job_id must be a valid job id", "job_id")));
  }
  append.job_id = *job_id;
  auto attempt = ParseNonNegative(request.Query("attempt"), INT32_MAX);
  if (!attempt || *attempt < 1) {
    return respond(AgentError(Invalid("attempt must be a positive integer", "attempt")));
  }
  append.attempt = static_cast<int>(*attempt);
  auto offset = ParseNonNegative(request.Query("offset"), INT64_MAX / 4);
  if (!offset) {
    return respond(AgentError(Invalid("offset must be a non-negative integer", "offset")));
  }
  append.offset = *offset;
  if (request.body.size() > agent::kMaxLogChunkBytes) {
    return respond(AgentError(Invalid("a log chunk holds at most " +
                                          std::to_string(agent::kMaxLogChunkBytes) + " bytes",
                                      "body")));
  }
  append.data = std::move(request.body);
  RunOnPool(*workers_, std::move(respond),
            [&registry = registry_, token = std::move(token),
             append = std::move(append)]() -> HttpResponse {
              auto reply = registry.AppendLog(token, append);
              if (!reply) {
                return AgentError(reply.error());
              }
              if (reply->gap) {
                nlohmann::json body = nlohmann::json::parse(ErrorBody(
                    "offset_gap",
                    "offset " + std::to_string(append.offset) + " is beyond the stored " +
                        std::to_string(reply->size) + " bytes",
                    "offset"));
                body["size"] = reply->size;
                return Json(409, body.dump());
              }
              return Json(200, agent::EncodeLogAppendReply(*reply));
            });
}

}  // namespace gpuorch::api
