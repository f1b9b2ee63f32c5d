#include "security/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace gpuorch::security {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RateLimiterTest, AllowsTheBurstThenRefuses) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 3});
  for (int remaining = 2; remaining >= 0; --remaining) {
    RateDecision decision = limiter.Admit("alice");
    EXPECT_TRUE(decision.allowed);
    EXPECT_EQ(decision.limit, 3);
    EXPECT_EQ(decision.remaining, remaining);
    EXPECT_EQ(decision.retry_after, seconds(0));
  }
  RateDecision refused = limiter.Admit("alice");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.limit, 3);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after, seconds(1));
}

TEST(RateLimiterTest, RetryAfterIsExactAndRoundedUp) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 0.1, .burst = 2});  // one per 10 s
  ASSERT_TRUE(limiter.Admit("k").allowed);
  ASSERT_TRUE(limiter.Admit("k").allowed);
  RateDecision refused = limiter.Admit("k");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds(10));
  EXPECT_EQ(refused.reset, seconds(20));

  clock.Advance(seconds(3));
  EXPECT_EQ(limiter.Admit("k").retry_after, seconds(7));
  clock.Advance(milliseconds(6500));
  EXPECT_EQ(limiter.Admit("k").retry_after, seconds(1));  // 0.5 s rounds up
  clock.Advance(milliseconds(499));
  EXPECT_EQ(limiter.Admit("k").retry_after, seconds(1));  // 1 ms still rounds up to 1 s
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(limiter.Admit("k").allowed);
}

TEST(RateLimiterTest, RefillsAtTheSustainedRate) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 10, .burst = 5});
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(limiter.Admit("k").allowed);
  }
  ASSERT_FALSE(limiter.Admit("k").allowed);
  clock.Advance(milliseconds(300));  // earns exactly 3
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Admit("k").allowed) << i;
  }
  EXPECT_FALSE(limiter.Admit("k").allowed);
  clock.Advance(seconds(60));  // a long pause refills only up to the burst
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(limiter.Admit("k").allowed) << i;
  }
  EXPECT_FALSE(limiter.Admit("k").allowed);
}

TEST(RateLimiterTest, ResetIsTheTimeUntilTheBucketIsFull) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 2, .burst = 10});
  RateDecision first = limiter.Admit("k");
  EXPECT_EQ(first.remaining, 9);
  EXPECT_EQ(first.reset, seconds(1));  // 0.5 s rounded up
  RateDecision heavy = limiter.Admit("k", 4);
  EXPECT_EQ(heavy.remaining, 5);
  EXPECT_EQ(heavy.reset, seconds(3));  // 2.5 s rounded up
  clock.Advance(seconds(3));
  RateDecision later = limiter.Admit("k");
  EXPECT_EQ(later.remaining, 9);
  EXPECT_EQ(later.reset, seconds(1));
}

TEST(RateLimiterTest, KeysAreIsolated) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 2});
  ASSERT_TRUE(limiter.Admit("alice").allowed);
  ASSERT_TRUE(limiter.Admit("alice").allowed);
  ASSERT_FALSE(limiter.Admit("alice").allowed);
  RateDecision bob = limiter.Admit("bob");
  EXPECT_TRUE(bob.allowed);
  EXPECT_EQ(bob.remaining, 1);
}

TEST(RateLimiterTest, RefusedRequestsDoNotConsume) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 2});
  ASSERT_TRUE(limiter.Admit("k").allowed);
  ASSERT_TRUE(limiter.Admit("k").allowed);
  for (int i = 0; i < 100; ++i) {
    ASSERT_FALSE(limiter.Admit("k").allowed);
  }
  clock.Advance(seconds(1));
  EXPECT_TRUE(limiter.Admit("k").allowed);
  EXPECT_FALSE(limiter.Admit("k").allowed);
}

TEST(RateLimiterTest, CostCountsAsThatManyRequests) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 5});
  EXPECT_TRUE(limiter.Admit("k", 3).allowed);
  RateDecision too_much = limiter.Admit("k", 3);
  EXPECT_FALSE(too_much.allowed);
  EXPECT_EQ(too_much.remaining, 2);
  EXPECT_EQ(too_much.retry_after, seconds(1));
  EXPECT_TRUE(limiter.Admit("k", 2).allowed);
  EXPECT_FALSE(limiter.Admit("other", 6).allowed);  // above the burst: never
  EXPECT_EQ(limiter.size(), 1u);                    // and the refused key was not recorded
}

TEST(RateLimiterTest, UnlimitedModeAllowsEverything) {
  core::FakeClock clock;
  for (double rate : {0.0, -1.0}) {
    RateLimiter limiter(clock, RateLimit{.per_second = rate, .burst = 7});
    for (int i = 0; i < 10000; ++i) {
      RateDecision decision = limiter.Admit("k", 100);
      ASSERT_TRUE(decision.allowed);
      ASSERT_EQ(decision.remaining, 7);
    }
    EXPECT_EQ(limiter.size(), 0u);
  }
}

TEST(RateLimiterTest, MillionDistinctKeysStayWithinMaxKeys) {
  core::FakeClock clock;
  constexpr size_t kMaxKeys = 10000;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 5}, kMaxKeys);
  for (int i = 0; i < 1'000'000; ++i) {
    ASSERT_TRUE(limiter.Admit("client-" + std::to_string(i)).allowed) << i;
    if (i % 100'000 == 0) {
      ASSERT_LE(limiter.size(), kMaxKeys);
      clock.Advance(milliseconds(1));
    }
  }
  EXPECT_LE(limiter.size(), kMaxKeys);
  EXPECT_GT(limiter.size(), kMaxKeys / 2);
}

TEST(RateLimiterTest, ExpiredKeysAreDroppedBeforeActiveOnes) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 2}, /*max_keys=*/4);
  ASSERT_TRUE(limiter.Admit("old-1").allowed);
  ASSERT_TRUE(limiter.Admit("old-2").allowed);
  ASSERT_TRUE(limiter.Admit("old-3").allowed);
  clock.Advance(seconds(5));  // their buckets are full again
  ASSERT_TRUE(limiter.Admit("hot").allowed);
  ASSERT_TRUE(limiter.Admit("hot").allowed);
  ASSERT_EQ(limiter.size(), 4u);

  ASSERT_TRUE(limiter.Admit("new").allowed);
  EXPECT_EQ(limiter.size(), 2u);               // the three expired keys went
  EXPECT_FALSE(limiter.Admit("hot").allowed);  // the active one kept its state
}

TEST(RateLimiterTest, WhenAllKeysAreActiveTheNearestToFullAreDropped) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = 2}, /*max_keys=*/4);
  ASSERT_TRUE(limiter.Admit("light").allowed);  // one request: nearest to full
  for (const char* key : {"b", "c", "d"}) {
    ASSERT_TRUE(limiter.Admit(key).allowed);
    ASSERT_TRUE(limiter.Admit(key).allowed);
  }
  ASSERT_TRUE(limiter.Admit("e").allowed);
  EXPECT_LE(limiter.size(), 4u);
  for (const char* key : {"b", "c", "d"}) {
    EXPECT_FALSE(limiter.Admit(key).allowed) << key;
  }
}

TEST(RateLimiterTest, ConcurrentAdmitsOnOneKeyAllowExactlyTheBurst) {
  core::FakeClock clock;  // frozen: nothing refills during the test
  constexpr int kBurst = 500;
  RateLimiter limiter(clock, RateLimit{.per_second = 1, .burst = kBurst});
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.Admit("shared").allowed) {
          allowed.fetch_add(1);
        }
        limiter.Admit("thread-" + std::to_string(t) + "-" + std::to_string(i % 50));
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(allowed.load(), kBurst);
  EXPECT_EQ(limiter.size(), 1u + 8 * 50);
}

TEST(RateLimiterTest, LimitIsReportedWithTheBurstRaisedToOne) {
  core::FakeClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 5, .burst = 0});
  EXPECT_EQ(limiter.limit().per_second, 5);
  EXPECT_EQ(limiter.limit().burst, 1);
  EXPECT_TRUE(limiter.Admit("k").allowed);
  EXPECT_FALSE(limiter.Admit("k").allowed);
}

}  // namespace
}  // namespace gpuorch::security
