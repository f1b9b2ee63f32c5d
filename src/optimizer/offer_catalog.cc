#include "optimizer/offer_catalog.h"

#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

#include "core/log.h"

namespace gpuorch::optimizer {
namespace {

// The offers one provider contributes to a snapshot, and the ones hidden from it.
struct Source {
  std::shared_ptr<const std::vector<domain::Offer>> offers;
  std::map<std::string, core::MonotonicTime, std::less<>> unavailable;  // active ones only
};

core::Result<std::vector<domain::Offer>> CallListOffers(providers::Provider& provider) {
  // A provider reports failures as errors; anything it throws still must not stop the refresh.
  try {
    return provider.ListOffers();
  } catch (const std::exception& e) {
    return core::Fail(core::Code::kInternal, std::string("list offers threw: ") + e.what());
  }
}

}  // namespace

OfferCatalog::OfferCatalog(std::vector<providers::Provider*> providers, const core::Clock& clock,
                           CatalogOptions options)
    : clock_(clock),
      options_(options),
      snapshot_(std::make_shared<const OfferIndex>()),
      snapshot_valid_until_(core::MonotonicTime::max()),
      loop_("offer-catalog", options.refresh_interval, [this] { Refresh(); }) {
  entries_.reserve(providers.size());
  for (providers::Provider* provider : providers) {
    Entry entry;
    entry.provider = provider;
    entry.name = std::string(provider->Name());
    entry.configured = provider->Configured();
    entries_.push_back(std::move(entry));
  }
}

OfferCatalog::~OfferCatalog() { Stop(); }

void OfferCatalog::Start() { loop_.Start(); }

void OfferCatalog::Stop() { loop_.Stop(); }

void OfferCatalog::Refresh() {
  std::lock_guard refresh_lock(refresh_mu_);
  // entries_ never grows or shrinks, so references to its elements stay valid without mu_; only
  // their mutable fields need it.
  for (Entry& entry : entries_) {
    RefreshOne(entry);
    Snapshot();  // publish each provider's answer as it comes
  }
}

void OfferCatalog::RefreshProvider(const std::string& name) {
  std::lock_guard refresh_lock(refresh_mu_);
  for (Entry& entry : entries_) {
    if (entry.name == name) {
      RefreshOne(entry);
      Snapshot();
    }
  }
}

void OfferCatalog::RefreshOne(Entry& entry) {
  providers::Provider& provider = *entry.provider;
  if (!provider.Configured()) {
    std::lock_guard lock(mu_);
    // Its key was removed: what it offered is no longer ours to rent.
    entry.configured = false;
    entry.reachable = false;
    entry.last_error.clear();
    entry.fetched_at.reset();
    entry.unavailable.clear();
    if (entry.offers) {
      entry.offers.reset();
      InvalidateLocked();
    }
    return;
  }
  const core::MonotonicTime started = clock_.MonotonicNow();
  core::Result<std::vector<domain::Offer>> result = CallListOffers(provider);
  const core::MonotonicTime ended = clock_.MonotonicNow();
  const auto latency =
      std::chrono::duration_cast<std::chrono::milliseconds>(ended - started).count();
  if (!result) {
    spdlog::warn("offer catalog: {} list offers failed after {} ms: {}", entry.name, latency,
                 core::SanitizeForLog(result.error().message));
  }
  std::lock_guard lock(mu_);
  entry.configured = true;
  entry.latency_ms = latency;
  std::erase_if(entry.unavailable, [&](const auto& kv) { return kv.second <= ended; });
  if (!result) {
    entry.reachable = false;
    entry.last_error = result.error().message.empty() ? result.error().ReasonOrDefault()
                                                       : result.error().message;
    return;  // the last offers stay until their TTL; the snapshot expires them by itself
  }
  for (domain::Offer& offer : *result) {
    offer.provider = entry.name;
  }
  entry.reachable = true;
  entry.last_error.clear();
  entry.last_refresh_at = clock_.Now();
  entry.fetched_at = ended;
  entry.offers = std::make_shared<const std::vector<domain::Offer>>(std::move(*result));
  InvalidateLocked();
}

bool OfferCatalog::IsFresh(const Entry& entry, core::MonotonicTime now) const {
  return entry.configured && entry.offers && entry.fetched_at &&
         now < *entry.fetched_at + options_.ttl;
}

void OfferCatalog::InvalidateLocked() {
  ++generation_;
  snapshot_valid_until_ = core::MonotonicTime::min();
}

std::shared_ptr<const OfferIndex> OfferCatalog::Snapshot() const {
  // The index is built outside the lock from the per-provider offer lists (shared, immutable), so
  // neither readers nor refreshes wait on a rebuild.
  std::vector<Source> sources;
  core::MonotonicTime now;
  core::MonotonicTime valid_until = core::MonotonicTime::max();
  uint64_t generation = 0;
  size_t total = 0;
  {
    std::lock_guard lock(mu_);
    now = clock_.MonotonicNow();
    if (now < snapshot_valid_until_) {
      return snapshot_;
    }
    generation = generation_;
    for (const Entry& entry : entries_) {
      if (!IsFresh(entry, now)) {
        continue;
      }
      valid_until = std::min(valid_until, *entry.fetched_at + options_.ttl);
      Source source{.offers = entry.offers};
      for (const auto& [offer_id, until] : entry.unavailable) {
        if (until > now) {
          source.unavailable.emplace(offer_id, until);
          valid_until = std::min(valid_until, until);
        }
      }
      total += entry.offers->size();
      sources.push_back(std::move(source));
    }
  }
  std::vector<domain::Offer> offers;
  offers.reserve(total);
  for (const Source& source : sources) {
    for (const domain::Offer& offer : *source.offers) {
      if (source.unavailable.empty() || !source.unavailable.contains(offer.offer_id)) {
        offers.push_back(offer);
      }
    }
  }
  auto index = std::make_shared<const OfferIndex>(std::move(offers));
  std::lock_guard lock(mu_);
  if (generation == generation_) {
    snapshot_ = index;
    snapshot_valid_until_ = valid_until;
  }
  return index;
}

std::vector<domain::Offer> OfferCatalog::Offers() const { return Snapshot()->offers(); }

std::vector<domain::Offer> OfferCatalog::OffersOf(std::string_view provider) const {
  std::shared_ptr<const OfferIndex> snapshot = Snapshot();
  std::vector<domain::Offer> out;
  for (const domain::Offer& offer : snapshot->offers()) {
    if (offer.provider == provider) {
      out.push_back(offer);
    }
  }
  return out;
}

Decision OfferCatalog::Decide(const OfferRequirements& requirements, size_t limit) const {
  return Snapshot()->Rank(requirements, limit);
}

ProviderStatus OfferCatalog::StatusLocked(const Entry& entry, core::MonotonicTime now) const {
  const bool fresh = IsFresh(entry, now);
  return ProviderStatus{
      .name = entry.name,
      .configured = entry.configured,
      .reachable = entry.reachable,
      .latency_ms = entry.latency_ms,
      .last_error = entry.last_error,
      .last_refresh_at = entry.last_refresh_at,
      .offers_count = fresh ? static_cast<int>(entry.offers->size()) : 0,
      .stale = entry.configured && !fresh,
  };
}

core::Result<ProviderStatus> OfferCatalog::Status(std::string_view provider) const {
  std::lock_guard lock(mu_);
  const core::MonotonicTime now = clock_.MonotonicNow();
  for (const Entry& entry : entries_) {
    if (entry.name == provider) {
      return StatusLocked(entry, now);
    }
  }
  return core::Fail(core::Code::kNotFound, "no provider named " + std::string(provider), "",
                    "unknown_provider");
}

std::vector<ProviderStatus> OfferCatalog::Statuses() const {
  std::lock_guard lock(mu_);
  const core::MonotonicTime now = clock_.MonotonicNow();
  std::vector<ProviderStatus> out;
  out.reserve(entries_.size());
  for (const Entry& entry : entries_) {
    out.push_back(StatusLocked(entry, now));
  }
  return out;
}

void OfferCatalog::MarkUnavailable(std::string_view provider, std::string_view offer_id,
                                   std::chrono::milliseconds duration) {
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& e) { return e.name == provider; });
    if (it == entries_.end()) {
      return;
    }
    const core::MonotonicTime now = clock_.MonotonicNow();
    std::erase_if(it->unavailable, [&](const auto& kv) { return kv.second <= now; });
    it->unavailable.insert_or_assign(std::string(offer_id), now + duration);
    InvalidateLocked();
  }
  Snapshot();
}

}  // namespace gpuorch::optimizer
