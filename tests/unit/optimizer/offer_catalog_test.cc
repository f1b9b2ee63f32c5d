#include "optimizer/offer_catalog.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gpuorch::optimizer {
namespace {

using std::chrono::minutes;
using std::chrono::milliseconds;
using std::chrono::seconds;

// An in-memory provider: offers set by the test, optional failure and latency (on the clock).
class FakeProvider final : public providers::Provider {
 public:
  FakeProvider(std::string name, core::FakeClock& clock, bool configured = true)
      : name_(std::move(name)), clock_(clock), configured_(configured) {}

  std::string_view Name() const override { return name_; }
  bool Configured() const override { return configured_; }
  core::Result<std::vector<domain::Offer>> ListOffers() override {
    std::unique_lock lock(mu_);
    ++calls_;
    called_.notify_all();
    if (latency_.count() > 0) {
      clock_.SleepFor(latency_);
    }
    if (error_) {
      return core::Fail(*error_);
    }
    return offers_;
  }
  core::Result<providers::ProviderInstance> Create(const providers::CreateInstanceRequest&) override {
    return core::Fail(core::Code::kUnimplemented, "not in this fake");
  }
  core::Result<providers::ProviderInstance> Describe(const std::string&) override {
    return core::Fail(core::Code::kUnimplemented, "not in this fake");
  }
  core::Result<std::vector<providers::ProviderInstance>> ListOurs() override {
    return core::Fail(core::Code::kUnimplemented, "not in this fake");
  }
  core::Status Terminate(const std::string&) override {
    return core::Fail(core::Code::kUnimplemented, "not in this fake");
  }
  core::Status Health() override { return core::Ok(); }

  void SetOffers(std::vector<domain::Offer> offers) {
    std::lock_guard lock(mu_);
    offers_ = std::move(offers);
  }
  void Fail(std::optional<core::Error> error) {
    std::lock_guard lock(mu_);
    error_ = std::move(error);
  }
  void SetLatency(milliseconds latency) {
    std::lock_guard lock(mu_);
    latency_ = latency;
  }
  void SetConfigured(bool configured) { configured_ = configured; }
  int calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // Waits (up to 5 s) until ListOffers() has been called `n` times.
  bool WaitForCalls(int n) {
    std::unique_lock lock(mu_);
    return called_.wait_for(lock, seconds(5), [&] { return calls_ >= n; });
  }

 private:
  const std::string name_;
  core::FakeClock& clock_;
  std::atomic<bool> configured_;
  mutable std::mutex mu_;
  std::condition_variable called_;
  std::vector<domain::Offer> offers_;
  std::optional<core::Error> error_;
  milliseconds latency_{0};
  int calls_ = 0;
};

domain::Offer Offer(std::string id, double price, std::string type = "A100") {
  return domain::Offer{.offer_id = std::move(id),
                       .instance_type = "1x " + type,
                       .gpu_type = std::move(type),
                       .gpu_count = 1,
                       .on_demand_price = price,
                       .region = "us-east-1"};
}

std::vector<std::string> Ids(const std::vector<domain::Offer>& offers) {
  std::vector<std::string> ids;
  for (const auto& o : offers) {
    ids.push_back(o.provider + "/" + o.offer_id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

class OfferCatalogTest : public ::testing::Test {
 protected:
  core::FakeClock clock_;
  FakeProvider runpod_{"runpod", clock_};
  FakeProvider vastai_{"vastai", clock_};
  FakeProvider aws_{"aws", clock_, /*configured=*/false};
};

TEST_F(OfferCatalogTest, RefreshServesOffersOfConfiguredProviders) {
  runpod_.SetOffers({Offer("r1", 2.0), Offer("r2", 1.2)});
  vastai_.SetOffers({Offer("v1", 1.5)});
  vastai_.SetLatency(milliseconds(250));
  OfferCatalog catalog({&runpod_, &vastai_, &aws_}, clock_);
  EXPECT_TRUE(catalog.Offers().empty());
  EXPECT_TRUE(catalog.Status("runpod").value().stale);  // nothing fetched yet

  catalog.Refresh();
  EXPECT_EQ(Ids(catalog.Offers()),
            (std::vector<std::string>{"runpod/r1", "runpod/r2", "vastai/v1"}));
  EXPECT_EQ(Ids(catalog.OffersOf("vastai")), (std::vector<std::string>{"vastai/v1"}));
  EXPECT_EQ(catalog.Decide({.gpu_type = "A100"}).ranked.at(0).offer.offer_id, "r2");

  ProviderStatus vast = catalog.Status("vastai").value();
  EXPECT_EQ(vast.name, "vastai");
  EXPECT_TRUE(vast.configured);
  EXPECT_TRUE(vast.reachable);
  EXPECT_EQ(vast.latency_ms, 250);
  EXPECT_EQ(vast.last_error, "");
  EXPECT_EQ(vast.last_refresh_at, clock_.Now());
  EXPECT_EQ(vast.offers_count, 1);
  EXPECT_FALSE(vast.stale);
  std::vector<ProviderStatus> all = catalog.Statuses();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name, "runpod");
  EXPECT_EQ(all[0].offers_count, 2);
  EXPECT_EQ(all[2].name, "aws");
}

TEST_F(OfferCatalogTest, UnconfiguredProviderIsNeverCalled) {
  aws_.SetOffers({Offer("p4d", 30)});
  OfferCatalog catalog({&runpod_, &aws_}, clock_);
  catalog.Refresh();
  catalog.Refresh();
  EXPECT_EQ(aws_.calls(), 0);
  EXPECT_EQ(runpod_.calls(), 2);
  EXPECT_TRUE(catalog.OffersOf("aws").empty());
  ProviderStatus status = catalog.Status("aws").value();
  EXPECT_FALSE(status.configured);
  EXPECT_FALSE(status.reachable);
  EXPECT_FALSE(status.stale);
  EXPECT_EQ(status.offers_count, 0);
  EXPECT_FALSE(status.last_refresh_at.has_value());
}

TEST_F(OfferCatalogTest, ProviderLosingItsKeyDropsItsOffers) {
  runpod_.SetOffers({Offer("r1", 2.0)});
  OfferCatalog catalog({&runpod_}, clock_);
  catalog.Refresh();
  ASSERT_EQ(catalog.Offers().size(), 1u);
  runpod_.SetConfigured(false);
  catalog.Refresh();
  EXPECT_TRUE(catalog.Offers().empty());
  EXPECT_FALSE(catalog.Status("runpod").value().configured);
  EXPECT_EQ(runpod_.calls(), 1);
}

TEST_F(OfferCatalogTest, OffersExpireAfterTheTtl) {
  runpod_.SetOffers({Offer("r1", 2.0)});
  OfferCatalog catalog({&runpod_}, clock_, CatalogOptions{.ttl = minutes(5)});
  catalog.Refresh();
  clock_.Advance(minutes(5) - milliseconds(1));
  EXPECT_EQ(catalog.Offers().size(), 1u);
  EXPECT_FALSE(catalog.Status("runpod").value().stale);
  clock_.Advance(milliseconds(1));
  EXPECT_TRUE(catalog.Offers().empty());
  EXPECT_TRUE(catalog.Decide({}).ranked.empty());
  ProviderStatus status = catalog.Status("runpod").value();
  EXPECT_TRUE(status.stale);
  EXPECT_EQ(status.offers_count, 0);
  EXPECT_TRUE(status.reachable);  // the last call worked; it is just old

  catalog.Refresh();
  EXPECT_EQ(catalog.Offers().size(), 1u);
  EXPECT_FALSE(catalog.Status("runpod").value().stale);
}

TEST_F(OfferCatalogTest, FailingProviderKeepsItsLastOffersUntilTheTtl) {
  runpod_.SetOffers({Offer("r1", 2.0)});
  OfferCatalog catalog({&runpod_}, clock_);  // default TTL: 5 minutes
  catalog.Refresh();
  const core::SystemTime fetched = clock_.Now();

  runpod_.Fail(providers::ProviderError(providers::ProviderCause::kTransient,
                                        "runpod: HTTP 503 Service Unavailable"));
  clock_.Advance(minutes(3));
  catalog.Refresh();
  EXPECT_EQ(catalog.Offers().size(), 1u);
  ProviderStatus status = catalog.Status("runpod").value();
  EXPECT_FALSE(status.reachable);
  EXPECT_EQ(status.last_error, "runpod: HTTP 503 Service Unavailable");
  EXPECT_EQ(status.last_refresh_at, fetched);
  EXPECT_FALSE(status.stale);

  clock_.Advance(minutes(2));
  catalog.Refresh();
  EXPECT_TRUE(catalog.Offers().empty());
  EXPECT_TRUE(catalog.Status("runpod").value().stale);

  runpod_.Fail(std::nullopt);
  catalog.Refresh();
  status = catalog.Status("runpod").value();
  EXPECT_TRUE(status.reachable);
  EXPECT_EQ(status.last_error, "");
  EXPECT_EQ(catalog.Offers().size(), 1u);
}

TEST_F(OfferCatalogTest, MarkUnavailableFailsOverUntilTheDurationPasses) {
  runpod_.SetOffers({Offer("cheap", 1.0), Offer("dear", 2.0)});
  vastai_.SetOffers({Offer("cheap", 1.5)});  // same offer id at another provider: not hidden
  OfferCatalog catalog({&runpod_, &vastai_}, clock_, CatalogOptions{.ttl = minutes(60)});
  catalog.Refresh();
  ASSERT_EQ(catalog.Decide({.gpu_type = "A100"}).ranked.at(0).offer.offer_id, "cheap");

  catalog.MarkUnavailable("runpod", "cheap", minutes(10));
  Decision d = catalog.Decide({.gpu_type = "A100"});
  ASSERT_EQ(d.ranked.size(), 2u);
  EXPECT_EQ(d.ranked[0].offer.provider, "vastai");
  EXPECT_EQ(d.ranked[1].offer.offer_id, "dear");
  EXPECT_EQ(Ids(catalog.OffersOf("runpod")), (std::vector<std::string>{"runpod/dear"}));

  catalog.Refresh();  // a refresh does not forget it
  clock_.Advance(minutes(10) - milliseconds(1));
  EXPECT_EQ(catalog.OffersOf("runpod").size(), 1u);
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(catalog.OffersOf("runpod").size(), 2u);
  EXPECT_EQ(catalog.Decide({.gpu_type = "A100"}).ranked.at(0).offer.provider, "runpod");

  catalog.MarkUnavailable("nobody", "cheap", minutes(10));  // ignored
  EXPECT_EQ(catalog.Offers().size(), 3u);
}

TEST_F(OfferCatalogTest, StatusOfUnknownProviderIsNotFound) {
  OfferCatalog catalog({&runpod_}, clock_);
  auto status = catalog.Status("lambda");
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, core::Code::kNotFound);
}

TEST_F(OfferCatalogTest, StartRefreshesInTheBackground) {
  runpod_.SetOffers({Offer("r1", 2.0)});
  OfferCatalog catalog({&runpod_}, clock_, CatalogOptions{.refresh_interval = milliseconds(5)});
  catalog.Start();
  ASSERT_TRUE(runpod_.WaitForCalls(3));
  catalog.Stop();
  const int calls = runpod_.calls();
  EXPECT_EQ(catalog.Offers().size(), 1u);
  catalog.Stop();  // idempotent
  EXPECT_EQ(runpod_.calls(), calls);
}

// Readers rank and list while the offers change underneath: each read sees one whole answer of each
// provider, never a mix.
TEST_F(OfferCatalogTest, ConcurrentReadsDuringRefresh) {
  auto generation = [](int g) {
    std::vector<domain::Offer> offers;
    for (int i = 0; i < 100 * (g % 2 + 1); ++i) {
      offers.push_back(Offer("g" + std::to_string(g) + "-" + std::to_string(i), 1.0 + i * 0.01));
    }
    return offers;
  };
  runpod_.SetOffers(generation(0));
  vastai_.SetOffers(generation(0));
  OfferCatalog catalog({&runpod_, &vastai_}, clock_);
  catalog.Refresh();

  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      while (!stop) {
        for (const char* provider : {"runpod", "vastai"}) {
          std::vector<domain::Offer> offers = catalog.OffersOf(provider);
          if (offers.size() != 100 && offers.size() != 200) {
            ++bad;
            continue;
          }
          const std::string prefix = offers[0].offer_id.substr(0, offers[0].offer_id.find('-'));
          for (const auto& o : offers) {
            if (o.offer_id.rfind(prefix + "-", 0) != 0) {
              ++bad;
              break;
            }
          }
        }
        Decision d = catalog.Decide({.gpu_type = "A100"}, 3);
        if (d.ranked.size() != 3 || d.ranked[0].price_per_hour != 1.0) {
          ++bad;
        }
        (void)catalog.Statuses();
        ++reads;
      }
    });
  }
  for (int g = 1; g <= 200; ++g) {
    runpod_.SetOffers(generation(g));
    vastai_.SetOffers(generation(g + 1));
    if (g % 50 == 0) {
      catalog.MarkUnavailable("vastai", "nothing", seconds(1));
    }
    catalog.Refresh();
  }
  while (reads < 30) {
    std::this_thread::yield();
  }
  stop = true;
  for (auto& r : readers) {
    r.join();
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(Ids(catalog.OffersOf("runpod")).size(), 100u);  // generation 200
}

}  // namespace
}  // namespace gpuorch::optimizer
