// Access tokens: JSON Web Tokens (RFC 7519) signed with one pinned algorithm, verified by the rules
// of RFC 8725 (JWT best current practices).
//
// A `JwtCodec` holds the key material of one algorithm (HS256, RS256, ES256 or EdDSA with Ed25519,
// RFC 8037) and the issuer and
// audience of this service. `Sign` turns `TokenClaims` into a compact token; `Verify` accepts a
// token only when it is well formed, carries exactly the pinned "alg", names no remote key ("jku",
// "x5u", "jwk", "x5c") and no critical extension, is signed by our key, and its claims say our
// issuer, our audience, token_use "access" and a time window that contains `now` (give or take the
// leeway). Every refusal is kUnauthenticated with reason "invalid_token" and a short message that
// never quotes the token or the key.
//
// `LoadJwtKeys` reads the key material named by configuration, creating `<data_dir>/jwt.key` for
// HS256 on first start.
//
// Thread-safe: a JwtCodec is immutable after Create; Sign and Verify may run concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"

namespace gpuorch::security {

enum class JwtAlgorithm { kHs256, kRs256, kEs256, kEdDsa };

// "HS256", "RS256", "ES256" or "EdDSA" (the "alg" value).
std::string_view JwtAlgorithmName(JwtAlgorithm algorithm);
// The algorithm named exactly (case-sensitive) "HS256", "RS256", "ES256" or "EdDSA"; nullopt
// otherwise.
std::optional<JwtAlgorithm> ParseJwtAlgorithm(std::string_view name);

struct JwtKeys {
  JwtAlgorithm algorithm = JwtAlgorithm::kHs256;
  std::string hmac_secret;      // HS256: raw bytes, at least 32 (256 bits)
  std::string private_key_pem;  // RS256/ES256/EdDSA: signing key (may be empty: verify only)
  std::string public_key_pem;   // RS256/ES256/EdDSA: verification key (empty: derived from private)
};

struct JwtProfile {
  std::string issuer = "gpuorch";
  std::string audience = "gpuorch-api";
  std::chrono::seconds leeway{60};  // clock skew allowed on exp / nbf / iat; in [0s, 1h]
};

// What an access token says. Times are whole seconds on the wire: Sign truncates them.
struct TokenClaims {
  std::string subject;                // "sub": the user id; required
  std::string token_type = "access";  // private claim "token_use"; only "access" verifies
  std::string jwt_id;                 // "jti"; empty: not sent
  int64_t token_version = 0;          // private claim "ver"
  core::SystemTime issued_at{};       // "iat"; the epoch: not sent
  core::SystemTime not_before{};      // "nbf"; the epoch: not sent
  core::SystemTime expires_at{};      // "exp"; required
  bool operator==(const TokenClaims&) const = default;
};

class JwtCodec {
 public:
  // Checks and keeps the key material of `keys.algorithm`. kInvalidArgument, with `field` naming
  // the offending member of JwtKeys or JwtProfile, when: an HS256 secret is shorter than 32 bytes;
  // a PEM does not parse (encrypted private keys are refused: nothing prompts for a passphrase);
  // the key type does not fit the algorithm (RS256: RSA of 2048 to 8192 bits; ES256: EC on P-256;
  // EdDSA: Ed25519);
  // a private and a public key are both given but are not a pair; material of another algorithm is
  // given (a secret for RS256, a PEM for HS256); there is no verification key; the issuer or the
  // audience is empty; or the leeway is outside [0s, 1h].
  [[nodiscard]] static core::Result<std::unique_ptr<JwtCodec>> Create(JwtKeys keys,
                                                                      JwtProfile profile);

  ~JwtCodec();
  JwtCodec(const JwtCodec&) = delete;
  JwtCodec& operator=(const JwtCodec&) = delete;

  // A compact token for `claims`, with our issuer and audience. kFailedPrecondition when the codec
  // has no signing key (RS256/ES256/EdDSA built from a public key only); kInvalidArgument when the
  // subject is empty or a time is outside [1970, 2200) or exp is the epoch; kInternal when the
  // signing library fails.
  [[nodiscard]] core::Result<std::string> Sign(const TokenClaims& claims) const;

  // The claims of `token` when it is a valid access token at `now` (see the file comment);
  // otherwise kUnauthenticated, reason "invalid_token", with a message such as "token expired",
  // "wrong audience", "algorithm not allowed", "bad signature" or "malformed token". Does not block
  // beyond the signature check; `token` need not outlive the call.
  [[nodiscard]] core::Result<TokenClaims> Verify(std::string_view token,
                                                 core::SystemTime now) const;

  JwtAlgorithm algorithm() const;
  // False for an RS256/ES256/EdDSA codec built from a public key only.
  bool can_sign() const;

 private:
  struct Impl;
  explicit JwtCodec(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where the key material comes from (configuration: GPUORCH_JWT_*).
struct JwtKeySource {
  std::string algorithm = "HS256";
  std::string secret;       // HS256: raw bytes, or "base64:<standard base64>"
  std::string secret_file;  // HS256: a file holding the same forms (a trailing newline is dropped)
  std::string private_key_file;  // RS256/ES256/EdDSA: PEM
  std::string public_key_file;   // RS256/ES256/EdDSA: PEM; empty: derived from the private key
  std::string data_dir;          // HS256 with no secret: <data_dir>/jwt.key
};

// The keys `source` names, checked as JwtCodec::Create checks them. For HS256 the secret is
// `secret`, else the contents of `secret_file`, else `<data_dir>/jwt.key`: base64 text of 32 random
// bytes (libsodium), created when absent with mode 0600, atomically (security/secret_file.h). For
// RS256/ES256/EdDSA the PEMs are read from the files; with only a private key the public one is derived.
// kInvalidArgument (field: the JwtKeySource member) for an unknown algorithm, a secret shorter than
// 32 bytes, a missing or unreadable file, an unusable key, or material of the other kind of
// algorithm; kFailedPrecondition (field "data_dir") when data_dir is not a directory or jwt.key may
// be read by group or others; kFailedPrecondition when jwt.key may not be
// accessed (permissions, read-only file system) and kUnavailable for other I/O errors.
// Blocks on file I/O.
[[nodiscard]] core::Result<JwtKeys> LoadJwtKeys(const JwtKeySource& source);

}  // namespace gpuorch::security
