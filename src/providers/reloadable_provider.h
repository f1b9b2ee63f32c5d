// A Provider whose adapter can be replaced while the service runs, e.g. when an admin stores new
// credentials through the API. Calls in flight finish on the adapter they started with; later calls
// use the new one. Name() never changes.
//
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "providers/provider.h"

namespace gpuorch::providers {

class ReloadableProvider final : public Provider {
 public:
  // REQUIRES: `initial` is not null.
  explicit ReloadableProvider(std::unique_ptr<Provider> initial);

  // Replaces the adapter. REQUIRES: `next` is not null and has the same Name().
  void Replace(std::unique_ptr<Provider> next);

  std::string_view Name() const override { return name_; }
  bool Configured() const override;
  core::Result<std::vector<domain::Offer>> ListOffers() override;
  core::Result<ProviderInstance> Create(const CreateInstanceRequest& request) override;
  core::Result<ProviderInstance> Describe(const std::string& provider_instance_id) override;
  core::Result<std::vector<ProviderInstance>> ListOurs() override;
  core::Status Terminate(const std::string& provider_instance_id) override;
  core::Status Health() override;

 private:
  std::shared_ptr<Provider> Current() const;

  const std::string name_;
  mutable std::mutex mu_;
  std::shared_ptr<Provider> current_;  // GUARDED_BY(mu_)
};

}  // namespace gpuorch::providers
