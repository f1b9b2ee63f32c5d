#include "optimizer/offer_index.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "domain/gpu.h"
#include "optimizer/internal/ranker.h"

namespace gpuorch::optimizer {
namespace {

uint32_t Intern(std::unordered_map<std::string, uint32_t>& ids, std::vector<std::string>& names,
                const std::string& name) {
  auto [it, inserted] = ids.try_emplace(name, static_cast<uint32_t>(names.size()));
  if (inserted) {
    names.push_back(name);
  }
  return it->second;
}

// Per-decision truth tables over interned ids; all true when nothing is wanted.
std::vector<char> Allowed(const std::vector<std::string>& names,
                          bool (*allowed)(std::string_view, const std::vector<std::string>&),
                          const std::vector<std::string>& wanted) {
  std::vector<char> out(names.size(), 1);
  if (!wanted.empty()) {
    for (size_t i = 0; i < names.size(); ++i) {
      out[i] = allowed(names[i], wanted) ? 1 : 0;
    }
  }
  return out;
}

}  // namespace

OfferIndex::OfferIndex(std::vector<domain::Offer> offers) : offers_(std::move(offers)) {
  std::map<std::string_view, std::vector<uint32_t>> by_type;
  for (uint32_t i = 0; i < offers_.size(); ++i) {
    by_type[offers_[i].gpu_type].push_back(i);
  }
  std::unordered_map<std::string, uint32_t> provider_ids;
  std::unordered_map<std::string, uint32_t> region_ids;
  rows_.reserve(offers_.size());
  types_.reserve(by_type.size());
  for (const auto& [type, members] : by_type) {
    const double known_memory = domain::KnownGpuMemoryGb(type);
    TypeRange range{.type = std::string(type), .begin = static_cast<uint32_t>(rows_.size())};
    for (uint32_t i : members) {
      const domain::Offer& o = offers_[i];
      internal::OfferFields fields{.reliability = o.reliability,
                                   .on_demand = o.on_demand_price,
                                   .spot = o.spot_price ? *o.spot_price : 0};
      internal::SetPriceKeys(fields);
      rows_.push_back(Row{
          .offer = i,
          .provider = Intern(provider_ids, providers_, o.provider),
          .region = Intern(region_ids, regions_, o.region),
          .gpu_count = o.gpu_count,
          .available = o.available,
          .memory_per_gpu = o.gpu_memory_gb > 0 ? o.gpu_memory_gb : known_memory,
          .reliability = o.reliability,
          .on_demand = fields.on_demand,
          .spot = fields.spot,
          .on_demand_key = fields.on_demand_key,
          .spot_key = fields.spot_key,
      });
    }
    range.end = static_cast<uint32_t>(rows_.size());
    types_.push_back(std::move(range));
  }
}

Decision OfferIndex::Rank(const OfferRequirements& requirements, size_t limit) const {
  internal::Ranker ranker(requirements, offers_, limit);
  const std::vector<char> provider_ok =
      Allowed(providers_, internal::ProviderAllowed, requirements.allowed_providers);
  const std::vector<char> region_ok =
      Allowed(regions_, internal::RegionAllowed, requirements.regions);
  size_t begin = 0;
  size_t end = rows_.size();
  if (!ranker.type().empty()) {
    auto it = std::lower_bound(types_.begin(), types_.end(), ranker.type(),
                               [](const TypeRange& r, const std::string& t) { return r.type < t; });
    if (it == types_.end() || it->type != ranker.type()) {
      begin = end = 0;
    } else {
      begin = it->begin;
      end = it->end;
    }
  }
  auto fields_of = [&](const Row& row) {
    return internal::OfferFields{.gpu_count = row.gpu_count,
                                 .available = row.available,
                                 .memory_per_gpu = row.memory_per_gpu,
                                 .reliability = row.reliability,
                                 .on_demand = row.on_demand,
                                 .spot = row.spot,
                                 .on_demand_key = row.on_demand_key,
                                 .spot_key = row.spot_key,
                                 .provider_ok = provider_ok[row.provider] != 0,
                                 .region_ok = region_ok[row.region] != 0};
  };
  ranker.Scan(
      begin, end,
      [&](size_t i, uint32_t& index, internal::OfferFields& fields) {
        index = rows_[i].offer;
        fields = fields_of(rows_[i]);
        return true;
      },
      [](size_t) { return true; });
  if (ranker.feasible() == 0) {
    for (size_t i = begin; i < end; ++i) {
      ranker.Tally(rows_[i].offer, fields_of(rows_[i]));
    }
  }
  return ranker.Finish(static_cast<int>(offers_.size()));
}

}  // namespace gpuorch::optimizer
