// Black-box tests of api::HttpServer over raw POSIX sockets on 127.0.0.1 (ephemeral ports), plus
// the Boost-free helpers in api/internal/http_wire.h. Timeouts are short (300 ms) so the suite
// stays fast; waits block on sockets or condition variables, never on sleeps.
#include "api/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/internal/http_wire.h"
#include "core/clock.h"

namespace gpuorch::api {
namespace {

using namespace std::chrono_literals;

// ---- A minimal blocking HTTP/1.1 client ----

struct Reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;
  std::vector<std::string> chunks;  // the chunks, when the body was chunked
  bool chunked = false;

  std::optional<std::string> Header(const std::string& name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) {
        return value;
      }
    }
    return std::nullopt;
  }
  // The "code" of a JSON error body, or "".
  std::string ErrorCode() const {
    auto json = nlohmann::json::parse(body, nullptr, false);
    if (!json.is_object() || !json.contains("error")) {
      return "";
    }
    return json["error"].value("code", "");
  }
};

std::string Lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

class TestClient {
 public:
  explicit TestClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SetReceiveTimeout(3000ms);
  }
  ~TestClient() { ::close(fd_); }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  bool connected() const { return connected_; }

  // False when the peer is gone.
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response, or nullopt on EOF, reset or timeout before it was complete. An answer to HEAD
  // (`head`) has no body whatever its Content-Length says.
  std::optional<Reply> Read(bool head = false) {
    Reply reply;
    auto status_line = ReadLine();
    if (!status_line || status_line->size() < 12) {
      return std::nullopt;
    }
    reply.status = std::stoi(status_line->substr(9, 3));
    for (;;) {
      auto line = ReadLine();
      if (!line) {
        return std::nullopt;
      }
      if (line->empty()) {
        break;
      }
      size_t colon = line->find(':');
      std::string value = line->substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      reply.headers.emplace_back(Lower(line->substr(0, colon)), value);
    }
    if (head) {
      return reply;
    }
    if (reply.Header("transfer-encoding") == "chunked") {
      reply.chunked = true;
      for (;;) {
        auto size_line = ReadLine();
        if (!size_line) {
          return std::nullopt;
        }
        size_t size = std::stoul(*size_line, nullptr, 16);
        if (size == 0) {
          auto trailer_end = ReadLine();
          return trailer_end ? std::optional<Reply>(reply) : std::nullopt;
        }
        auto data = ReadBytes(size + 2);
        if (!data) {
          return std::nullopt;
        }
        data->resize(size);
        reply.chunks.push_back(*data);
        reply.body += *data;
      }
    }
    size_t length = std::stoul(reply.Header("content-length").value_or("0"));
    auto body = ReadBytes(length);
    if (!body) {
      return std::nullopt;
    }
    reply.body = std::move(*body);
    return reply;
  }

  // True when the server closes the connection (EOF or reset) within `within`; data is discarded.
  bool WaitForClose(std::chrono::milliseconds within) {
    SetReceiveTimeout(within);
    char sink[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, sink, sizeof(sink), 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        return true;
      }
      if (n < 0) {
        return false;  // timeout
      }
    }
  }

  // Reads whatever is available (at least one byte); false on EOF, reset or timeout.
  bool ReceiveSome() { return Fill(); }

  void SetReceiveTimeout(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

 private:
  bool Fill() {
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  std::optional<std::string> ReadLine() {
    for (;;) {
      size_t end = buf_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buf_.substr(0, end);
        buf_.erase(0, end + 2);
        return line;
      }
      if (!Fill()) {
        return std::nullopt;
      }
    }
  }

  std::optional<std::string> ReadBytes(size_t n) {
    while (buf_.size() < n) {
      if (!Fill()) {
        return std::nullopt;
      }
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

// ---- Server fixture ----

HttpServerOptions TestOptions() {
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  options.max_body_bytes = 1024;
  options.max_header_bytes = 2048;
  options.header_timeout = 300ms;
  options.body_timeout = 300ms;
  options.idle_timeout = 300ms;
  options.stream_poll_interval = 5ms;
  return options;
}

class HttpServerTest : public ::testing::Test {
 protected:
  // Starts a server whose handler records the request and answers 200 "ok:<path>", unless
  // `handler` is given.
  void StartServer(HttpServerOptions options = TestOptions(), Handler handler = nullptr) {
    if (!handler) {
      handler = [this](HttpRequest request, Responder respond) {
        std::string path = request.path;
        {
          std::lock_guard lock(mu_);
          requests_.push_back(std::move(request));
        }
        respond(HttpResponse{.status = 200, .content_type = "text/plain", .body = "ok:" + path});
      };
    }
    auto server = StartHttpServer(options, std::move(handler));
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    ASSERT_NE(server_->port(), 0);
  }

  uint16_t port() const { return server_->port(); }

  std::vector<HttpRequest> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

  // Sends `raw` on a fresh connection and returns the answer.
  std::optional<Reply> RoundTrip(std::string_view raw) {
    TestClient client(port());
    EXPECT_TRUE(client.connected());
    client.Send(raw);
    return client.Read();
  }

  // Asserts the server still answers a plain GET.
  void ExpectServing() {
    auto reply = RoundTrip(Get("/health"));
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 200);
  }

  std::mutex mu_;
  std::vector<HttpRequest> requests_;  // guarded by mu_
  std::unique_ptr<HttpServer> server_;
};

// A refused request: the status, the error code in the JSON body, then the connection closes.
void ExpectRefusedAndClosed(TestClient& client, int status, const std::string& code) {
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value()) << "no answer";
  EXPECT_EQ(reply->status, status) << reply->body;
  EXPECT_EQ(reply->ErrorCode(), code) << reply->body;
  EXPECT_EQ(reply->Header("content-type"), "application/json");
  EXPECT_EQ(reply->Header("connection"), "close");
  EXPECT_TRUE(client.WaitForClose(2000ms));
}

TEST_F(HttpServerTest, SimpleGetDecodesPathQueryAndHeaders) {
  StartServer();
  TestClient client(port());
  client.Send(Get("/api/v1/jobs%2Fx/?a=1+2&b=%41%2b&a=3&flag&&=e", "X-Test: Value 1\r\n"));
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "ok:/api/v1/jobs/x/");
  EXPECT_EQ(reply->Header("content-type"), "text/plain");

  auto requests = Requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpRequest& request = requests[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/api/v1/jobs%2Fx/?a=1+2&b=%41%2b&a=3&flag&&=e");
  EXPECT_EQ(request.path, "/api/v1/jobs/x/");
  EXPECT_EQ(request.Query("a"), "1 2");
  EXPECT_EQ(request.query.count("a"), 2u);
  EXPECT_EQ(request.Query("b"), "A+");
  EXPECT_EQ(request.Query("flag"), "");
  EXPECT_EQ(request.Query(""), "e");
  EXPECT_EQ(request.Query("missing"), std::nullopt);
  EXPECT_EQ(request.Header("x-test"), "Value 1");
  EXPECT_EQ(request.Header("host"), "test");
  EXPECT_EQ(request.Header("X-Test"), std::nullopt);  // names are lowercase
  EXPECT_EQ(request.remote_address, "127.0.0.1");
  EXPECT_TRUE(request.body.empty());
}

TEST_F(HttpServerTest, SecurityHeadersOnHandlerAndServerAnswers) {
  StartServer();
  for (const std::string& raw : {Get("/x"), std::string("NOT HTTP\r\n\r\n")}) {
    auto reply = RoundTrip(raw);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->Header("x-content-type-options"), "nosniff");
    EXPECT_EQ(reply->Header("x-frame-options"), "DENY");
    EXPECT_EQ(reply->Header("cache-control"), "no-store");
    EXPECT_EQ(reply->Header("referrer-policy"), "no-referrer");
    EXPECT_EQ(reply->Header("server"), "gpuorch");
  }
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  StartServer();
  TestClient client(port());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client.Send(Get("/r" + std::to_string(i))));
    auto reply = client.Read();
    ASSERT_TRUE(reply.has_value()) << i;
    EXPECT_EQ(reply->body, "ok:/r" + std::to_string(i));
    EXPECT_NE(reply->Header("connection"), "close");
  }
  // Pipelined: three requests in one write, answered in order.
  client.Send(Get("/p1") + Get("/p2") + Get("/p3"));
  for (int i = 1; i <= 3; ++i) {
    auto reply = client.Read();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->body, "ok:/p" + std::to_string(i));
  }
  EXPECT_EQ(Requests().size(), 8u);
}

TEST_F(HttpServerTest, Http10WithoutKeepAliveCloses) {
  StartServer();
  TestClient client(port());
  client.Send("GET /old HTTP/1.0\r\n\r\n");  // HTTP/1.0 needs no Host
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_TRUE(client.WaitForClose(1000ms));
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionClosesAfterIdleTimeout) {
  StartServer();
  TestClient client(port());
  client.Send(Get("/once"));
  ASSERT_TRUE(client.Read().has_value());
  auto start = core::RealClock::Instance().MonotonicNow();
  EXPECT_TRUE(client.WaitForClose(2000ms));
  auto waited = core::RealClock::Instance().MonotonicNow() - start;
  EXPECT_GE(waited, 200ms);
}

TEST_F(HttpServerTest, PostBodyIsDelivered) {
  StartServer();
  std::string body = R"({"name":"hello","gpu_count":2})";
  auto reply = RoundTrip(
      "POST /api/v1/jobs/submit HTTP/1.1\r\nHost: t\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  auto requests = Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].body, body);
  EXPECT_EQ(requests[0].Header("content-type"), "application/json");
}

TEST_F(HttpServerTest, ChunkedBodyWithinLimitIsDelivered) {
  StartServer();
  auto reply = RoundTrip(
      "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  ASSERT_EQ(Requests().size(), 1u);
  EXPECT_EQ(Requests()[0].body, "hello world");
}

TEST_F(HttpServerTest, ExpectContinueGets100BeforeTheBody) {
  StartServer();
  TestClient client(port());
  client.Send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  auto interim = client.Read();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  client.Send("abc");
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(Requests().at(0).body, "abc");
}

TEST_F(HttpServerTest, ContentLengthOverLimitIs413BeforeTheBodyIsSent) {  // T2
  StartServer();
  TestClient client(port());
  // Only the head: the server must answer without waiting for the 1 MB it announces.
  client.Send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n");
  ExpectRefusedAndClosed(client, 413, "body_too_large");
  EXPECT_TRUE(Requests().empty());
  ExpectServing();
}

TEST_F(HttpServerTest, ChunkedBodyOverLimitIs413) {  // T3
  StartServer();
  TestClient client(port());
  std::string chunk(512, 'x');
  std::string raw = "POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) {  // 4 KiB against a 1 KiB limit
    raw += "200\r\n" + chunk + "\r\n";
  }
  client.Send(raw);  // no final chunk: the server must cut off on size, not wait
  ExpectRefusedAndClosed(client, 413, "body_too_large");
  EXPECT_TRUE(Requests().empty());
}

TEST_F(HttpServerTest, ContentLengthWithTransferEncodingIs400AndCloses) {  // T13
  StartServer();
  for (const std::string& head :
       {std::string("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        std::string("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")}) {
    TestClient client(port());
    // The "body" smuggles a second request; it must never be processed.
    client.Send("POST /a HTTP/1.1\r\nHost: t\r\n" + head + "\r\n0\r\n\r\n" + Get("/smuggled"));
    ExpectRefusedAndClosed(client, 400, "bad_request");
  }
  EXPECT_TRUE(Requests().empty());
}

TEST_F(HttpServerTest, UnknownTransferCodingIs501) {  // T15
  StartServer();
  for (const std::string& te :
       {std::string("Transfer-Encoding: gzip, chunked\r\n"),
        std::string("Transfer-Encoding: chunkedx\r\n"),
        std::string("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")}) {
    TestClient client(port());
    client.Send("POST /a HTTP/1.1\r\nHost: t\r\n" + te + "\r\n0\r\n\r\n");
    ExpectRefusedAndClosed(client, 501, "not_implemented");
  }
  EXPECT_TRUE(Requests().empty());
}

TEST_F(HttpServerTest, OverflowingChunkSizeIs400) {  // T15
  StartServer();
  TestClient client(port());
  client.Send(
      "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "ffffffffffffffffff\r\nabc\r\n");
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  // Beast checks a chunk size against body_limit before it can overflow.
  EXPECT_TRUE(reply->status == 400 || reply->status == 413) << reply->status;
  EXPECT_TRUE(client.WaitForClose(2000ms));
}

TEST_F(HttpServerTest, HeadersOverLimitAre431) {  // T17
  StartServer();
  TestClient client(port());
  std::string raw = "GET / HTTP/1.1\r\nHost: t\r\n";
  for (int i = 0; i < 100; ++i) {
    raw += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'a') + "\r\n";
  }
  client.Send(raw + "\r\n");
  ExpectRefusedAndClosed(client, 431, "headers_too_large");
}

TEST_F(HttpServerTest, RequestLineOver8KiBIs414) {  // T17
  HttpServerOptions options = TestOptions();
  options.max_header_bytes = 16 * 1024;
  StartServer(options);
  TestClient client(port());
  client.Send("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n");
  ExpectRefusedAndClosed(client, 414, "uri_too_long");
}

TEST_F(HttpServerTest, MalformedHeadsAre400) {  // T16
  StartServer();
  const std::vector<std::string> heads = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                     // two Host headers
      "GET / HTTP/1.1\r\nX-A: b\r\n\r\n",                                 // no Host on HTTP/1.1
      "GET / HTTP/1.1\nHost: a\n\n",                                      // bare LF
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",                // obs-fold
      std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 37),  // NUL
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",                   // bare CR
      "GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n",
      "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",  // bad escapes
      "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /?q=%G1 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
  };
  for (const auto& head : heads) {
    SCOPED_TRACE(head);
    TestClient client(port());
    client.Send(head);
    ExpectRefusedAndClosed(client, 400, "bad_request");
  }
  EXPECT_TRUE(Requests().empty());
  ExpectServing();
}

TEST_F(HttpServerTest, SlowClientIsCutOffWhileOthersAreServed) {  // T18
  StartServer();
  TestClient slow(port());
  auto start = core::RealClock::Instance().MonotonicNow();
  slow.Send("GET / HTTP/1.1\r\nHost: t\r\nX-Half: ");  // never finishes its head

  auto reply = RoundTrip(Get("/fast"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_LT(core::RealClock::Instance().MonotonicNow() - start, 250ms);

  EXPECT_TRUE(slow.WaitForClose(2000ms));
  auto waited = core::RealClock::Instance().MonotonicNow() - start;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 1500ms);
}

TEST_F(HttpServerTest, SlowBodyIsCutOffAfterBodyTimeout) {  // T18
  StartServer();
  TestClient client(port());
  client.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a part");
  EXPECT_TRUE(client.WaitForClose(2000ms));
  EXPECT_TRUE(Requests().empty());
}

TEST_F(HttpServerTest, OverMaxConnectionsIs503) {
  HttpServerOptions options = TestOptions();
  options.max_connections = 2;
  options.header_timeout = 2000ms;
  StartServer(options);
  TestClient first(port());
  TestClient second(port());
  first.Send(Get("/1"));  // make sure both are accepted before the third arrives
  ASSERT_TRUE(first.Read().has_value());
  second.Send(Get("/2"));
  ASSERT_TRUE(second.Read().has_value());
  TestClient third(port());
  ExpectRefusedAndClosed(third, 503, "unavailable");
}

TEST_F(HttpServerTest, OverMaxConnectionsPerAddressIs503UntilOneCloses) {  // T18
  HttpServerOptions options = TestOptions();
  options.max_connections_per_address = 2;
  options.header_timeout = 2000ms;
  StartServer(options);
  auto first = std::make_unique<TestClient>(port());
  TestClient second(port());
  first->Send(Get("/1"));
  ASSERT_TRUE(first->Read().has_value());
  second.Send(Get("/2"));
  ASSERT_TRUE(second.Read().has_value());
  TestClient third(port());
  ExpectRefusedAndClosed(third, 503, "unavailable");
  first.reset();  // its slot comes back once the server sees the close
  std::optional<Reply> reply;
  for (int i = 0; i < 50 && !(reply && reply->status == 200); ++i) {
    TestClient again(port());
    again.Send(Get("/3"));
    reply = again.Read();
  }
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
}

TEST_F(HttpServerTest, ResponderCalledLaterFromAnotherThread) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Responder> pending;
  auto handler = [&](HttpRequest request, Responder respond) {
    std::lock_guard lock(mu);
    pending.push_back(std::move(respond));
    cv.notify_all();
  };
  StartServer(TestOptions(), handler);
  TestClient client(port());
  client.Send(Get("/slow"));

  Responder respond;
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return !pending.empty(); }));
    respond = std::move(pending.front());
    pending.pop_front();
  }
  // The handler's wait is longer than every timeout: the connection must survive it.
  client.SetReceiveTimeout(400ms);
  EXPECT_FALSE(client.Read().has_value());
  client.SetReceiveTimeout(3000ms);

  std::thread worker([respond] {
    respond(HttpResponse{
        .status = 201, .body = R"({"done":true})", .headers = {{"Location", "/jobs/1"}}});
  });
  worker.join();
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->body, R"({"done":true})");
  EXPECT_EQ(reply->Header("location"), "/jobs/1");

  // A second call is ignored, and the connection keeps working.
  respond(HttpResponse{.status = 500});
  client.Send(Get("/next"));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return !pending.empty(); }));
    respond = std::move(pending.front());
    pending.pop_front();
  }
  respond(HttpResponse{.status = 204});
  reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 204);
}

TEST_F(HttpServerTest, ResponseForAVanishedClientIsDroppedQuietly) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Responder> pending;
  std::atomic<int> calls{0};
  auto handler = [&](HttpRequest request, Responder respond) {
    if (calls++ == 0) {
      std::lock_guard lock(mu);
      pending = std::move(respond);
      cv.notify_all();
      return;
    }
    respond(HttpResponse{.body = "{}"});
  };
  StartServer(TestOptions(), handler);
  {
    TestClient client(port());
    client.Send(Get("/gone"));
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return pending.has_value(); }));
  }  // the client disconnects
  (*pending)(HttpResponse{.body = std::string(100000, 'x')});
  ExpectServing();
}

TEST_F(HttpServerTest, ResponseHeadersCannotBeForged) {  // T16
  auto handler = [](HttpRequest request, Responder respond) {
    respond(HttpResponse{.body = "{}",
                         .headers = {{"X-Echo", "a\r\nSet-Cookie: evil=1"},
                                     {"Bad Name", "v"},
                                     {"Content-Length", "999"},
                                     {"X-Frame-Options", "ALLOWALL"},
                                     {"Cache-Control", "public, max-age=3600"},
                                     {"X-Ok", "fine"}}});
  };
  StartServer(TestOptions(), handler);
  TestClient client(port());
  client.Send(Get("/"));
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->Header("set-cookie"), std::nullopt);
  EXPECT_EQ(reply->Header("x-echo"), std::nullopt);
  EXPECT_EQ(reply->Header("x-frame-options"), "DENY");
  EXPECT_EQ(reply->Header("cache-control"), "no-store");
  EXPECT_EQ(reply->Header("content-length"), "2");
  EXPECT_EQ(reply->Header("x-ok"), "fine");
  // The connection is still in sync.
  client.Send(Get("/"));
  ASSERT_TRUE(client.Read().has_value());
}

TEST_F(HttpServerTest, HeadAnswersCarryLengthButNoBody) {
  StartServer();
  TestClient client(port());
  client.Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
  auto reply = client.Read(/*head=*/true);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->Header("content-length"),
            "5");  // "ok:/h"; a body here would desync the next read
  client.Send(Get("/after-head"));
  reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->body, "ok:/after-head");
}

TEST_F(HttpServerTest, DroppedResponderClosesTheConnection) {
  auto handler = [](HttpRequest request, Responder respond) {
    if (request.path == "/drop") {
      return;  // the Responder dies unused
    }
    respond(HttpResponse{.headers = {{"X-Huge", std::string(70000, 'h')}}});
  };
  StartServer(TestOptions(), handler);
  TestClient client(port());
  client.Send(Get("/drop"));
  EXPECT_TRUE(client.WaitForClose(2000ms));
  // A header value too large for Beast is dropped, not thrown on an I/O thread.
  auto reply = RoundTrip(Get("/huge"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->Header("x-huge"), std::nullopt);
}

class ScriptedStream final : public BodyStream {
 public:
  explicit ScriptedStream(std::vector<Chunk> script) : script_(std::move(script)) {}
  Chunk Next() override {
    if (next_ >= script_.size()) {
      return Chunk{.data = "", .done = true};
    }
    return script_[next_++];
  }

 private:
  std::vector<Chunk> script_;
  size_t next_ = 0;
};

TEST_F(HttpServerTest, StreamingResponseDeliversChunksThenKeepsAlive) {
  auto handler = [](HttpRequest request, Responder respond) {
    if (request.path != "/stream") {
      respond(HttpResponse{.body = "{}"});
      return;
    }
    respond(HttpResponse{.content_type = "text/plain",
                         .stream = std::make_shared<ScriptedStream>(
                             std::vector<BodyStream::Chunk>{{.data = "line 1\n"},
                                                            {.data = ""},
                                                            {.data = ""},
                                                            {.data = "line 2\n"},
                                                            {.data = ""},
                                                            {.data = "end\n", .done = true}})});
  };
  StartServer(TestOptions(), handler);
  TestClient client(port());
  client.Send(Get("/stream"));
  auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_TRUE(reply->chunked);
  EXPECT_EQ(reply->Header("content-type"), "text/plain");
  EXPECT_EQ(reply->Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(reply->chunks, (std::vector<std::string>{"line 1\n", "line 2\n", "end\n"}));
  EXPECT_EQ(reply->body, "line 1\nline 2\nend\n");
  client.Send(Get("/after"));
  reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->body, "{}");
}

// Produces data forever, one chunk per call, and counts the calls.
class EndlessStream final : public BodyStream {
 public:
  explicit EndlessStream(std::atomic<int>& calls) : calls_(calls) {}
  Chunk Next() override {
    int n = ++calls_;
    return Chunk{.data = n % 2 == 0 ? std::string() : std::string(1000, 'z')};
  }

 private:
  std::atomic<int>& calls_;
};

TEST_F(HttpServerTest, StreamingStopsWhenTheClientGoesAway) {
  std::atomic<int> calls{0};
  auto handler = [&](HttpRequest request, Responder respond) {
    if (request.path != "/stream") {
      respond(HttpResponse{.body = "{}"});
      return;
    }
    respond(HttpResponse{.stream = std::make_shared<EndlessStream>(calls)});
  };
  StartServer(TestOptions(), handler);
  {
    TestClient client(port());
    client.Send(Get("/stream"));
    ASSERT_TRUE(client.ReceiveSome());  // streaming has begun
  }
  // After the client left, the stream must stop being pulled.
  ExpectServing();
  int before = calls.load();
  TestClient probe(port());
  probe.SetReceiveTimeout(200ms);
  EXPECT_FALSE(probe.Read().has_value());  // waits 200 ms without a sleep
  int after = calls.load();
  EXPECT_LE(after - before, 4) << "the stream kept being polled for a vanished client";
}

TEST_F(HttpServerTest, HandlerExceptionIs500AndServerKeepsServing) {
  auto handler = [](HttpRequest request, Responder respond) {
    if (request.path == "/throw") {
      throw std::runtime_error("secret database password in message");
    }
    if (request.path == "/throw-int") {
      throw 42;
    }
    respond(HttpResponse{.body = "{}"});
  };
  StartServer(TestOptions(), handler);
  TestClient client(port());
  for (const char* path : {"/throw", "/throw-int", "/fine", "/throw"}) {
    client.Send(Get(path));
    auto reply = client.Read();
    ASSERT_TRUE(reply.has_value()) << path;
    if (std::string_view(path) == "/fine") {
      EXPECT_EQ(reply->status, 200);
      continue;
    }
    EXPECT_EQ(reply->status, 500);
    EXPECT_EQ(reply->ErrorCode(), "internal");
    EXPECT_EQ(reply->body.find("secret"), std::string::npos);
  }
}

TEST_F(HttpServerTest, ConcurrentKeepAliveClientsAreAllAnswered) {
  StartServer();
  constexpr int kClients = 32;
  constexpr int kRequests = 200;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      TestClient client(port());
      for (int i = 0; i < kRequests; ++i) {
        std::string path = "/c" + std::to_string(c) + "/" + std::to_string(i);
        if (!client.Send(Get(path))) {
          return;
        }
        auto reply = client.Read();
        if (!reply || reply->status != 200 || reply->body != "ok:" + path) {
          return;
        }
        ++answered;
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(answered.load(), kClients * kRequests);
}

TEST_F(HttpServerTest, StopIsIdempotentAndSafeWithPendingResponders) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Responder> pending;
  auto handler = [&](HttpRequest request, Responder respond) {
    std::lock_guard lock(mu);
    pending = std::move(respond);
    cv.notify_all();
  };
  StartServer(TestOptions(), handler);
  TestClient idle(port());
  TestClient waiting(port());
  waiting.Send(Get("/wait"));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return pending.has_value(); }));
  }
  server_->Stop();
  server_->Stop();
  EXPECT_TRUE(idle.WaitForClose(1000ms));
  EXPECT_TRUE(waiting.WaitForClose(1000ms));
  server_.reset();  // destructor stops again
  std::lock_guard lock(mu);
  ASSERT_TRUE(pending.has_value());
  (*pending)(HttpResponse{.body = "{}"});  // after the server is gone: dropped, no crash
}

TEST_F(HttpServerTest, StartFailsWhenThePortIsTaken) {
  StartServer();
  HttpServerOptions options = TestOptions();
  options.port = port();
  auto second = StartHttpServer(options, [](HttpRequest, Responder respond) { respond({}); });
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, core::Code::kUnavailable);

  options.port = 0;
  options.threads = 0;
  auto invalid = StartHttpServer(options, [](HttpRequest, Responder respond) { respond({}); });
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().code, core::Code::kInvalidArgument);
}

TEST(ErrorBodyTest, EscapesJsonAndKeepsTheShape) {
  std::string body = ErrorBody("bad_request", "quote \" backslash \\ newline \n ctl \x01", "a.b");
  auto json = nlohmann::json::parse(body);
  EXPECT_EQ(json["error"]["code"], "bad_request");
  EXPECT_EQ(json["error"]["message"], "quote \" backslash \\ newline \n ctl \x01");
  EXPECT_EQ(json["error"]["field"], "a.b");
  EXPECT_EQ(body.find('\n'), std::string::npos);
  EXPECT_TRUE(
      nlohmann::json::parse(ErrorBody("x", "bad utf8 \xff", ""))["error"]["field"].is_null());
}

TEST(HttpWireTest, PercentDecode) {
  EXPECT_EQ(internal::PercentDecode("a%20b+c", false), "a b+c");
  EXPECT_EQ(internal::PercentDecode("a%20b+c", true), "a b c");
  EXPECT_EQ(internal::PercentDecode("%e2%82%AC", false), "\xe2\x82\xac");
  EXPECT_EQ(internal::PercentDecode("%", false), std::nullopt);
  EXPECT_EQ(internal::PercentDecode("%4", false), std::nullopt);
  EXPECT_EQ(internal::PercentDecode("ab%", false), std::nullopt);
  EXPECT_EQ(internal::PercentDecode("%zz", false), std::nullopt);
}

TEST(HttpWireTest, HeadScannerWorksIncrementally) {
  internal::HeadScanner scanner(1024, 512);
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\nBODY";
  for (size_t n = 1; n < head.size() - 4; ++n) {
    ASSERT_EQ(scanner.Scan(std::string_view(head).substr(0, n)),
              internal::HeadScanner::Progress::kNeedMore)
        << n;
  }
  EXPECT_EQ(scanner.Scan(head), internal::HeadScanner::Progress::kComplete);
  EXPECT_EQ(scanner.head_bytes(), head.size() - 4);
  EXPECT_EQ(scanner.host_count(), 2);
}

// Found by http_request_fuzz: a lone CR that ends one read must still be refused once the byte
// after it arrives, exactly as when the head comes in one read.
TEST(HttpWireTest, HeadScannerRefusesLoneCrSplitAcrossReads) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n";
  const size_t split = head.find("\rX") + 1;
  internal::HeadScanner whole(1024, 512);
  EXPECT_EQ(whole.Scan(head), internal::HeadScanner::Progress::kRejected);
  internal::HeadScanner pieces(1024, 512);
  EXPECT_EQ(pieces.Scan(std::string_view(head).substr(0, split)),
            internal::HeadScanner::Progress::kNeedMore);
  EXPECT_EQ(pieces.Scan(head), internal::HeadScanner::Progress::kRejected);
  EXPECT_EQ(pieces.rejection().status, 400);
}

}  // namespace
}  // namespace gpuorch::api
