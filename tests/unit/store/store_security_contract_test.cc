// The Store contract (store/store.h) for security records: users, API tokens and sealed provider
// credentials. Written against the interface only; every backend in testing::AllBackends() runs it.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "store/store.h"
#include "unit/store/store_test_util.h"

namespace gpuorch::store {
namespace {

using core::Code;
using testing::BackendFactory;
using testing::Describe;
using namespace std::chrono_literals;

class StoreSecurityContractTest : public testing::StoreContractFixture {
 protected:
  // A user with a fresh id and name, stamped with the fake clock (which then moves on by 1 ms).
  UserRecord NewUser(const std::string& name = "") {
    const int n = next_id_++;
    UserRecord user{.id = "usr_" + std::to_string(n),
                    .name = name.empty() ? "user-" + std::to_string(n) : name,
                    .created_at = clock_.Now(),
                    .updated_at = clock_.Now()};
    clock_.Advance(1ms);
    return user;
  }

  // Inserts `user`; the test fails if the store refuses.
  UserRecord Insert(UserRecord user) {
    auto status = store().InsertUser(user);
    EXPECT_TRUE(status.has_value()) << Describe(status);
    return user;
  }

  // A token of `user_id` with a fresh id and hash, stamped like NewUser.
  ApiTokenRecord NewToken(const std::string& user_id) {
    const int n = next_id_++;
    ApiTokenRecord token{.id = "tok_" + std::to_string(n),
                         .user_id = user_id,
                         .name = "ci",
                         .token_hash = std::string(60, 'a') + std::to_string(1000 + n),
                         .hint = "ab" + std::to_string(n % 100),
                         .created_at = clock_.Now()};
    clock_.Advance(1ms);
    return token;
  }

  ApiTokenRecord Insert(ApiTokenRecord token) {
    auto status = store().InsertApiToken(token);
    EXPECT_TRUE(status.has_value()) << Describe(status);
    return token;
  }

  CredentialRecord NewCredential(const std::string& provider, const std::string& name,
                                 const std::string& sealed = "sealed-bytes") {
    CredentialRecord credential{.provider = provider,
                                .name = name,
                                .sealed = sealed,
                                .key_id = "key-1",
                                .hint = "wxyz",
                                .fingerprint = "0123abcd",
                                .updated_at = clock_.Now()};
    clock_.Advance(1ms);
    return credential;
  }

  void Put(const CredentialRecord& credential) {
    auto status = store().PutCredential(credential);
    EXPECT_TRUE(status.has_value()) << Describe(status);
  }

  std::vector<ApiTokenRecord> Tokens(const std::optional<std::string>& user_id) {
    auto tokens = store().ListApiTokens(user_id);
    EXPECT_TRUE(tokens.has_value()) << Describe(tokens);
    return tokens.value_or(std::vector<ApiTokenRecord>{});
  }

  std::vector<CredentialRecord> Credentials() {
    auto credentials = store().ListCredentials();
    EXPECT_TRUE(credentials.has_value()) << Describe(credentials);
    return credentials.value_or(std::vector<CredentialRecord>{});
  }

  core::FakeClock clock_;
  int next_id_ = 1;
};

// Every field set, with text that a careless encoder would mangle.
UserRecord FullUser(core::SystemTime t) {
  return UserRecord{.id = "usr_ü1",
                    .name = "Ünïcødé 'admin' \"👩‍🚀\"",
                    .role = "admin",
                    .password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA",
                    .disabled = true,
                    .token_version = int64_t{1} << 40,
                    .max_gpus = 8,
                    .max_queued_jobs = 100,
                    .monthly_budget_usd = 1234.56789,
                    .created_at = t,
                    .updated_at = t + 1ms};
}

// ---- Users ----

TEST_P(StoreSecurityContractTest, UserRoundTripsEveryFieldByIdAndByName) {
  const UserRecord user = FullUser(clock_.Now());
  Insert(user);
  auto by_id = store().GetUser(user.id);
  ASSERT_TRUE(by_id.has_value()) << Describe(by_id);
  EXPECT_EQ(*by_id, user);
  auto by_name = store().GetUserByName(user.name);
  ASSERT_TRUE(by_name.has_value()) << Describe(by_name);
  EXPECT_EQ(*by_name, user);
}

TEST_P(StoreSecurityContractTest, UnsetQuotasReadBackAsNulloptAndZeroQuotasAsZero) {
  UserRecord unset = NewUser("unset");
  UserRecord zero = NewUser("zero");
  zero.max_gpus = 0;
  zero.max_queued_jobs = 0;
  zero.monthly_budget_usd = 0.0;
  Insert(unset);
  Insert(zero);
  auto got_unset = store().GetUser(unset.id);
  ASSERT_TRUE(got_unset.has_value()) << Describe(got_unset);
  EXPECT_EQ(got_unset->max_gpus, std::nullopt);
  EXPECT_EQ(got_unset->max_queued_jobs, std::nullopt);
  EXPECT_EQ(got_unset->monthly_budget_usd, std::nullopt);
  EXPECT_EQ(*got_unset, unset);
  auto got_zero = store().GetUser(zero.id);
  ASSERT_TRUE(got_zero.has_value()) << Describe(got_zero);
  EXPECT_EQ(got_zero->max_gpus, std::optional<int>(0));
  EXPECT_EQ(got_zero->max_queued_jobs, std::optional<int>(0));
  EXPECT_EQ(got_zero->monthly_budget_usd, std::optional<double>(0.0));
  EXPECT_EQ(*got_zero, zero);
}

TEST_P(StoreSecurityContractTest, UserTimesAreKeptInWholeMilliseconds) {
  UserRecord user = NewUser();
  user.created_at += 1234us;
  user.updated_at += 5678us;
  Insert(user);
  auto got = store().GetUser(user.id);
  ASSERT_TRUE(got.has_value()) << Describe(got);
  EXPECT_EQ(got->created_at, user.created_at - 234us);
  EXPECT_EQ(got->updated_at, user.updated_at - 678us);
}

TEST_P(StoreSecurityContractTest, ListUsersIsOldestFirst) {
  EXPECT_TRUE(store().ListUsers()->empty());
  UserRecord late = NewUser("late");
  late.created_at += 1h;
  UserRecord first = NewUser("first");
  UserRecord same_time = NewUser("same-time");
  same_time.created_at = first.created_at;
  Insert(late);
  Insert(first);
  Insert(same_time);
  auto users = store().ListUsers();
  ASSERT_TRUE(users.has_value()) << Describe(users);
  EXPECT_EQ(*users, (std::vector<UserRecord>{first, same_time, late}));
}

TEST_P(StoreSecurityContractTest, InsertUserRefusesATakenNameAndKeepsTheFirst) {
  const UserRecord alice = Insert(NewUser("alice"));
  UserRecord impostor = NewUser("alice");
  impostor.role = "admin";
  auto refused = store().InsertUser(impostor);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kAlreadyExists) << refused.error().message;
  EXPECT_EQ(*store().GetUserByName("alice"), alice);
  EXPECT_EQ(store().GetUser(impostor.id).error().code, Code::kNotFound);
}

TEST_P(StoreSecurityContractTest, InsertUserRefusesATakenIdAndKeepsTheFirst) {
  const UserRecord alice = Insert(NewUser("alice"));
  UserRecord bob = NewUser("bob");
  bob.id = alice.id;
  auto refused = store().InsertUser(bob);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kAlreadyExists) << refused.error().message;
  EXPECT_EQ(*store().GetUser(alice.id), alice);
  EXPECT_EQ(store().GetUserByName("bob").error().code, Code::kNotFound);
}

TEST_P(StoreSecurityContractTest, InsertUserRefusesBadUsers) {
  UserRecord no_id = NewUser();
  no_id.id = "";
  UserRecord no_name = NewUser();
  no_name.name = "";
  UserRecord root = NewUser();
  root.role = "root";
  UserRecord no_role = NewUser();
  no_role.role = "";
  UserRecord shouting = NewUser();
  shouting.role = "ADMIN";
  UserRecord nan_budget = NewUser();
  nan_budget.monthly_budget_usd = std::nan("");
  UserRecord infinite_budget = NewUser();
  infinite_budget.monthly_budget_usd = std::numeric_limits<double>::infinity();
  for (const UserRecord& bad :
       {no_id, no_name, root, no_role, shouting, nan_budget, infinite_budget}) {
    auto refused = store().InsertUser(bad);
    ASSERT_FALSE(refused.has_value()) << bad.id << " " << bad.name;
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
  }
  EXPECT_TRUE(store().ListUsers()->empty());
}

TEST_P(StoreSecurityContractTest, MissingUserIsNotFoundByIdAndByName) {
  Insert(NewUser("alice"));
  for (const std::string& id : {std::string("usr_nope"), std::string("")}) {
    auto missing = store().GetUser(id);
    ASSERT_FALSE(missing.has_value()) << id;
    EXPECT_EQ(missing.error().code, Code::kNotFound);
  }
  for (const std::string& name : {std::string("Alice"), std::string("bob"), std::string("")}) {
    auto missing = store().GetUserByName(name);
    ASSERT_FALSE(missing.has_value()) << name;
    EXPECT_EQ(missing.error().code, Code::kNotFound);
  }
}

TEST_P(StoreSecurityContractTest, UpdateUserReplacesMutableFieldsButNotNameOrCreatedAt) {
  const UserRecord before = Insert(NewUser("alice"));
  clock_.Advance(1h);
  UserRecord update = before;
  update.name = "mallory";
  update.created_at = clock_.Now();
  update.role = "admin";
  update.password_hash = "$argon2id$new";
  update.disabled = true;
  update.token_version = 7;
  update.max_gpus = 4;
  update.max_queued_jobs = 10;
  update.monthly_budget_usd = 99.5;
  update.updated_at = clock_.Now();
  auto updated = store().UpdateUser(update);
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  UserRecord expected = update;
  expected.name = before.name;
  expected.created_at = before.created_at;
  EXPECT_EQ(*updated, expected);
  EXPECT_EQ(*store().GetUser(before.id), expected);
  EXPECT_EQ(*store().GetUserByName("alice"), expected);
  EXPECT_EQ(store().GetUserByName("mallory").error().code, Code::kNotFound);
}

TEST_P(StoreSecurityContractTest, UpdateUserClearsQuotasBackToNullopt) {
  UserRecord user = NewUser();
  user.max_gpus = 2;
  user.max_queued_jobs = 3;
  user.monthly_budget_usd = 50;
  Insert(user);
  user.max_gpus.reset();
  user.max_queued_jobs.reset();
  user.monthly_budget_usd.reset();
  auto updated = store().UpdateUser(user);
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  EXPECT_EQ(*updated, user);
  EXPECT_EQ(store().GetUser(user.id)->monthly_budget_usd, std::nullopt);
}

TEST_P(StoreSecurityContractTest, UpdateOfMissingUserIsNotFound) {
  Insert(NewUser("alice"));
  UserRecord ghost = NewUser("ghost");
  auto missing = store().UpdateUser(ghost);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Code::kNotFound) << missing.error().message;
  EXPECT_EQ(store().ListUsers()->size(), 1u);
}

TEST_P(StoreSecurityContractTest, UpdateUserRefusesBadValuesAndChangesNothing) {
  const UserRecord before = Insert(NewUser("alice"));
  UserRecord bad_role = before;
  bad_role.role = "superuser";
  bad_role.disabled = true;
  UserRecord nan_budget = before;
  nan_budget.monthly_budget_usd = std::nan("");
  nan_budget.token_version = 9;
  UserRecord no_id = before;
  no_id.id = "";
  for (const UserRecord& bad : {bad_role, nan_budget, no_id}) {
    auto refused = store().UpdateUser(bad);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
  }
  EXPECT_EQ(*store().GetUser(before.id), before);
}

TEST_P(StoreSecurityContractTest, ConcurrentInsertsOfOneNameHaveOneWinner) {
  constexpr int kThreads = 16;
  std::vector<UserRecord> users;
  for (int i = 0; i < kThreads; ++i) {
    users.push_back(NewUser("same-name"));
  }
  std::vector<core::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = store().InsertUser(users[i]); });
  }
  for (auto& t : threads) {
    t.join();
  }
  int winners = 0;
  std::string winner;
  for (int i = 0; i < kThreads; ++i) {
    if (results[i]) {
      ++winners;
      winner = users[i].id;
    } else {
      EXPECT_EQ(results[i].error().code, Code::kAlreadyExists) << results[i].error().message;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(store().GetUserByName("same-name")->id, winner);
  EXPECT_EQ(store().ListUsers()->size(), 1u);
}

// ---- API tokens ----

TEST_P(StoreSecurityContractTest, ApiTokensListPerUserAndForEveryoneOldestFirst) {
  const UserRecord alice = Insert(NewUser("alice"));
  const UserRecord bob = Insert(NewUser("bob"));
  ApiTokenRecord a1 = NewToken(alice.id);
  a1.expires_at = clock_.Now() + 24h;
  const ApiTokenRecord b1 = NewToken(bob.id);
  ApiTokenRecord a2 = NewToken(alice.id);
  a2.name = "laptop «ü»";
  ApiTokenRecord a0 = NewToken(alice.id);
  a0.created_at = a1.created_at - 1h;
  for (const ApiTokenRecord& token : {a1, b1, a2, a0}) {
    Insert(token);
  }
  EXPECT_EQ(Tokens(alice.id), (std::vector<ApiTokenRecord>{a0, a1, a2}));
  EXPECT_EQ(Tokens(bob.id), std::vector<ApiTokenRecord>{b1});
  EXPECT_EQ(Tokens(std::nullopt), (std::vector<ApiTokenRecord>{a0, a1, b1, a2}));
  EXPECT_TRUE(Tokens("usr_nobody").empty());
}

TEST_P(StoreSecurityContractTest, ApiTokenRoundTripsUnsetAndSetTimes) {
  const UserRecord alice = Insert(NewUser("alice"));
  const ApiTokenRecord plain = Insert(NewToken(alice.id));
  ApiTokenRecord dated = NewToken(alice.id);
  dated.expires_at = clock_.Now() + 720h;
  dated.revoked_at = clock_.Now() + 1ms;
  Insert(dated);
  const std::vector<ApiTokenRecord> tokens = Tokens(alice.id);
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0], plain);
  EXPECT_FALSE(tokens[0].expires_at.has_value());
  EXPECT_FALSE(tokens[0].revoked_at.has_value());
  EXPECT_EQ(tokens[1], dated);
}

TEST_P(StoreSecurityContractTest, ApiTokenForUnknownUserIsNotFoundAndNotStored) {
  Insert(NewUser("alice"));
  auto refused = store().InsertApiToken(NewToken("usr_ghost"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kNotFound) << refused.error().message;
  EXPECT_TRUE(Tokens(std::nullopt).empty());
}

TEST_P(StoreSecurityContractTest, ApiTokenWithATakenHashIsRefused) {
  const UserRecord alice = Insert(NewUser("alice"));
  const UserRecord bob = Insert(NewUser("bob"));
  const ApiTokenRecord first = Insert(NewToken(alice.id));
  ApiTokenRecord copy = NewToken(bob.id);
  copy.token_hash = first.token_hash;
  auto refused = store().InsertApiToken(copy);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kAlreadyExists) << refused.error().message;
  EXPECT_EQ(Tokens(std::nullopt), std::vector<ApiTokenRecord>{first});
}

TEST_P(StoreSecurityContractTest, ApiTokenWithATakenIdIsRefused) {
  const UserRecord alice = Insert(NewUser("alice"));
  const ApiTokenRecord first = Insert(NewToken(alice.id));
  ApiTokenRecord again = NewToken(alice.id);
  again.id = first.id;
  auto refused = store().InsertApiToken(again);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kAlreadyExists) << refused.error().message;
  EXPECT_EQ(Tokens(std::nullopt), std::vector<ApiTokenRecord>{first});
}

TEST_P(StoreSecurityContractTest, ApiTokenWithoutIdUserOrHashIsInvalid) {
  const UserRecord alice = Insert(NewUser("alice"));
  ApiTokenRecord no_id = NewToken(alice.id);
  no_id.id = "";
  ApiTokenRecord no_user = NewToken(alice.id);
  no_user.user_id = "";
  ApiTokenRecord no_hash = NewToken(alice.id);
  no_hash.token_hash = "";
  for (const ApiTokenRecord& bad : {no_id, no_user, no_hash}) {
    auto refused = store().InsertApiToken(bad);
    ASSERT_FALSE(refused.has_value()) << bad.id;
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
  }
  EXPECT_TRUE(Tokens(std::nullopt).empty());
}

TEST_P(StoreSecurityContractTest, RevokeApiTokenIsIdempotentAndKeepsTheFirstRevocationTime) {
  const UserRecord alice = Insert(NewUser("alice"));
  const ApiTokenRecord token = Insert(NewToken(alice.id));
  const ApiTokenRecord other = Insert(NewToken(alice.id));
  clock_.Advance(10min);
  const core::SystemTime first_revocation = clock_.Now();
  auto revoked = store().RevokeApiToken(token.id, first_revocation);
  ASSERT_TRUE(revoked.has_value()) << Describe(revoked);
  ApiTokenRecord expected = token;
  expected.revoked_at = first_revocation;
  EXPECT_EQ(*revoked, expected);

  clock_.Advance(1h);
  auto again = store().RevokeApiToken(token.id, clock_.Now());
  ASSERT_TRUE(again.has_value()) << Describe(again);
  EXPECT_EQ(*again, expected);
  EXPECT_EQ(Tokens(alice.id), (std::vector<ApiTokenRecord>{expected, other}));
}

TEST_P(StoreSecurityContractTest, RevokeUnknownApiTokenIsNotFound) {
  const UserRecord alice = Insert(NewUser("alice"));
  const ApiTokenRecord token = Insert(NewToken(alice.id));
  for (const std::string& id : {std::string("tok_nope"), std::string("")}) {
    auto missing = store().RevokeApiToken(id, clock_.Now());
    ASSERT_FALSE(missing.has_value()) << id;
    EXPECT_EQ(missing.error().code, Code::kNotFound) << missing.error().message;
  }
  EXPECT_EQ(Tokens(std::nullopt), std::vector<ApiTokenRecord>{token});
}

// ---- Provider credentials ----

TEST_P(StoreSecurityContractTest, PutCredentialInsertsThenReplacesEveryField) {
  const CredentialRecord first = NewCredential("runpod", "RUNPOD_API_KEY");
  Put(first);
  EXPECT_EQ(Credentials(), std::vector<CredentialRecord>{first});
  CredentialRecord second = NewCredential("runpod", "RUNPOD_API_KEY", "resealed");
  second.key_id = "key-2";
  second.hint = "9876";
  second.fingerprint = "fedcba98";
  Put(second);
  EXPECT_EQ(Credentials(), std::vector<CredentialRecord>{second});
}

TEST_P(StoreSecurityContractTest, ListCredentialsIsOrderedByProviderThenName) {
  const CredentialRecord vast = NewCredential("vastai", "VAST_API_KEY");
  const CredentialRecord aws_secret = NewCredential("aws", "AWS_SECRET_ACCESS_KEY");
  const CredentialRecord runpod = NewCredential("runpod", "RUNPOD_API_KEY");
  const CredentialRecord aws_id = NewCredential("aws", "AWS_ACCESS_KEY_ID");
  for (const CredentialRecord& credential : {vast, aws_secret, runpod, aws_id}) {
    Put(credential);
  }
  EXPECT_EQ(Credentials(), (std::vector<CredentialRecord>{aws_id, aws_secret, runpod, vast}));
}

TEST_P(StoreSecurityContractTest, SealedValueWithEveryByteRoundTripsExactly) {
  std::string sealed;
  for (int i = 0; i < 256; ++i) {
    sealed.push_back(static_cast<char>(i));
  }
  sealed += std::string("\0\0\xff\xfe", 4);  // ends in NULs and bytes that are not UTF-8
  const CredentialRecord credential = NewCredential("runpod", "RUNPOD_API_KEY", sealed);
  Put(credential);
  const std::vector<CredentialRecord> stored = Credentials();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].sealed.size(), sealed.size());
  EXPECT_EQ(stored[0].sealed, sealed);
  EXPECT_EQ(stored[0], credential);
  Reopen();
  EXPECT_EQ(Credentials(), std::vector<CredentialRecord>{credential});
}

TEST_P(StoreSecurityContractTest, PutCredentialRefusesEmptyFields) {
  CredentialRecord no_provider = NewCredential("", "RUNPOD_API_KEY");
  CredentialRecord no_name = NewCredential("runpod", "");
  CredentialRecord no_sealed = NewCredential("runpod", "RUNPOD_API_KEY", "");
  CredentialRecord no_key = NewCredential("runpod", "RUNPOD_API_KEY");
  no_key.key_id = "";
  for (const CredentialRecord& bad : {no_provider, no_name, no_sealed, no_key}) {
    auto refused = store().PutCredential(bad);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
  }
  EXPECT_TRUE(Credentials().empty());
}

TEST_P(StoreSecurityContractTest, DeleteCredentialRemovesOnlyThatOneAndMissingIsNotFound) {
  const CredentialRecord runpod = NewCredential("runpod", "RUNPOD_API_KEY");
  const CredentialRecord vast = NewCredential("vastai", "VAST_API_KEY");
  Put(runpod);
  Put(vast);
  auto deleted = store().DeleteCredential("runpod", "RUNPOD_API_KEY");
  ASSERT_TRUE(deleted.has_value()) << Describe(deleted);
  EXPECT_EQ(Credentials(), std::vector<CredentialRecord>{vast});
  for (const auto& [provider, name] :
       {std::pair<std::string, std::string>{"runpod", "RUNPOD_API_KEY"},
        {"vastai", "RUNPOD_API_KEY"},
        {"runpod", "VAST_API_KEY"},
        {"", ""}}) {
    auto missing = store().DeleteCredential(provider, name);
    ASSERT_FALSE(missing.has_value()) << provider << "/" << name;
    EXPECT_EQ(missing.error().code, Code::kNotFound) << missing.error().message;
  }
  EXPECT_EQ(Credentials(), std::vector<CredentialRecord>{vast});
}

TEST_P(StoreSecurityContractTest, ReplaceCredentialsReplacesTheWholeSet) {
  Put(NewCredential("runpod", "RUNPOD_API_KEY", "old-1"));
  Put(NewCredential("aws", "AWS_SECRET_ACCESS_KEY", "old-2"));
  CredentialRecord runpod = NewCredential("runpod", "RUNPOD_API_KEY", "new-1");
  runpod.key_id = "key-2";
  CredentialRecord vast = NewCredential("vastai", "VAST_API_KEY", "new-3");
  vast.key_id = "key-2";
  auto replaced = store().ReplaceCredentials({vast, runpod});
  ASSERT_TRUE(replaced.has_value()) << Describe(replaced);
  EXPECT_EQ(Credentials(), (std::vector<CredentialRecord>{runpod, vast}));

  auto emptied = store().ReplaceCredentials({});
  ASSERT_TRUE(emptied.has_value()) << Describe(emptied);
  EXPECT_TRUE(Credentials().empty());
}

TEST_P(StoreSecurityContractTest, ReplaceCredentialsWithAnInvalidRecordChangesNothing) {
  const CredentialRecord runpod = NewCredential("runpod", "RUNPOD_API_KEY", "old-1");
  const CredentialRecord aws = NewCredential("aws", "AWS_SECRET_ACCESS_KEY", "old-2");
  Put(runpod);
  Put(aws);
  CredentialRecord good = NewCredential("runpod", "RUNPOD_API_KEY", "new-1");
  CredentialRecord no_key = NewCredential("vastai", "VAST_API_KEY", "new-2");
  no_key.key_id = "";
  for (const auto& set :
       {std::vector<CredentialRecord>{good, no_key}, std::vector<CredentialRecord>{no_key, good}}) {
    auto refused = store().ReplaceCredentials(set);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
    EXPECT_EQ(Credentials(), (std::vector<CredentialRecord>{aws, runpod}));
  }
}

// ---- Durability ----

TEST_P(StoreSecurityContractTest, SecurityRecordsPersistAcrossReopen) {
  const UserRecord alice = Insert(FullUser(clock_.Now()));
  UserRecord bob = Insert(NewUser("bob"));
  bob.token_version = 3;
  bob.disabled = true;
  ASSERT_TRUE(store().UpdateUser(bob).has_value());
  const ApiTokenRecord token = Insert(NewToken(alice.id));
  ApiTokenRecord revoked = Insert(NewToken(bob.id));
  revoked = *store().RevokeApiToken(revoked.id, clock_.Now());
  const CredentialRecord credential =
      NewCredential("runpod", "RUNPOD_API_KEY", std::string("n\0nce\xff", 6));
  Put(credential);

  Reopen();
  EXPECT_EQ(*store().ListUsers(), (std::vector<UserRecord>{alice, bob}));
  EXPECT_EQ(*store().GetUserByName("bob"), bob);
  EXPECT_EQ(Tokens(std::nullopt), (std::vector<ApiTokenRecord>{token, revoked}));
  EXPECT_EQ(Credentials(), std::vector<CredentialRecord>{credential});
  auto duplicate = store().InsertUser(NewUser("bob"));
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().code, Code::kAlreadyExists);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreSecurityContractTest,
                         ::testing::ValuesIn(testing::AllBackends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace gpuorch::store
