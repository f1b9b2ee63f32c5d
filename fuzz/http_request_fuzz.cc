// Fuzzes the request path of src/api/http_server.cc without sockets: the raw bytes go through
// api::internal::HeadScanner (once whole, once arriving in two reads split where the first input
// byte says), then a complete and accepted head goes to a Beast request_parser set up as the server
// sets it up (header_limit = max_header_bytes, body_limit = max_body_bytes, not eager), then the
// server's checks after the head (version, Host count, Content-Length), DecodeTarget, and the body
// as http::async_read would feed it to the same parser.
//
// Input: byte 0 picks the split point (0..255 scaled to the rest); the rest is the byte stream a
// client sends.
//
// Invariants checked beyond "no crash, no sanitizer report":
// - the scanner's answer does not depend on how the bytes were split into reads (its contract: each
//   call gets the previous bytes as a prefix, and the answer is a function of the bytes);
// - a complete head is a prefix of the input that ends with CRLF CRLF, within max_header_bytes;
// - a rejection is a 4xx/5xx with a reason;
// - the parser takes exactly the scanned head and finishes its header (the server treats anything
//   else as "cannot happen");
// - a decoded path starts with '/' and has no NUL; a finished body is within body_limit and matches
//   Content-Length when one was given.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>

#include "api/http_server.h"
#include "api/internal/http_wire.h"
#include "fuzz_check.h"

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using gpuorch::api::internal::HeadScanner;

// As in http_server.cc.
constexpr size_t kMaxRequestLineBytes = 8 * 1024;
const gpuorch::api::HttpServerOptions kOptions;

struct ScanResult {
  HeadScanner::Progress progress;
  size_t head_bytes = 0;
  int host_count = 0;
  gpuorch::api::internal::HeadRejection rejection;
};

ScanResult Finish(const HeadScanner& scanner, HeadScanner::Progress progress) {
  ScanResult result{.progress = progress};
  if (progress == HeadScanner::Progress::kComplete) {
    result.head_bytes = scanner.head_bytes();
    result.host_count = scanner.host_count();
  } else if (progress == HeadScanner::Progress::kRejected) {
    result.rejection = scanner.rejection();
  }
  return result;
}

ScanResult ScanWhole(std::string_view bytes) {
  HeadScanner scanner(kOptions.max_header_bytes, kMaxRequestLineBytes);
  return Finish(scanner, scanner.Scan(bytes));
}

ScanResult ScanSplit(std::string_view bytes, size_t split) {
  HeadScanner scanner(kOptions.max_header_bytes, kMaxRequestLineBytes);
  HeadScanner::Progress progress = scanner.Scan(bytes.substr(0, split));
  HeadScanner::Progress again = scanner.Scan(bytes);
  if (progress != HeadScanner::Progress::kNeedMore) {
    FUZZ_CHECK(again == progress);  // a final answer sticks
  }
  return Finish(scanner, again);
}

void CheckSameAnswer(const ScanResult& whole, const ScanResult& split) {
  FUZZ_CHECK(whole.progress == split.progress);
  FUZZ_CHECK(whole.head_bytes == split.head_bytes);
  FUZZ_CHECK(whole.host_count == split.host_count);
  FUZZ_CHECK(whole.rejection.status == split.rejection.status);
  FUZZ_CHECK(whole.rejection.reason == split.rejection.reason);
}

// The body phase: http::async_read puts whatever arrives into the parser until it is done.
void ParseBody(http::request_parser<http::string_body>& parser, std::string_view rest) {
  while (!parser.is_done()) {
    beast::error_code ec;
    size_t used = parser.put(net::buffer(rest.data(), rest.size()), ec);
    FUZZ_CHECK(used <= rest.size());
    rest.remove_prefix(used);
    if (ec == http::error::need_more || ec) {
      return;
    }
    if (used == 0) {
      return;
    }
  }
  const auto& request = parser.get();
  FUZZ_CHECK(request.body().size() <= kOptions.max_body_bytes);
  if (auto length = parser.content_length(); length) {
    FUZZ_CHECK(request.body().size() == *length);
  }
}

// ParseHead() and what follows it in http_server.cc.
void ParseRequest(std::string_view head, std::string_view rest, int host_count) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kOptions.max_header_bytes));
  parser.body_limit(kOptions.max_body_bytes);
  beast::error_code ec;
  size_t used = parser.put(net::buffer(head.data(), head.size()), ec);
  if (ec) {
    return;  // 431, 413 or 400
  }
  FUZZ_CHECK(parser.is_header_done());
  FUZZ_CHECK(used == head.size());
  const auto& request = parser.get();
  const unsigned version = request.version();
  if (version != 10 && version != 11) {
    return;  // 505
  }
  if (host_count > 1 || (version == 11 && host_count == 0)) {
    return;  // 400
  }
  if (auto length = parser.content_length(); length && *length > kOptions.max_body_bytes) {
    return;  // 413
  }
  auto target = gpuorch::api::internal::DecodeTarget(request.target());
  if (!target) {
    FUZZ_CHECK(target.error().code == gpuorch::core::Code::kInvalidArgument);
    FUZZ_CHECK(!gpuorch::api::ErrorBody("bad_request", target.error().message, "").empty());
    return;
  }
  FUZZ_CHECK(!target->path.empty() && target->path.front() == '/');
  FUZZ_CHECK(target->path.find('\0') == std::string::npos);
  for (const auto& field : request) {
    FUZZ_CHECK(gpuorch::api::internal::AsciiLower(field.name_string()).size() ==
               field.name_string().size());
  }
  ParseBody(parser, rest);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t split = bytes.size() * data[0] / 255;

  const ScanResult whole = ScanWhole(bytes);
  CheckSameAnswer(whole, ScanSplit(bytes, split));

  switch (whole.progress) {
    case HeadScanner::Progress::kNeedMore:
      return 0;
    case HeadScanner::Progress::kRejected:
      FUZZ_CHECK(whole.rejection.status >= 400 && whole.rejection.status <= 599);
      FUZZ_CHECK(!whole.rejection.reason.empty());
      FUZZ_CHECK(
          !gpuorch::api::ErrorBody(whole.rejection.reason, whole.rejection.message, "").empty());
      return 0;
    case HeadScanner::Progress::kComplete:
      break;
  }
  FUZZ_CHECK(whole.head_bytes >= 4 && whole.head_bytes <= bytes.size());
  FUZZ_CHECK(whole.head_bytes <= kOptions.max_header_bytes);
  const std::string_view head = bytes.substr(0, whole.head_bytes);
  FUZZ_CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  ParseRequest(head, bytes.substr(whole.head_bytes), whole.host_count);
  return 0;
}
