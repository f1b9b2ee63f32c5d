// The one ranking pass behind RankOffers and OfferIndex::Rank. Internal to optimizer/.
//
// A Ranker is fed the offers whose GPU type matched, one by one, as OfferFields (read from a
// domain::Offer, or from OfferIndex's packed rows). Each offer either fails at one or more stages
// and is tallied at the first of them, in the fixed order below (with the cheapest offer failing
// there, so that an empty decision can say how close the nearest offers came), or is feasible and
// competes for the best `limit` places in a bounded max-heap (worst on top). Nothing is allocated
// per offer.
//
// The hot path is short and nearly branch-free: every check of an offer folds into one boolean and
// the cheaper kind of price is a min(), so an offer costs one predictable branch; only an offer that
// fails takes the out-of-line path that finds its stage. (Whether an offer passes a filter, or is
// cheaper as spot, is as random as the offers are ordered: a branch per check would mispredict
// more than all the arithmetic costs.)
//
// Not thread-safe: one Ranker per decision.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "domain/instance.h"
#include "optimizer/ranking.h"

namespace gpuorch::optimizer::internal {

// Where an offer fails, in the order checked; kFit: it fits.
enum Stage : uint8_t {
  kCount,
  kMemory,
  kProvider,
  kRegion,
  kReliability,
  kCapacity,
  kPrice,
  kStock,
  kFit,
};
inline constexpr int kStages = kFit;

// ASCII case-insensitive equality (names and regions are ASCII).
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char x = static_cast<unsigned char>(a[i]);
    const unsigned char y = static_cast<unsigned char>(b[i]);
    if (x != y && ((x | 0x20) != (y | 0x20) || static_cast<unsigned char>((x | 0x20) - 'a') > 25)) {
      return false;
    }
  }
  return true;
}
// See OfferRequirements::regions.
bool RegionMatches(std::string_view offer_region, std::string_view wanted);
bool ProviderAllowed(std::string_view provider, const std::vector<std::string>& allowed);
bool RegionAllowed(std::string_view region, const std::vector<std::string>& wanted);

// What ranking reads of one offer.
struct OfferFields {
  int gpu_count = 0;
  double memory_per_gpu = 0;  // the offer's, else KnownGpuMemoryGb of its type; read only when
                              // memory is required
  bool provider_ok = true;    // allowed by the requirements' providers
  bool region_ok = true;      // allowed by the requirements' regions
  double reliability = 0;
  double on_demand = 0;       // 0: not sold on demand
  double spot = 0;            // 0: no spot
  double spot_effective = 0;  // EffectivePricePerHour(spot, true, reliability)
  int available = 0;
};

class Ranker {
 public:
  // `offers` is what candidate indices refer to; it must outlive the Ranker.
  Ranker(const OfferRequirements& requirements, std::span<const domain::Offer> offers,
         size_t limit);

  const std::string& type() const { return type_; }  // canonical; "" any
  bool needs_memory() const { return memory_gb_ > 0; }
  bool checks_providers() const { return checks_providers_; }
  bool checks_regions() const { return checks_regions_; }

  // One offer whose GPU type matched; `index` is its place in `offers`.
  void Add(uint32_t index, const OfferFields& fields);

  Decision Finish(int considered);

 private:
  struct Candidate {
    uint32_t index = 0;
    bool spot = false;
    double price = 0;
    double effective = 0;
    double reliability = 0;
  };
  struct Tally {
    int count = 0;
    uint32_t cheapest = 0;  // valid when count > 0 and cheapest_price is finite
    double cheapest_price = std::numeric_limits<double>::infinity();
    bool cheapest_spot = false;
  };

  // Finds the stage an infeasible offer fails at, and tallies it there.
  void Reject(uint32_t index, const OfferFields& fields);
  // Tallies an offer failing at `stage` that we would rent at `price`.
  void RejectAt(Stage stage, uint32_t index, double price, bool spot);
  // The kind and price we would rent a priced offer at.
  Candidate Choose(uint32_t index, const OfferFields& fields) const;
  void Keep(const Candidate& candidate);
  bool Better(const Candidate& a, const Candidate& b) const;
  RankedOffer MakeRanked(const Candidate& candidate) const;
  std::string Label(uint32_t index) const;
  std::string Explain(const std::vector<Candidate>& best, int considered) const;
  std::string ExplainNone(int considered) const;
  std::string Describe() const;
  std::string Shape() const;

  const OfferRequirements& requirements_;
  const std::span<const domain::Offer> offers_;
  const size_t limit_;
  const size_t keep_;  // max(limit, 2): the explanation names a runner-up
  std::string type_;
  double memory_gb_ = 0;
  int gpu_count_ = 1;
  bool allow_on_demand_ = true;
  bool allow_spot_ = true;
  double max_price_ = 0;
  double price_cap_ = 0;  // max_price_, or infinity when there is none
  double min_reliability_ = 0;
  bool checks_providers_ = false;
  bool checks_regions_ = false;

  std::vector<Candidate> heap_;
  std::array<Tally, kStages> tally_{};
  int feasible_ = 0;
  int max_count_ = 0;      // largest GPU count among offers failing on count
  double max_memory_ = 0;  // largest memory per GPU among offers failing on memory
};

inline void Ranker::Add(uint32_t index, const OfferFields& f) {
  constexpr double kNever = std::numeric_limits<double>::infinity();
  // What each allowed kind would count for (kNever: not sold so, or over the price cap).
  const double on_demand = allow_on_demand_ ? f.on_demand : 0;
  const double spot = allow_spot_ ? f.spot : 0;
  const double on_demand_key = on_demand > 0 && on_demand <= price_cap_ ? on_demand : kNever;
  const double spot_key = spot > 0 && spot <= price_cap_ ? f.spot_effective : kNever;
  const double effective = std::min(spot_key, on_demand_key);
  const bool fits = (f.gpu_count >= gpu_count_) &
                    ((memory_gb_ <= 0) | (f.memory_per_gpu * gpu_count_ >= memory_gb_ - 1e-9)) &
                    f.provider_ok & f.region_ok & (f.reliability >= min_reliability_) &
                    (effective < kNever) & (f.available > 0);
  if (!fits) {
    Reject(index, f);
    return;
  }
  ++feasible_;
  // Most feasible offers lose to the current worst of the best: skip them without the full order.
  if (heap_.size() == keep_ && effective > heap_.front().effective) {
    return;
  }
  Keep(Choose(index, f));
}

}  // namespace gpuorch::optimizer::internal
