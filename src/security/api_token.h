// Long-lived API token secrets: how they are minted, recognised and stored.
//
// A secret is "gpo_" followed by 43 base64url characters (32 random bytes, no padding). Only its
// SHA-256 (TokenHash) is stored: the secret has 256 bits of entropy, so a fast hash is enough and
// lookups by hash stay cheap. Thread-safe: pure functions (apart from drawing randomness).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gpuorch::security {

inline constexpr std::string_view kApiTokenPrefix = "gpo_";
inline constexpr size_t kApiTokenBytes = 32;
inline constexpr size_t kApiTokenLength = 4 + 43;  // prefix + unpadded base64url of 32 bytes

// A fresh token secret: "gpo_" + 43 base64url characters of 32 random bytes.
std::string NewApiTokenSecret();

// True when `bearer` has the shape of a token secret (prefix, length and base64url alphabet), so
// that a bearer credential can be routed to API-token lookup rather than JWT validation. Says
// nothing about whether the token exists.
bool LooksLikeApiToken(std::string_view bearer);

// SHA-256 of `secret` as 64 lowercase hex characters: what the store keeps and looks tokens up by.
std::string TokenHash(std::string_view secret);

// True when `a` and `b` are equal, in time that depends only on their lengths (not on where they
// first differ). Lengths themselves are not hidden.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace gpuorch::security
