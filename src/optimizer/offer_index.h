// OfferIndex: a set of offers prepared once for many fast decisions. Offers are grouped by GPU type
// and their ranking fields packed into small rows, so a decision reads only the rows of the wanted
// type (all rows for "any type"), with providers and regions compared by interned id.
//
// Rank(requirements, limit) decides exactly as RankOffers(requirements, offers(), limit) does.
// Building costs O(n log n) and copies nothing but the offers it is given; build one per catalog
// snapshot. Immutable once built, so thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "domain/instance.h"
#include "optimizer/ranking.h"

namespace gpuorch::optimizer {

class OfferIndex {
 public:
  OfferIndex() = default;
  // Offers' gpu_type must be canonical (as Provider::ListOffers gives them).
  explicit OfferIndex(std::vector<domain::Offer> offers);

  const std::vector<domain::Offer>& offers() const { return offers_; }
  size_t size() const { return offers_.size(); }
  bool empty() const { return offers_.empty(); }

  // The decision RankOffers(requirements, offers(), limit) would give; considered is size().
  Decision Rank(const OfferRequirements& requirements, size_t limit = 5) const;

 private:
  // The fields ranking reads, one row per offer.
  struct Row {
    uint32_t offer = 0;     // index into offers_
    uint32_t provider = 0;  // index into providers_
    uint32_t region = 0;    // index into regions_
    int32_t gpu_count = 0;
    int32_t available = 0;
    double memory_per_gpu = 0;  // the offer's, else KnownGpuMemoryGb of its type
    double reliability = 0;
    double on_demand = 0;      // 0: not sold on demand
    double spot = 0;           // 0: no spot
    double on_demand_key = 0;  // on_demand, or infinity when 0
    double spot_key = 0;       // EffectivePricePerHour(spot, true, reliability), or infinity
  };
  struct TypeRange {
    std::string type;
    uint32_t begin = 0;  // rows_[begin, end) are offers of `type`
    uint32_t end = 0;
  };

  std::vector<domain::Offer> offers_;
  std::vector<Row> rows_;               // grouped by type, in types_ order
  std::vector<TypeRange> types_;        // sorted by type
  std::vector<std::string> providers_;  // interned provider names
  std::vector<std::string> regions_;    // interned regions
};

}  // namespace gpuorch::optimizer
