#include <gtest/gtest.h>

#include "optimizer/ranking.h"

namespace gpuorch::optimizer {
namespace {

using Capacity = OfferRequirements::Capacity;

domain::JobSpec Spec(std::string config_json) {
  return domain::JobSpec{.gpu_type = "NVIDIA A100",
                         .gpu_count = 2,
                         .memory_gb = 160,
                         .config_json = std::move(config_json),
                         .allowed_providers = {"RunPod", "vastai"}};
}

TEST(RequirementsTest, ShapeFromTheSpecAndDefaultsElsewhere) {
  auto req = RequirementsFor(Spec(""), OfferRequirements{.min_reliability = 0.9});
  ASSERT_TRUE(req.has_value()) << req.error().message;
  EXPECT_EQ(req->gpu_type, "A100");
  EXPECT_EQ(req->gpu_count, 2);
  EXPECT_DOUBLE_EQ(req->memory_gb, 160);
  EXPECT_EQ(req->allowed_providers, (std::vector<std::string>{"runpod", "vastai"}));
  EXPECT_EQ(req->capacity, Capacity::kSpotThenOnDemand);
  EXPECT_DOUBLE_EQ(req->min_reliability, 0.9);
  EXPECT_DOUBLE_EQ(req->max_price_per_hour, 0);
  EXPECT_TRUE(req->regions.empty());
  auto any = RequirementsFor(domain::JobSpec{.gpu_type = "any"});
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(any->gpu_type, "");
}

TEST(RequirementsTest, ConfigKeys) {
  auto req = RequirementsFor(Spec(
      R"({"spot": true, "max_price_per_hour": 4.5, "region": "us-east-1", "min_reliability": 0.95,
          "model": "ignored"})"));
  ASSERT_TRUE(req.has_value()) << req.error().message;
  EXPECT_EQ(req->capacity, Capacity::kSpot);
  EXPECT_DOUBLE_EQ(req->max_price_per_hour, 4.5);
  EXPECT_EQ(req->regions, (std::vector<std::string>{"us-east-1"}));
  EXPECT_DOUBLE_EQ(req->min_reliability, 0.95);

  EXPECT_EQ(RequirementsFor(Spec(R"({"spot": false})")).value().capacity, Capacity::kOnDemand);
  EXPECT_EQ(RequirementsFor(Spec(R"({"spot": "on_demand"})")).value().capacity,
            Capacity::kOnDemand);
  EXPECT_EQ(RequirementsFor(Spec(R"({"spot": true, "capacity": "spot_then_on_demand"})"))
                .value()
                .capacity,
            Capacity::kSpotThenOnDemand);
  EXPECT_EQ(RequirementsFor(Spec(R"({"capacity": "ON_DEMAND"})")).value().capacity,
            Capacity::kOnDemand);
  EXPECT_EQ(RequirementsFor(Spec(R"({"regions": ["eu", "us-west-2"]})")).value().regions,
            (std::vector<std::string>{"eu", "us-west-2"}));
  EXPECT_EQ(RequirementsFor(Spec("null")).value().capacity, Capacity::kSpotThenOnDemand);
}

TEST(RequirementsTest, BadConfigIsInvalidArgumentNamingTheField) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const Case& c : {Case{R"({"spot": 1})", "config.spot"},
                        Case{R"({"capacity": "cheap"})", "config.capacity"},
                        Case{R"({"max_price_per_hour": "5"})", "config.max_price_per_hour"},
                        Case{R"({"max_price_per_hour": -1})", "config.max_price_per_hour"},
                        Case{R"({"min_reliability": 1.5})", "config.min_reliability"},
                        Case{R"({"region": 3})", "config.region"},
                        Case{R"({"regions": "eu"})", "config.regions"},
                        Case{R"({"regions": ["eu", 1]})", "config.regions"},
                        Case{R"([1, 2])", "config"}, Case{R"({"spot": )", "config"}}) {
    auto req = RequirementsFor(Spec(c.json));
    ASSERT_FALSE(req.has_value()) << c.json;
    EXPECT_EQ(req.error().code, core::Code::kInvalidArgument) << c.json;
    EXPECT_EQ(req.error().field, c.field) << c.json;
  }
}

TEST(RequirementsTest, CapacityNames) {
  for (Capacity c : {Capacity::kOnDemand, Capacity::kSpot, Capacity::kSpotThenOnDemand}) {
    EXPECT_EQ(ParseCapacity(ToString(c)), c);
  }
  EXPECT_EQ(ParseCapacity("on-demand"), Capacity::kOnDemand);
  EXPECT_FALSE(ParseCapacity("reserved").has_value());
}

}  // namespace
}  // namespace gpuorch::optimizer
