// gpuctl's error vocabulary: how local failures (bad flags, unreadable spec files, an unreachable
// server) and server error answers become `core::Error` values, how they are shown to users, and
// which process exit code each one maps to.
//
// Exit codes (the CLI's contract with scripts):
//   0  success
//   1  the server answered 4xx/5xx (other than 404)
//   2  usage error: bad flags, unreadable or unparseable spec file
//   3  the server answered 404 (unknown job, instance or route)
//   4  no answer from the server: cannot connect, or the request timed out
// Thread-safe: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace gpuorch::gpuctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitUnreachable = 4;

// Reasons of errors that gpuctl raises itself (server errors carry the server's own `code`).
inline constexpr std::string_view kReasonUsage = "usage_error";
inline constexpr std::string_view kReasonConnect = "connection_failed";
inline constexpr std::string_view kReasonTimeout = "timeout";

// A usage error (exit 2) about `field` (a flag or a spec path; may be empty).
core::Error UsageError(std::string message, std::string field = {});

// The canonical code for an HTTP error status, e.g. 404 -> kNotFound, 503 -> kUnavailable.
core::Code CodeFromHttpStatus(long http_status);

// The error for a 4xx/5xx answer. Parses the API's `{"error":{"code","message","field"}}` body;
// any other body (HTML from a proxy, plain text) becomes "HTTP <status>: <start of body>" with
// reason "http_<status>". REQUIRES: http_status >= 400.
core::Error ErrorFromHttpResponse(long http_status, std::string_view body);

// The one-line form users see on stderr: `error: <message> (field: <field>) [<reason>]`, the
// field part only when the error names a field.
std::string FormatError(const core::Error& error);

// The process exit code for `error` (see the table above).
int ExitCodeFor(const core::Error& error);

}  // namespace gpuorch::gpuctl
