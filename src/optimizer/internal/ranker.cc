#include "optimizer/internal/ranker.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <tuple>

#include "domain/gpu.h"

namespace gpuorch::optimizer::internal {
namespace {

std::string Money(double usd_per_hour) {
  char buf[48];
  std::snprintf(buf, sizeof buf, usd_per_hour < 0.1 ? "$%.3f/h" : "$%.2f/h", usd_per_hour);
  return buf;
}

std::string Number(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", value);
  return buf;
}

std::string Reliability(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", value);
  return buf;
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) {
      out += sep;
    }
    out += item;
  }
  return out;
}

std::string Plural(int n, std::string_view word) {
  std::string out = std::to_string(n) + " " + std::string(word);
  if (n != 1) {
    out += "s";
  }
  return out;
}

std::string_view Kind(bool spot) { return spot ? "spot" : "on-demand"; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') {
    s.remove_prefix(1);
  }
  while (!s.empty() && s.back() == ' ') {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool RegionMatches(std::string_view offer_region, std::string_view wanted) {
  if (wanted.empty()) {
    return false;
  }
  if (EqualsIgnoreCase(offer_region, wanted)) {
    return true;
  }
  if (offer_region.size() > wanted.size() && offer_region[wanted.size()] == '-' &&
      EqualsIgnoreCase(offer_region.substr(0, wanted.size()), wanted)) {
    return true;
  }
  const size_t comma = offer_region.rfind(',');
  return comma != std::string_view::npos &&
         EqualsIgnoreCase(Trim(offer_region.substr(comma + 1)), wanted);
}

bool ProviderAllowed(std::string_view provider, const std::vector<std::string>& allowed) {
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& p) { return EqualsIgnoreCase(provider, p); });
}

bool RegionAllowed(std::string_view region, const std::vector<std::string>& wanted) {
  return std::any_of(wanted.begin(), wanted.end(),
                     [&](const std::string& w) { return RegionMatches(region, w); });
}

Ranker::Ranker(const OfferRequirements& requirements, std::span<const domain::Offer> offers,
               size_t limit)
    : requirements_(requirements),
      offers_(offers),
      limit_(limit),
      keep_(std::max<size_t>(limit, 2)),
      type_(domain::CanonicalGpuType(requirements.gpu_type)),
      memory_gb_(requirements.memory_gb),
      gpu_count_(std::max(requirements.gpu_count, 0)),
      allow_on_demand_(requirements.capacity != OfferRequirements::Capacity::kSpot),
      allow_spot_(requirements.capacity != OfferRequirements::Capacity::kOnDemand),
      max_price_(requirements.max_price_per_hour),
      price_cap_(max_price_ > 0 ? max_price_ : std::numeric_limits<double>::infinity()),
      min_reliability_(requirements.min_reliability),
      checks_providers_(!requirements.allowed_providers.empty()),
      checks_regions_(!requirements.regions.empty()) {
  heap_.reserve(keep_ + 1);
}

void Ranker::Tally(uint32_t index, const OfferFields& f) {
  if (f.gpu_count < gpu_count_) {
    ++tally_[kCount].count;
    max_count_ = std::max(max_count_, f.gpu_count);
    return;
  }
  if (memory_gb_ > 0 && f.memory_per_gpu * gpu_count_ < memory_gb_ - 1e-9) {
    ++tally_[kMemory].count;
    max_memory_ = std::max(max_memory_, f.memory_per_gpu);
    return;
  }
  const double on_demand = allow_on_demand_ ? f.on_demand : 0;
  const double spot = allow_spot_ ? f.spot : 0;
  // How close it came: the lower of its allowed prices, whatever the cap.
  const bool spot_lower = spot > 0 && (on_demand <= 0 || spot < on_demand);
  const double lowest = spot_lower ? spot : on_demand;
  const Stage stage = !f.provider_ok                        ? kProvider
                      : !f.region_ok                        ? kRegion
                      : f.reliability < min_reliability_    ? kReliability
                      : lowest <= 0                         ? kCapacity
                      : !(on_demand > 0 && on_demand <= price_cap_) &&
                              !(spot > 0 && spot <= price_cap_)
                          ? kPrice
                          : kStock;
  if (stage == kCapacity) {
    ++tally_[kCapacity].count;
    return;
  }
  if (stage != kStock) {
    RejectAt(stage, index, lowest, spot_lower);
    return;
  }
  const Keys keys = KeysOf(f);
  const bool as_spot = keys.spot < keys.on_demand;
  RejectAt(kStock, index, as_spot ? f.spot : f.on_demand, as_spot);
}

void Ranker::RejectAt(Stage stage, uint32_t index, double price, bool spot) {
  StageTally& t = tally_[stage];
  ++t.count;
  if (price <= 0 || price > t.cheapest_price) {
    return;
  }
  if (price == t.cheapest_price) {
    // Equal prices: the same offer wins whatever order the offers came in.
    const domain::Offer& a = offers_[index];
    const domain::Offer& b = offers_[t.cheapest];
    if (std::tie(a.provider, a.offer_id) >= std::tie(b.provider, b.offer_id)) {
      return;
    }
  }
  t.cheapest = index;
  t.cheapest_price = price;
  t.cheapest_spot = spot;
}

bool Ranker::Better(const Candidate& a, const Candidate& b) const {
  if (a.effective != b.effective) {
    return a.effective < b.effective;
  }
  if (a.reliability != b.reliability) {
    return a.reliability > b.reliability;
  }
  const domain::Offer& x = offers_[a.index];
  const domain::Offer& y = offers_[b.index];
  if (int c = x.provider.compare(y.provider); c != 0) {
    return c < 0;
  }
  if (int c = x.offer_id.compare(y.offer_id); c != 0) {
    return c < 0;
  }
  if (a.spot != b.spot) {
    return !a.spot;
  }
  return a.index < b.index;
}

void Ranker::Keep(const Candidate& candidate) {
  auto worse_on_top = [this](const Candidate& a, const Candidate& b) { return Better(a, b); };
  if (heap_.size() < keep_) {
    heap_.push_back(candidate);
    std::push_heap(heap_.begin(), heap_.end(), worse_on_top);
  } else if (Better(candidate, heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), worse_on_top);
    heap_.back() = candidate;
    std::push_heap(heap_.begin(), heap_.end(), worse_on_top);
  }
  if (heap_.size() == keep_) {
    threshold_ = heap_.front().effective;
  }
}

Decision Ranker::Finish(int considered) {
  std::vector<Candidate> best = std::move(heap_);
  std::sort(best.begin(), best.end(),
            [this](const Candidate& a, const Candidate& b) { return Better(a, b); });
  Decision decision;
  decision.considered = considered;
  decision.feasible = feasible_;
  const size_t n = std::min(limit_, best.size());
  decision.ranked.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    decision.ranked.push_back(MakeRanked(best[i]));
  }
  decision.explanation = best.empty() ? ExplainNone(considered) : Explain(best, considered);
  return decision;
}

std::string Ranker::Label(uint32_t index) const {
  const domain::Offer& o = offers_[index];
  std::string label = o.provider + " ";
  label += o.instance_type.empty() ? std::to_string(o.gpu_count) + "x " + o.gpu_type
                                   : o.instance_type;
  if (!o.region.empty()) {
    label += " in " + o.region;
  }
  return label;
}

RankedOffer Ranker::MakeRanked(const Candidate& c) const {
  const domain::Offer& o = offers_[c.index];
  std::string why;
  if (c.spot) {
    why = "spot at " + Money(c.price) + ", counted as " + Money(c.effective) +
          " for its interruption risk (reliability " + Reliability(c.reliability) + ")";
    if (allow_on_demand_ && o.on_demand_price > 0) {
      why += "; on-demand is " + Money(o.on_demand_price);
    }
  } else {
    why = "on-demand at " + Money(c.price);
    if (allow_spot_ && o.spot_price && *o.spot_price > 0) {
      why += "; spot at " + Money(*o.spot_price) + " counts as " +
             Money(EffectivePricePerHour(*o.spot_price, true, c.reliability));
      if (max_price_ > 0 && *o.spot_price > max_price_) {
        why += " and is over the price limit";
      }
    }
  }
  if (o.gpu_count > gpu_count_) {
    why += "; " + Plural(o.gpu_count, "GPU") + " for " + std::to_string(gpu_count_) +
           " needed: the whole price counts";
  }
  return RankedOffer{.offer = o,
                     .spot = c.spot,
                     .price_per_hour = c.price,
                     .effective_price_per_hour = c.effective,
                     .why = std::move(why)};
}

std::string Ranker::Shape() const {
  return std::to_string(gpu_count_) + " x " + (type_.empty() ? std::string("any GPU") : type_);
}

std::string Ranker::Describe() const {
  std::string d = Shape();
  if (memory_gb_ > 0) {
    d += " with " + Number(memory_gb_) + " GB GPU memory";
  }
  if (requirements_.capacity == OfferRequirements::Capacity::kSpot) {
    d += " on spot";
  } else if (requirements_.capacity == OfferRequirements::Capacity::kOnDemand) {
    d += " on demand";
  }
  if (checks_regions()) {
    d += " in " + Join(requirements_.regions, " or ");
  }
  if (checks_providers()) {
    d += " from " + Join(requirements_.allowed_providers, " or ");
  }
  if (min_reliability_ > 0) {
    d += " with reliability >= " + Number(min_reliability_);
  }
  if (max_price_ > 0) {
    d += " under " + Money(max_price_);
  }
  return d;
}

std::string Ranker::Explain(const std::vector<Candidate>& best, int considered) const {
  auto describe = [this](const Candidate& c) {
    std::string s = Label(c.index) + " at " + Money(c.price) + " (" + std::string(Kind(c.spot));
    if (c.spot) {
      s += ", counted as " + Money(c.effective) + " with its interruption risk";
    }
    return s + ")";
  };
  std::string out = "cheapest: " + describe(best[0]);
  out += best.size() > 1 ? "; runner-up: " + describe(best[1]) : "; no runner-up";
  return out + "; " + std::to_string(feasible_) + " of " + Plural(considered, "offer") + " fit";
}

std::string Ranker::ExplainNone(int considered) const {
  std::string out = "no offer has " + Describe() + "; ";
  auto cheapest = [this](Stage s) {
    const StageTally& t = tally_[s];
    if (t.cheapest_price == std::numeric_limits<double>::infinity()) {
      return std::string("no price known");
    }
    return Label(t.cheapest) + " at " + Money(t.cheapest_price) + " (" +
           std::string(Kind(t.cheapest_spot)) + ")";
  };
  int stage = kStages - 1;
  while (stage >= 0 && tally_[stage].count == 0) {
    --stage;
  }
  if (stage < 0) {
    if (considered == 0) {
      return out + "no offers are known now (no provider configured, reachable and fresh)";
    }
    return out + "no provider offers " + type_ + " now";
  }
  const int n = tally_[stage].count;
  switch (static_cast<Stage>(stage)) {
    case kCount:
      return out + "the largest " + (type_.empty() ? "" : type_ + " ") + "offer has " +
             Plural(max_count_, "GPU");
    case kMemory:
      return out + "the most GPU memory on offer is " + Number(max_memory_) +
             " GB per GPU, and " + Number(memory_gb_ / std::max(gpu_count_, 1)) +
             " GB per GPU is needed";
    case kProvider:
      return out + Plural(n, "offer") + " of that shape come from other providers; cheapest: " +
             cheapest(kProvider);
    case kRegion:
      return out + Plural(n, "offer") + " of that shape are in other regions; cheapest: " +
             cheapest(kRegion);
    case kReliability:
      out += Plural(n, "offer") + " of that shape are below reliability " +
             Number(min_reliability_) + "; cheapest: " + cheapest(kReliability);
      if (tally_[kReliability].cheapest_price != std::numeric_limits<double>::infinity()) {
        out += " with reliability " + Reliability(offers_[tally_[kReliability].cheapest].reliability);
      }
      return out;
    case kCapacity:
      return out + "none of the " + Plural(n, "offer") + " of that shape is " +
             (allow_spot_ && allow_on_demand_ ? "priced"
              : allow_spot_                   ? "sold as spot"
                                              : "sold on demand");
    case kPrice:
      return out + "cheapest " + Shape() + " is " + cheapest(kPrice);
    case kStock:
      out += "the " + Plural(n, "offer") + " that would fit are out of stock";
      if (tally_[kPrice].count > 0) {
        out += "; the cheapest above the price limit is " + cheapest(kPrice);
      }
      return out;
    case kFit:
      break;
  }
  return out;
}

}  // namespace gpuorch::optimizer::internal
