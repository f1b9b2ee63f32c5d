#include "apps/gpuctl/api_client.h"

#include <cstdio>

#include "apps/gpuctl/errors.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;

constexpr char kJobsPath[] = "/api/v1/jobs/";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Appends "name=value" to a query string being built ("" or "?a=b").
void AddQuery(std::string& query, std::string_view name, std::string_view value) {
  query += query.empty() ? "?" : "&";
  query += std::string(name) + "=" + PercentEncode(value);
}

std::string Seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

}  // namespace

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (IsUnreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

core::Result<ApiClient> ApiClient::Create(HttpClient& http, ApiClientOptions options) {
  std::string& url = options.server_url;
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return core::Fail(
        UsageError("bad server URL \"" + url + "\": expected http://HOST:PORT or https://HOST:PORT",
                   "--server"));
  }
  if (options.token && options.token->find_first_of("\r\n") != std::string::npos) {
    // Never echo the token itself.
    return core::Fail(UsageError("GPUORCH_TOKEN contains a line break", "GPUORCH_TOKEN"));
  }
  return ApiClient(http, std::move(options));
}

HttpRequest ApiClient::NewRequest(std::string method, std::string path_and_query) const {
  HttpRequest request{.method = std::move(method), .url = options_.server_url + path_and_query};
  request.headers.emplace_back("Accept", "application/json");
  if (options_.token && !options_.token->empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + *options_.token);
  }
  request.timeout = options_.timeout;
  request.connect_timeout = options_.timeout;
  return request;
}

core::Error ApiClient::Explain(core::Error error, const HttpRequest& request) const {
  if (error.reason == kReasonConnect) {
    error.message = "cannot connect to the gpuorch server at " + options_.server_url + " (" +
                    error.message +
                    "); is it running? Start it with `gpuorch serve`, or point --server or "
                    "GPUORCH_SERVER at it";
  } else if (error.reason == kReasonTimeout) {
    error.message =
        "no answer from the gpuorch server at " + options_.server_url + " within " +
        Seconds(request.timeout.count() > 0 ? request.timeout : request.connect_timeout) + "s (" +
        error.message + "); raise --timeout if it is just slow";
  }
  return error;
}

core::Error ApiClient::ServerError(long status, std::string_view body) const {
  core::Error error = ErrorFromHttpResponse(status, body);
  if (status == 401 && (!options_.token || options_.token->empty())) {
    error.message += " (set GPUORCH_TOKEN to send a token)";
  }
  return error;
}

core::Result<std::pair<json, long>> ApiClient::Call(const HttpRequest& request) {
  auto response = http_->Send(request);
  if (!response) {
    return core::Fail(Explain(response.error(), request));
  }
  if (response->status >= 400) {
    return core::Fail(ServerError(response->status, response->body));
  }
  auto parsed = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return core::Fail(core::Code::kInternal,
                      "the server at " + options_.server_url + " answered HTTP " +
                          std::to_string(response->status) + " with a body that is not JSON",
                      "", "bad_response");
  }
  return std::make_pair(std::move(parsed), response->status);
}

core::Result<SubmitResult> ApiClient::SubmitJob(const json& body,
                                                const std::optional<std::string>& idempotency_key) {
  HttpRequest request = NewRequest("POST", "/api/v1/jobs/submit");
  request.headers.emplace_back("Content-Type", "application/json");
  if (idempotency_key) {
    request.headers.emplace_back("Idempotency-Key", *idempotency_key);
  }
  request.body = body.dump();
  GPUORCH_ASSIGN_OR_RETURN(auto answer, Call(request));
  return SubmitResult{.job = std::move(answer.first), .replayed = answer.second == 200};
}

core::Result<json> ApiClient::GetJob(std::string_view job_id) {
  GPUORCH_ASSIGN_OR_RETURN(auto answer, Call(NewRequest("GET", kJobsPath + PercentEncode(job_id))));
  return std::move(answer.first);
}

core::Result<json> ApiClient::ListJobs(const ListJobsQuery& q) {
  std::string query;
  if (q.status) {
    AddQuery(query, "status", *q.status);
  }
  if (q.job_type) {
    AddQuery(query, "job_type", *q.job_type);
  }
  if (q.limit) {
    AddQuery(query, "limit", std::to_string(*q.limit));
  }
  if (q.cursor) {
    AddQuery(query, "cursor", *q.cursor);
  }
  GPUORCH_ASSIGN_OR_RETURN(auto answer, Call(NewRequest("GET", kJobsPath + query)));
  return std::move(answer.first);
}

core::Result<json> ApiClient::CancelJob(std::string_view job_id) {
  GPUORCH_ASSIGN_OR_RETURN(auto answer,
                           Call(NewRequest("DELETE", kJobsPath + PercentEncode(job_id))));
  return std::move(answer.first);
}

core::Status ApiClient::StreamLogs(std::string_view job_id, const LogsQuery& q,
                                   const BodySink& sink) {
  std::string query;
  if (q.attempt) {
    AddQuery(query, "attempt", std::to_string(*q.attempt));
  }
  if (q.follow) {
    AddQuery(query, "follow", "true");
  }
  HttpRequest request = NewRequest("GET", kJobsPath + PercentEncode(job_id) + "/logs" + query);
  request.headers[0].second = "text/plain, application/json";
  if (q.follow) {
    request.timeout = std::chrono::milliseconds(0);  // a followed job may run for days
  }
  auto response = http_->Stream(request, sink);
  if (!response) {
    return core::Fail(Explain(response.error(), request));
  }
  if (response->status >= 400) {
    return core::Fail(ServerError(response->status, response->body));
  }
  return core::Ok();
}

core::Result<json> ApiClient::ListTemplates() {
  GPUORCH_ASSIGN_OR_RETURN(auto answer, Call(NewRequest("GET", "/api/v1/templates")));
  return std::move(answer.first);
}

core::Result<json> ApiClient::ListInstances() {
  GPUORCH_ASSIGN_OR_RETURN(auto answer, Call(NewRequest("GET", "/api/v1/instances/")));
  return std::move(answer.first);
}

}  // namespace gpuorch::gpuctl
