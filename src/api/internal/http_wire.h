// Boost-free pieces of the HTTP server (src/api/http_server.cc), kept out of the one Beast
// translation unit: option validation, request-target decoding, response-header checks, and a raw
// pre-scan of the request head that enforces the framing rules on the exact bytes received,
// independently of how lenient the HTTP parser is (obs-fold, bare LF, NUL, request smuggling via
// Content-Length + Transfer-Encoding, unknown transfer codings). Internal to the api module.
// Thread-safe: pure functions; a HeadScanner is a value owned by one connection.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api/http_server.h"
#include "core/error.h"

namespace gpuorch::api::internal {

// kInvalidArgument (with the option's name as field) when `options` cannot work: threads or
// max_connections below 1, max_header_bytes outside [64, 2^30], a non-positive timeout or poll
// interval, or no handler.
[[nodiscard]] core::Status ValidateOptions(const HttpServerOptions& options, bool has_handler);

std::string AsciiLower(std::string_view s);

// A handler-supplied response header is used only when its name is an RFC 9110 token of at most
// 256 bytes and its value is at most 8 KiB with no control character but HT, so it can never split
// or forge headers.
bool IsValidHeaderName(std::string_view name);
bool IsSafeHeaderValue(std::string_view value);
// Framing, Server and security headers belong to the server; handlers cannot set or override them.
bool IsReservedResponseHeader(std::string_view name);

// Percent-decodes `in`; with `plus_as_space`, '+' becomes ' ' (form encoding, for queries).
// Returns nullopt on a truncated or non-hex escape ("%", "%4", "%zz").
std::optional<std::string> PercentDecode(std::string_view in, bool plus_as_space);

struct DecodedTarget {
  std::string path;                               // percent-decoded, '+' kept
  std::multimap<std::string, std::string> query;  // percent-decoded, '+' as space
};

// Splits an origin-form request target ("/a%20b?x=1&y") into a decoded path and query; a query
// parameter without '=' gets an empty value, empty '&&' segments are skipped. kInvalidArgument
// (reason "bad_request") when the target does not start with '/', an escape is invalid, or the path
// decodes to a NUL byte.
[[nodiscard]] core::Result<DecodedTarget> DecodeTarget(std::string_view target);

// Why a request head was refused: the HTTP status, the error reason slug and a message that never
// contains request bytes.
struct HeadRejection {
  int status = 400;
  std::string reason = "bad_request";
  std::string message;
};

// Scans the raw bytes of one request head (request line, header lines, empty line) as they arrive.
//
// Refuses with 400 a bare LF, a CR not followed by LF, a NUL, an empty request line, a header line
// without ':', an obs-fold continuation line, or Content-Length together with Transfer-Encoding;
// with 501 any Transfer-Encoding (all such headers joined) other than exactly "chunked"; with 414 a
// request line over `max_request_line_bytes`; with 431 a head over `max_head_bytes`.
class HeadScanner {
 public:
  enum class Progress { kNeedMore, kComplete, kRejected };

  HeadScanner(size_t max_head_bytes, size_t max_request_line_bytes);

  // Scans `buffered`, all bytes received since the head began; each call must pass the previous
  // call's bytes as a prefix (they are not rescanned). Once kComplete or kRejected, further calls
  // return the same answer.
  Progress Scan(std::string_view buffered);

  // Valid after kComplete: the length of the head including its final CRLF CRLF.
  size_t head_bytes() const { return head_bytes_; }
  // Valid after kComplete: how many Host header lines the head had.
  int host_count() const { return host_count_; }
  // Valid after kRejected.
  const HeadRejection& rejection() const { return rejection_; }

 private:
  Progress Reject(int status, std::string reason, std::string message);
  // Handles one line [begin, end) (without its CRLF); returns kNeedMore to continue.
  Progress OnLine(std::string_view line, size_t end_of_line);
  Progress OnHeadComplete();

  size_t max_head_bytes_;
  size_t max_request_line_bytes_;
  size_t pos_ = 0;         // next byte to scan
  size_t line_start_ = 0;  // offset of the current line
  int line_index_ = 0;
  Progress progress_ = Progress::kNeedMore;
  size_t head_bytes_ = 0;
  int host_count_ = 0;
  bool has_content_length_ = false;
  int transfer_encoding_count_ = 0;
  std::string transfer_encoding_;  // all Transfer-Encoding values joined with ", "
  HeadRejection rejection_;
};

}  // namespace gpuorch::api::internal
