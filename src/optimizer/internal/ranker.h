// The one ranking pass behind RankOffers and OfferIndex::Rank. Internal to optimizer/.
//
// A Ranker is fed the offers whose GPU type matched, one by one, as OfferFields (read from a
// domain::Offer, or from OfferIndex's packed rows). A feasible offer competes for the best `limit`
// places in a bounded max-heap (worst on top); nothing is allocated per offer.
//
// Two passes, the second rare:
//   1. Scan() every offer. The hot path is short and nearly branch-free: every check folds into one
//      boolean and the cheaper kind of price is a min(), so an offer costs one branch. (Whether an
//      offer passes a filter, or is cheaper as spot, is as random as the offers are ordered: a
//      branch per check would mispredict more than all the arithmetic costs.) Provider and region
//      names, expensive to compare as strings, are checked last and only for offers that fit
//      otherwise.
//   2. Only when nothing fits: Tally() every offer again, which finds the stage (in the fixed order
//      below) each one fails at and keeps the cheapest offer failing there, so that the decision
//      can say how close the nearest offers came.
//
// Not thread-safe: one Ranker per decision.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
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

inline constexpr double kNever = std::numeric_limits<double>::infinity();

// What ranking reads of one offer. SetPriceKeys fills the two keys from the prices.
struct OfferFields {
  int gpu_count = 0;
  int available = 0;
  double memory_per_gpu = 0;  // the offer's, else KnownGpuMemoryGb of its type; read only when
                              // memory is required
  double reliability = 0;
  double on_demand = 0;          // 0: not sold on demand
  double spot = 0;               // 0: no spot
  double on_demand_key = kNever;  // on_demand, or kNever when 0
  double spot_key = kNever;       // EffectivePricePerHour(spot, true, reliability), or kNever
  bool provider_ok = true;        // allowed by the requirements' providers
  bool region_ok = true;          // allowed by the requirements' regions
};

// `condition ? a : b` without a branch (compilers branch on double selects, and which way these go
// is as random as the offers).
inline double Select(bool condition, double a, double b) {
  const uint64_t mask = 0 - static_cast<uint64_t>(condition);
  return std::bit_cast<double>((std::bit_cast<uint64_t>(a) & mask) |
                               (std::bit_cast<uint64_t>(b) & ~mask));
}

inline void SetPriceKeys(OfferFields& f) {
  f.on_demand_key = f.on_demand > 0 ? f.on_demand : kNever;
  f.spot_key = f.spot > 0 ? EffectivePricePerHour(f.spot, true, f.reliability) : kNever;
}

class Ranker {
 public:
  // `offers` is what candidate indices refer to; it must outlive the Ranker.
  Ranker(const OfferRequirements& requirements, std::span<const domain::Offer> offers,
         size_t limit);

  const std::string& type() const { return type_; }  // canonical; "" any
  bool needs_memory() const { return memory_gb_ > 0; }
  bool checks_providers() const { return checks_providers_; }
  bool checks_regions() const { return checks_regions_; }

  // Pass 1 over the caller's offers [begin, end): `read(i, index, fields)` fills the offer's place
  // in `offers` and its fields and returns false to skip it (its GPU type does not match).
  // `names_ok(i)` says whether its provider and region are allowed too (on top of
  // fields.provider_ok and region_ok); it is called only for an offer that fits otherwise.
  template <class Read, class NamesOk>
  void Scan(size_t begin, size_t end, Read&& read, NamesOk&& names_ok);
  int feasible() const { return feasible_; }
  // Pass 2, when feasible() is 0: the same offers again, each with provider_ok and region_ok set.
  void Tally(uint32_t index, const OfferFields& fields);

  Decision Finish(int considered);

 private:
  struct Candidate {
    uint32_t index = 0;
    bool spot = false;
    double price = 0;
    double effective = 0;
    double reliability = 0;
  };
  struct StageTally {
    int count = 0;
    uint32_t cheapest = 0;  // valid when count > 0 and cheapest_price is finite
    double cheapest_price = std::numeric_limits<double>::infinity();
    bool cheapest_spot = false;
  };

  // What each allowed kind counts for (kNever: not sold so, or over the price cap). The lower one is
  // what we would rent, on-demand on a tie.
  struct Keys {
    double on_demand = kNever;
    double spot = kNever;
  };
  Keys KeysOf(const OfferFields& f) const {
    return Keys{.on_demand = Select(allow_on_demand_ & (f.on_demand <= price_cap_),
                                    f.on_demand_key, kNever),
                .spot = Select(allow_spot_ & (f.spot <= price_cap_), f.spot_key, kNever)};
  }
  // Tallies an offer failing at `stage` that we would rent at `price`.
  void RejectAt(Stage stage, uint32_t index, double price, bool spot);
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
  double threshold_ = kNever;  // the worst effective price among the best once heap_ is full
  std::array<StageTally, kStages> tally_{};
  int feasible_ = 0;
  int max_count_ = 0;      // largest GPU count among offers failing on count
  double max_memory_ = 0;  // largest memory per GPU among offers failing on memory
};

template <class Read, class NamesOk>
inline void Ranker::Scan(size_t begin, size_t end, Read&& read, NamesOk&& names_ok) {
  // Locals, not members, so that they stay in registers across the out-of-line Keep().
  const int gpu_count = gpu_count_;
  const double memory_gb = memory_gb_;
  const bool no_memory = memory_gb <= 0;
  const double memory_floor = memory_gb - 1e-9;
  const double min_reliability = min_reliability_;
  int feasible = 0;
  for (size_t i = begin; i < end; ++i) {
    uint32_t index;
    OfferFields f;
    if (!read(i, index, f)) {
      continue;
    }
    const Keys keys = KeysOf(f);
    const double effective = std::min(keys.spot, keys.on_demand);
    const bool fits = (f.gpu_count >= gpu_count) &
                      (no_memory | (f.memory_per_gpu * gpu_count >= memory_floor)) &
                      f.provider_ok & f.region_ok & (f.reliability >= min_reliability) &
                      (effective < kNever) & (f.available > 0);
    if (!fits || !names_ok(i)) {
      continue;
    }
    ++feasible;
    // Most feasible offers lose to the worst of the best so far: skip them without the full order.
    if (effective > threshold_) {
      continue;
    }
    Keep(Candidate{.index = index,
                   .spot = keys.spot < keys.on_demand,
                   .price = keys.spot < keys.on_demand ? f.spot : f.on_demand,
                   .effective = effective,
                   .reliability = f.reliability});
  }
  feasible_ += feasible;
}

}  // namespace gpuorch::optimizer::internal
