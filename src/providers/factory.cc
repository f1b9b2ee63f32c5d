#include "providers/factory.h"

#include "providers/aws/ec2_provider.h"
#include "providers/http_client.h"
#include "providers/runpod/runpod_provider.h"
#include "providers/vastai/vastai_provider.h"

namespace gpuorch::providers {
namespace {

std::string Value(const ProviderSettings& settings, const std::string& key,
                  const std::string& fallback = "") {
  auto it = settings.values.find(key);
  return it == settings.values.end() || it->second.empty() ? fallback : it->second;
}

// Each provider's own limits, kept well under what its API allows (RunPod and Vast.ai throttle
// per key; EC2 throttles mutating calls hardest).
std::shared_ptr<HttpClient> Client(const core::Clock& clock, double per_second, int burst) {
  return MakeCurlHttpClient(
      clock, HttpClientOptions{.rate_limit_per_second = per_second, .rate_limit_burst = burst});
}

}  // namespace

std::vector<std::unique_ptr<Provider>> MakeProviders(const ProviderSettings& settings,
                                                     const core::Clock& clock) {
  std::vector<std::unique_ptr<Provider>> out;
  RunPodOptions runpod{.api_key = Value(settings, "RUNPOD_API_KEY"),
                       .deployment_id = settings.deployment_id};
  runpod.api_url = Value(settings, "RUNPOD_API_URL", runpod.api_url);
  runpod.default_image = Value(settings, "RUNPOD_IMAGE", runpod.default_image);
  out.push_back(MakeRunPodProvider(runpod, Client(clock, 10, 20), clock));

  VastAiOptions vast{.api_key = Value(settings, "VAST_API_KEY"),
                     .deployment_id = settings.deployment_id};
  vast.api_url = Value(settings, "VAST_API_URL", vast.api_url);
  vast.default_image = Value(settings, "VAST_IMAGE", vast.default_image);
  out.push_back(MakeVastAiProvider(vast, Client(clock, 5, 10), clock));

  AwsOptions aws{.access_key_id = Value(settings, "AWS_ACCESS_KEY_ID"),
                 .secret_access_key = Value(settings, "AWS_SECRET_ACCESS_KEY"),
                 .session_token = Value(settings, "AWS_SESSION_TOKEN"),
                 .deployment_id = settings.deployment_id,
                 .ami_id = Value(settings, "AWS_AMI_ID")};
  aws.region = Value(settings, "AWS_REGION", aws.region);
  aws.endpoint = Value(settings, "AWS_EC2_ENDPOINT");
  out.push_back(MakeEc2Provider(aws, Client(clock, 10, 20), clock));
  return out;
}

}  // namespace gpuorch::providers
