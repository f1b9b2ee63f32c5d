#include "domain/instance.h"

#include <array>

namespace gpuorch::domain {
namespace {

constexpr std::array<std::pair<InstanceState, std::string_view>, 7> kNames = {{
    {InstanceState::kRequested, "requested"},
    {InstanceState::kProvisioning, "provisioning"},
    {InstanceState::kReady, "ready"},
    {InstanceState::kTerminating, "terminating"},
    {InstanceState::kTerminated, "terminated"},
    {InstanceState::kFailed, "failed"},
    {InstanceState::kLost, "lost"},
}};

}  // namespace

std::string_view ToString(InstanceState state) {
  for (const auto& [s, name] : kNames) {
    if (s == state) {
      return name;
    }
  }
  return "unknown";
}

std::optional<InstanceState> ParseInstanceState(std::string_view text) {
  for (const auto& [s, name] : kNames) {
    if (name == text) {
      return s;
    }
  }
  return std::nullopt;
}

bool IsTerminal(InstanceState state) {
  return state == InstanceState::kTerminated || state == InstanceState::kFailed ||
         state == InstanceState::kLost;
}

bool MayBeBilled(InstanceState state) { return !IsTerminal(state); }

bool CanTransition(InstanceState from, InstanceState to) {
  using S = InstanceState;
  switch (from) {
    case S::kRequested:
      return to == S::kProvisioning || to == S::kFailed || to == S::kTerminating;
    case S::kProvisioning:
      return to == S::kReady || to == S::kFailed || to == S::kTerminating || to == S::kLost;
    case S::kReady:
      return to == S::kTerminating || to == S::kLost;
    case S::kTerminating:
      return to == S::kTerminated || to == S::kLost;
    case S::kTerminated:
    case S::kFailed:
    case S::kLost:
      return false;
  }
  return false;
}

double InstanceCostUsd(const Instance& instance, core::SystemTime now) {
  if (!instance.billing_started_at) {
    return 0;
  }
  const core::SystemTime end = instance.billing_ended_at.value_or(now);
  if (end <= *instance.billing_started_at) {
    return 0;
  }
  const double seconds =
      std::chrono::duration<double>(end - *instance.billing_started_at).count();
  return instance.price_per_hour * seconds / 3600.0;
}

}  // namespace gpuorch::domain
