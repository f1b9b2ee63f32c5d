// Key handling shared by the JWT codec (jwt.cc) and the loading of its keys from configuration
// (jwt_keys.cc). Internal to security/; no other module includes it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <openssl/types.h>

#include "core/error.h"

namespace gpuorch::security::internal {

inline constexpr size_t kMinHmacSecretBytes = 32;  // 256 bits

struct PkeyFree {
  void operator()(EVP_PKEY* key) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// An invalid key setting: kInvalidArgument "jwt: <field> <what>", with `field`. Never quotes key
// bytes.
tl::unexpected<core::Error> BadJwtKey(std::string field, const std::string& what);

// Overwrites `s` with zeros, then clears it.
void Wipe(std::string& s);

// A PEM key: the private key (unencrypted; a passphrase is never asked for) or the public key
// (SubjectPublicKeyInfo). Null when `pem` holds no such key.
PkeyPtr ReadPem(const std::string& pem, bool private_key);

// `key` as PEM: SubjectPublicKeyInfo for the public half, unencrypted PKCS#8 for the private one,
// the forms libjwt reads. Empty on failure.
std::string WritePem(EVP_PKEY* key, bool private_key);

}  // namespace gpuorch::security::internal
