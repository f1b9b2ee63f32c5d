// A tiny HTTP/1.1 server for gpuctl's client tests: it listens on 127.0.0.1 at an ephemeral port,
// answers one connection per canned response (in order, `Connection: close`), and records each
// request so tests can check the method, target, headers and body the client sent.
// Thread-safe: one serving thread; Requests() may be called from the test thread at any time.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gpuorch::gpuctl::testing {

struct RecordedRequest {
  std::string method;
  std::string target;                          // path and query, as sent
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  // The header's value, or "" when absent. `name` is matched case-insensitively.
  std::string Header(const std::string& name) const;
  bool HasHeader(const std::string& name) const;
};

struct CannedResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  // When non-empty the body is sent with chunked transfer encoding, one chunk per element,
  // instead of `body`.
  std::vector<std::string> chunks;
};

class FakeHttpServer {
 public:
  // Starts listening and serving. Aborts the test binary if no socket can be bound.
  explicit FakeHttpServer(std::vector<CannedResponse> responses);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The requests received so far, in order.
  std::vector<RecordedRequest> Requests() const;

 private:
  void Serve(std::vector<CannedResponse> responses);
  bool ServeOne(int conn, const CannedResponse& response);

  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<RecordedRequest> requests_;  // guarded by mu_
  std::thread thread_;
};

// A loopback port that nothing listens on (bound, then closed), for "cannot connect" tests.
uint16_t UnusedLoopbackPort();

}  // namespace gpuorch::gpuctl::testing
