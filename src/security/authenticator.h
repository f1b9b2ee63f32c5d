// Turns a request's credentials into a Principal: "Authorization: Bearer <token>", where the token is
// either a short-lived access JWT (security/jwt.h) or a long-lived API token ("gpo_...",
// security/api_token.h). Both are checked against the UserDirectory's snapshot, so a disabled user,
// a changed role or password (token_version) and a revoked API token stop working at the next
// directory reload. Login exchanges a name and password for an access token.
//
// Thread-safe. Authenticate never blocks on the store; Login runs Argon2id (tens of milliseconds,
// bounded concurrency) and belongs on a worker thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/error.h"
#include "security/jwt.h"
#include "security/password.h"
#include "security/principal.h"
#include "security/user_directory.h"

namespace gpuorch::security {

struct AccessToken {
  std::string token;
  std::chrono::seconds expires_in{0};
};

class Authenticator {
 public:
  // All borrowed; they must outlive the authenticator. `ttl`: lifetime of issued access tokens.
  Authenticator(const UserDirectory& directory, const JwtCodec& codec,
                PasswordVerifier& passwords, const core::Clock& clock, std::chrono::seconds ttl);

  // kUnauthenticated with reason "unauthenticated" (no or malformed Authorization header) or
  // "invalid_token" (a bad, expired or revoked token, or a disabled user). Messages never contain
  // the token.
  [[nodiscard]] core::Result<Principal> Authenticate(
      const std::optional<std::string>& authorization) const;

  // A signed access token for `user` (current token_version).
  [[nodiscard]] core::Result<AccessToken> IssueAccessToken(const store::UserRecord& user) const;

  // Checks name and password (the same answer and about the same time for an unknown user, a
  // disabled one and a wrong password: kUnauthenticated, reason "invalid_credentials") and issues
  // an access token. kResourceExhausted (reason "rate_limited") when too many logins are being
  // checked at once. Blocks for one Argon2id computation.
  [[nodiscard]] core::Result<AccessToken> Login(const std::string& name,
                                                const std::string& password) const;

 private:
  const UserDirectory& directory_;
  const JwtCodec& codec_;
  PasswordVerifier& passwords_;
  const core::Clock& clock_;
  const std::chrono::seconds ttl_;
};

}  // namespace gpuorch::security
