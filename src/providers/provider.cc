#include "providers/provider.h"

#include <array>

namespace gpuorch::providers {
namespace {

constexpr std::array<std::pair<ProviderCause, std::string_view>, 7> kCauses = {{
    {ProviderCause::kNoCapacity, "no_capacity"},
    {ProviderCause::kQuota, "quota"},
    {ProviderCause::kAuth, "auth"},
    {ProviderCause::kBadRequest, "bad_request"},
    {ProviderCause::kRateLimited, "rate_limited"},
    {ProviderCause::kTransient, "transient"},
    {ProviderCause::kUnknown, "unknown"},
}};

}  // namespace

std::string_view ToString(ProviderCause cause) {
  for (const auto& [c, name] : kCauses) {
    if (c == cause) {
      return name;
    }
  }
  return "unknown";
}

ProviderCause CauseOf(const core::Error& error) {
  for (const auto& [c, name] : kCauses) {
    if (error.reason == name) {
      return c;
    }
  }
  return ProviderCause::kUnknown;
}

core::Error ProviderError(ProviderCause cause, std::string message) {
  core::Code code = core::Code::kInternal;
  switch (cause) {
    case ProviderCause::kNoCapacity:
    case ProviderCause::kQuota:
      code = core::Code::kResourceExhausted;
      break;
    case ProviderCause::kAuth:
      code = core::Code::kUnauthenticated;
      break;
    case ProviderCause::kBadRequest:
      code = core::Code::kInvalidArgument;
      break;
    case ProviderCause::kRateLimited:
    case ProviderCause::kTransient:
      code = core::Code::kUnavailable;
      break;
    case ProviderCause::kUnknown:
      code = core::Code::kInternal;
      break;
  }
  return core::Error{code, std::move(message), "", std::string(ToString(cause))};
}

bool IsRetryable(ProviderCause cause) {
  return cause == ProviderCause::kRateLimited || cause == ProviderCause::kTransient;
}

std::string_view ToString(ProviderInstanceStatus status) {
  switch (status) {
    case ProviderInstanceStatus::kPending:
      return "pending";
    case ProviderInstanceStatus::kRunning:
      return "running";
    case ProviderInstanceStatus::kStopped:
      return "stopped";
    case ProviderInstanceStatus::kTerminated:
      return "terminated";
    case ProviderInstanceStatus::kInterrupted:
      return "interrupted";
    case ProviderInstanceStatus::kUnknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace gpuorch::providers
