#include "apps/gpuctl/errors.h"

#include <nlohmann/json.hpp>

namespace gpuorch::gpuctl {
namespace {

constexpr size_t kMaxRawBodyChars = 200;

// Collapses a raw (non-JSON) body to one short line so it fits in an error message.
std::string OneLine(std::string_view body) {
  std::string out;
  for (char c : body) {
    if (out.size() >= kMaxRawBodyChars) {
      out += "...";
      break;
    }
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') {
    out.pop_back();
  }
  return out;
}

std::string StringOrEmpty(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return {};
  }
  return it->get<std::string>();
}

}  // namespace

core::Error UsageError(std::string message, std::string field) {
  return core::Error{core::Code::kInvalidArgument, std::move(message), std::move(field),
                     std::string(kReasonUsage)};
}

core::Code CodeFromHttpStatus(long http_status) {
  switch (http_status) {
    case 400:
      return core::Code::kInvalidArgument;
    case 401:
      return core::Code::kUnauthenticated;
    case 403:
      return core::Code::kPermissionDenied;
    case 404:
      return core::Code::kNotFound;
    case 405:
      return core::Code::kUnimplemented;
    case 409:
      return core::Code::kFailedPrecondition;
    case 413:
      return core::Code::kResourceExhausted;
    case 415:
      return core::Code::kInvalidArgument;
    case 422:
      return core::Code::kInvalidArgument;
    case 429:
      return core::Code::kResourceExhausted;
    case 501:
      return core::Code::kUnimplemented;
    case 503:
      return core::Code::kUnavailable;
    case 504:
      return core::Code::kDeadlineExceeded;
    default:
      return http_status < 500 ? core::Code::kInvalidArgument : core::Code::kInternal;
  }
}

core::Error ErrorFromHttpResponse(long http_status, std::string_view body) {
  core::Error error{.code = CodeFromHttpStatus(http_status)};
  // nlohmann::json throws on malformed input; the non-throwing overload yields a discarded value.
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const auto& e = parsed["error"];
    error.message = StringOrEmpty(e, "message");
    error.field = StringOrEmpty(e, "field");
    error.reason = StringOrEmpty(e, "code");
  }
  if (error.reason.empty()) {
    error.reason = "http_" + std::to_string(http_status);
  }
  if (error.message.empty()) {
    std::string raw = OneLine(body);
    error.message = "HTTP " + std::to_string(http_status) + (raw.empty() ? "" : ": " + raw);
  }
  return error;
}

std::string FormatError(const core::Error& error) {
  std::string out = "error: " + error.message;
  if (!error.field.empty()) {
    out += " (field: " + error.field + ")";
  }
  out += " [" + error.ReasonOrDefault() + "]";
  return out;
}

int ExitCodeFor(const core::Error& error) {
  // gpuctl's own reasons first: a local "file not found" is a usage error, not a 404.
  if (error.reason == kReasonUsage) {
    return kExitUsage;
  }
  if (error.reason == kReasonConnect || error.reason == kReasonTimeout) {
    return kExitUnreachable;
  }
  if (error.code == core::Code::kNotFound) {
    return kExitNotFound;
  }
  return kExitServerError;
}

}  // namespace gpuorch::gpuctl
