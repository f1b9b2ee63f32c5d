#include "security/api_token.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace gpuorch::security {
namespace {

TEST(ApiTokenTest, NewSecretIsPrefixAndFortyThreeBase64UrlCharacters) {
  const std::string secret = NewApiTokenSecret();
  ASSERT_EQ(secret.size(), 47u);
  EXPECT_TRUE(secret.starts_with("gpo_"));
  EXPECT_EQ(secret.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 4),
            std::string::npos)
      << secret;
  EXPECT_TRUE(LooksLikeApiToken(secret));
}

TEST(ApiTokenTest, NewSecretsDiffer) {
  std::set<std::string> secrets;
  for (int i = 0; i < 100; ++i) {
    secrets.insert(NewApiTokenSecret());
  }
  EXPECT_EQ(secrets.size(), 100u);
}

TEST(ApiTokenTest, TokenHashIsLowercaseSha256Hex) {
  EXPECT_EQ(TokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(TokenHash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string secret = NewApiTokenSecret();
  EXPECT_EQ(TokenHash(secret), TokenHash(secret));
  EXPECT_NE(TokenHash(secret), TokenHash(NewApiTokenSecret()));
}

TEST(ApiTokenTest, LooksLikeApiTokenChecksPrefixLengthAndAlphabet) {
  const std::string body(43, 'A');
  EXPECT_TRUE(LooksLikeApiToken("gpo_" + body));
  EXPECT_TRUE(LooksLikeApiToken("gpo_" + std::string(42, '-') + "_"));
  EXPECT_FALSE(LooksLikeApiToken(""));
  EXPECT_FALSE(LooksLikeApiToken("gpo_"));
  EXPECT_FALSE(LooksLikeApiToken("gpx_" + body));
  EXPECT_FALSE(LooksLikeApiToken("GPO_" + body));
  EXPECT_FALSE(LooksLikeApiToken("gpo_" + body.substr(1)));
  EXPECT_FALSE(LooksLikeApiToken("gpo_" + body + "A"));
  EXPECT_FALSE(LooksLikeApiToken("gpo_" + body.substr(1) + "="));
  EXPECT_FALSE(LooksLikeApiToken("gpo_" + body.substr(1) + "+"));
  EXPECT_FALSE(LooksLikeApiToken("gpo_" + body.substr(1) + "/"));
  EXPECT_FALSE(LooksLikeApiToken("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"));
}

TEST(ApiTokenTest, ConstantTimeEqualsComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("same-value", "same-value"));
  EXPECT_FALSE(ConstantTimeEquals("same-value", "same-valuf"));
  EXPECT_FALSE(ConstantTimeEquals("same-value", "same-value2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

}  // namespace
}  // namespace gpuorch::security
