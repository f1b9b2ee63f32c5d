#include "security/password.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace gpuorch::security {
namespace {

TEST(PasswordTest, HashThenVerifyRoundTrips) {
  auto hash = HashPassword("correct horse battery staple", MinimalCost());
  ASSERT_TRUE(hash) << hash.error().message;
  EXPECT_TRUE(VerifyPassword("correct horse battery staple", *hash));
}

TEST(PasswordTest, WrongPasswordDoesNotVerify) {
  auto hash = HashPassword("correct horse battery staple", MinimalCost());
  ASSERT_TRUE(hash);
  EXPECT_FALSE(VerifyPassword("correct horse battery stapler", *hash));
  EXPECT_FALSE(VerifyPassword("Correct horse battery staple", *hash));
}

TEST(PasswordTest, HashIsArgon2idWithFreshSaltAtTheGivenCost) {
  auto first = HashPassword("secret", MinimalCost());
  auto second = HashPassword("secret", MinimalCost());
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_TRUE(first->starts_with("$argon2id$")) << *first;
  EXPECT_NE(*first, *second);
  EXPECT_FALSE(PasswordNeedsRehash(*first, MinimalCost()));
  EXPECT_TRUE(PasswordNeedsRehash(*first, InteractiveCost()));
  EXPECT_TRUE(PasswordNeedsRehash("not a hash", MinimalCost()));
}

TEST(PasswordTest, MalformedHashesNeverVerify) {
  auto hash = HashPassword("secret", MinimalCost());
  ASSERT_TRUE(hash);
  const std::string with_nul = "$argon2id$" + std::string(1, '\0') + hash->substr(10);
  for (const std::string& bad :
       {std::string(), std::string("secret"), std::string("$argon2id$v=19$m=8,t=1,p=1$"),
        hash->substr(0, hash->size() - 5), *hash + "AAAA", with_nul, std::string(200, 'a'),
        "$argon2id$v=19$m=8,t=1,p=1$" + std::string(300, 'A') + "$" + std::string(43, 'A')}) {
    EXPECT_FALSE(VerifyPassword("secret", bad)) << bad;
  }
}

TEST(PasswordTest, EmptyAndOverlongPasswordsAreRefused) {
  auto empty = HashPassword("", MinimalCost());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, core::Code::kInvalidArgument);

  const std::string longest(kMaxPasswordBytes, 'p');
  auto ok = HashPassword(longest, MinimalCost());
  ASSERT_TRUE(ok);
  EXPECT_TRUE(VerifyPassword(longest, *ok));

  auto too_long = HashPassword(longest + "p", MinimalCost());
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, core::Code::kInvalidArgument);
  EXPECT_EQ(too_long.error().field, "password");
  EXPECT_FALSE(VerifyPassword(longest + "p", *ok));
}

TEST(PasswordTest, CostOutsideLibsodiumLimitsIsRefused) {
  auto hash = HashPassword("secret", PasswordCost{.ops_limit = 0, .mem_limit_bytes = 8192});
  ASSERT_FALSE(hash);
  EXPECT_EQ(hash.error().code, core::Code::kInvalidArgument);
  hash = HashPassword("secret", PasswordCost{.ops_limit = 1, .mem_limit_bytes = 16});
  ASSERT_FALSE(hash);
  EXPECT_EQ(hash.error().code, core::Code::kInvalidArgument);
}

TEST(PasswordVerifierTest, VerifiesKnownUsers) {
  PasswordVerifier verifier(MinimalCost(), 2, 4);
  auto hash = HashPassword("hunter2", MinimalCost());
  ASSERT_TRUE(hash);
  auto right = verifier.Verify("hunter2", *hash);
  ASSERT_TRUE(right);
  EXPECT_TRUE(*right);
  auto wrong = verifier.Verify("hunter3", *hash);
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(*wrong);
  EXPECT_EQ(verifier.running(), 0);
}

TEST(PasswordVerifierTest, UnknownUserIsFalse) {
  PasswordVerifier verifier(MinimalCost(), 1, 0);
  for (const char* password : {"hunter2", "", "anything at all"}) {
    auto result = verifier.Verify(password, std::nullopt);
    ASSERT_TRUE(result);
    EXPECT_FALSE(*result);
  }
}

TEST(PasswordVerifierTest, UnknownUserRunsOneCheckAgainstAFixedDummyHash) {
  std::vector<std::string> seen;
  std::mutex mu;
  PasswordVerifier verifier(MinimalCost(), 1, 0,
                            [&](std::string_view, const std::string& encoded_hash) {
                              std::lock_guard lock(mu);
                              seen.push_back(encoded_hash);
                              return true;  // even a matching check must not admit an unknown user
                            });
  auto first = verifier.Verify("hunter2", std::nullopt);
  auto second = verifier.Verify("other", std::nullopt);
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_FALSE(*first);
  EXPECT_FALSE(*second);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].starts_with("$argon2id$")) << seen[0];
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_FALSE(PasswordNeedsRehash(seen[0], MinimalCost()));
}

TEST(PasswordVerifierTest, RefusesCallerBeyondRunningAndWaiting) {
  constexpr int kMaxConcurrent = 2;
  constexpr int kMaxWaiting = 1;
  std::latch release(1);
  std::atomic<int> entered{0};
  PasswordVerifier verifier(MinimalCost(), kMaxConcurrent, kMaxWaiting,
                            [&](std::string_view, const std::string&) {
                              entered.fetch_add(1);
                              release.wait();
                              return true;
                            });
  std::vector<core::Result<bool>> results(kMaxConcurrent + kMaxWaiting, false);
  std::vector<std::thread> threads;
  for (int i = 0; i < kMaxConcurrent; ++i) {
    threads.emplace_back([&, i] { results[i] = verifier.Verify("pw", std::string("hash")); });
  }
  while (entered.load() < kMaxConcurrent) {
    std::this_thread::yield();
  }
  threads.emplace_back(
      [&] { results[kMaxConcurrent] = verifier.Verify("pw", std::string("hash")); });
  while (verifier.waiting() < kMaxWaiting) {
    std::this_thread::yield();
  }

  auto refused = verifier.Verify("pw", std::string("hash"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Code::kResourceExhausted);
  EXPECT_EQ(refused.error().reason, "too_many_password_checks");
  EXPECT_EQ(verifier.running(), kMaxConcurrent);

  release.count_down();
  for (auto& thread : threads) {
    thread.join();
  }
  for (const auto& result : results) {
    ASSERT_TRUE(result);
    EXPECT_TRUE(*result);
  }
  EXPECT_EQ(entered.load(), kMaxConcurrent + kMaxWaiting);
  EXPECT_EQ(verifier.running(), 0);
  EXPECT_EQ(verifier.waiting(), 0);
}

}  // namespace
}  // namespace gpuorch::security
