// Request rate limiting by key (user, token or client address) with GCRA, the generic cell rate
// algorithm: a token bucket of `burst` requests refilled at `per_second`, kept as one number per
// key (its theoretical arrival time, TAT) instead of a counter and a timestamp.
//
// Memory is bounded: at most `max_keys` keys are tracked. A key whose TAT is in the past has a full
// bucket, so it is equivalent to an absent key and is dropped first when room is needed; when every
// tracked key is still refilling, the keys nearest to full are dropped, which gives them a full
// bucket early (the price of bounded memory).
//
// Thread-safe: keys are spread over shards, each with its own mutex, so Admit from many threads
// contends only on the same shard. Admit never blocks on I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"

namespace gpuorch::security {

struct RateLimit {
  double per_second = 100;  // sustained rate; <= 0 means unlimited
  int burst = 200;          // bucket size: requests allowed at once from a full bucket (>= 1)
};

// The answer for one request, with what the RateLimit-* response headers need.
struct RateDecision {
  bool allowed = true;
  int limit = 0;                  // the burst (RateLimit-Limit)
  int remaining = 0;              // requests left right now (RateLimit-Remaining)
  std::chrono::seconds reset{0};  // until the bucket is full again, rounded up (RateLimit-Reset)
  std::chrono::seconds retry_after{0};  // refused only: until this request would be allowed,
                                        // rounded up, >= 1 (Retry-After)
};

class RateLimiter {
 public:
  // `clock` must outlive the limiter. A burst below 1 is raised to 1. `max_keys` (at least 1)
  // bounds how many keys are tracked.
  RateLimiter(const core::Clock& clock, RateLimit limit, size_t max_keys = 100000);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Admits or refuses one request of `cost` units (REQUIRES: 0 <= cost; a cost above the burst is
  // always refused) for `key`. An allowed request consumes `cost`; a refused one consumes nothing.
  // Unlimited mode allows everything and reports a full bucket.
  RateDecision Admit(const std::string& key, int cost = 1);

  RateLimit limit() const;
  // Keys tracked now (expired ones included until they are dropped); never more than max_keys.
  size_t size() const;

 private:
  struct Shard;
  Shard& ShardFor(size_t hash) const;
  // The decision for a request that found TAT `tat_ns` (>= now) and was or was not `allowed`.
  RateDecision Decide(int64_t tat_ns, int64_t now_ns, int64_t cost_ns, bool allowed) const;

  const core::Clock& clock_;
  const RateLimit limit_;
  const int64_t interval_ns_;   // time to earn one unit
  const int64_t tolerance_ns_;  // burst * interval: how far TAT may run ahead of now
  size_t shard_capacity_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace gpuorch::security
