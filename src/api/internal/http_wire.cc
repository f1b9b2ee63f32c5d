#include "api/internal/http_wire.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "api/http_server.h"

namespace gpuorch::api {

std::optional<std::string> HttpRequest::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::Query(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) {
    return std::nullopt;
  }
  return it->second;
}

// Defined here rather than in http_server.cc so that the Beast translation unit does not also
// compile nlohmann-json.
std::string ErrorBody(std::string_view reason, std::string_view message, std::string_view field) {
  nlohmann::json error = {{"code", reason}, {"message", message}};
  error["field"] = field.empty() ? nlohmann::json(nullptr) : nlohmann::json(field);
  // `replace` turns invalid UTF-8 into U+FFFD instead of throwing.
  return nlohmann::json{{"error", std::move(error)}}.dump(-1, ' ', false,
                                                          nlohmann::json::error_handler_t::replace);
}

namespace internal {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

char AsciiLowerChar(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return AsciiLowerChar(x) == AsciiLowerChar(y);
         });
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

constexpr size_t kMaxResponseHeaderNameBytes = 256;
// Beast throws on a field over 64 KiB; handler headers are refused well before that.
constexpr size_t kMaxResponseHeaderValueBytes = 8 * 1024;

bool IsTokenChar(char c) {
  static constexpr std::string_view kSeparators = "()<>@,;:\\\"/[]?={} \t";
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && kSeparators.find(c) == std::string_view::npos;
}

}  // namespace

core::Status ValidateOptions(const HttpServerOptions& options, bool has_handler) {
  auto invalid = [](std::string message, std::string field) {
    return core::Fail(core::Code::kInvalidArgument, "http: " + std::move(message),
                      std::move(field));
  };
  if (!has_handler) {
    return invalid("a handler is required", "handler");
  }
  if (options.threads < 1) {
    return invalid("threads must be at least 1", "threads");
  }
  if (options.max_connections_per_address < 1) {
    return invalid("max_connections_per_address must be at least 1",
                   "max_connections_per_address");
  }
  if (options.max_connections < 1) {
    return invalid("max_connections must be at least 1", "max_connections");
  }
  if (options.max_header_bytes < 64 || options.max_header_bytes > (size_t{1} << 30)) {
    return invalid("max_header_bytes must be in [64, 2^30]", "max_header_bytes");
  }
  if (options.header_timeout.count() <= 0 || options.body_timeout.count() <= 0 ||
      options.idle_timeout.count() <= 0 || options.stream_poll_interval.count() <= 0) {
    return invalid("timeouts and the stream poll interval must be positive", "timeouts");
  }
  return core::Ok();
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = AsciiLowerChar(c);
  }
  return out;
}

bool IsValidHeaderName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxResponseHeaderNameBytes &&
         std::all_of(name.begin(), name.end(), IsTokenChar);
}

bool IsSafeHeaderValue(std::string_view value) {
  return value.size() <= kMaxResponseHeaderValueBytes &&
         std::all_of(value.begin(), value.end(), [](char c) {
           auto u = static_cast<unsigned char>(c);
           return c == '\t' || (u >= 0x20 && u != 0x7f);
         });
}

bool IsReservedResponseHeader(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "content-length", "transfer-encoding", "connection",      "keep-alive",
      "upgrade",        "trailer",           "server",          "content-type",
      "cache-control",  "referrer-policy",   "x-frame-options", "x-content-type-options"};
  std::string lower = AsciiLower(name);
  return std::find(std::begin(kReserved), std::end(kReserved), lower) != std::end(kReserved);
}

std::optional<std::string> PercentDecode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) {
        return std::nullopt;
      }
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

core::Result<DecodedTarget> DecodeTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return core::Fail(core::Code::kInvalidArgument, "the request target must start with '/'", "",
                      "bad_request");
  }
  size_t question = target.find('?');
  std::string_view raw_path = target.substr(0, question);
  DecodedTarget decoded;
  auto path = PercentDecode(raw_path, /*plus_as_space=*/false);
  if (!path || path->find('\0') != std::string::npos) {
    return core::Fail(core::Code::kInvalidArgument, "invalid percent-encoding in the path", "",
                      "bad_request");
  }
  decoded.path = std::move(*path);
  if (question == std::string_view::npos) {
    return decoded;
  }
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq), /*plus_as_space=*/true);
    auto value = PercentDecode(
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value) {
      return core::Fail(core::Code::kInvalidArgument, "invalid percent-encoding in the query", "",
                        "bad_request");
    }
    decoded.query.emplace(std::move(*key), std::move(*value));
  }
  return decoded;
}

HeadScanner::HeadScanner(size_t max_head_bytes, size_t max_request_line_bytes)
    : max_head_bytes_(max_head_bytes), max_request_line_bytes_(max_request_line_bytes) {}

HeadScanner::Progress HeadScanner::Reject(int status, std::string reason, std::string message) {
  rejection_ = HeadRejection{status, std::move(reason), std::move(message)};
  progress_ = Progress::kRejected;
  return progress_;
}

HeadScanner::Progress HeadScanner::Scan(std::string_view buffered) {
  for (; progress_ == Progress::kNeedMore && pos_ < buffered.size(); ++pos_) {
    char c = buffered[pos_];
    if (line_index_ == 0 && pos_ - line_start_ > max_request_line_bytes_) {
      return Reject(414, "uri_too_long", "the request line is too long");
    }
    if (pos_ >= max_head_bytes_) {
      return Reject(431, "headers_too_large", "the request headers are too large");
    }
    if (c == '\0') {
      return Reject(400, "bad_request", "NUL byte in the request head");
    }
    if (c == '\r') {
      if (pos_ + 1 == buffered.size()) {
        break;  // the byte after this CR has not arrived: look at the CR again with it
      }
      if (buffered[pos_ + 1] != '\n') {
        return Reject(400, "bad_request", "CR without LF in the request head");
      }
    }
    if (c != '\n') {
      continue;
    }
    if (pos_ == line_start_ || buffered[pos_ - 1] != '\r') {
      return Reject(400, "bad_request", "bare LF in the request head");
    }
    std::string_view line = buffered.substr(line_start_, pos_ - 1 - line_start_);
    if (OnLine(line, pos_ + 1) != Progress::kNeedMore) {
      ++pos_;
      return progress_;
    }
    line_start_ = pos_ + 1;
    ++line_index_;
  }
  return progress_;
}

HeadScanner::Progress HeadScanner::OnLine(std::string_view line, size_t end_of_line) {
  if (line_index_ == 0) {
    if (line.empty()) {
      return Reject(400, "bad_request", "empty request line");
    }
    return Progress::kNeedMore;
  }
  if (line.empty()) {
    head_bytes_ = end_of_line;
    return OnHeadComplete();
  }
  if (line.front() == ' ' || line.front() == '\t') {
    return Reject(400, "bad_request", "obsolete header line folding is not accepted");
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return Reject(400, "bad_request", "malformed header line");
  }
  std::string_view name = line.substr(0, colon);
  if (EqualsIgnoreCase(name, "host")) {
    ++host_count_;
  } else if (EqualsIgnoreCase(name, "content-length")) {
    has_content_length_ = true;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    if (transfer_encoding_count_++ > 0) {
      transfer_encoding_ += ", ";
    }
    transfer_encoding_ += TrimSpaces(line.substr(colon + 1));
  }
  return Progress::kNeedMore;
}

HeadScanner::Progress HeadScanner::OnHeadComplete() {
  if (transfer_encoding_count_ > 0 && has_content_length_) {
    return Reject(400, "bad_request", "Content-Length and Transfer-Encoding must not be combined");
  }
  if (transfer_encoding_count_ > 0 && !EqualsIgnoreCase(transfer_encoding_, "chunked")) {
    return Reject(501, "not_implemented", "only the chunked transfer coding is supported");
  }
  progress_ = Progress::kComplete;
  return progress_;
}

}  // namespace internal
}  // namespace gpuorch::api
