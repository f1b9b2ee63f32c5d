// One interface over every cloud that rents us GPUs (RunPod, Vast.ai, AWS EC2). Adapters speak the
// provider's real wire protocol over the shared HttpClient; see ../shared/providers/ for each one.
//
// Ownership: every instance we create carries our instance id and our deployment id where the
// provider keeps them (EC2 tags, Vast.ai label, RunPod pod name and env), so ListOurs() finds our
// instances even after our own records are lost, and never another deployment's.
//
// Errors: every failure is a core::Error whose `reason` is one of the ProviderCause slugs below, so
// the provisioner decides by cause (retry, next offer, or fail with a message users understand).
// Messages never contain keys or tokens.
//
// Implementations are thread-safe; every call may block on the network (bounded by the client's
// timeouts and retries).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "domain/instance.h"

namespace gpuorch::providers {

enum class ProviderCause {
  kNoCapacity,   // the offer is gone or out of stock: try the next offer
  kQuota,        // an account limit (vCPU quota, max instances, balance): try another provider
  kAuth,         // key missing, wrong or not allowed: the provider is unusable until fixed
  kBadRequest,   // we sent something the provider refuses: a bug or a bad offer; next offer
  kRateLimited,  // 429 after the client's retries: back off, try later
  kTransient,    // 5xx, timeout, connection reset, malformed body: retry later
  kUnknown,
};

std::string_view ToString(ProviderCause cause);  // "no_capacity", "quota", "auth", ...
// The cause an error carries (by its reason slug); kUnknown for errors not made by ProviderError.
ProviderCause CauseOf(const core::Error& error);
// An error of `cause`: code kResourceExhausted (no capacity, quota), kUnauthenticated (auth),
// kInvalidArgument (bad request), kUnavailable (rate limited, transient), kInternal (unknown);
// reason the cause's slug. `message` must not hold secrets.
core::Error ProviderError(ProviderCause cause, std::string message);
// True for causes worth retrying the same call later (rate limited, transient).
bool IsRetryable(ProviderCause cause);

// The tags that make an instance ours (see the header comment).
struct OwnerTags {
  std::string deployment_id;  // this service installation; ListOurs() filters on it
  std::string instance_id;    // our Instance::id
};

struct CreateInstanceRequest {
  OwnerTags tags;            // tags.instance_id doubles as the idempotency token where supported
  domain::Offer offer;
  bool spot = false;
  double max_price_per_hour = 0;  // spot bid / price ceiling; 0: the offer's price
  std::string image;              // container image (RunPod, Vast.ai) or AMI (EC2); "" = default
  std::map<std::string, std::string> env;  // GPUORCH_SERVER, GPUORCH_JOIN_TOKEN, GPUORCH_LOCAL_GPUS..
  int disk_gb = 50;
};

enum class ProviderInstanceStatus { kPending, kRunning, kStopped, kTerminated, kInterrupted, kUnknown };
std::string_view ToString(ProviderInstanceStatus status);

struct ProviderInstance {
  std::string provider_instance_id;
  OwnerTags tags;            // empty ids when the instance carries none of ours
  ProviderInstanceStatus status = ProviderInstanceStatus::kUnknown;
  std::string status_detail;  // the provider's own words, e.g. "EXITED", "shutting-down"
  std::string offer_id;
  std::string gpu_type;       // canonical
  int gpu_count = 0;
  double price_per_hour = 0;
  bool spot = false;
  std::string region;
  std::string public_ip;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string_view Name() const = 0;  // "runpod", "vastai", "aws"
  // False when its key is missing; such a provider is never called.
  virtual bool Configured() const = 0;
  // What it would rent now, with prices and stock. Prices USD/h for the whole offer.
  [[nodiscard]] virtual core::Result<std::vector<domain::Offer>> ListOffers() = 0;
  // Creates (or, where the provider has idempotency tokens, finds the earlier create of) the
  // instance. Never retries a non-idempotent create after the request may have reached the
  // provider: the reconciler finds such instances by their tags.
  [[nodiscard]] virtual core::Result<ProviderInstance> Create(const CreateInstanceRequest& request) = 0;
  // kNotFound when the provider does not know it (any more).
  [[nodiscard]] virtual core::Result<ProviderInstance> Describe(
      const std::string& provider_instance_id) = 0;
  // Every live (not yet terminated) instance tagged with our deployment id.
  [[nodiscard]] virtual core::Result<std::vector<ProviderInstance>> ListOurs() = 0;
  // Idempotent: terminating an instance that is already gone succeeds.
  [[nodiscard]] virtual core::Status Terminate(const std::string& provider_instance_id) = 0;
  // A cheap authenticated call: Ok when the provider answers and accepts our key.
  [[nodiscard]] virtual core::Status Health() = 0;
};

}  // namespace gpuorch::providers
