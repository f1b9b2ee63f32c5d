// Error values and results shared by every module.
//
// A fallible function returns `Result<T>` (or `Status` for no value). An `Error` carries a canonical
// `Code` (what kind of failure, drives retries and the HTTP status), a `reason` (a stable snake_case slug
// users and tests match on, e.g. "invalid_json"), a human `message`, and the offending `field` when the
// failure is about one input field (a JSON pointer-ish path such as "config.gpu_count").
// Thread-safe: plain values.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace gpuorch::core {

enum class Code {
  kInvalidArgument,     // the input is wrong; do not retry
  kNotFound,            // the named thing does not exist (or is not visible to the caller)
  kAlreadyExists,       // a create collided with an existing thing
  kFailedPrecondition,  // the system is not in a state that allows this; do not retry as is
  kAborted,             // a concurrent change won; retry the whole read-modify-write
  kUnavailable,         // transient; retry the call with backoff
  kResourceExhausted,   // a limit or quota was hit
  kDeadlineExceeded,    // a deadline passed
  kUnauthenticated,
  kPermissionDenied,
  kUnimplemented,
  kInternal,            // a bug or an unexpected failure of a dependency
};

std::string_view CodeName(Code code);

struct Error {
  Code code = Code::kInternal;
  std::string message;
  std::string field;
  std::string reason;  // empty: derived from `code` by ReasonOrDefault()

  // The reason slug to show users: `reason` when set, else a default per code.
  std::string ReasonOrDefault() const;
  // Prepends module context once per boundary: "store: insert job: <message>".
  Error WithContext(std::string_view context) const;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> Fail(Code code, std::string message, std::string field = {},
                                  std::string reason = {}) {
  return tl::unexpected<Error>(
      Error{code, std::move(message), std::move(field), std::move(reason)});
}
inline tl::unexpected<Error> Fail(Error error) { return tl::unexpected<Error>(std::move(error)); }
inline Status Ok() { return {}; }

}  // namespace gpuorch::core

#define GPUORCH_CONCAT_INNER_(a, b) a##b
#define GPUORCH_CONCAT_(a, b) GPUORCH_CONCAT_INNER_(a, b)

// Returns the error of `expr` (a Status or Result) from the enclosing function.
#define GPUORCH_TRY(expr)                                                \
  do {                                                                   \
    auto&& gpuorch_try_result_ = (expr);                                 \
    if (!gpuorch_try_result_) {                                          \
      return ::tl::unexpected<::gpuorch::core::Error>(                  \
          std::move(gpuorch_try_result_).error());                       \
    }                                                                    \
  } while (false)

#define GPUORCH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)                   \
  auto tmp = (expr);                                                     \
  if (!tmp) {                                                            \
    return ::tl::unexpected<::gpuorch::core::Error>(std::move(tmp).error()); \
  }                                                                      \
  lhs = std::move(*tmp)

// `GPUORCH_ASSIGN_OR_RETURN(auto job, store.GetJob(id));`
#define GPUORCH_ASSIGN_OR_RETURN(lhs, expr) \
  GPUORCH_ASSIGN_OR_RETURN_IMPL_(GPUORCH_CONCAT_(gpuorch_aor_, __LINE__), lhs, expr)
