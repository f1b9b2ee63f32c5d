// The Boost.Beast/Asio implementation of api::HttpServer, the one translation unit that compiles
// Beast.
//
// DESIGN. One io_context is run by `options.threads` threads. The listener and every accepted
// socket have their own strand, and all state of a Connection is touched only on its strand; a
// Responder called from another thread hops onto it with post(). A Connection is a small state
// machine:
//
//   ReadHead -> (ReadBody) -> Dispatch -> [handler, Responder] -> Write -> keep-alive: ReadHead
//
// The head is read with plain read_some calls and pre-scanned on the raw bytes by
// internal::HeadScanner (bare LF, NUL, obs-fold, Content-Length + Transfer-Encoding, unknown
// codings, sizes) before the Beast parser sees it, so framing attacks are refused on exactly what
// was received however lenient the parser is. The parser then parses the head alone, and
// http::async_read reads the body under body_limit, so memory stays bounded. Server-made errors
// close the connection after the answer: shutdown(send), then read and discard briefly so that the
// client sees the answer rather than a reset.
//
// One steady_timer per connection (deadline_) bounds each phase: header_timeout from accept or from
// the first byte of a keep-alive request, idle_timeout between keep-alive requests, body_timeout
// for the body and for each write. Its expiry closes the socket, which aborts the pending
// operation. A generation counter discards expiries that raced with a re-arm.
//
// Lifetime: every pending operation and every Responder holds a shared_ptr to its Connection, and
// every Connection holds a shared_ptr to the Core (io_context, options, handler), so a Responder
// that runs after the server is gone still touches live memory. Stop() marks the Core stopped under
// its mutex (which also orders connection registration and Responder posts against it), closes the
// listener and every registered connection on their strands and joins the threads, whose run()
// returns once no operation is pending.
#include "api/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "api/internal/http_wire.h"
#include "core/log.h"

namespace gpuorch::api {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr size_t kReadChunkBytes = 8 * 1024;
constexpr size_t kMaxRequestLineBytes = 8 * 1024;
// How long, and how much, a closing connection keeps reading so the client sees our answer.
constexpr std::chrono::milliseconds kLingerTimeout{1000};
constexpr size_t kMaxLingerBytes = 1 << 20;
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};
// Connections being turned away with 503 at once; beyond this they are closed without an answer.
constexpr int kMaxRejecting = 64;

class Connection;

// State shared by the server, its listener, connections and Responders. Thread-safe.
struct Core {
  Core(HttpServerOptions opts, Handler h)
      : options(std::move(opts)), handler(std::move(h)), ioc(options.threads) {}

  bool IsStopping() const { return stopping.load(std::memory_order_acquire); }

  const HttpServerOptions options;
  const Handler handler;
  net::io_context ioc;
  std::atomic<int> open_connections{0};
  std::atomic<int> rejecting_connections{0};
  std::atomic<bool> stopping{false};  // mirrors `stopped` for lock-free reads on hot paths
  std::shared_mutex mu;
  bool stopped = false;                                                          // GUARDED_BY(mu)
  std::unordered_map<const Connection*, std::weak_ptr<Connection>> connections;  // GUARDED_BY(mu)

  // Counts a connection from `address`; false (and nothing counted) when it has its maximum.
  bool AcquireAddress(const std::string& address) {
    std::lock_guard lock(address_mu);
    int& open = per_address[address];
    if (open >= options.max_connections_per_address) {
      if (open == 0) {
        per_address.erase(address);
      }
      return false;
    }
    ++open;
    return true;
  }
  void ReleaseAddress(const std::string& address) {
    std::lock_guard lock(address_mu);
    auto it = per_address.find(address);
    if (it != per_address.end() && --it->second <= 0) {
      per_address.erase(it);
    }
  }
  std::mutex address_mu;
  std::unordered_map<std::string, int> per_address;  // GUARDED_BY(address_mu)
};

template <class Fields>
void SetCommonHeaders(Fields& fields, const std::string& content_type,
                      const std::vector<std::pair<std::string, std::string>>& extra) {
  fields.set(http::field::server, "gpuorch");
  if (internal::IsSafeHeaderValue(content_type)) {
    if (!content_type.empty()) {
      fields.set(http::field::content_type, content_type);
    }
  } else {
    spdlog::warn("http: dropped an unsafe Content-Type");
  }
  fields.set("X-Content-Type-Options", "nosniff");
  fields.set("X-Frame-Options", "DENY");
  fields.set(http::field::cache_control, "no-store");
  fields.set("Referrer-Policy", "no-referrer");
  for (const auto& [name, value] : extra) {
    if (!internal::IsValidHeaderName(name) || !internal::IsSafeHeaderValue(value) ||
        internal::IsReservedResponseHeader(name)) {
      spdlog::warn("http: dropped response header '{}'", core::SanitizeForLog(name, 64));
      continue;
    }
    fields.insert(name, value);
  }
}

// A status a handler may answer with; anything else becomes 500.
unsigned ValidStatus(int status) {
  if (status < 200 || status > 599) {
    spdlog::error("http: handler answered with invalid status {}; sending 500", status);
    return 500;
  }
  return static_cast<unsigned>(status);
}

bool IsBodylessStatus(unsigned status) { return status == 204 || status == 304; }

// One accepted socket. Every member function but PostResponse() runs on the connection's strand.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `counted_address`: the client address this connection is counted under (empty: none).
  Connection(std::shared_ptr<Core> core, tcp::socket socket, std::atomic<int>* slot,
             std::string counted_address)
      : core_(std::move(core)),
        socket_(std::move(socket)),
        executor_(socket_.get_executor()),
        deadline_(executor_),
        poll_timer_(executor_),
        slot_(slot),
        counted_address_(std::move(counted_address)) {}

  ~Connection() {
    ReleaseSlot();
    if (!counted_address_.empty()) {
      core_->ReleaseAddress(counted_address_);
    }
    std::unique_lock lock(core_->mu);
    core_->connections.erase(this);
  }

  const net::any_io_executor& executor() const { return executor_; }

  // Registers with the Core and reads the first request (or, when `reject`, answers 503).
  void Start(bool reject) {
    if (!Register()) {
      Close();
      return;
    }
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) {
      remote_address_ = endpoint.address().to_string();
    }
    if (reject) {
      SendError(503, "unavailable", "too many connections");
      return;
    }
    BeginRequest(/*after_response=*/false);
  }

  void Close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    DisarmDeadline();
    poll_timer_.cancel();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    stream_.reset();
    ReleaseSlot();
  }

  // Any thread. Answers request `seq` unless it was answered already or the server is stopping.
  void PostResponse(uint64_t seq, HttpResponse response) {
    if (!Claim(seq)) {
      spdlog::warn("http: a Responder was called more than once; the extra response is dropped");
      return;
    }
    std::shared_lock lock(core_->mu);
    if (core_->stopped) {
      return;
    }
    net::post(executor_, [self = shared_from_this(), response = std::move(response)]() mutable {
      self->WriteResponse(std::move(response));
    });
  }

 private:
  bool Register() {
    std::unique_lock lock(core_->mu);
    if (core_->stopped) {
      return false;
    }
    core_->connections.emplace(this, weak_from_this());
    return true;
  }

  void ReleaseSlot() {
    if (slot_ != nullptr) {
      slot_->fetch_sub(1, std::memory_order_relaxed);
      slot_ = nullptr;
    }
  }

  // True for the first claim of `seq`, the number of the request now awaiting its answer.
  bool Claim(uint64_t seq) {
    uint64_t expected = seq - 1;
    return answered_.compare_exchange_strong(expected, seq, std::memory_order_acq_rel);
  }

  void ArmDeadline(std::chrono::milliseconds timeout) {
    uint64_t generation = ++deadline_generation_;
    deadline_.expires_after(timeout);
    deadline_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
      if (!ec && generation == self->deadline_generation_) {
        self->Close();
      }
    });
  }

  void DisarmDeadline() {
    ++deadline_generation_;
    deadline_.cancel();
  }

  void BeginRequest(bool after_response) {
    const auto& options = core_->options;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser_->body_limit(options.max_body_bytes);
    scanner_.emplace(options.max_header_bytes, kMaxRequestLineBytes);
    version_ = 11;
    head_request_ = false;
    keep_alive_ = true;
    if (buffer_.size() > 0) {  // a pipelined request is already here
      ArmDeadline(options.header_timeout);
      OnHeadBytes();
      return;
    }
    awaiting_first_byte_ = after_response;
    ArmDeadline(after_response ? options.idle_timeout : options.header_timeout);
    ReadHeadSome();
  }

  void ReadHeadSome() {
    socket_.async_read_some(
        buffer_.prepare(kReadChunkBytes),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnHeadRead(ec, n); });
  }

  void OnHeadRead(beast::error_code ec, size_t n) {
    if (ec) {  // the peer left, or the deadline closed the socket
      Close();
      return;
    }
    buffer_.commit(n);
    if (awaiting_first_byte_) {
      awaiting_first_byte_ = false;
      ArmDeadline(core_->options.header_timeout);
    }
    OnHeadBytes();
  }

  void OnHeadBytes() {
    auto data = buffer_.data();
    std::string_view bytes(static_cast<const char*>(data.data()), data.size());
    switch (scanner_->Scan(bytes)) {
      case internal::HeadScanner::Progress::kNeedMore:
        ReadHeadSome();
        return;
      case internal::HeadScanner::Progress::kRejected: {
        const auto& rejection = scanner_->rejection();
        SendError(rejection.status, rejection.reason, rejection.message);
        return;
      }
      case internal::HeadScanner::Progress::kComplete:
        break;
    }
    ParseHead(bytes.substr(0, scanner_->head_bytes()));
  }

  void ParseHead(std::string_view head) {
    beast::error_code ec;
    size_t used = parser_->put(net::buffer(head.data(), head.size()), ec);
    if (!ec && (!parser_->is_header_done() || used != head.size())) {
      ec = http::error::bad_value;  // cannot happen after the scan; refuse rather than guess
    }
    if (ec == http::error::header_limit) {
      SendError(431, "headers_too_large", "the request headers are too large");
      return;
    }
    if (ec == http::error::body_limit) {
      SendError(413, "body_too_large", "the request body is too large");
      return;
    }
    if (ec) {
      SendError(400, "bad_request", "malformed request: " + ec.message());
      return;
    }
    buffer_.consume(used);
    const auto& request = parser_->get();
    version_ = request.version();
    if (version_ != 10 && version_ != 11) {
      SendError(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
      return;
    }
    int hosts = scanner_->host_count();
    if (hosts > 1 || (version_ == 11 && hosts == 0)) {
      SendError(400, "bad_request", "exactly one Host header is required");
      return;
    }
    auto length = parser_->content_length();
    if (length && *length > core_->options.max_body_bytes) {
      SendError(413, "body_too_large", "the request body is too large");
      return;
    }
    auto target = internal::DecodeTarget(request.target());
    if (!target) {
      SendError(400, "bad_request", target.error().message);
      return;
    }
    target_ = std::move(*target);
    if (parser_->is_done()) {
      Dispatch();
      return;
    }
    if (version_ == 11 && beast::iequals(request[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      ArmDeadline(core_->options.body_timeout);
      net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) {
                           self->Close();
                           return;
                         }
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    ArmDeadline(core_->options.body_timeout);
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (!ec) {
      Dispatch();
    } else if (ec == http::error::body_limit) {
      SendError(413, "body_too_large", "the request body is too large");
    } else if (ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
               ec != http::error::partial_message && ec != http::error::end_of_stream) {
      SendError(400, "bad_request", "malformed request body: " + ec.message());
    } else {
      Close();
    }
  }

  void Dispatch() {
    DisarmDeadline();  // the handler may take its time; the client waits
    auto message = parser_->release();
    parser_.reset();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    request.path = std::move(target_.path);
    request.query = std::move(target_.query);
    for (const auto& field : message) {
      request.headers.emplace_back(internal::AsciiLower(field.name_string()),
                                   std::string(field.value()));
    }
    request.body = std::move(message.body());
    request.remote_address = remote_address_;
    keep_alive_ = message.keep_alive();
    head_request_ = message.method() == http::verb::head;
    const uint64_t seq = ++request_seq_;
    if (core_->IsStopping()) {
      Close();
      return;
    }
    std::string method = request.method;
    std::string path = request.path;
    Responder responder = [self = shared_from_this(), seq](HttpResponse response) {
      self->PostResponse(seq, std::move(response));
    };
    try {
      core_->handler(std::move(request), std::move(responder));
    } catch (const std::exception& e) {
      spdlog::error("http: handler for {} {} threw: {}", core::SanitizeForLog(method, 16),
                    core::SanitizeForLog(path), core::SanitizeForLog(e.what()));
      AnswerInternalError(seq);
    } catch (...) {
      spdlog::error("http: handler for {} {} threw a non-standard exception",
                    core::SanitizeForLog(method, 16), core::SanitizeForLog(path));
      AnswerInternalError(seq);
    }
  }

  void AnswerInternalError(uint64_t seq) {
    if (Claim(seq)) {
      WriteResponse(
          HttpResponse{.status = 500, .body = ErrorBody("internal", "internal server error", "")});
    }
  }

  // Answers a request the server refuses by itself, then closes the connection.
  void SendError(int status, std::string_view reason, std::string_view message) {
    keep_alive_ = false;
    head_request_ = false;
    WriteResponse(HttpResponse{.status = status, .body = ErrorBody(reason, message, "")});
  }

  void WriteResponse(HttpResponse response) {
    if (closed_) {
      return;  // the client went away while the handler worked
    }
    if (core_->IsStopping()) {
      keep_alive_ = false;
    }
    if (response.stream) {
      StartStream(std::move(response));
      return;
    }
    unsigned status = ValidStatus(response.status);
    auto& res = response_.emplace(static_cast<http::status>(status), version_);
    SetCommonHeaders(res, response.content_type, response.headers);
    res.keep_alive(keep_alive_);
    if (!IsBodylessStatus(status)) {
      res.body() = std::move(response.body);
      res.prepare_payload();
      if (head_request_) {
        res.body().clear();  // Content-Length still tells the size a GET would get
      }
    }
    ArmDeadline(core_->options.body_timeout);
    http::async_write(socket_, res, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->response_.reset();
      if (ec) {
        self->Close();
        return;
      }
      self->OnResponseDone();
    });
  }

  void OnResponseDone() {
    stream_.reset();
    if (!keep_alive_ || core_->IsStopping()) {
      CloseGracefully();
      return;
    }
    BeginRequest(/*after_response=*/true);
  }

  void StartStream(HttpResponse response) {
    stream_ = std::move(response.stream);
    auto& header =
        stream_header_.emplace(static_cast<http::status>(ValidStatus(response.status)), version_);
    SetCommonHeaders(header, response.content_type, response.headers);
    chunked_ = version_ >= 11;
    if (chunked_) {
      header.chunked(true);
    } else {
      keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
    }
    header.keep_alive(keep_alive_);
    auto& serializer = stream_serializer_.emplace(header);
    ArmDeadline(core_->options.body_timeout);
    http::async_write_header(socket_, serializer,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->stream_serializer_.reset();
                               self->stream_header_.reset();
                               if (ec) {
                                 self->Close();
                                 return;
                               }
                               if (self->head_request_) {
                                 self->OnResponseDone();
                                 return;
                               }
                               self->PumpStream();
                             });
  }

  void PumpStream() {
    if (closed_) {
      return;
    }
    if (core_->IsStopping()) {
      Close();
      return;
    }
    BodyStream::Chunk chunk;
    try {
      chunk = stream_->Next();
    } catch (const std::exception& e) {
      spdlog::error("http: body stream threw: {}", core::SanitizeForLog(e.what()));
      Close();  // the header is out; cutting the connection tells the client the body is broken
      return;
    } catch (...) {
      spdlog::error("http: body stream threw a non-standard exception");
      Close();
      return;
    }
    if (chunk.data.empty() && !chunk.done) {
      WaitForStream();
      return;
    }
    stream_out_.clear();
    if (chunk.data.empty()) {
      // only the end
    } else if (chunked_) {
      char size[20];
      int len = std::snprintf(size, sizeof(size), "%zx\r\n", chunk.data.size());
      stream_out_.append(size, static_cast<size_t>(len)).append(chunk.data).append("\r\n");
    } else {
      stream_out_ = std::move(chunk.data);
    }
    if (chunk.done && chunked_) {
      stream_out_ += "0\r\n\r\n";
    }
    const bool done = chunk.done;
    ArmDeadline(core_->options.body_timeout);
    net::async_write(socket_, net::buffer(stream_out_),
                     [self = shared_from_this(), done](beast::error_code ec, size_t) {
                       if (ec) {
                         self->Close();
                       } else if (done) {
                         self->OnResponseDone();
                       } else {
                         self->PumpStream();
                       }
                     });
  }

  void WaitForStream() {
    DisarmDeadline();
    if (!IsPeerConnected()) {
      Close();
      return;
    }
    poll_timer_.expires_after(core_->options.stream_poll_interval);
    poll_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) {
        self->PumpStream();
      }
    });
  }

  // Peeks without consuming: false once the peer has closed or reset the connection.
  bool IsPeerConnected() {
    char byte;
    ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
      return false;
    }
    return n > 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }

  // Half-closes, then reads and discards for a moment so that unread request bytes do not make the
  // kernel reset the connection before the client has read our answer.
  void CloseGracefully() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      Close();
      return;
    }
    buffer_.clear();
    lingered_bytes_ = 0;
    ArmDeadline(kLingerTimeout);
    Linger();
  }

  void Linger() {
    socket_.async_read_some(buffer_.prepare(kReadChunkBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_bytes_ += n;
                              if (ec || self->lingered_bytes_ > kMaxLingerBytes) {
                                self->Close();
                                return;
                              }
                              self->Linger();
                            });
  }

  std::shared_ptr<Core> core_;
  tcp::socket socket_;
  const net::any_io_executor executor_;
  net::steady_timer deadline_;
  net::steady_timer poll_timer_;
  std::atomic<int>* slot_;  // the Core counter this connection holds a place in, until closed
  const std::string counted_address_;  // released from Core::per_address on destruction
  uint64_t deadline_generation_ = 0;
  bool closed_ = false;
  std::string remote_address_;
  beast::flat_buffer buffer_;
  std::optional<internal::HeadScanner> scanner_;
  std::optional<http::request_parser<http::string_body>> parser_;
  internal::DecodedTarget target_;
  bool awaiting_first_byte_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  uint64_t request_seq_ = 0;
  std::atomic<uint64_t> answered_{0};  // the last request number claimed by a Responder
  std::optional<http::response<http::string_body>> response_;
  std::shared_ptr<BodyStream> stream_;
  std::optional<http::response<http::empty_body>> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  std::string stream_out_;
  bool chunked_ = true;
  size_t lingered_bytes_ = 0;
};

// Accepts connections on its own strand until closed.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  explicit Listener(std::shared_ptr<Core> core)
      : core_(std::move(core)),
        acceptor_(net::make_strand(core_->ioc)),
        retry_timer_(acceptor_.get_executor()) {}

  core::Status Bind(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    auto fail = [&](std::string_view what) {
      return core::Fail(core::Code::kUnavailable,
                        "http: " + std::string(what) + " " + endpoint.address().to_string() + ":" +
                            std::to_string(endpoint.port()) + ": " + ec.message());
    };
    if (acceptor_.open(endpoint.protocol(), ec); ec) {
      return fail("open");
    }
    if (acceptor_.set_option(net::socket_base::reuse_address(true), ec); ec) {
      return fail("set SO_REUSEADDR on");
    }
    if (acceptor_.bind(endpoint, ec); ec) {
      return fail("bind");
    }
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) {
      return fail("listen on");
    }
    port_ = acceptor_.local_endpoint(ec).port();
    return core::Ok();
  }

  uint16_t port() const { return port_; }
  net::any_io_executor executor() { return acceptor_.get_executor(); }

  void Accept() {
    acceptor_.async_accept(net::make_strand(core_->ioc),
                           [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                             self->OnAccept(ec, std::move(socket));
                           });
  }

  void Close() {
    beast::error_code ec;
    retry_timer_.cancel();
    acceptor_.close(ec);
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (core_->IsStopping() || ec == net::error::operation_aborted) {
      return;
    }
    if (ec) {  // e.g. out of file descriptors: back off instead of spinning
      spdlog::warn("http: accept failed: {}", ec.message());
      retry_timer_.expires_after(kAcceptRetryDelay);
      retry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec && !self->core_->IsStopping()) {
          self->Accept();
        }
      });
      return;
    }
    Admit(std::move(socket));
    Accept();
  }

  void Admit(tcp::socket socket) {
    std::atomic<int>* slot = &core_->open_connections;
    bool reject = false;
    beast::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    std::string address = ec ? std::string() : endpoint.address().to_string();
    const bool address_full = !address.empty() && !core_->AcquireAddress(address);
    if (address_full) {
      address.clear();  // not counted
    }
    if (address_full ||
        slot->fetch_add(1, std::memory_order_relaxed) >= core_->options.max_connections) {
      if (!address_full) {
        slot->fetch_sub(1, std::memory_order_relaxed);
      }
      if (!address.empty()) {
        core_->ReleaseAddress(address);
        address.clear();
      }
      slot = &core_->rejecting_connections;
      reject = true;
      if (slot->fetch_add(1, std::memory_order_relaxed) >= kMaxRejecting) {
        slot->fetch_sub(1, std::memory_order_relaxed);
        return;  // `socket` closes on destruction
      }
    }
    auto connection =
        std::make_shared<Connection>(core_, std::move(socket), slot, std::move(address));
    net::dispatch(connection->executor(), [connection, reject] { connection->Start(reject); });
  }

  std::shared_ptr<Core> core_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  uint16_t port_ = 0;
};

class BeastHttpServer final : public HttpServer {
 public:
  BeastHttpServer(std::shared_ptr<Core> core, std::shared_ptr<Listener> listener)
      : core_(std::move(core)), listener_(std::move(listener)), port_(listener_->port()) {}

  ~BeastHttpServer() override { Stop(); }

  uint16_t port() const override { return port_; }

  void StartThreads() {
    listener_->Accept();
    for (int i = 0; i < core_->options.threads; ++i) {
      threads_.emplace_back([core = core_] { RunLoop(*core); });
    }
  }

  // REQUIRES: not called from a handler (it joins the I/O threads).
  void Stop() override {
    std::lock_guard stop_lock(stop_mu_);
    if (threads_.empty()) {
      return;
    }
    std::vector<std::weak_ptr<Connection>> connections;
    {
      std::unique_lock lock(core_->mu);
      core_->stopped = true;
      core_->stopping.store(true, std::memory_order_release);
      connections.reserve(core_->connections.size());
      for (const auto& [ptr, weak] : core_->connections) {
        connections.push_back(weak);
      }
    }
    net::post(listener_->executor(), [listener = listener_] { listener->Close(); });
    for (const auto& weak : connections) {
      if (auto connection = weak.lock()) {
        net::post(connection->executor(), [connection] { connection->Close(); });
      }
    }
    for (auto& thread : threads_) {
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();  // misuse from a handler: do not deadlock on ourselves
      } else {
        thread.join();
      }
    }
    threads_.clear();
  }

 private:
  static void RunLoop(Core& core) {
    for (;;) {
      try {
        core.ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: I/O thread caught: {}", core::SanitizeForLog(e.what()));
      } catch (...) {
        spdlog::error("http: I/O thread caught a non-standard exception");
      }
    }
  }

  std::shared_ptr<Core> core_;
  std::shared_ptr<Listener> listener_;
  uint16_t port_;
  std::mutex stop_mu_;
  std::vector<std::thread> threads_;  // GUARDED_BY(stop_mu_)
};

core::Result<tcp::endpoint> ResolveEndpoint(net::io_context& ioc,
                                            const HttpServerOptions& options) {
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (!ec) {
    return tcp::endpoint(address, options.port);
  }
  tcp::resolver resolver(ioc);
  auto results =
      resolver.resolve(options.host, std::to_string(options.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return core::Fail(core::Code::kUnavailable,
                      "http: cannot resolve host '" + core::SanitizeForLog(options.host, 64) +
                          "': " + ec.message(),
                      "host");
  }
  return results.begin()->endpoint();
}

}  // namespace

core::Result<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options,
                                                          Handler handler) {
  GPUORCH_TRY(internal::ValidateOptions(options, static_cast<bool>(handler)));
  try {
    auto core = std::make_shared<Core>(options, std::move(handler));
    GPUORCH_ASSIGN_OR_RETURN(auto endpoint, ResolveEndpoint(core->ioc, options));
    auto listener = std::make_shared<Listener>(core);
    GPUORCH_TRY(listener->Bind(endpoint));
    auto server = std::make_unique<BeastHttpServer>(core, listener);
    server->StartThreads();
    spdlog::info("http: listening on {}:{}", endpoint.address().to_string(), server->port());
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {  // Asio reports resource exhaustion by throwing
    return core::Fail(core::Code::kUnavailable,
                      std::string("http: cannot start the server: ") + e.what());
  }
}

}  // namespace gpuorch::api
