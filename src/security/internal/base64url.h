// Base64url (RFC 4648 section 5) without padding, the alphabet of JWS compact serialization.
//
// The decoder is strict so that one token has exactly one spelling: it refuses padding ('='),
// whitespace, characters outside [A-Za-z0-9_-], a length of 1 mod 4, and unused trailing bits that
// are not zero. Thread-safe: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gpuorch::security::internal {

// `bytes` as unpadded base64url text.
std::string Base64UrlEncode(std::string_view bytes);

// The bytes `text` encodes, or nullopt when `text` is not canonical unpadded base64url.
// An empty `text` decodes to an empty string.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// True when every character of `text` is in the base64url alphabet (no padding).
bool IsBase64UrlAlphabet(std::string_view text);

}  // namespace gpuorch::security::internal
