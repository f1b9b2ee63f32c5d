#include "security/api_token.h"

#include <sodium.h>

#include <array>

#include "security/internal/sodium_init.h"

namespace gpuorch::security {
namespace {

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

std::string NewApiTokenSecret() {
  internal::EnsureSodium();
  std::array<unsigned char, kApiTokenBytes> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::array<char, sodium_base64_ENCODED_LEN(kApiTokenBytes, kVariant)> text{};
  sodium_bin2base64(text.data(), text.size(), bytes.data(), bytes.size(), kVariant);
  std::string secret = std::string(kApiTokenPrefix) + text.data();
  sodium_memzero(bytes.data(), bytes.size());
  sodium_memzero(text.data(), text.size());
  return secret;
}

bool LooksLikeApiToken(std::string_view bearer) {
  if (bearer.size() != kApiTokenLength || !bearer.starts_with(kApiTokenPrefix)) {
    return false;
  }
  for (char c : bearer.substr(kApiTokenPrefix.size())) {
    if (!IsBase64UrlChar(c)) {
      return false;
    }
  }
  return true;
}

std::string TokenHash(std::string_view secret) {
  internal::EnsureSodium();
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size());
  std::array<char, 2 * crypto_hash_sha256_BYTES + 1> hex{};
  sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
  return std::string(hex.data(), 2 * crypto_hash_sha256_BYTES);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  internal::EnsureSodium();
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace gpuorch::security
