#include "providers/reloadable_provider.h"

namespace gpuorch::providers {

ReloadableProvider::ReloadableProvider(std::unique_ptr<Provider> initial)
    : name_(initial->Name()), current_(std::move(initial)) {}

void ReloadableProvider::Replace(std::unique_ptr<Provider> next) {
  std::shared_ptr<Provider> shared(std::move(next));
  std::lock_guard lock(mu_);
  current_.swap(shared);
  // The old adapter is released outside the lock, once the last call in flight on it returns.
}

std::shared_ptr<Provider> ReloadableProvider::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

bool ReloadableProvider::Configured() const { return Current()->Configured(); }

core::Result<std::vector<domain::Offer>> ReloadableProvider::ListOffers() {
  return Current()->ListOffers();
}

core::Result<ProviderInstance> ReloadableProvider::Create(const CreateInstanceRequest& request) {
  return Current()->Create(request);
}

core::Result<ProviderInstance> ReloadableProvider::Describe(
    const std::string& provider_instance_id) {
  return Current()->Describe(provider_instance_id);
}

core::Result<std::vector<ProviderInstance>> ReloadableProvider::ListOurs() {
  return Current()->ListOurs();
}

core::Status ReloadableProvider::Terminate(const std::string& provider_instance_id) {
  return Current()->Terminate(provider_instance_id);
}

core::Status ReloadableProvider::Health() { return Current()->Health(); }

}  // namespace gpuorch::providers
