// Builds the provider adapters from configuration: RunPod, Vast.ai and AWS EC2, each over its own
// HttpClient (so each has its own rate limit). A provider whose key is missing is still built, and
// answers Configured() == false: it is shown as not configured and never called.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "providers/provider.h"

namespace gpuorch::providers {

struct ProviderSettings {
  std::string deployment_id;
  // The providers' own variables (core::ProviderSettingKeys()): RUNPOD_API_KEY, RUNPOD_API_URL,
  // VAST_API_KEY, VAST_API_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
  // AWS_REGION, AWS_EC2_ENDPOINT, AWS_AMI_ID, RUNPOD_IMAGE, VAST_IMAGE. Unset ones take defaults.
  std::map<std::string, std::string> values;
};

// In the order runpod, vastai, aws. `clock` must outlive them.
std::vector<std::unique_ptr<Provider>> MakeProviders(const ProviderSettings& settings,
                                                     const core::Clock& clock);

}  // namespace gpuorch::providers
