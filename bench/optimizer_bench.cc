// One cost decision over 50,000 offers from three providers, the size of a full catalog:
//   vastai  35,000 marketplace asks (mostly RTX 4090/3090, some A100/H100/L40S/A6000, a few 8 x H200;
//           1-8 GPUs; ~80% also interruptible; host reliability 0.85-1.0; ~5% out of stock)
//   aws     10,000 instance type × availability zone pairs (p4d 8 x A100, p5 8 x H100, p5e 8 x H200
//           in few zones, g5 A10G, g6 L4, g4dn T4, p3 V100; spot prices for all)
//   runpod   5,000 pod types × data centers (1-8 GPUs, ~60% with a spot price)
//
// Requirements (the benchmark argument):
//   0 a100x1   1 x A100, spot or on-demand: a common type, hundreds feasible
//   1 h200x8   8 x H200: a rare type, a handful feasible
//   2 any x1   1 x any GPU: every offer is feasible and competes
//   3 filtered 1 x any GPU in "us", from aws or vastai, under $2/h, reliability >= 0.95
//
//   BM_RankOffers  RankOffers over the plain offer list (one pass over every offer)
//   BM_IndexRank   OfferIndex::Rank over an index built once (as the catalog's snapshot does)
//   BM_IndexBuild  building that index
//
// One iteration is one decision, so Time is the time per decision; items_per_second counts offers in
// the catalog per second of deciding; feasible is how many offers fit; the label names the choice.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "optimizer/offer_index.h"
#include "optimizer/ranking.h"

namespace gpuorch::optimizer {
namespace {

constexpr int kVast = 35'000;
constexpr int kAws = 10'000;
constexpr int kRunpod = 5'000;

struct GpuKind {
  const char* type;
  double memory_gb;
  double usd_per_gpu_hour;
};

double Uniform(std::mt19937& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}
int Pick(std::mt19937& rng, int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
double Cents(double usd) { return static_cast<int>(usd * 100 + 0.5) / 100.0; }

// Weighted by how often each kind appears on a marketplace.
const GpuKind& MarketKind(std::mt19937& rng) {
  static const GpuKind kinds[] = {
      {"RTX4090", 24, 0.40}, {"RTX3090", 24, 0.22}, {"A100", 80, 1.20}, {"H100", 80, 2.40},
      {"L40S", 48, 0.90},    {"A6000", 48, 0.50},   {"H200", 141, 3.50}};
  const int r = Pick(rng, 1000);
  const int i = r < 350 ? 0 : r < 550 ? 1 : r < 680 ? 2 : r < 800 ? 3 : r < 880 ? 4 : r < 998 ? 5 : 6;
  return kinds[i];
}

int MarketCount(std::mt19937& rng) {
  const int r = Pick(rng, 100);
  return r < 55 ? 1 : r < 75 ? 2 : r < 88 ? 4 : 8;
}

void AddVast(std::mt19937& rng, std::vector<domain::Offer>& out) {
  const char* geos[] = {"Texas, US", "California, US", "Quebec, CA", "Germany, DE", "Norway, NO",
                        "Sweden, SE", "Japan, JP", "Poland, PL", "Ohio, US", "Taiwan, TW"};
  for (int i = 0; i < kVast; ++i) {
    const GpuKind& kind = MarketKind(rng);
    int count = MarketCount(rng);
    if (kind.type == std::string_view("H200")) {
      count = 8;
    }
    const double price = Cents(count * kind.usd_per_gpu_hour * Uniform(rng, 0.7, 1.5));
    domain::Offer o{.provider = "vastai",
                    .offer_id = std::to_string(10'000'000 + i),
                    .instance_type = std::to_string(count) + "x " + kind.type,
                    .gpu_type = kind.type,
                    .gpu_count = count,
                    .gpu_memory_gb = kind.memory_gb,
                    .on_demand_price = price,
                    .region = geos[Pick(rng, 10)],
                    .reliability = Uniform(rng, 0.85, 1.0),
                    .available = Pick(rng, 20) == 0 ? 0 : 1,
                    .cpu_count = 8 * count,
                    .ram_gb = 32.0 * count};
    if (Pick(rng, 5) != 0) {
      o.spot_price = Cents(price * Uniform(rng, 0.4, 0.8));
    }
    out.push_back(std::move(o));
  }
}

void AddAws(std::mt19937& rng, std::vector<domain::Offer>& out) {
  struct Type {
    const char* name;
    GpuKind kind;
    int count;
    double price;
  };
  const Type types[] = {{"p4d.24xlarge", {"A100", 40, 0}, 8, 32.77},
                        {"p4de.24xlarge", {"A100", 80, 0}, 8, 40.97},
                        {"p5.48xlarge", {"H100", 80, 0}, 8, 98.32},
                        {"g5.xlarge", {"A10G", 24, 0}, 1, 1.006},
                        {"g5.12xlarge", {"A10G", 24, 0}, 4, 5.672},
                        {"g6.xlarge", {"L4", 24, 0}, 1, 0.805},
                        {"g4dn.xlarge", {"T4", 16, 0}, 1, 0.526},
                        {"p3.2xlarge", {"V100", 16, 0}, 1, 3.06},
                        {"p3.16xlarge", {"V100", 16, 0}, 8, 24.48}};
  const char* regions[] = {"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
                           "ap-northeast-1", "ap-southeast-1", "ca-central-1"};
  for (int i = 0; i < kAws; ++i) {
    // p5e (8 x H200) in a few zones of two regions only.
    const bool h200 = i % 500 == 0;
    const Type& t = h200 ? Type{"p5e.48xlarge", {"H200", 141, 0}, 8, 108.0} : types[Pick(rng, 9)];
    const std::string region = h200 ? (i % 1000 == 0 ? "us-east-1" : "us-east-2")
                                    : regions[Pick(rng, 8)];
    const std::string zone = region + static_cast<char>('a' + i % 6);
    domain::Offer o{.provider = "aws",
                    .offer_id = std::string(t.name) + "@" + zone + "#" + std::to_string(i),
                    .instance_type = t.name,
                    .gpu_type = t.kind.type,
                    .gpu_count = t.count,
                    .gpu_memory_gb = t.kind.memory_gb,
                    .on_demand_price = t.price,
                    .spot_price = Cents(t.price * Uniform(rng, 0.3, 0.7)),
                    .region = region,
                    .reliability = 1.0,
                    .available = 1};
    out.push_back(std::move(o));
  }
}

void AddRunpod(std::mt19937& rng, std::vector<domain::Offer>& out) {
  const char* dcs[] = {"US-TX-3", "US-GA-1", "US-CA-2", "EU-RO-1", "EU-SE-1", "EU-NL-1",
                       "CA-MTL-1", "AP-JP-1"};
  for (int i = 0; i < kRunpod; ++i) {
    const GpuKind& kind = MarketKind(rng);
    const int count = MarketCount(rng);
    const double price = Cents(count * kind.usd_per_gpu_hour * Uniform(rng, 0.9, 1.3));
    domain::Offer o{.provider = "runpod",
                    .offer_id = std::string("NVIDIA ") + kind.type + "|" + std::to_string(count) +
                                "|" + std::to_string(i),
                    .instance_type = std::to_string(count) + "x " + kind.type,
                    .gpu_type = kind.type,
                    .gpu_count = count,
                    .gpu_memory_gb = kind.memory_gb,
                    .on_demand_price = price,
                    .region = dcs[Pick(rng, 8)],
                    .reliability = 0.99,
                    .available = Pick(rng, 10) == 0 ? 0 : 1 + Pick(rng, 5)};
    if (Pick(rng, 5) < 3) {
      o.spot_price = Cents(price * Uniform(rng, 0.5, 0.75));
    }
    out.push_back(std::move(o));
  }
}

const std::vector<domain::Offer>& Offers() {
  static const std::vector<domain::Offer> offers = [] {
    std::mt19937 rng(2026);
    std::vector<domain::Offer> out;
    out.reserve(kVast + kAws + kRunpod);
    AddVast(rng, out);
    AddAws(rng, out);
    AddRunpod(rng, out);
    std::shuffle(out.begin(), out.end(), rng);
    return out;
  }();
  return offers;
}

OfferRequirements Requirements(int64_t which) {
  switch (which) {
    case 0:
      return {.gpu_type = "A100", .gpu_count = 1};
    case 1:
      return {.gpu_type = "H200", .gpu_count = 8};
    case 2:
      return {.gpu_type = "", .gpu_count = 1};
    default:
      return {.gpu_type = "",
              .gpu_count = 1,
              .max_price_per_hour = 2.0,
              .regions = {"us"},
              .allowed_providers = {"aws", "vastai"},
              .min_reliability = 0.95};
  }
}

const char* const kNames[] = {"a100x1", "h200x8", "any_x1", "filtered"};

void Report(benchmark::State& state, const Decision& d) {
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(Offers().size()));
  state.counters["feasible"] = d.feasible;
  state.SetLabel(std::string(kNames[state.range(0)]) + ": " +
                 (d.ranked.empty() ? std::string("none") : d.ranked[0].offer.provider + " " +
                                                               d.ranked[0].offer.instance_type));
}

void BM_RankOffers(benchmark::State& state) {
  const std::vector<domain::Offer>& offers = Offers();
  const OfferRequirements req = Requirements(state.range(0));
  Decision d;
  for (auto _ : state) {
    d = RankOffers(req, offers);
    benchmark::DoNotOptimize(d);
  }
  Report(state, d);
}
BENCHMARK(BM_RankOffers)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

void BM_IndexRank(benchmark::State& state) {
  static const OfferIndex index(Offers());
  const OfferRequirements req = Requirements(state.range(0));
  Decision d;
  for (auto _ : state) {
    d = index.Rank(req);
    benchmark::DoNotOptimize(d);
  }
  Report(state, d);
}
BENCHMARK(BM_IndexRank)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

void BM_IndexBuild(benchmark::State& state) {
  const std::vector<domain::Offer>& offers = Offers();
  for (auto _ : state) {
    OfferIndex index(offers);
    benchmark::DoNotOptimize(index);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(offers.size()));
}
BENCHMARK(BM_IndexBuild)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gpuorch::optimizer

BENCHMARK_MAIN();
