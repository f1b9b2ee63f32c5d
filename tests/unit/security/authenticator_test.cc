#include "security/authenticator.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "security/api_token.h"
#include "security/jwt.h"
#include "security/password.h"
#include "security/user_admin.h"
#include "security/user_directory.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/must.h"
#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

using namespace std::chrono_literals;

constexpr auto kAccessTtl = 15min;

using testing::Must;

void ExpectRefused(const core::Result<Principal>& result, const std::string& reason) {
  ASSERT_FALSE(result) << "authenticated as " << result->name;
  EXPECT_EQ(result.error().code, core::Code::kUnauthenticated);
  EXPECT_EQ(result.error().reason, reason) << result.error().message;
  EXPECT_EQ(result.error().field, "Authorization");
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Must(store::OpenSqliteStore({.path = dir_.File("gpuorch.db")}));
    codec_ = Must(JwtCodec::Create(JwtKeys{.hmac_secret = std::string(32, 'k')}, JwtProfile{}));
    admin_ = std::make_unique<UserAdmin>(*store_, clock_, *ids_, MinimalCost());
    directory_ = std::make_unique<UserDirectory>(*store_, clock_);
    auth_ = std::make_unique<Authenticator>(*directory_, *codec_, passwords_, clock_, kAccessTtl);
  }

  void Reload() { ASSERT_TRUE(directory_->Reload()); }

  store::UserRecord AddUser(const std::string& name, const std::string& password = "",
                            const std::string& role = kUserRole) {
    return Must(admin_->AddUser(name, password, role));
  }

  core::Result<Principal> Bearer(const std::string& token) const {
    return auth_->Authenticate("Bearer " + token);
  }

  // An access token for the user as the store holds it now.
  std::string AccessTokenFor(const std::string& name) {
    return Must(auth_->IssueAccessToken(Must(store_->GetUserByName(name)))).token;
  }

  // Removes the user row behind the store's back, as another tool editing the database might.
  void DeleteUserRow(const std::string& id) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.File("gpuorch.db").c_str(), &db), SQLITE_OK);
    const std::string sql = "DELETE FROM users WHERE id = '" + id + "'";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    EXPECT_EQ(sqlite3_changes(db), 1);
    sqlite3_close(db);
  }

  testing::TempDir dir_;
  core::FakeClock clock_;
  std::unique_ptr<core::IdGenerator> ids_ = core::MakeRandomIdGenerator(clock_);
  PasswordVerifier passwords_{MinimalCost(), /*max_concurrent=*/2, /*max_waiting=*/4};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<JwtCodec> codec_;
  std::unique_ptr<UserAdmin> admin_;
  std::unique_ptr<UserDirectory> directory_;
  std::unique_ptr<Authenticator> auth_;
};

// --- API tokens ---

TEST_F(AuthenticatorTest, ApiTokenAuthenticatesItsUser) {
  const store::UserRecord alice = AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  Reload();
  auto principal = Bearer(token.secret);
  ASSERT_TRUE(principal) << principal.error().message;
  EXPECT_EQ(*principal, (Principal{.user_id = alice.id, .name = "alice", .role = kUserRole}));
  EXPECT_FALSE(principal->IsAdmin());
}

TEST_F(AuthenticatorTest, RevokedApiTokenIsRefused) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  const NewApiToken other = Must(admin_->CreateToken("alice", "laptop", std::nullopt));
  ASSERT_TRUE(admin_->RevokeToken(token.record.id));
  Reload();
  ExpectRefused(Bearer(token.secret), "invalid_token");
  EXPECT_TRUE(Bearer(other.secret)) << "revoking one token leaves the user's others working";
}

TEST_F(AuthenticatorTest, ApiTokenIsRefusedFromTheMomentItExpires) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::chrono::seconds(3600)));
  Reload();
  clock_.Advance(3599s);
  EXPECT_TRUE(Bearer(token.secret));
  clock_.Advance(1s);  // expiry needs no reload: it is checked against the clock
  auto refused = Bearer(token.secret);
  ExpectRefused(refused, "invalid_token");
  EXPECT_EQ(refused.error().message, "token expired");
}

TEST_F(AuthenticatorTest, ApiTokenOfDisabledUserIsRefused) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  Must(admin_->SetDisabled("alice", true));
  Reload();
  ExpectRefused(Bearer(token.secret), "invalid_token");
  Must(admin_->SetDisabled("alice", false));
  Reload();
  EXPECT_TRUE(Bearer(token.secret)) << "API tokens work again once the user is re-enabled";
}

TEST_F(AuthenticatorTest, UnknownApiTokenIsRefused) {
  AddUser("alice");
  Must(admin_->CreateToken("alice", "ci", std::nullopt));
  Reload();
  const std::string unknown = NewApiTokenSecret();
  ASSERT_TRUE(LooksLikeApiToken(unknown));
  ExpectRefused(Bearer(unknown), "invalid_token");
}

TEST_F(AuthenticatorTest, ApiTokenOfUserMissingFromTheSnapshotIsRefused) {
  const store::UserRecord alice = AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  DeleteUserRow(alice.id);
  Reload();
  const auto snapshot = directory_->Current();
  ASSERT_EQ(snapshot->FindUser(alice.id), nullptr);
  ASSERT_EQ(snapshot->tokens.count(token.record.token_hash), 1u) << "the token row is still there";
  ExpectRefused(Bearer(token.secret), "invalid_token");
}

// --- access tokens (JWT) ---

TEST_F(AuthenticatorTest, AccessTokenAuthenticatesItsUser) {
  const store::UserRecord root = AddUser("root", "", kAdminRole);
  Reload();
  const AccessToken token = Must(auth_->IssueAccessToken(root));
  EXPECT_EQ(token.expires_in, kAccessTtl);
  auto principal = Bearer(token.token);
  ASSERT_TRUE(principal) << principal.error().message;
  EXPECT_EQ(*principal, (Principal{.user_id = root.id, .name = "root", .role = kAdminRole}));
  EXPECT_TRUE(principal->IsAdmin());
}

TEST_F(AuthenticatorTest, AccessTokenIsRefusedAfterItsTtlAndLeeway) {
  AddUser("alice");
  Reload();
  const std::string token = AccessTokenFor("alice");
  clock_.Advance(kAccessTtl);
  EXPECT_TRUE(Bearer(token)) << "the default leeway (60 s) still covers exp itself";
  clock_.Advance(61s);
  ExpectRefused(Bearer(token), "invalid_token");
}

TEST_F(AuthenticatorTest, SetPasswordRefusesAccessTokensIssuedBefore) {
  AddUser("alice", "old password");
  Reload();
  const std::string before = AccessTokenFor("alice");
  ASSERT_TRUE(Bearer(before));
  Must(admin_->SetPassword("alice", "new password"));
  Reload();
  ExpectRefused(Bearer(before), "invalid_token");
  EXPECT_TRUE(Bearer(AccessTokenFor("alice"))) << "a token issued after the change works";
}

TEST_F(AuthenticatorTest, SetRoleRefusesAccessTokensIssuedBefore) {
  AddUser("alice");
  Reload();
  const std::string before = AccessTokenFor("alice");
  Must(admin_->SetRole("alice", kAdminRole));
  Reload();
  ExpectRefused(Bearer(before), "invalid_token");
  auto after = Bearer(AccessTokenFor("alice"));
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->IsAdmin());
}

TEST_F(AuthenticatorTest, SetDisabledRefusesAccessTokensIssuedBeforeEvenOnceReEnabled) {
  AddUser("alice");
  Reload();
  const std::string before = AccessTokenFor("alice");
  Must(admin_->SetDisabled("alice", true));
  Reload();
  ExpectRefused(Bearer(before), "invalid_token");
  ExpectRefused(Bearer(AccessTokenFor("alice")), "invalid_token");  // disabled: none work
  Must(admin_->SetDisabled("alice", false));
  Reload();
  ExpectRefused(Bearer(before), "invalid_token");
  EXPECT_TRUE(Bearer(AccessTokenFor("alice")));
}

TEST_F(AuthenticatorTest, AccessTokenForAnUnknownSubjectIsRefused) {
  AddUser("alice");
  Reload();
  const core::SystemTime now = clock_.Now();
  const std::string token = Must(codec_->Sign(
      TokenClaims{.subject = "usr-nobody", .issued_at = now, .expires_at = now + 5min}));
  ExpectRefused(Bearer(token), "invalid_token");
  // The user's name is not its id: a subject must be the id.
  const std::string by_name = Must(
      codec_->Sign(TokenClaims{.subject = "alice", .issued_at = now, .expires_at = now + 5min}));
  ExpectRefused(Bearer(by_name), "invalid_token");
}

TEST_F(AuthenticatorTest, AccessTokenSignedWithAnotherKeyIsRefused) {
  const store::UserRecord alice = AddUser("alice");
  Reload();
  auto other = Must(JwtCodec::Create(JwtKeys{.hmac_secret = std::string(32, 'x')}, JwtProfile{}));
  const core::SystemTime now = clock_.Now();
  const std::string token = Must(
      other->Sign(TokenClaims{.subject = alice.id, .issued_at = now, .expires_at = now + 5min}));
  ExpectRefused(Bearer(token), "invalid_token");
}

// --- the Authorization header ---

TEST_F(AuthenticatorTest, MissingOrEmptyHeaderIsUnauthenticated) {
  ExpectRefused(auth_->Authenticate(std::nullopt), "unauthenticated");
  ExpectRefused(auth_->Authenticate(std::string()), "unauthenticated");
}

TEST_F(AuthenticatorTest, OtherSchemesAndBareBearerAreUnauthenticated) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  Reload();
  for (const std::string& header :
       std::vector<std::string>{"Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ",
                                "Token " + token.secret, "Bearer" + token.secret, token.secret}) {
    SCOPED_TRACE(header);
    ExpectRefused(auth_->Authenticate(header), "unauthenticated");
  }
}

TEST_F(AuthenticatorTest, BearerSchemeIsCaseInsensitive) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  Reload();
  for (const std::string scheme : {"bearer ", "BEARER ", "BeArEr ", "Bearer    "}) {
    auto principal = auth_->Authenticate(scheme + token.secret);
    EXPECT_TRUE(principal) << "'" << scheme << "'";
  }
}

TEST_F(AuthenticatorTest, RefusalsNeverQuoteTheToken) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  const std::string jwt = AccessTokenFor("alice");
  ASSERT_TRUE(admin_->RevokeToken(token.record.id));
  Must(admin_->SetPassword("alice", "changed"));
  Reload();
  for (const std::string& secret : {token.secret, jwt, std::string("not-a-token-at-all")}) {
    auto refused = Bearer(secret);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message.find(secret), std::string::npos) << refused.error().message;
  }
}

// --- the directory snapshot ---

TEST_F(AuthenticatorTest, StoreChangesAreInvisibleUntilReload) {
  AddUser("alice");
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  ExpectRefused(Bearer(token.secret), "invalid_token");  // not loaded yet
  Reload();
  ASSERT_TRUE(Bearer(token.secret));

  const std::string jwt = AccessTokenFor("alice");
  ASSERT_TRUE(admin_->RevokeToken(token.record.id));
  Must(admin_->SetRole("alice", kAdminRole));
  auto stale = Bearer(token.secret);
  ASSERT_TRUE(stale) << "the revocation is not seen before the reload";
  EXPECT_FALSE(stale->IsAdmin());
  EXPECT_TRUE(Bearer(jwt)) << "nor is the role change";

  Reload();
  ExpectRefused(Bearer(token.secret), "invalid_token");
  ExpectRefused(Bearer(jwt), "invalid_token");
}

// --- login ---

TEST_F(AuthenticatorTest, LoginWithTheRightPasswordIssuesAWorkingAccessToken) {
  const store::UserRecord alice = AddUser("alice", "correct horse");
  Reload();
  const AccessToken token = Must(auth_->Login("alice", "correct horse"));
  EXPECT_EQ(token.expires_in, kAccessTtl);
  auto principal = Bearer(token.token);
  ASSERT_TRUE(principal) << principal.error().message;
  EXPECT_EQ(principal->user_id, alice.id);
}

TEST_F(AuthenticatorTest, WrongPasswordAndUnknownUserGetTheSameError) {
  AddUser("alice", "correct horse");
  Reload();
  auto wrong = auth_->Login("alice", "battery staple");
  auto unknown = auth_->Login("mallory", "correct horse");
  ASSERT_FALSE(wrong);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(wrong.error().code, core::Code::kUnauthenticated);
  EXPECT_EQ(wrong.error().reason, "invalid_credentials");
  EXPECT_EQ(unknown.error().code, wrong.error().code);
  EXPECT_EQ(unknown.error().reason, wrong.error().reason);
  EXPECT_EQ(unknown.error().message, wrong.error().message);
  EXPECT_EQ(unknown.error().field, wrong.error().field);
}

TEST_F(AuthenticatorTest, DisabledUserCannotLogIn) {
  AddUser("alice", "correct horse");
  Must(admin_->SetDisabled("alice", true));
  Reload();
  auto refused = auth_->Login("alice", "correct horse");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Code::kUnauthenticated);
  EXPECT_EQ(refused.error().reason, "invalid_credentials");
}

TEST_F(AuthenticatorTest, UserWithoutPasswordCannotLogIn) {
  AddUser("robot");  // API tokens only
  Reload();
  for (const std::string password : {"", "anything"}) {
    auto refused = auth_->Login("robot", password);
    ASSERT_FALSE(refused) << "'" << password << "'";
    EXPECT_EQ(refused.error().code, core::Code::kUnauthenticated);
    EXPECT_EQ(refused.error().reason, "invalid_credentials");
  }
}

}  // namespace
}  // namespace gpuorch::security
