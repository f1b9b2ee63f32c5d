#include "optimizer/ranking.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "optimizer/offer_index.h"

namespace gpuorch::optimizer {
namespace {

using Capacity = OfferRequirements::Capacity;

domain::Offer Make(std::string provider, std::string id, std::string type, int count,
                   double on_demand, std::optional<double> spot = std::nullopt) {
  return domain::Offer{.provider = std::move(provider),
                       .offer_id = id,
                       .instance_type = id,
                       .gpu_type = std::move(type),
                       .gpu_count = count,
                       .on_demand_price = on_demand,
                       .spot_price = spot,
                       .region = "us-east-1"};
}

std::vector<std::string> Ids(const Decision& d) {
  std::vector<std::string> ids;
  for (const auto& r : d.ranked) {
    ids.push_back(r.offer.offer_id);
  }
  return ids;
}

// Every decision is checked against the indexed form too: both must agree exactly.
Decision Rank(const OfferRequirements& req, const std::vector<domain::Offer>& offers,
              size_t limit = 5) {
  Decision linear = RankOffers(req, offers, limit);
  Decision indexed = OfferIndex(offers).Rank(req, limit);
  EXPECT_EQ(linear, indexed) << linear.explanation << "\n" << indexed.explanation;
  return linear;
}

TEST(RankingTest, CheapestFeasibleWins) {
  std::vector<domain::Offer> offers = {
      Make("runpod", "a", "A100", 1, 2.0), Make("runpod", "b", "A100", 1, 1.5),
      Make("vastai", "c", "A100", 1, 1.8), Make("vastai", "d", "H100", 1, 1.0)};
  Decision d = Rank({.gpu_type = "a100"}, offers);
  EXPECT_EQ(Ids(d), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(d.considered, 4);
  EXPECT_EQ(d.feasible, 3);
  EXPECT_FALSE(d.ranked[0].spot);
  EXPECT_DOUBLE_EQ(d.ranked[0].price_per_hour, 1.5);
  EXPECT_DOUBLE_EQ(d.ranked[0].effective_price_per_hour, 1.5);
}

TEST(RankingTest, AnyTypeConsidersEveryType) {
  std::vector<domain::Offer> offers = {Make("runpod", "a", "A100", 1, 2.0),
                                       Make("vastai", "d", "RTX4090", 1, 0.4)};
  EXPECT_EQ(Ids(Rank({.gpu_type = "any"}, offers)), (std::vector<std::string>{"d", "a"}));
  EXPECT_EQ(Ids(Rank({.gpu_type = ""}, offers)), (std::vector<std::string>{"d", "a"}));
}

TEST(RankingTest, CapacityPolicyChoosesPriceKind) {
  std::vector<domain::Offer> offers = {Make("aws", "x", "A100", 1, 2.0, 0.5),
                                       Make("runpod", "y", "A100", 1, 1.5)};
  Decision on_demand = Rank({.gpu_type = "A100", .capacity = Capacity::kOnDemand}, offers);
  EXPECT_EQ(Ids(on_demand), (std::vector<std::string>{"y", "x"}));
  EXPECT_FALSE(on_demand.ranked[1].spot);
  EXPECT_DOUBLE_EQ(on_demand.ranked[1].price_per_hour, 2.0);

  Decision spot = Rank({.gpu_type = "A100", .capacity = Capacity::kSpot}, offers);
  EXPECT_EQ(Ids(spot), (std::vector<std::string>{"x"}));
  EXPECT_EQ(spot.feasible, 1);
  EXPECT_TRUE(spot.ranked[0].spot);
  EXPECT_DOUBLE_EQ(spot.ranked[0].price_per_hour, 0.5);
  EXPECT_DOUBLE_EQ(spot.ranked[0].effective_price_per_hour, 0.5 * (1 + kSpotRiskPremium));

  Decision both = Rank({.gpu_type = "A100"}, offers);
  EXPECT_EQ(Ids(both), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(both.ranked[0].spot);
}

TEST(RankingTest, MarginallyCheaperSpotLosesToReliableOnDemand) {
  domain::Offer on_demand = Make("aws", "od", "A100", 1, 1.00);
  domain::Offer spot = Make("vastai", "sp", "A100", 1, 0, 0.95);
  spot.reliability = 0.99;
  Decision d = Rank({.gpu_type = "A100"}, {on_demand, spot});
  EXPECT_EQ(Ids(d), (std::vector<std::string>{"od", "sp"}));
  EXPECT_NEAR(d.ranked[1].effective_price_per_hour, 0.95 * 1.11, 1e-12);

  // Clearly cheaper spot wins, and an unreliable host counts dearer.
  spot.spot_price = 0.5;
  EXPECT_EQ(Ids(Rank({.gpu_type = "A100"}, {on_demand, spot}))[0], "sp");
  EXPECT_DOUBLE_EQ(EffectivePricePerHour(1.0, true, 0.9), 1.2);
  EXPECT_DOUBLE_EQ(EffectivePricePerHour(1.0, false, 0.5), 1.0);
}

TEST(RankingTest, EachOfferRentedAsItsCheaperKindWithRisk) {
  Decision cheap_spot = Rank({.gpu_type = "A100"}, {Make("aws", "x", "A100", 1, 1.0, 0.6)});
  EXPECT_TRUE(cheap_spot.ranked[0].spot);
  Decision near_spot = Rank({.gpu_type = "A100"}, {Make("aws", "x", "A100", 1, 1.0, 0.95)});
  EXPECT_FALSE(near_spot.ranked[0].spot);
  EXPECT_NE(near_spot.ranked[0].why.find("on-demand at $1.00/h"), std::string::npos);
  EXPECT_NE(near_spot.ranked[0].why.find("spot at $0.95/h"), std::string::npos);
}

TEST(RankingTest, MaxPriceCapsWhatWeWouldPay) {
  std::vector<domain::Offer> offers = {Make("a", "1", "A100", 1, 1.0), Make("a", "2", "A100", 1, 2.0),
                                       Make("a", "3", "A100", 1, 3.0)};
  Decision d = Rank({.gpu_type = "A100", .max_price_per_hour = 2.0}, offers);
  EXPECT_EQ(Ids(d), (std::vector<std::string>{"1", "2"}));
  // On-demand over the cap, spot under it: rented as spot even though its effective price is over.
  Decision s = Rank({.gpu_type = "A100", .max_price_per_hour = 2.0},
                    {Make("a", "4", "A100", 1, 3.0, 1.9)});
  ASSERT_EQ(s.ranked.size(), 1u);
  EXPECT_TRUE(s.ranked[0].spot);
  EXPECT_GT(s.ranked[0].effective_price_per_hour, 2.0);
}

TEST(RankingTest, RegionsMatchExactlyOrByPrefixOrCountry) {
  std::vector<domain::Offer> offers;
  for (std::string region : {"us-east-1", "eu-west-1", "Texas, US", "EU-RO-1", "useast"}) {
    domain::Offer o = Make("p", region, "A100", 1, 1.0);
    o.region = region;
    offers.push_back(o);
  }
  auto ids_in = [&](std::vector<std::string> regions) {
    auto ids = Ids(Rank({.gpu_type = "A100", .regions = std::move(regions)}, offers));
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  EXPECT_EQ(ids_in({"eu"}), (std::vector<std::string>{"EU-RO-1", "eu-west-1"}));
  EXPECT_EQ(ids_in({"US"}), (std::vector<std::string>{"Texas, US", "us-east-1"}));
  EXPECT_EQ(ids_in({"eu-west-1"}), (std::vector<std::string>{"eu-west-1"}));
  EXPECT_EQ(ids_in({"eu-west-1", "useast"}), (std::vector<std::string>{"eu-west-1", "useast"}));
  EXPECT_TRUE(ids_in({"ap"}).empty());
}

TEST(RankingTest, AllowedProvidersAreCaseInsensitive) {
  std::vector<domain::Offer> offers = {Make("runpod", "r", "A100", 1, 2.0),
                                       Make("vastai", "v", "A100", 1, 1.0)};
  EXPECT_EQ(Ids(Rank({.gpu_type = "A100", .allowed_providers = {"RunPod"}}, offers)),
            (std::vector<std::string>{"r"}));
  EXPECT_EQ(Ids(Rank({.gpu_type = "A100", .allowed_providers = {"aws"}}, offers)).size(), 0u);
}

TEST(RankingTest, MinReliability) {
  domain::Offer shaky = Make("vastai", "shaky", "A100", 1, 1.0);
  shaky.reliability = 0.8;
  domain::Offer solid = Make("aws", "solid", "A100", 1, 3.0);
  EXPECT_EQ(Ids(Rank({.gpu_type = "A100", .min_reliability = 0.9}, {shaky, solid})),
            (std::vector<std::string>{"solid"}));
  EXPECT_EQ(Ids(Rank({.gpu_type = "A100", .min_reliability = 0.8}, {shaky, solid})),
            (std::vector<std::string>{"shaky", "solid"}));
}

TEST(RankingTest, GpuCountAndMemory) {
  std::vector<domain::Offer> offers = {Make("a", "1x", "A100", 1, 1.0), Make("a", "2x", "A100", 2, 2.5),
                                       Make("a", "8x", "A100", 8, 9.0)};
  Decision d = Rank({.gpu_type = "A100", .gpu_count = 2}, offers);
  EXPECT_EQ(Ids(d), (std::vector<std::string>{"2x", "8x"}));
  EXPECT_NE(d.ranked[1].why.find("8 GPUs for 2 needed: the whole price counts"), std::string::npos);

  domain::Offer small = Make("a", "40", "A100", 1, 0.5);
  small.gpu_memory_gb = 40;
  domain::Offer known = Make("a", "known", "A100", 1, 1.0);  // no memory stated: A100 is 80 GB
  domain::Offer unknown = Make("a", "unknown", "MYSTERY", 1, 0.1);
  EXPECT_EQ(Ids(Rank({.gpu_type = "", .memory_gb = 80}, {small, known, unknown})),
            (std::vector<std::string>{"known"}));
  // Memory is over the job's GPUs: 2 x 40 GB holds 80 GB.
  domain::Offer two_small = Make("a", "2x40", "A100", 2, 0.9);
  two_small.gpu_memory_gb = 40;
  EXPECT_EQ(Ids(Rank({.gpu_type = "A100", .gpu_count = 2, .memory_gb = 80}, {two_small})),
            (std::vector<std::string>{"2x40"}));
  EXPECT_TRUE(Rank({.gpu_type = "A100", .gpu_count = 2, .memory_gb = 100}, {two_small}).ranked.empty());
}

TEST(RankingTest, OutOfStockSkipped) {
  domain::Offer gone = Make("a", "gone", "A100", 1, 0.5);
  gone.available = 0;
  Decision d = Rank({.gpu_type = "A100"}, {gone, Make("a", "here", "A100", 1, 1.0)});
  EXPECT_EQ(Ids(d), (std::vector<std::string>{"here"}));
  EXPECT_EQ(d.feasible, 1);
}

TEST(RankingTest, ExplanationNamesChosenAndRunnerUp) {
  domain::Offer vast = Make("vastai", "v1", "A100", 1, 0, 1.00);
  vast.instance_type = "1x A100";
  vast.region = "US";
  domain::Offer runpod = Make("runpod", "r1", "A100", 1, 1.19);
  runpod.instance_type = "1x A100";
  runpod.region = "EU-RO-1";
  Decision d = Rank({.gpu_type = "A100"}, {vast, runpod, Make("runpod", "x", "H100", 1, 3)});
  EXPECT_EQ(d.explanation,
            "cheapest: vastai 1x A100 in US at $1.00/h (spot, counted as $1.10/h with its "
            "interruption risk); runner-up: runpod 1x A100 in EU-RO-1 at $1.19/h (on-demand); "
            "2 of 3 offers fit");
  Decision one = Rank({.gpu_type = "A100"}, {runpod});
  EXPECT_NE(one.explanation.find("no runner-up"), std::string::npos);
}

TEST(RankingTest, NothingFeasibleExplainsWhy) {
  domain::Offer p5 = Make("aws", "p5.48xlarge", "H100", 8, 98.32);
  Decision price = Rank({.gpu_type = "H100", .gpu_count = 8, .max_price_per_hour = 20}, {p5});
  EXPECT_TRUE(price.ranked.empty());
  EXPECT_EQ(price.feasible, 0);
  EXPECT_EQ(price.explanation,
            "no offer has 8 x H100 under $20.00/h; cheapest 8 x H100 is aws p5.48xlarge in "
            "us-east-1 at $98.32/h (on-demand)");

  EXPECT_EQ(Rank({.gpu_type = "H200", .gpu_count = 8}, {p5}).explanation,
            "no offer has 8 x H200; no provider offers H200 now");
  EXPECT_EQ(Rank({.gpu_type = "H100", .gpu_count = 16}, {p5}).explanation,
            "no offer has 16 x H100; the largest H100 offer has 8 GPUs");
  EXPECT_EQ(Rank({.gpu_type = "H100"}, {}).explanation,
            "no offer has 1 x H100; no offers are known now (no provider configured, reachable "
            "and fresh)");
  EXPECT_EQ(Rank({.gpu_type = "H100", .capacity = Capacity::kSpot}, {p5}).explanation,
            "no offer has 1 x H100 on spot; none of the 1 offer of that shape is sold as spot");
  EXPECT_NE(Rank({.gpu_type = "H100", .regions = {"eu"}}, {p5})
                .explanation.find("1 offer of that shape are in other regions; cheapest: aws "
                                  "p5.48xlarge in us-east-1 at $98.32/h"),
            std::string::npos);
  EXPECT_NE(Rank({.gpu_type = "H100", .allowed_providers = {"runpod"}}, {p5})
                .explanation.find("from runpod; 1 offer of that shape come from other providers"),
            std::string::npos);

  domain::Offer gone = p5;
  gone.available = 0;
  EXPECT_EQ(Rank({.gpu_type = "H100", .gpu_count = 8}, {gone}).explanation,
            "no offer has 8 x H100; the 1 offer that would fit are out of stock");
  domain::Offer cheap_gone = Make("runpod", "cheap", "H100", 8, 15.0);
  cheap_gone.available = 0;
  EXPECT_EQ(Rank({.gpu_type = "H100", .gpu_count = 8, .max_price_per_hour = 20},
                 {cheap_gone, Make("aws", "p5b", "H100", 8, 99.0)})
                .explanation,
            "no offer has 8 x H100 under $20.00/h; the 1 offer that would fit are out of stock; "
            "the cheapest above the price limit is aws p5b in us-east-1 at $99.00/h (on-demand)");

  EXPECT_EQ(Rank({.gpu_type = "H100", .memory_gb = 100}, {p5}).explanation,
            "no offer has 1 x H100 with 100 GB GPU memory; the most GPU memory on offer is 80 GB "
            "per GPU, and 100 GB per GPU is needed");
  domain::Offer shaky = Make("vastai", "v", "H100", 1, 0, 1.5);
  shaky.reliability = 0.9;
  EXPECT_EQ(Rank({.gpu_type = "H100", .min_reliability = 0.95}, {shaky}).explanation,
            "no offer has 1 x H100 with reliability >= 0.95; 1 offer of that shape are below "
            "reliability 0.95; cheapest: vastai v in us-east-1 at $1.50/h (spot) with reliability "
            "0.9");
}

TEST(RankingTest, TiesBrokenByReliabilityThenProviderThenOfferId) {
  domain::Offer a = Make("vastai", "2", "A100", 1, 1.0);
  domain::Offer b = Make("runpod", "9", "A100", 1, 1.0);
  domain::Offer c = Make("runpod", "1", "A100", 1, 1.0);
  domain::Offer d = Make("aws", "5", "A100", 1, 1.0);
  d.reliability = 0.9;
  std::vector<domain::Offer> offers = {a, b, c, d};
  const std::vector<std::string> want = {"1", "9", "2", "5"};
  std::sort(offers.begin(), offers.end(),
            [](const auto& x, const auto& y) { return x.offer_id < y.offer_id; });
  do {
    EXPECT_EQ(Ids(Rank({.gpu_type = "A100"}, offers)), want);
  } while (std::next_permutation(offers.begin(), offers.end(), [](const auto& x, const auto& y) {
    return x.offer_id < y.offer_id;
  }));
}

TEST(RankingTest, LimitKeepsTheBestAndCountsAll) {
  std::vector<domain::Offer> offers;
  for (int i = 0; i < 10; ++i) {
    offers.push_back(Make("p", std::to_string(i), "A100", 1, 10.0 - i));
  }
  Decision d = Rank({.gpu_type = "A100"}, offers, 3);
  EXPECT_EQ(Ids(d), (std::vector<std::string>{"9", "8", "7"}));
  EXPECT_EQ(d.feasible, 10);
  Decision none = Rank({.gpu_type = "A100"}, offers, 0);
  EXPECT_TRUE(none.ranked.empty());
  EXPECT_NE(none.explanation.find("cheapest: p 9"), std::string::npos);
}

TEST(RankingTest, IndexDecidesLikeTheLinearPass) {
  std::mt19937 rng(7);
  const char* types[] = {"A100", "H100", "RTX4090", "H200", "MYSTERY"};
  const char* providers[] = {"aws", "runpod", "vastai"};
  const char* regions[] = {"us-east-1", "eu-west-1", "Texas, US", "EU-RO-1", ""};
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  std::vector<domain::Offer> offers;
  for (int i = 0; i < 3000; ++i) {
    domain::Offer o = Make(providers[pick(3)], "o" + std::to_string(i), types[pick(5)],
                           1 << pick(4), pick(4) == 0 ? 0 : 0.25 * (1 + pick(40)));
    if (pick(2) == 0) {
      o.spot_price = 0.25 * (1 + pick(30));
    }
    o.region = regions[pick(5)];
    o.reliability = 0.8 + 0.05 * pick(5);
    o.available = pick(10) == 0 ? 0 : 1;
    o.gpu_memory_gb = pick(3) == 0 ? 0 : 24.0 * (1 + pick(4));
    offers.push_back(std::move(o));
  }
  for (int round = 0; round < 200; ++round) {
    OfferRequirements req{.gpu_type = pick(6) == 5 ? "" : types[pick(5)],
                          .gpu_count = 1 << pick(4),
                          .memory_gb = pick(3) == 0 ? 24.0 * pick(8) : 0,
                          .capacity = static_cast<Capacity>(pick(3)),
                          .max_price_per_hour = pick(3) == 0 ? 0.5 * pick(20) : 0,
                          .min_reliability = pick(3) == 0 ? 0.9 : 0};
    if (pick(4) == 0) {
      req.regions = {pick(2) == 0 ? "us" : "eu-west-1"};
    }
    if (pick(4) == 0) {
      req.allowed_providers = {providers[pick(3)]};
    }
    Rank(req, offers, static_cast<size_t>(pick(8)));
  }
}

TEST(RankingTest, EstimateCostUsesThePriceWePay) {
  RankedOffer r{.spot = true, .price_per_hour = 2.0, .effective_price_per_hour = 2.4};
  EXPECT_DOUBLE_EQ(EstimateCostUsd(r, 5400), 3.0);
  EXPECT_DOUBLE_EQ(EstimateCostUsd(r, -1), 0.0);
}

}  // namespace
}  // namespace gpuorch::optimizer
