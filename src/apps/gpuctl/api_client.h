// The gpuorch HTTP API (docs/api.md) as typed calls, for gpuctl.
//
// Every call blocks until the server has answered. A 2xx answer yields its JSON; a 4xx/5xx answer
// becomes the server's error (code from the HTTP status, reason/message/field from the error
// body, see ErrorFromHttpResponse); no answer at all becomes kUnavailable ("connection_failed")
// or kDeadlineExceeded ("timeout") with a message that names the server URL. When a token is
// configured every request carries `Authorization: Bearer <token>`; the token never appears in
// errors or output.
// Not thread-safe: borrows one HttpClient.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "apps/gpuctl/http_client.h"
#include "core/error.h"

namespace gpuorch::gpuctl {

struct ApiClientOptions {
  std::string server_url;            // "http://127.0.0.1:8000"; trailing slashes are ignored
  std::optional<std::string> token;  // bearer token; nullopt or empty: no Authorization header
  std::chrono::milliseconds timeout{30'000};
};

struct SubmitResult {
  nlohmann::json job;
  bool replayed = false;  // the server answered 200: an earlier submit with the same key won
};

struct ListJobsQuery {
  std::optional<std::string> status;  // one state or several comma-separated
  std::optional<std::string> job_type;
  std::optional<int64_t> limit;
  std::optional<std::string> cursor;
};

struct LogsQuery {
  std::optional<int64_t> attempt;
  bool follow = false;
};

// Percent-encodes `text` for a path segment or query value (RFC 3986 unreserved chars pass).
std::string PercentEncode(std::string_view text);

class ApiClient {
 public:
  // Fails with a usage error when `options.server_url` is not an http(s) URL, or the token holds
  // a line break. `http` is borrowed and must outlive the client.
  [[nodiscard]] static core::Result<ApiClient> Create(HttpClient& http, ApiClientOptions options);

  const std::string& server_url() const { return options_.server_url; }

  // POST /api/v1/jobs/submit with `body`; sends `Idempotency-Key` when `idempotency_key` is set.
  [[nodiscard]] core::Result<SubmitResult> SubmitJob(
      const nlohmann::json& body, const std::optional<std::string>& idempotency_key);
  // GET /api/v1/jobs/{id}: the job with its transitions. kNotFound for an unknown id.
  [[nodiscard]] core::Result<nlohmann::json> GetJob(std::string_view job_id);
  // GET /api/v1/jobs/?...: one page, {"jobs": [...], "next_cursor": ...}.
  [[nodiscard]] core::Result<nlohmann::json> ListJobs(const ListJobsQuery& query);
  // DELETE /api/v1/jobs/{id}: the cancelled job. kFailedPrecondition when it had already ended.
  [[nodiscard]] core::Result<nlohmann::json> CancelJob(std::string_view job_id);
  // GET /api/v1/jobs/{id}/logs: hands the log bytes to `sink` as they arrive. With `follow` the
  // call has no overall timeout and returns when the server ends the stream (the job ended).
  [[nodiscard]] core::Status StreamLogs(std::string_view job_id, const LogsQuery& query,
                                        const BodySink& sink);
  // GET /api/v1/templates: {"templates": [...]}.
  [[nodiscard]] core::Result<nlohmann::json> ListTemplates();
  // GET /api/v1/instances/: {"instances": [...]}.
  [[nodiscard]] core::Result<nlohmann::json> ListInstances();

 private:
  ApiClient(HttpClient& http, ApiClientOptions options)
      : http_(&http), options_(std::move(options)) {}

  HttpRequest NewRequest(std::string method, std::string path_and_query) const;
  // Sends `request`; 2xx: the parsed body and the status; otherwise the error.
  core::Result<std::pair<nlohmann::json, long>> Call(const HttpRequest& request);
  core::Error Explain(core::Error transport_error, const HttpRequest& request) const;
  core::Error ServerError(long status, std::string_view body) const;

  HttpClient* http_;
  ApiClientOptions options_;
};

}  // namespace gpuorch::gpuctl
