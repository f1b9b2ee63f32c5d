// A minimal blocking HTTP/1.1 client for gpuctl: one request at a time, whole-body or streamed.
//
// `HttpClient` is the narrow I/O edge; `CurlHttpClient` implements it over libcurl. Transport
// failures (no HTTP answer at all) are errors; any HTTP answer, 4xx/5xx included, is a success
// carrying its status so that callers decide what an error status means.
// Not thread-safe: one instance per thread (gpuctl is single-threaded).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace gpuorch::gpuctl {

struct HttpRequest {
  std::string method = "GET";  // "GET", "POST", "DELETE"
  std::string url;             // absolute, already escaped: "http://host:port/path?query"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent when non-empty
  // Whole-request limit; zero means none. Connecting is always bounded by `connect_timeout`.
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds connect_timeout{10'000};
};

struct HttpResponse {
  long status = 0;
  std::string content_type;
  std::string body;  // empty when the body was streamed to a sink
};

// Receives body bytes of a successful (status < 400) answer as they arrive. Returns false to abort.
using BodySink = std::function<bool(std::string_view chunk)>;

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  HttpClient() = default;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `request` and blocks until the whole answer has arrived.
  // Returns the answer, whatever its status. Fails with kUnavailable (reason "connection_failed")
  // when the server cannot be reached or drops the connection, kDeadlineExceeded (reason "timeout")
  // when a timeout expires, kInternal for other transport failures.
  [[nodiscard]] virtual core::Result<HttpResponse> Send(const HttpRequest& request) = 0;

  // Like Send, but for status < 400 hands body bytes to `sink` as they arrive instead of keeping
  // them (the returned body is then empty); an error answer's body is kept in the response so
  // that it never reaches the sink. Blocks until the server ends the body or `sink` returns false
  // (then fails with kAborted). `sink` is borrowed for the call only.
  [[nodiscard]] virtual core::Result<HttpResponse> Stream(const HttpRequest& request,
                                                          const BodySink& sink) = 0;
};

// The libcurl implementation. Never uses a proxy for loopback hosts.
class CurlHttpClient final : public HttpClient {
 public:
  // Fails with kInternal when libcurl cannot be initialised.
  [[nodiscard]] static core::Result<std::unique_ptr<CurlHttpClient>> Create();
  ~CurlHttpClient() override;

  core::Result<HttpResponse> Send(const HttpRequest& request) override;
  core::Result<HttpResponse> Stream(const HttpRequest& request, const BodySink& sink) override;

 private:
  CurlHttpClient() = default;
  core::Result<HttpResponse> Perform(const HttpRequest& request, const BodySink* sink);
};

}  // namespace gpuorch::gpuctl
