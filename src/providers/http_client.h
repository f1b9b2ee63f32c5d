// The one HTTP client every provider adapter (and the node agent) uses: libcurl underneath, with
// timeouts, retries with exponential backoff and full jitter, Retry-After honoured, and a per-client
// rate limit (token bucket). Time and sleeping go through the injected Clock, so retry schedules are
// deterministic under a FakeClock.
//
// Retry rules: transport failures before the request was sent (connect refused, DNS) and 429 are
// retried for every request; 5xx, timeouts and resets after sending only when `idempotent` is true.
// Each retry waits min(max_backoff, base_backoff × 2^n) × U(0.5, 1] (or Retry-After when the server
// sent one and it is at most max_retry_after). After the last attempt the last answer is returned
// as is (a 429 or 5xx is a response, not an error); only transport failures are errors.
//
// Thread-safe: one client may be shared by threads.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/error.h"

namespace gpuorch::providers {

struct HttpCall {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool idempotent = true;
  std::chrono::milliseconds timeout{15000};  // whole request, per attempt
};

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  int attempts = 1;  // how many tries it took
};

struct HttpClientOptions {
  std::string user_agent = "gpuorch/0.1";
  int max_attempts = 4;
  std::chrono::milliseconds base_backoff{200};
  std::chrono::milliseconds max_backoff{10000};
  std::chrono::milliseconds max_retry_after{60000};
  std::chrono::milliseconds connect_timeout{5000};
  double rate_limit_per_second = 0;  // 0: unlimited
  int rate_limit_burst = 10;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // kUnavailable (reason "transient") for transport failures after all retries, kDeadlineExceeded
  // for a timeout; the message names the host, never a header value or the body.
  [[nodiscard]] virtual core::Result<HttpReply> Send(const HttpCall& call) = 0;
};

// `clock` must outlive the client. `random_unit` returns a uniform value in [0,1) for jitter;
// empty: a process-wide CSPRNG-seeded generator.
std::unique_ptr<HttpClient> MakeCurlHttpClient(const core::Clock& clock, HttpClientOptions options,
                                               std::function<double()> random_unit = {});

}  // namespace gpuorch::providers
