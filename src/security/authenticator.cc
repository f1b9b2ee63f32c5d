#include "security/authenticator.h"

#include "core/ids.h"
#include "security/api_token.h"

namespace gpuorch::security {
namespace {

tl::unexpected<core::Error> Unauthenticated(std::string message, std::string reason) {
  return core::Fail(core::Error{core::Code::kUnauthenticated, std::move(message), "Authorization",
                                std::move(reason)});
}

Principal PrincipalOf(const store::UserRecord& user) {
  return Principal{.user_id = user.id, .name = user.name, .role = user.role};
}

}  // namespace

Authenticator::Authenticator(const UserDirectory& directory, const JwtCodec& codec,
                             PasswordVerifier& passwords, const core::Clock& clock,
                             std::chrono::seconds ttl)
    : directory_(directory), codec_(codec), passwords_(passwords), clock_(clock), ttl_(ttl) {}

core::Result<Principal> Authenticator::Authenticate(
    const std::optional<std::string>& authorization) const {
  if (!authorization || authorization->empty()) {
    return Unauthenticated("authentication required: send Authorization: Bearer <token>",
                           "unauthenticated");
  }
  constexpr std::string_view kScheme = "bearer ";
  const std::string& header = *authorization;
  if (header.size() <= kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), header.begin(),
                  [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
    return Unauthenticated("Authorization must use the Bearer scheme", "unauthenticated");
  }
  std::string_view token(header);
  token.remove_prefix(kScheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  const auto snapshot = directory_.Current();
  const core::SystemTime now = clock_.Now();
  if (LooksLikeApiToken(token)) {
    auto it = snapshot->tokens.find(TokenHash(token));
    if (it == snapshot->tokens.end()) {
      return Unauthenticated("invalid token", "invalid_token");
    }
    const store::ApiTokenRecord& record = it->second;
    if (record.revoked_at) {
      return Unauthenticated("token revoked", "invalid_token");
    }
    if (record.expires_at && *record.expires_at <= now) {
      return Unauthenticated("token expired", "invalid_token");
    }
    const store::UserRecord* user = snapshot->FindUser(record.user_id);
    if (user == nullptr || user->disabled) {
      return Unauthenticated("token revoked", "invalid_token");
    }
    return PrincipalOf(*user);
  }
  auto claims = codec_.Verify(token, now);
  if (!claims) {
    return Unauthenticated(claims.error().message, "invalid_token");
  }
  const store::UserRecord* user = snapshot->FindUser(claims->subject);
  if (user == nullptr || user->disabled || user->token_version != claims->token_version) {
    return Unauthenticated("token revoked", "invalid_token");
  }
  return PrincipalOf(*user);
}

core::Result<AccessToken> Authenticator::IssueAccessToken(const store::UserRecord& user) const {
  const core::SystemTime now = clock_.Now();
  TokenClaims claims{.subject = user.id,
                     .jwt_id = core::RandomHexToken(16),
                     .token_version = user.token_version,
                     .issued_at = now,
                     .not_before = now,
                     .expires_at = now + ttl_};
  GPUORCH_ASSIGN_OR_RETURN(std::string token, codec_.Sign(claims));
  return AccessToken{.token = std::move(token), .expires_in = ttl_};
}

core::Result<AccessToken> Authenticator::Login(const std::string& name,
                                               const std::string& password) const {
  const auto snapshot = directory_.Current();
  const store::UserRecord* user = snapshot->FindUserByName(name);
  std::optional<std::string> hash;
  if (user != nullptr && !user->password_hash.empty()) {
    hash = user->password_hash;
  }
  GPUORCH_ASSIGN_OR_RETURN(bool matches, passwords_.Verify(password, hash));
  if (!matches || user == nullptr || user->disabled) {
    return Unauthenticated("invalid username or password", "invalid_credentials");
  }
  return IssueAccessToken(*user);
}

}  // namespace gpuorch::security
