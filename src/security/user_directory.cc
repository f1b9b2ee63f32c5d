#include "security/user_directory.h"

#include <algorithm>
#include <ctime>

namespace gpuorch::security {

const store::UserRecord* DirectorySnapshot::FindUser(const std::string& id) const {
  auto it = users.find(id);
  return it == users.end() ? nullptr : &it->second;
}

const store::UserRecord* DirectorySnapshot::FindUserByName(const std::string& name) const {
  auto it = user_id_by_name.find(name);
  return it == user_id_by_name.end() ? nullptr : FindUser(it->second);
}

core::SystemTime MonthStart(core::SystemTime now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&t, &utc);
  utc.tm_mday = 1;
  utc.tm_hour = 0;
  utc.tm_min = 0;
  utc.tm_sec = 0;
  return std::chrono::system_clock::from_time_t(timegm(&utc));
}

namespace {

// What `record` cost between `since` and `now`.
double CostSince(store::UsageRecord record, core::SystemTime since, core::SystemTime now) {
  record.started_at = std::max(record.started_at, since);
  if (record.ended_at && *record.ended_at <= record.started_at) {
    return 0;
  }
  return store::UsageCostUsd(record, now);
}

}  // namespace

core::Result<double> SpendSince(store::Store& store, const std::string& owner,
                                core::SystemTime since, core::SystemTime now) {
  GPUORCH_ASSIGN_OR_RETURN(
      auto records, store.ListUsage(store::UsageQuery{.owner = owner, .active_since = since}));
  double total = 0;
  for (const store::UsageRecord& record : records) {
    total += CostSince(record, since, now);
  }
  return total;
}

UserDirectory::UserDirectory(store::Store& store, const core::Clock& clock)
    : store_(store), clock_(clock), current_(std::make_shared<DirectorySnapshot>()) {}

core::Status UserDirectory::Reload() {
  std::lock_guard reload(reload_mu_);
  auto next = std::make_shared<DirectorySnapshot>();
  GPUORCH_ASSIGN_OR_RETURN(auto users, store_.ListUsers());
  GPUORCH_ASSIGN_OR_RETURN(auto tokens, store_.ListApiTokens(std::nullopt));
  const core::SystemTime now = clock_.Now();
  const core::SystemTime month = MonthStart(now);
  for (auto& user : users) {
    if (user.monthly_budget_usd) {
      next->month_spend_usd[user.name] = 0;
    }
    next->user_id_by_name[user.name] = user.id;
    next->users[user.id] = std::move(user);
  }
  // One read of this month's usage for every budgeted user together.
  if (!next->month_spend_usd.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(auto usage,
                             store_.ListUsage(store::UsageQuery{.active_since = month}));
    for (const store::UsageRecord& record : usage) {
      auto spend = next->month_spend_usd.find(record.owner);
      if (spend != next->month_spend_usd.end()) {
        spend->second += CostSince(record, month, now);
      }
    }
  }
  for (auto& token : tokens) {
    next->tokens[token.token_hash] = std::move(token);
  }
  std::lock_guard lock(mu_);
  current_ = std::move(next);
  return core::Ok();
}

std::shared_ptr<const DirectorySnapshot> UserDirectory::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

}  // namespace gpuorch::security
