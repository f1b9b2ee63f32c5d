// The curl HttpClient against a scripted loopback server: retries, Retry-After, timeouts, rate
// limit. Waits between attempts go through a FakeClock, so the schedule is asserted exactly and
// costs no wall time; jitter is pinned by a random_unit that returns 0 (factor 1).
#include "providers/http_client.h"

#include <gtest/gtest.h>

#include <ctime>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "core/clock.h"

namespace gpuorch::providers {
namespace {

using namespace std::chrono_literals;

// A loopback server answering from a script (one response per request, then 200 "ok"). A scripted
// status of 0 holds the request unanswered until the server is torn down.
class ScriptedServer {
 public:
  ScriptedServer() {
    api::HttpServerOptions options{.port = 0};
    auto server =
        api::StartHttpServer(options, [this](api::HttpRequest request, api::Responder respond) {
          std::unique_lock lock(mu_);
          requests_.push_back(request);
          api::HttpResponse response{.status = 200, .content_type = "text/plain", .body = "ok"};
          if (!script_.empty()) {
            response = script_.front();
            script_.pop_front();
          }
          if (response.status == 0) {
            held_.push_back(std::move(respond));
            return;
          }
          lock.unlock();
          respond(std::move(response));
        });
    EXPECT_TRUE(server.has_value());
    server_ = std::move(*server);
  }
  ~ScriptedServer() {
    std::vector<api::Responder> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& respond : held) {
      respond(api::HttpResponse{.status = 504});
    }
    server_->Stop();
  }

  void Push(int status, std::vector<std::pair<std::string, std::string>> headers = {},
            std::string body = "") {
    std::lock_guard lock(mu_);
    script_.push_back(api::HttpResponse{.status = status,
                                        .content_type = "text/plain",
                                        .body = std::move(body),
                                        .headers = std::move(headers)});
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  std::vector<api::HttpRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<api::HttpResponse> script_;
  std::vector<api::HttpRequest> requests_;
  std::vector<api::Responder> held_;
  std::unique_ptr<api::HttpServer> server_;
};

HttpClientOptions FastOptions() {
  return HttpClientOptions{.max_attempts = 4,
                           .base_backoff = 100ms,
                           .max_backoff = 1000ms,
                           .max_retry_after = 30'000ms,
                           .connect_timeout = 1000ms};
}

class HttpClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<HttpClient> Client(HttpClientOptions options = FastOptions()) {
    return MakeCurlHttpClient(clock_, options, [] { return 0.0; });
  }
  // How far the FakeClock moved while `fn` ran: the sum of the client's waits.
  template <typename Fn>
  std::chrono::nanoseconds Waited(Fn&& fn) {
    const auto before = clock_.MonotonicNow();
    fn();
    return clock_.MonotonicNow() - before;
  }

  core::FakeClock clock_;
  ScriptedServer server_;
};

TEST_F(HttpClientTest, SendsMethodHeadersAndBodyAndLowercasesReplyHeaders) {
  server_.Push(201, {{"X-Answer", "42"}}, "created");
  auto client = Client();
  auto reply =
      client->Send(HttpCall{.method = "POST",
                            .url = server_.url("/things?a=1"),
                            .headers = {{"Content-Type", "application/json"}, {"X-Token", "abc"}},
                            .body = R"({"k":"v"})",
                            .idempotent = false});
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->body, "created");
  EXPECT_EQ(reply->headers["x-answer"], "42");
  EXPECT_EQ(reply->attempts, 1);
  auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/things");
  EXPECT_EQ(requests[0].Query("a"), "1");
  EXPECT_EQ(requests[0].Header("x-token"), "abc");
  EXPECT_EQ(requests[0].Header("content-type"), "application/json");
  EXPECT_EQ(requests[0].Header("user-agent"), "gpuorch/0.1");
  EXPECT_EQ(requests[0].body, R"({"k":"v"})");
}

TEST_F(HttpClientTest, PutAndDeleteCarryTheirMethod) {
  auto client = Client();
  ASSERT_TRUE(client->Send(HttpCall{.method = "PUT", .url = server_.url(), .body = "x"}));
  ASSERT_TRUE(client->Send(HttpCall{.method = "DELETE", .url = server_.url()}));
  auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].body, "x");
  EXPECT_EQ(requests[1].method, "DELETE");
}

TEST_F(HttpClientTest, Retries503WithExponentialBackoff) {
  server_.Push(503);
  server_.Push(503);
  auto client = Client();
  core::Result<HttpReply> reply;
  auto waited = Waited([&] { reply = client->Send(HttpCall{.url = server_.url()}); });
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->attempts, 3);
  EXPECT_EQ(waited, 100ms + 200ms);
  EXPECT_EQ(server_.requests().size(), 3u);
}

TEST_F(HttpClientTest, JitterScalesTheBackoffIntoHalfToOne) {
  server_.Push(503);
  // u close to 1 gives the smallest factor, just above 0.5.
  auto client = MakeCurlHttpClient(clock_, FastOptions(), [] { return 0.999; });
  std::chrono::nanoseconds waited{};
  waited = Waited([&] { ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()})); });
  EXPECT_GT(waited, 50ms);
  EXPECT_LT(waited, 51ms);
}

TEST_F(HttpClientTest, BackoffIsCappedAtMaxBackoff) {
  for (int i = 0; i < 5; ++i) {
    server_.Push(502);
  }
  auto options = FastOptions();
  options.max_attempts = 6;
  options.max_backoff = 250ms;
  auto client = Client(options);
  std::chrono::nanoseconds waited{};
  waited = Waited([&] {
    auto reply = client->Send(HttpCall{.url = server_.url()});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->attempts, 6);
  });
  EXPECT_EQ(waited, 100ms + 200ms + 250ms + 250ms + 250ms);
}

TEST_F(HttpClientTest, LastAnswerIsReturnedAfterTheLastAttempt) {
  for (int i = 0; i < 4; ++i) {
    server_.Push(503, {}, "busy");
  }
  auto client = Client();
  auto reply = client->Send(HttpCall{.url = server_.url()});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 503);
  EXPECT_EQ(reply->body, "busy");
  EXPECT_EQ(reply->attempts, 4);
}

TEST_F(HttpClientTest, Retries429EvenForNonIdempotentCalls) {
  server_.Push(429);
  auto client = Client();
  auto reply = client->Send(HttpCall{.method = "POST", .url = server_.url(), .idempotent = false});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->attempts, 2);
}

TEST_F(HttpClientTest, RetryAfterSecondsIsHonoured) {
  server_.Push(429, {{"Retry-After", "7"}});
  auto client = Client();
  std::chrono::nanoseconds waited{};
  waited = Waited([&] { ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()})); });
  EXPECT_EQ(waited, 7s);
}

TEST_F(HttpClientTest, RetryAfterHttpDateIsHonoured) {
  const std::time_t at = std::chrono::system_clock::to_time_t(clock_.Now()) + 12;
  std::tm tm{};
  gmtime_r(&at, &tm);
  char date[64];
  std::strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  server_.Push(503, {{"Retry-After", date}});
  auto client = Client();
  std::chrono::nanoseconds waited{};
  waited = Waited([&] { ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()})); });
  EXPECT_EQ(waited, 12s);
}

TEST_F(HttpClientTest, RetryAfterBeyondTheMaximumFallsBackToBackoff) {
  server_.Push(503, {{"Retry-After", "3600"}});
  server_.Push(503, {{"Retry-After", "soon"}});
  auto client = Client();
  std::chrono::nanoseconds waited{};
  waited = Waited([&] { ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()})); });
  EXPECT_EQ(waited, 100ms + 200ms);
}

TEST_F(HttpClientTest, NonIdempotentPostIsNotRetriedOn500) {
  server_.Push(500, {}, "oops");
  auto client = Client();
  std::chrono::nanoseconds waited{};
  waited = Waited([&] {
    auto reply = client->Send(
        HttpCall{.method = "POST", .url = server_.url(), .body = "x", .idempotent = false});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 500);
    EXPECT_EQ(reply->attempts, 1);
  });
  EXPECT_EQ(waited, 0ns);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(HttpClientTest, ClientErrorsAreNotRetried) {
  server_.Push(404);
  auto client = Client();
  auto reply = client->Send(HttpCall{.url = server_.url()});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 404);
  EXPECT_EQ(reply->attempts, 1);
}

TEST_F(HttpClientTest, TimeoutIsDeadlineExceededAndNamesTheHostOnly) {
  server_.Push(0);  // never answered
  auto client = Client();
  auto reply = client->Send(HttpCall{.method = "POST",
                                     .url = server_.url("/secret-path?token=s3cr3t"),
                                     .headers = {{"Authorization", "Bearer hunter2"}},
                                     .body = "body-secret",
                                     .idempotent = false,
                                     .timeout = 200ms});
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code, core::Code::kDeadlineExceeded);
  EXPECT_NE(reply.error().message.find("127.0.0.1"), std::string::npos) << reply.error().message;
  for (const char* secret : {"s3cr3t", "hunter2", "body-secret", "secret-path"}) {
    EXPECT_EQ(reply.error().message.find(secret), std::string::npos) << reply.error().message;
  }
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(HttpClientTest, IdempotentTimeoutIsRetried) {
  server_.Push(0);
  auto client = Client();
  auto reply = client->Send(HttpCall{.url = server_.url(), .timeout = 200ms});
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->attempts, 2);
}

TEST_F(HttpClientTest, ConnectionRefusedIsRetriedThenUnavailable) {
  std::string url;
  {
    auto closed = api::StartHttpServer(api::HttpServerOptions{.port = 0},
                                       [](api::HttpRequest, api::Responder r) { r({}); });
    ASSERT_TRUE(closed.has_value());
    url = "http://127.0.0.1:" + std::to_string((*closed)->port()) + "/";
    (*closed)->Stop();
  }
  auto client = Client();
  core::Result<HttpReply> reply;
  // Refused before sending: retried even for a non-idempotent call.
  auto waited = Waited(
      [&] { reply = client->Send(HttpCall{.method = "POST", .url = url, .idempotent = false}); });
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code, core::Code::kUnavailable);
  EXPECT_EQ(reply.error().reason, "transient");
  EXPECT_NE(reply.error().message.find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(waited, 100ms + 200ms + 400ms);
}

TEST_F(HttpClientTest, RateLimitSpacesRequests) {
  auto options = FastOptions();
  options.rate_limit_per_second = 10;
  options.rate_limit_burst = 2;
  auto client = Client(options);
  std::chrono::nanoseconds waited{};
  waited = Waited([&] {
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()}));
    }
  });
  // Two from the burst, then one every 100 ms.
  EXPECT_EQ(waited, 400ms);
  // After a quiet second the bucket is full again.
  clock_.Advance(1s);
  waited = Waited([&] {
    ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()}));
    ASSERT_TRUE(client->Send(HttpCall{.url = server_.url()}));
  });
  EXPECT_EQ(waited, 0ns);
}

TEST_F(HttpClientTest, MalformedUrlIsAnErrorWithoutRetries) {
  auto client = Client();
  std::chrono::nanoseconds waited{};
  waited = Waited([&] {
    auto reply = client->Send(HttpCall{.url = "notaurl://x"});
    ASSERT_FALSE(reply.has_value());
  });
  EXPECT_EQ(waited, 0ns);
}

}  // namespace
}  // namespace gpuorch::providers
