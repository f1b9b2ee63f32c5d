#include "security/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace gpuorch::security {
namespace {

// GCRA in brief: each key keeps TAT, the time at which its bucket would be empty if it kept going
// at the sustained rate. A request of cost c moves TAT to max(TAT, now) + c * interval, and is
// allowed when that new TAT is at most `tolerance` (burst * interval) ahead of now. TAT <= now
// means a full bucket. All arithmetic is in integer nanoseconds of the monotonic clock, saturated
// well below int64 overflow so absurd rates or bursts cannot wrap around.

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kMaxSpanNs = int64_t{1} << 60;              // about 36 years
constexpr int64_t kMaxIntervalNs = 1'000'000 * kNsPerSecond;  // rates below 1 per ~11.6 days
constexpr size_t kShardsForLargeTables = 16;
constexpr size_t kMinKeysPerShard = 64;

int64_t SatMul(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) {
    return 0;
  }
  return a > kMaxSpanNs / b ? kMaxSpanNs : a * b;
}

int64_t IntervalNs(double per_second) {
  if (!(per_second > 0)) {
    return 0;  // unlimited (also NaN)
  }
  const double ns = std::round(1e9 / per_second);
  return static_cast<int64_t>(std::clamp(ns, 1.0, static_cast<double>(kMaxIntervalNs)));
}

std::chrono::seconds CeilSeconds(int64_t ns) {
  return std::chrono::seconds(ns <= 0 ? 0 : (ns + kNsPerSecond - 1) / kNsPerSecond);
}

size_t MixHash(size_t h) { return h ^ (h >> 29) ^ (h >> 47); }

// A key with its hash computed once: it picks the shard and then finds the entry without hashing
// the string again (heterogeneous lookup).
struct HashedKey {
  std::string_view key;
  size_t hash;
};

// Not noexcept on purpose: libstdc++ then caches each node's hash, so lookups compare hashes before
// strings and rehashing never rehashes strings.
struct KeyHash {
  using is_transparent = void;
  size_t operator()(const std::string& key) const { return std::hash<std::string_view>{}(key); }
  size_t operator()(const HashedKey& key) const { return key.hash; }
};

struct KeyEqual {
  using is_transparent = void;
  bool operator()(const std::string& a, const std::string& b) const { return a == b; }
  bool operator()(const HashedKey& a, const std::string& b) const { return a.key == b; }
  bool operator()(const std::string& a, const HashedKey& b) const { return a == b.key; }
};

}  // namespace

struct RateLimiter::Shard {
  std::mutex mu;
  // GUARDED_BY(mu): key -> TAT in ns
  std::unordered_map<std::string, int64_t, KeyHash, KeyEqual> tats;

  // Makes room for one more key when the shard holds `capacity` keys: drops every expired key,
  // then, if that freed less than an eighth of the shard, the keys with the smallest TAT (nearest
  // to a full bucket) down to seven eighths. Leaving that slack keeps the O(n) pass amortised to
  // O(1) per new key.
  void MakeRoom(size_t capacity, int64_t now_ns) {
    if (tats.size() < capacity) {
      return;
    }
    std::erase_if(tats, [now_ns](const auto& entry) { return entry.second <= now_ns; });
    const size_t target = capacity - std::max<size_t>(1, capacity / 8);
    if (tats.size() <= target) {
      return;
    }
    std::vector<std::pair<int64_t, decltype(tats)::iterator>> by_tat;
    by_tat.reserve(tats.size());
    for (auto it = tats.begin(); it != tats.end(); ++it) {
      by_tat.emplace_back(it->second, it);
    }
    const size_t drop = tats.size() - target;
    std::nth_element(by_tat.begin(), by_tat.begin() + static_cast<ptrdiff_t>(drop - 1),
                     by_tat.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < drop; ++i) {
      tats.erase(by_tat[i].second);
    }
  }
};

RateLimiter::RateLimiter(const core::Clock& clock, RateLimit limit, size_t max_keys)
    : clock_(clock),
      limit_(RateLimit{.per_second = limit.per_second, .burst = std::max(1, limit.burst)}),
      interval_ns_(IntervalNs(limit.per_second)),
      tolerance_ns_(SatMul(limit_.burst, interval_ns_)) {
  max_keys = std::max<size_t>(1, max_keys);
  // Small tables stay in one shard so that the bound is exact and eviction order predictable.
  const size_t shard_count =
      max_keys >= kShardsForLargeTables * kMinKeysPerShard ? kShardsForLargeTables : 1;
  shard_capacity_ = max_keys / shard_count;
  shards_.reserve(shard_count);
  for (size_t i = 0; i < shard_count; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Shard& RateLimiter::ShardFor(size_t hash) const {
  return *shards_[MixHash(hash) % shards_.size()];
}

RateDecision RateLimiter::Admit(const std::string& key, int cost) {
  if (interval_ns_ == 0) {
    return RateDecision{.allowed = true, .limit = limit_.burst, .remaining = limit_.burst};
  }
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.MonotonicNow().time_since_epoch())
          .count();
  const int64_t cost_ns = SatMul(std::max(0, cost), interval_ns_);
  const HashedKey hashed{.key = key, .hash = std::hash<std::string_view>{}(key)};
  Shard& shard = ShardFor(hashed.hash);
  int64_t tat_ns = now_ns;
  bool allowed = false;
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.tats.find(hashed);
    if (it != shard.tats.end()) {
      tat_ns = std::max(it->second, now_ns);
    }
    allowed = tat_ns + cost_ns - tolerance_ns_ <= now_ns;
    if (allowed) {
      if (it != shard.tats.end()) {
        it->second = tat_ns + cost_ns;
      } else if (cost_ns > 0) {
        shard.MakeRoom(shard_capacity_, now_ns);
        shard.tats.emplace(key, tat_ns + cost_ns);
      }
    }
  }
  return Decide(tat_ns, now_ns, cost_ns, allowed);
}

RateDecision RateLimiter::Decide(int64_t tat_ns, int64_t now_ns, int64_t cost_ns,
                                 bool allowed) const {
  const int64_t after_ns = allowed ? tat_ns + cost_ns : tat_ns;  // TAT once this request is done
  const int64_t ahead_ns = after_ns - now_ns;                    // >= 0
  RateDecision decision{.allowed = allowed, .limit = limit_.burst};
  decision.remaining = static_cast<int>(
      std::clamp<int64_t>((tolerance_ns_ - ahead_ns) / interval_ns_, 0, limit_.burst));
  decision.reset = CeilSeconds(ahead_ns);
  if (!allowed) {
    decision.retry_after =
        std::max(std::chrono::seconds(1), CeilSeconds(tat_ns + cost_ns - tolerance_ns_ - now_ns));
  }
  return decision;
}

RateLimit RateLimiter::limit() const { return limit_; }

size_t RateLimiter::size() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    total += shard->tats.size();
  }
  return total;
}

}  // namespace gpuorch::security
