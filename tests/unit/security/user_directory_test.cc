#include "security/user_directory.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/clock.h"
#include "core/ids.h"
#include "security/password.h"
#include "security/user_admin.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/must.h"
#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

using namespace std::chrono_literals;

using testing::Must;

core::SystemTime At(int64_t unix_seconds) {
  return core::SystemTime(std::chrono::seconds(unix_seconds));
}

// UTC instants, in Unix seconds.
constexpr int64_t k2027Mar15Noon = 1'805'112'000;   // 2027-03-15T12:00:00Z
constexpr int64_t k2027Mar15TenAm = 1'805'104'800;  // 2027-03-15T10:00:00Z
constexpr int64_t k2027Mar01 = 1'803'859'200;       // 2027-03-01T00:00:00Z
constexpr int64_t k2027Mar01TwoAm = 1'803'866'400;  // 2027-03-01T02:00:00Z
constexpr int64_t k2027Feb28TenPm = 1'803'852'000;  // 2027-02-28T22:00:00Z

TEST(MonthStartTest, IsTheFirstInstantOfTheUtcMonth) {
  EXPECT_EQ(core::FormatRfc3339(MonthStart(At(k2027Mar15Noon))), "2027-03-01T00:00:00.000Z");
  EXPECT_EQ(MonthStart(At(k2027Mar15Noon)), At(k2027Mar01));
  EXPECT_EQ(MonthStart(At(k2027Mar01)), At(k2027Mar01)) << "the start belongs to its month";
  EXPECT_EQ(MonthStart(At(k2027Mar01) + 999ms), At(k2027Mar01));
  EXPECT_EQ(core::FormatRfc3339(MonthStart(At(k2027Mar01) - 1ms)), "2027-02-01T00:00:00.000Z");
  EXPECT_EQ(core::FormatRfc3339(MonthStart(At(1'798'761'600) - 1s)),  // 2027-01-01T00:00:00Z
            "2026-12-01T00:00:00.000Z");
}

class UserDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Must(store::OpenSqliteStore({.path = dir_.File("gpuorch.db")}));
    admin_ = std::make_unique<UserAdmin>(*store_, clock_, *ids_, MinimalCost());
    directory_ = std::make_unique<UserDirectory>(*store_, clock_);
  }

  void Reload() { ASSERT_TRUE(directory_->Reload()); }

  void AddBudgetedUser(const std::string& name, double budget_usd) {
    Must(admin_->AddUser(name, "", "user"));
    Must(admin_->SetLimits(name, {.monthly_budget_usd = budget_usd}));
  }

  // Usage of `owner` at `usd_per_hour` from `start`, ended at `end` unless nullopt.
  void Use(const std::string& job_id, const std::string& owner, double usd_per_hour, int64_t start,
           std::optional<int64_t> end) {
    ASSERT_TRUE(store_->OpenUsage(store::UsageRecord{
        .job_id = job_id, .owner = owner, .usd_per_hour = usd_per_hour, .started_at = At(start)}));
    if (end) {
      ASSERT_TRUE(store_->CloseUsage(job_id, 0, At(*end)));
    }
  }

  double MonthSpend(const std::string& name) {
    const auto snapshot = directory_->Current();
    auto it = snapshot->month_spend_usd.find(name);
    if (it == snapshot->month_spend_usd.end()) {
      ADD_FAILURE() << "no month spend for " << name;
      return -1;
    }
    return it->second;
  }

  testing::TempDir dir_;
  core::FakeClock clock_{At(k2027Mar15Noon)};
  std::unique_ptr<core::IdGenerator> ids_ = core::MakeRandomIdGenerator(clock_);
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<UserAdmin> admin_;
  std::unique_ptr<UserDirectory> directory_;
};

TEST_F(UserDirectoryTest, ReloadIndexesUsersByIdAndNameAndTokensByHash) {
  const store::UserRecord alice = Must(admin_->AddUser("alice", "", "user"));
  const store::UserRecord bob = Must(admin_->AddUser("bob", "", "admin"));
  const NewApiToken token = Must(admin_->CreateToken("bob", "ci", std::nullopt));
  Reload();
  const auto snapshot = directory_->Current();
  ASSERT_NE(snapshot->FindUser(alice.id), nullptr);
  EXPECT_EQ(*snapshot->FindUser(alice.id), alice);
  ASSERT_NE(snapshot->FindUserByName("bob"), nullptr);
  EXPECT_EQ(*snapshot->FindUserByName("bob"), bob);
  EXPECT_EQ(snapshot->FindUser("alice"), nullptr) << "names are not ids";
  EXPECT_EQ(snapshot->FindUserByName(alice.id), nullptr) << "nor ids names";
  EXPECT_EQ(snapshot->FindUserByName("carol"), nullptr);
  ASSERT_EQ(snapshot->tokens.size(), 1u);
  EXPECT_EQ(snapshot->tokens.at(token.record.token_hash), token.record);
}

TEST_F(UserDirectoryTest, StoreChangesAreInvisibleUntilReloadAndSnapshotsNeverChange) {
  EXPECT_TRUE(directory_->Current()->users.empty()) << "empty before the first reload";
  const store::UserRecord alice = Must(admin_->AddUser("alice", "", "user"));
  EXPECT_EQ(directory_->Current()->FindUserByName("alice"), nullptr);
  Reload();
  const auto before = directory_->Current();
  ASSERT_NE(before->FindUserByName("alice"), nullptr);

  Must(admin_->SetDisabled("alice", true));
  Must(admin_->AddUser("bob", "", "user"));
  EXPECT_FALSE(directory_->Current()->FindUser(alice.id)->disabled);
  EXPECT_EQ(directory_->Current()->FindUserByName("bob"), nullptr);

  Reload();
  const auto after = directory_->Current();
  EXPECT_TRUE(after->FindUser(alice.id)->disabled);
  EXPECT_NE(after->FindUserByName("bob"), nullptr);
  // A snapshot taken before the reload is a value: it still says what it said.
  EXPECT_FALSE(before->FindUser(alice.id)->disabled);
  EXPECT_EQ(before->FindUserByName("bob"), nullptr);
}

TEST_F(UserDirectoryTest, MonthSpendClipsUsageToTheMonthAndCountsOpenUsageUpToNow) {
  AddBudgetedUser("alice", 100);
  Use("straddles", "alice", 1.0, k2027Feb28TenPm, k2027Mar01TwoAm);  // 2 of its 4 h count
  Use("last-month", "alice", 50.0, k2027Feb28TenPm - 86'400, k2027Feb28TenPm);  // none counts
  Use("ends-at-start", "alice", 50.0, k2027Feb28TenPm, k2027Mar01);             // none counts
  Use("open", "alice", 3.0, k2027Mar15TenAm, std::nullopt);                     // 2 h so far
  Use("someone-else", "bob", 1000.0, k2027Mar15TenAm, std::nullopt);
  Reload();
  EXPECT_DOUBLE_EQ(MonthSpend("alice"), 2 * 1.0 + 2 * 3.0);

  clock_.Advance(1h);
  EXPECT_DOUBLE_EQ(MonthSpend("alice"), 8.0) << "the snapshot is not recomputed until a reload";
  Reload();
  EXPECT_DOUBLE_EQ(MonthSpend("alice"), 2 * 1.0 + 3 * 3.0);
}

TEST_F(UserDirectoryTest, MonthSpendStartsAgainInANewMonth) {
  AddBudgetedUser("alice", 100);
  Use("open", "alice", 1.0, k2027Mar15TenAm, std::nullopt);
  Use("closed", "alice", 10.0, k2027Mar15TenAm, k2027Mar15Noon);
  Reload();
  EXPECT_DOUBLE_EQ(MonthSpend("alice"), 2 * 1.0 + 2 * 10.0);
  // 2027-04-01T01:00:00Z: only the open record's first hour of April counts.
  clock_.Advance(At(1'806'541'200) - clock_.Now());
  Reload();
  EXPECT_DOUBLE_EQ(MonthSpend("alice"), 1.0);
}

TEST_F(UserDirectoryTest, MonthSpendIsKeptForBudgetedUsersOnly) {
  AddBudgetedUser("alice", 0);  // a zero budget is still a budget
  Must(admin_->AddUser("bob", "", "user"));
  Use("bob-job", "bob", 5.0, k2027Mar15TenAm, std::nullopt);
  Reload();
  const auto snapshot = directory_->Current();
  EXPECT_EQ(snapshot->month_spend_usd.count("bob"), 0u);
  EXPECT_DOUBLE_EQ(MonthSpend("alice"), 0.0);
}

TEST_F(UserDirectoryTest, SpendSinceClipsToTheWindow) {
  Use("a", "alice", 6.0, k2027Mar15TenAm - 3600, k2027Mar15TenAm + 1800);  // 1.5 h, 0.5 h inside
  Use("b", "alice", 2.0, k2027Mar15TenAm + 3600, std::nullopt);            // 1 h up to noon
  EXPECT_DOUBLE_EQ(Must(SpendSince(*store_, "alice", At(k2027Mar15TenAm), At(k2027Mar15Noon))),
                   0.5 * 6.0 + 1 * 2.0);
  EXPECT_DOUBLE_EQ(Must(SpendSince(*store_, "nobody", At(k2027Mar01), At(k2027Mar15Noon))), 0.0);
}

}  // namespace
}  // namespace gpuorch::security
