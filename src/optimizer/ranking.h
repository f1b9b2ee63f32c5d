// Cost ranking: which offer, of all that providers would rent us now, a job should run on.
//
// RankOffers is a pure function of the requirements and the offers: one pass (a second only when
// nothing fits, to explain why), no I/O, no allocation per offer (only the best `limit` are kept). An offer is feasible when its GPU type, GPU count, GPU
// memory, provider, region, reliability, capacity kind (spot or on-demand), price and stock all fit;
// feasible offers are ranked by effective price (what we would pay per hour, with spot raised by its
// interruption risk), then by reliability, provider name and offer id, so equal inputs give equal
// decisions. A job that fits nothing is not an error: the decision says why in words.
//
// OfferIndex (offer_index.h) gives the same decisions over a prepared snapshot, faster.
// Thread-safe: pure functions over values.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "domain/instance.h"
#include "domain/job.h"

namespace gpuorch::optimizer {

// A spot offer's effective price is its price × (1 + kSpotRiskPremium + kSpotReliabilityWeight ×
// (1 − reliability)). The premium stands for the expected cost of an interruption (work redone since
// the last checkpoint, a new instance booted): about 10% of a run. The weight adds the host's own
// unreliability on top, so a spot host with reliability 0.9 counts 20% dearer than its price. A spot
// offer therefore wins only when it is clearly cheaper than a reliable on-demand one.
inline constexpr double kSpotRiskPremium = 0.10;
inline constexpr double kSpotReliabilityWeight = 1.0;

// What a job needs from an offer. Built by RequirementsFor or directly with designated initializers.
struct OfferRequirements {
  enum class Capacity {
    kOnDemand,          // on-demand prices only
    kSpot,              // spot (interruptible) prices only
    kSpotThenOnDemand,  // the cheaper of both per offer, spot counted with its risk
  };

  std::string gpu_type;  // canonical (domain::CanonicalGpuType); "" any type
  int gpu_count = 1;     // GPUs the job uses; a larger offer fits, and its whole price counts
  double memory_gb = 0;  // GPU memory over the job's GPUs (per GPU × gpu_count); 0: no requirement
  Capacity capacity = Capacity::kSpotThenOnDemand;
  double max_price_per_hour = 0;  // ceiling on what we would pay, USD/h for the offer; 0: none
  // Empty: any. A wanted region matches an offer's region case-insensitively when equal, when it is
  // the offer region's first dash-separated part ("us" matches "us-east-1"), or when it is its last
  // comma-separated part ("US" matches "Texas, US").
  std::vector<std::string> regions;
  std::vector<std::string> allowed_providers;  // provider names, case-insensitive; empty: any
  double min_reliability = 0;                  // 0..1

  bool operator==(const OfferRequirements&) const = default;
};

std::string_view ToString(OfferRequirements::Capacity capacity);  // "on_demand", "spot", ...
// Accepts "on_demand" (or "on-demand", "ondemand"), "spot", "spot_then_on_demand" (or "any").
std::optional<OfferRequirements::Capacity> ParseCapacity(std::string_view text);

struct RankedOffer {
  domain::Offer offer;
  bool spot = false;                    // whether we would rent it as spot
  double price_per_hour = 0;            // what we would pay, USD/h for the whole offer
  double effective_price_per_hour = 0;  // the ranking key (price with spot risk)
  std::string why;                      // e.g. "spot at $1.10/h, counted as $1.21/h for its risk"

  bool operator==(const RankedOffer&) const = default;
};

struct Decision {
  std::vector<RankedOffer> ranked;  // best first, at most `limit`; empty when nothing fits
  int considered = 0;               // offers looked at
  int feasible = 0;                 // offers that fit
  // The choice in words ("cheapest: vastai 1x A100 in US at $1.10/h (spot, ...); runner-up: ...")
  // or why nothing fits ("no offer has 8 x H100 under $20.00/h; cheapest 8 x H100 is aws
  // p5.48xlarge in us-east-1 at $98.32/h (on-demand)").
  std::string explanation;

  bool operator==(const Decision&) const = default;
};

// The effective price of renting at `price_per_hour` (see kSpotRiskPremium). Reliability outside
// 0..1 counts as the nearest bound.
inline double EffectivePricePerHour(double price_per_hour, bool spot, double reliability) {
  if (!spot) {
    return price_per_hour;
  }
  const double unreliability = std::min(std::max(1.0 - reliability, 0.0), 1.0);
  return price_per_hour * (1.0 + kSpotRiskPremium + kSpotReliabilityWeight * unreliability);
}

// Ranks `offers` for `requirements`; keeps the best `limit`. Offers' gpu_type must be canonical.
// An offer without gpu_memory_gb counts KnownGpuMemoryGb of its type; an offer whose memory is
// unknown either way does not meet a memory requirement.
Decision RankOffers(const OfferRequirements& requirements, std::span<const domain::Offer> offers,
                    size_t limit = 5);

// The requirements of a job: type, count, memory and allowed providers from the spec's fields;
// capacity, max price, regions and min reliability from its config (config_json keys "capacity"
// ("spot" | "on_demand" | "spot_then_on_demand"), "spot" (true: spot, false: on-demand, or a
// capacity string; "capacity" wins when both are given), "max_price_per_hour", "region" (a string)
// or "regions" (an array of strings), "min_reliability"), each falling back to `defaults`.
// kInvalidArgument (with `field`, e.g. "config.max_price_per_hour") when a key has the wrong type or
// value or config_json is not a JSON object.
[[nodiscard]] core::Result<OfferRequirements> RequirementsFor(const domain::JobSpec& spec,
                                                              const OfferRequirements& defaults = {});

// What running `runtime_seconds` on `offer` would cost at the price we would pay (not the
// effective price). 0 for a negative runtime.
double EstimateCostUsd(const RankedOffer& offer, int64_t runtime_seconds);

}  // namespace gpuorch::optimizer
