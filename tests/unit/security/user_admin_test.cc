#include "security/user_admin.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "security/api_token.h"
#include "security/password.h"
#include "security/principal.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/must.h"
#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

using namespace std::chrono_literals;

using testing::Must;

template <typename T>
void ExpectInvalid(const core::Result<T>& result, const std::string& field) {
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Code::kInvalidArgument) << result.error().message;
  EXPECT_EQ(result.error().field, field);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class UserAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Must(store::OpenSqliteStore({.path = dir_.File("gpuorch.db")}));
    admin_ = std::make_unique<UserAdmin>(*store_, clock_, *ids_, MinimalCost());
  }

  size_t UserCount() { return Must(store_->ListUsers()).size(); }

  // Everything the store has written to disk so far (database and write-ahead log).
  std::string DatabaseBytes() {
    return ReadAll(dir_.File("gpuorch.db")) + ReadAll(dir_.File("gpuorch.db-wal"));
  }

  testing::TempDir dir_;
  core::FakeClock clock_;
  std::unique_ptr<core::IdGenerator> ids_ = core::MakeRandomIdGenerator(clock_);
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<UserAdmin> admin_;
};

// --- users ---

TEST_F(UserAdminTest, AddUserStoresRoleAndAnArgon2idHashOnly) {
  const store::UserRecord alice = Must(admin_->AddUser("alice", "correct horse", kAdminRole));
  EXPECT_EQ(alice.id.rfind("usr", 0), 0u) << alice.id;
  EXPECT_EQ(alice.name, "alice");
  EXPECT_EQ(alice.role, kAdminRole);
  EXPECT_FALSE(alice.disabled);
  EXPECT_EQ(alice.token_version, 0);
  EXPECT_EQ(alice.created_at, clock_.Now());
  EXPECT_EQ(alice.password_hash.rfind("$argon2id$", 0), 0u);
  EXPECT_EQ(alice.password_hash.find("correct horse"), std::string::npos);
  EXPECT_TRUE(VerifyPassword("correct horse", alice.password_hash));
  EXPECT_EQ(Must(store_->GetUserByName("alice")), alice);

  const store::UserRecord robot = Must(admin_->AddUser("robot", "", kUserRole));
  EXPECT_TRUE(robot.password_hash.empty()) << "an empty password means API tokens only";
}

TEST_F(UserAdminTest, AddUserRefusesBadNames) {
  for (const std::string& name :
       {std::string("Alice"), std::string("al ice"), std::string("-alice"), std::string(".alice"),
        std::string("_alice"), std::string(""), std::string("alice/bob"), std::string("al\nice"),
        std::string(65, 'a')}) {
    SCOPED_TRACE(name);
    ExpectInvalid(admin_->AddUser(name, "", kUserRole), "name");
  }
  EXPECT_EQ(UserCount(), 0u);
  for (const std::string& name :
       {std::string(64, 'a'), std::string("a"), std::string("0.ci_bot-2")}) {
    EXPECT_TRUE(admin_->AddUser(name, "", kUserRole)) << name;
  }
}

TEST_F(UserAdminTest, AddUserRefusesUnknownRoles) {
  for (const std::string role : {"root", "Admin", ""}) {
    ExpectInvalid(admin_->AddUser("alice", "", role), "role");
  }
  EXPECT_EQ(UserCount(), 0u);
}

TEST_F(UserAdminTest, AddUserStoresLimitsInTheSameWriteOrNothingAtAll) {
  ExpectInvalid(admin_->AddUser("alice", "", kUserRole, {.max_gpus = 4, .max_queued_jobs = -1}),
                "max_queued_jobs");
  ExpectInvalid(admin_->AddUser("alice", "", kUserRole, {.monthly_budget_usd = std::nan("")}),
                "monthly_budget_usd");
  EXPECT_EQ(UserCount(), 0u);
  const store::UserRecord bob =
      Must(admin_->AddUser("bob", "", kUserRole, {.max_gpus = 4, .monthly_budget_usd = 25}));
  EXPECT_EQ(bob.max_gpus, 4);
  EXPECT_FALSE(bob.max_queued_jobs.has_value());
  EXPECT_EQ(bob.monthly_budget_usd, 25);
  EXPECT_EQ(bob.token_version, Must(admin_->AddUser("carol", "", kUserRole)).token_version);
}

TEST_F(UserAdminTest, DuplicateNameIsAConflict) {
  const store::UserRecord first = Must(admin_->AddUser("alice", "", kUserRole));
  auto second = admin_->AddUser("alice", "other", kAdminRole);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, core::Code::kAlreadyExists);
  EXPECT_EQ(second.error().reason, "conflict");
  EXPECT_EQ(second.error().field, "name");
  EXPECT_EQ(Must(store_->GetUserByName("alice")), first);
}

TEST_F(UserAdminTest, ChangesThatMustRevokeAccessTokensBumpTokenVersion) {
  Must(admin_->AddUser("alice", "one", kUserRole));
  EXPECT_EQ(Must(admin_->SetPassword("alice", "two")).token_version, 1);
  EXPECT_EQ(Must(admin_->SetRole("alice", kUserRole)).token_version, 1) << "same role: no change";
  EXPECT_EQ(Must(admin_->SetRole("alice", kAdminRole)).token_version, 2);
  EXPECT_EQ(Must(admin_->SetDisabled("alice", false)).token_version, 2) << "already enabled";
  EXPECT_EQ(Must(admin_->SetDisabled("alice", true)).token_version, 3);
  EXPECT_EQ(Must(admin_->SetDisabled("alice", true)).token_version, 3);
  const store::UserRecord stored = Must(store_->GetUserByName("alice"));
  EXPECT_EQ(stored.token_version, 3);
  EXPECT_TRUE(stored.disabled);
  EXPECT_EQ(stored.role, kAdminRole);
  EXPECT_TRUE(VerifyPassword("two", stored.password_hash));
}

TEST_F(UserAdminTest, ChangingAnUnknownUserIsNotFound) {
  for (const auto& result :
       {admin_->SetDisabled("ghost", true), admin_->SetRole("ghost", kAdminRole),
        admin_->SetPassword("ghost", "pw"), admin_->SetLimits("ghost", {.max_gpus = 1})}) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, core::Code::kNotFound);
    EXPECT_EQ(result.error().field, "name");
  }
}

// --- limits ---

TEST_F(UserAdminTest, SetLimitsRefusesOutOfRangeValuesAndChangesNothing) {
  Must(admin_->AddUser("alice", "", kUserRole));
  Must(admin_->SetLimits("alice", {.max_gpus = 2, .monthly_budget_usd = 50}));
  const store::UserRecord before = Must(store_->GetUserByName("alice"));
  ExpectInvalid(admin_->SetLimits("alice", {.max_gpus = -1}), "max_gpus");
  ExpectInvalid(admin_->SetLimits("alice", {.max_gpus = 100'000'001}), "max_gpus");
  ExpectInvalid(admin_->SetLimits("alice", {.max_queued_jobs = -1}), "max_queued_jobs");
  for (double budget : {-0.01, 1e13, std::nan(""), std::numeric_limits<double>::infinity()}) {
    SCOPED_TRACE(budget);
    ExpectInvalid(admin_->SetLimits("alice", {.monthly_budget_usd = budget}), "monthly_budget_usd");
  }
  // One bad value refuses the whole update, the good ones included.
  ExpectInvalid(admin_->SetLimits("alice", {.max_gpus = 8, .max_queued_jobs = -5}),
                "max_queued_jobs");
  EXPECT_EQ(Must(store_->GetUserByName("alice")), before);
}

TEST_F(UserAdminTest, SetLimitsSetsKeepsAndClearsEachLimit) {
  Must(admin_->AddUser("alice", "", kUserRole));
  store::UserRecord user = Must(admin_->SetLimits(
      "alice", {.max_gpus = 4, .max_queued_jobs = 10, .monthly_budget_usd = 100.5}));
  EXPECT_EQ(user.max_gpus, 4);
  EXPECT_EQ(user.max_queued_jobs, 10);
  EXPECT_EQ(user.monthly_budget_usd, 100.5);

  user = Must(admin_->SetLimits("alice", {.max_gpus = 0}));  // 0 is a limit, not "unset"
  EXPECT_EQ(user.max_gpus, 0);
  EXPECT_EQ(user.max_queued_jobs, 10) << "limits not named are kept";
  EXPECT_EQ(user.monthly_budget_usd, 100.5);

  user = Must(admin_->SetLimits("alice", {.max_gpus = 3, .clear_max_gpus = true}));
  EXPECT_EQ(user.max_gpus, std::nullopt) << "clear wins over a value given with it";
  user = Must(admin_->SetLimits("alice", {.clear_max_queued_jobs = true}));
  EXPECT_EQ(user.max_queued_jobs, std::nullopt);
  EXPECT_EQ(user.monthly_budget_usd, 100.5);
  user = Must(admin_->SetLimits("alice", {.clear_monthly_budget = true}));
  EXPECT_EQ(user.monthly_budget_usd, std::nullopt);
  EXPECT_EQ(Must(store_->GetUserByName("alice")), user);
  EXPECT_EQ(user.token_version, 0) << "limits do not revoke access tokens";
}

// --- API tokens ---

TEST_F(UserAdminTest, CreateTokenRefusesBadNames) {
  Must(admin_->AddUser("alice", "", kUserRole));
  for (const std::string& name : {std::string(""), std::string(65, 't'), std::string("ci\tbot"),
                                  std::string("ci\x7f"), std::string("caf\xc3\xa9")}) {
    SCOPED_TRACE(name);
    ExpectInvalid(admin_->CreateToken("alice", name, std::nullopt), "name");
  }
  EXPECT_TRUE(Must(store_->ListApiTokens(std::nullopt)).empty());
  EXPECT_TRUE(admin_->CreateToken("alice", std::string(64, 't'), std::nullopt));
  EXPECT_TRUE(admin_->CreateToken("alice", "CI bot #2 (nightly)", std::nullopt));
}

TEST_F(UserAdminTest, CreateTokenKeepsTtlWithinBounds) {
  Must(admin_->AddUser("alice", "", kUserRole));
  for (auto ttl : {59s, 0s, -60s, std::chrono::seconds(315'360'001)}) {
    SCOPED_TRACE(ttl.count());
    ExpectInvalid(admin_->CreateToken("alice", "ci", ttl), "expires_in_seconds");
  }
  EXPECT_TRUE(Must(store_->ListApiTokens(std::nullopt)).empty());
  EXPECT_EQ(Must(admin_->CreateToken("alice", "short", 60s)).record.expires_at, clock_.Now() + 60s);
  const auto longest = std::chrono::seconds(315'360'000);
  EXPECT_EQ(Must(admin_->CreateToken("alice", "long", longest)).record.expires_at,
            clock_.Now() + longest);
  EXPECT_EQ(Must(admin_->CreateToken("alice", "forever", std::nullopt)).record.expires_at,
            std::nullopt);
}

TEST_F(UserAdminTest, CreateTokenStoresOnlyTheHashOfTheSecret) {
  const store::UserRecord alice = Must(admin_->AddUser("alice", "", kUserRole));
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  EXPECT_TRUE(LooksLikeApiToken(token.secret));
  EXPECT_EQ(token.record.user_id, alice.id);
  EXPECT_EQ(token.record.token_hash, TokenHash(token.secret));
  EXPECT_EQ(token.record.hint, token.secret.substr(token.secret.size() - 4));
  EXPECT_EQ(token.record.created_at, clock_.Now());

  const auto listed = Must(store_->ListApiTokens(alice.id));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0], token.record);
  for (const std::string& field :
       {listed[0].id, listed[0].user_id, listed[0].name, listed[0].token_hash, listed[0].hint}) {
    EXPECT_EQ(field.find(token.secret), std::string::npos) << field;
  }
  const std::string disk = DatabaseBytes();
  ASSERT_NE(disk.find(token.record.token_hash), std::string::npos) << "the hash reached the disk";
  EXPECT_EQ(disk.find(token.secret), std::string::npos) << "the secret did not";
}

TEST_F(UserAdminTest, CreateTokenForAnUnknownUserIsNotFound) {
  auto token = admin_->CreateToken("ghost", "ci", std::nullopt);
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().code, core::Code::kNotFound);
  EXPECT_EQ(token.error().field, "user");
}

TEST_F(UserAdminTest, RevokeTokenKeepsTheFirstRevocationTime) {
  Must(admin_->AddUser("alice", "", kUserRole));
  const NewApiToken token = Must(admin_->CreateToken("alice", "ci", std::nullopt));
  const core::SystemTime revoked_at = clock_.Now();
  EXPECT_EQ(Must(admin_->RevokeToken(token.record.id)).revoked_at, revoked_at);
  clock_.Advance(1h);
  EXPECT_EQ(Must(admin_->RevokeToken(token.record.id)).revoked_at, revoked_at);
  auto unknown = admin_->RevokeToken("tok-nope");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, core::Code::kNotFound);
}

// --- first start ---

TEST_F(UserAdminTest, BootstrapAdminCreatesTheAdminAndAPrivateTokenFileOnce) {
  const std::string path = dir_.File("admin.token");
  ASSERT_TRUE(Must(admin_->BootstrapAdmin(path)));

  const store::UserRecord admin = Must(store_->GetUserByName("admin"));
  EXPECT_EQ(admin.role, kAdminRole);
  EXPECT_TRUE(admin.password_hash.empty());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string text = ReadAll(path);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::string secret = text.substr(0, text.size() - 1);
  EXPECT_TRUE(LooksLikeApiToken(secret));
  const auto tokens = Must(store_->ListApiTokens(admin.id));
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].name, "bootstrap");
  EXPECT_EQ(tokens[0].token_hash, TokenHash(secret));
  EXPECT_EQ(tokens[0].expires_at, std::nullopt);

  // A second start finds a user and writes nothing, neither at the same path nor elsewhere.
  EXPECT_FALSE(Must(admin_->BootstrapAdmin(path)));
  EXPECT_FALSE(Must(admin_->BootstrapAdmin(dir_.File("again.token"))));
  EXPECT_EQ(ReadAll(path), text);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("again.token")));
  EXPECT_EQ(UserCount(), 1u);
  EXPECT_EQ(Must(store_->ListApiTokens(std::nullopt)).size(), 1u);
}

TEST_F(UserAdminTest, BootstrapAdminDoesNothingWhenAnyUserExists) {
  Must(admin_->AddUser("alice", "", kUserRole));
  EXPECT_FALSE(Must(admin_->BootstrapAdmin(dir_.File("admin.token"))));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("admin.token")));
  EXPECT_EQ(UserCount(), 1u);
  EXPECT_TRUE(Must(store_->ListApiTokens(std::nullopt)).empty());
}

}  // namespace
}  // namespace gpuorch::security
