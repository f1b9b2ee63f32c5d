#include "scheduler/internal/fair_share.h"

#include <cmath>
#include <limits>

namespace gpuorch::scheduler::internal {
namespace {

double Seconds(core::SystemTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

double DecayedUsage(double usage, core::SystemTime at, core::SystemTime now,
                    std::chrono::seconds half_life) {
  if (half_life.count() <= 0 || now <= at || usage <= 0) {
    return usage;
  }
  const double elapsed = std::chrono::duration<double>(now - at).count();
  return usage * std::exp2(-elapsed / static_cast<double>(half_life.count()));
}

double ShareKey(double usage, core::SystemTime at, double weight, std::chrono::seconds half_life) {
  if (usage <= 0) {
    return -std::numeric_limits<double>::infinity();
  }
  // usage(t) / weight = 2^(key - t/h): comparing keys compares usage/weight at any t.
  const double key = std::log2(usage / weight);
  return half_life.count() <= 0 ? key : key + Seconds(at) / static_cast<double>(half_life.count());
}

}  // namespace gpuorch::scheduler::internal
