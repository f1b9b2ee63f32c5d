// A small HTTP/1.1 server front door: requests in, responses out, no Boost in this header (the Beast
// implementation lives in http_server.cc, the one translation unit that compiles Beast).
//
// The server enforces the transport limits itself and answers them without calling the handler:
// request line and headers over `max_header_bytes` → 431, a body over `max_body_bytes` → 413 (checked
// against Content-Length before reading, and while reading a chunked body), Content-Length together
// with Transfer-Encoding or an unknown transfer coding → 400/501, malformed requests → 400 (also: a
// request line over 8 KiB → 414, an HTTP version other than 1.0/1.1 → 505); each then closes the
// connection. A client that does not finish its headers within `header_timeout` (slowloris)
// or its body within `body_timeout` is disconnected; idle keep-alive connections close after
// `idle_timeout`. Beyond `max_connections` in all, or `max_connections_per_address` from one client
// address, a new connection is answered 503 and closed. Error answers use the service's JSON error
// shape.
//
// Thread-safe. Handlers run on the server's I/O threads and must not block: hand slow work to a
// worker and call the Responder from there. A Responder may be called from any thread, exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace gpuorch::api {

struct HttpRequest {
  std::string method;                              // "GET", "POST", ...
  std::string target;                              // raw request target, "/api/v1/jobs/?limit=5"
  std::string path;                                // percent-decoded path, "/api/v1/jobs/"
  std::multimap<std::string, std::string> query;   // percent-decoded query parameters
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;
  std::string remote_address;

  // The first header named `name` (lowercase), or nullopt.
  std::optional<std::string> Header(const std::string& name) const;
  // The first query parameter named `name`, or nullopt.
  std::optional<std::string> Query(const std::string& name) const;
};

// A source of a streamed (chunked) response body, pulled by the server.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  struct Chunk {
    std::string data;   // may be empty: nothing new yet, ask again after the poll interval
    bool done = false;  // true: data is the last piece
  };
  // Called on an I/O thread; must not block.
  virtual Chunk Next() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::shared_ptr<BodyStream> stream;  // when set, body is ignored and the stream is sent chunked
};

using Responder = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest, Responder)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: any free port (see HttpServer::port())
  int threads = 2;
  size_t max_body_bytes = 64 * 1024;
  size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds stream_poll_interval{100};
  int max_connections = 4096;
  // Open connections from one client address; more are answered 503 and closed, so one client
  // (e.g. a slowloris) cannot take every slot.
  int max_connections_per_address = 256;
};

class HttpServer {
 public:
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  virtual ~HttpServer() = default;

  // The bound port (the chosen one when options.port was 0).
  virtual uint16_t port() const = 0;
  // Stops accepting, closes connections and joins the I/O threads. Idempotent.
  virtual void Stop() = 0;

 protected:
  HttpServer() = default;
};

// Binds, listens and starts the I/O threads. kUnavailable when the address cannot be resolved or
// bound; kInvalidArgument when `options` are unusable (threads or max_connections < 1, a non-positive
// timeout, max_header_bytes outside [64, 2^30]) or `handler` is empty.
[[nodiscard]] core::Result<std::unique_ptr<HttpServer>> StartHttpServer(
    const HttpServerOptions& options, Handler handler);

// The body of an error answer: {"error":{"code":reason,"message":...,"field":...}}, with "field" null
// when `field` is empty. Invalid UTF-8 in the inputs becomes U+FFFD.
std::string ErrorBody(std::string_view reason, std::string_view message, std::string_view field);

}  // namespace gpuorch::api
