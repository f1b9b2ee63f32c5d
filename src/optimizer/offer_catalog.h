// OfferCatalog: the offers of every provider, cached and refreshed in the background, and how each
// provider is doing.
//
// Each configured provider's ListOffers() runs on Refresh() and then every `refresh_interval` on
// the catalog's own loop thread after Start(). What it returned is served for `ttl` after that
// call: a provider whose calls keep failing keeps its last offers until then, and afterwards
// serves none and reports itself stale. A provider that is not Configured() is never called.
// MarkUnavailable() hides one offer for a while (a negative cache after a create found no
// capacity), so the next decision fails over to the next offer.
//
// Readers take an immutable snapshot (an OfferIndex of the offers served at that moment) by
// shared_ptr under a short lock and rank on it without any lock. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "core/periodic_loop.h"
#include "domain/instance.h"
#include "optimizer/offer_index.h"
#include "optimizer/ranking.h"
#include "providers/provider.h"

namespace gpuorch::optimizer {

struct CatalogOptions {
  std::chrono::milliseconds refresh_interval = std::chrono::seconds(60);
  std::chrono::milliseconds ttl = std::chrono::minutes(5);  // how long fetched offers are served
};

struct ProviderStatus {
  std::string name;
  bool configured = false;
  bool reachable = false;   // the last ListOffers() call succeeded
  int64_t latency_ms = 0;   // duration of the last ListOffers() call, failed or not
  std::string last_error;   // the last call's error message; empty when it succeeded
  std::optional<core::SystemTime> last_refresh_at;  // the last successful call; nullopt: none yet
  int offers_count = 0;     // offers served from it now (0 when stale)
  bool stale = false;       // configured, and no successful call within the TTL

  bool operator==(const ProviderStatus&) const = default;
};

class OfferCatalog {
 public:
  // Borrows `providers` (non-null, distinct names) and `clock`; both must outlive the catalog.
  // Calls nothing until Refresh() or Start().
  OfferCatalog(std::vector<providers::Provider*> providers, const core::Clock& clock,
               CatalogOptions options = {});
  ~OfferCatalog();  // Stop()s
  OfferCatalog(const OfferCatalog&) = delete;
  OfferCatalog& operator=(const OfferCatalog&) = delete;

  // Calls ListOffers() of every configured provider, one after the other, and publishes each
  // answer as it comes. Blocks for as long as the providers take. Concurrent calls run one at a
  // time.
  void Refresh();
  // Refreshes the provider named `name` now (e.g. after its credentials changed); blocks on its
  // ListOffers(). No-op for an unknown name.
  void RefreshProvider(const std::string& name);
  // Refreshes now and then every refresh_interval on a background thread. Start() after Stop()
  // does nothing.
  void Start();
  // Waits for a refresh in progress to end. Idempotent.
  void Stop();

  // The offers served now: fresh offers of configured providers, less those marked unavailable.
  std::vector<domain::Offer> Offers() const;
  std::vector<domain::Offer> OffersOf(std::string_view provider) const;
  // The offers served now, prepared for ranking; never null. Hold it as long as needed.
  std::shared_ptr<const OfferIndex> Snapshot() const;
  // Snapshot()->Rank(requirements, limit).
  Decision Decide(const OfferRequirements& requirements, size_t limit = 5) const;

  // kNotFound for a provider the catalog does not have.
  [[nodiscard]] core::Result<ProviderStatus> Status(std::string_view provider) const;
  std::vector<ProviderStatus> Statuses() const;  // in the order providers were given

  // Hides `offer_id` of `provider` from Offers() and decisions for `duration` from now. Marking it
  // again extends or shortens the period to the new one. Unknown providers are ignored.
  void MarkUnavailable(std::string_view provider, std::string_view offer_id,
                       std::chrono::milliseconds duration);

 private:
  struct Entry {
    providers::Provider* provider = nullptr;
    std::string name;
    bool configured = false;
    bool reachable = false;
    int64_t latency_ms = 0;
    std::string last_error;
    std::optional<core::SystemTime> last_refresh_at;
    std::optional<core::MonotonicTime> fetched_at;  // the last successful call, for the TTL
    std::shared_ptr<const std::vector<domain::Offer>> offers;
    std::map<std::string, core::MonotonicTime, std::less<>> unavailable;  // offer_id → until
  };

  void RefreshOne(Entry& entry);
  bool IsFresh(const Entry& entry, core::MonotonicTime now) const;
  // Makes the next Snapshot() rebuild. REQUIRES: mu_ held.
  void InvalidateLocked();
  ProviderStatus StatusLocked(const Entry& entry, core::MonotonicTime now) const;

  const core::Clock& clock_;
  const CatalogOptions options_;
  std::mutex refresh_mu_;  // one Refresh() at a time
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // GUARDED_BY(mu_); the list itself is fixed at construction
  // What readers get, and until when it stays right (an expiry or a negative-cache end).
  mutable std::shared_ptr<const OfferIndex> snapshot_;  // GUARDED_BY(mu_)
  mutable core::MonotonicTime snapshot_valid_until_;    // GUARDED_BY(mu_)
  uint64_t generation_ = 0;  // GUARDED_BY(mu_); bumped by every change of entries_
  core::PeriodicLoop loop_;
};

}  // namespace gpuorch::optimizer
