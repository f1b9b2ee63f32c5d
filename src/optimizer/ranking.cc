#include "optimizer/ranking.h"

#include <algorithm>

#include "domain/gpu.h"
#include "optimizer/internal/ranker.h"

namespace gpuorch::optimizer {
namespace {

// KnownGpuMemoryGb for offers that do not state their memory, remembering the last type asked
// (offers of one type tend to come together).
class KnownMemory {
 public:
  double Of(const std::string& type) {
    if (!has_last_ || type != last_type_) {
      last_type_ = type;
      last_gb_ = domain::KnownGpuMemoryGb(type);
      has_last_ = true;
    }
    return last_gb_;
  }

 private:
  std::string_view last_type_;  // points into the offers being ranked
  double last_gb_ = 0;
  bool has_last_ = false;
};

// Type equality inline: types are a few bytes, and most offers differ in size or first byte.
inline bool SameType(const std::string& a, const std::string& b) {
  const size_t n = a.size();
  if (n != b.size()) {
    return false;
  }
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string_view ToString(OfferRequirements::Capacity capacity) {
  switch (capacity) {
    case OfferRequirements::Capacity::kOnDemand:
      return "on_demand";
    case OfferRequirements::Capacity::kSpot:
      return "spot";
    case OfferRequirements::Capacity::kSpotThenOnDemand:
      return "spot_then_on_demand";
  }
  return "spot_then_on_demand";
}

std::optional<OfferRequirements::Capacity> ParseCapacity(std::string_view text) {
  using Capacity = OfferRequirements::Capacity;
  if (text == "on_demand" || text == "on-demand" || text == "ondemand") {
    return Capacity::kOnDemand;
  }
  if (text == "spot") {
    return Capacity::kSpot;
  }
  if (text == "spot_then_on_demand" || text == "any") {
    return Capacity::kSpotThenOnDemand;
  }
  return std::nullopt;
}

Decision RankOffers(const OfferRequirements& requirements, std::span<const domain::Offer> offers,
                    size_t limit) {
  internal::Ranker ranker(requirements, offers, limit);
  const std::string& type = ranker.type();
  const bool any_type = type.empty();
  KnownMemory memory;
  const bool needs_memory = ranker.needs_memory();
  const bool checks_providers = ranker.checks_providers();
  const bool checks_regions = ranker.checks_regions();
  auto fields_of = [&](const domain::Offer& o) {
    internal::OfferFields fields{.gpu_count = o.gpu_count,
                                 .available = o.available,
                                 .reliability = o.reliability,
                                 .on_demand = o.on_demand_price,
                                 .spot = o.spot_price ? *o.spot_price : 0};
    internal::SetPriceKeys(fields);
    if (needs_memory) {
      fields.memory_per_gpu = o.gpu_memory_gb > 0 ? o.gpu_memory_gb : memory.Of(o.gpu_type);
    }
    return fields;
  };
  auto provider_ok = [&](const domain::Offer& o) {
    return !checks_providers || internal::ProviderAllowed(o.provider, requirements.allowed_providers);
  };
  auto region_ok = [&](const domain::Offer& o) {
    return !checks_regions || internal::RegionAllowed(o.region, requirements.regions);
  };
  const auto n = static_cast<uint32_t>(offers.size());
  ranker.Scan(
      0, n,
      [&](size_t i, uint32_t& index, internal::OfferFields& fields) {
        const domain::Offer& o = offers[i];
        if (!any_type && !SameType(o.gpu_type, type)) {
          return false;
        }
        index = static_cast<uint32_t>(i);
        fields = fields_of(o);
        return true;
      },
      [&](size_t i) { return provider_ok(offers[i]) && region_ok(offers[i]); });
  if (ranker.feasible() == 0) {
    for (uint32_t i = 0; i < n; ++i) {
      const domain::Offer& o = offers[i];
      if (any_type || SameType(o.gpu_type, type)) {
        internal::OfferFields fields = fields_of(o);
        fields.provider_ok = provider_ok(o);
        fields.region_ok = region_ok(o);
        ranker.Tally(i, fields);
      }
    }
  }
  return ranker.Finish(static_cast<int>(n));
}

double EstimateCostUsd(const RankedOffer& offer, int64_t runtime_seconds) {
  if (runtime_seconds <= 0) {
    return 0;
  }
  return offer.price_per_hour * static_cast<double>(runtime_seconds) / 3600.0;
}

}  // namespace gpuorch::optimizer
