// An in-memory snapshot of the users and API tokens in the store, so that checking a request's token
// never waits on the store. Reload() reads everything again (the service calls it on a timer, and at
// once after each change it makes itself); changes made by another process (the `gpuorch user`
// commands) are seen at the next reload.
//
// Also keeps, per user with a monthly budget, what their usage cost since the start of the month.
//
// Thread-safe: Current() may be called from any thread while Reload() runs.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/error.h"
#include "store/store.h"

namespace gpuorch::security {

struct DirectorySnapshot {
  std::map<std::string, store::UserRecord> users;          // by id
  std::map<std::string, std::string> user_id_by_name;
  std::map<std::string, store::ApiTokenRecord> tokens;      // by token hash
  std::map<std::string, double> month_spend_usd;            // by user name; budgeted users only

  const store::UserRecord* FindUser(const std::string& id) const;
  const store::UserRecord* FindUserByName(const std::string& name) const;
};

// The first instant of the UTC calendar month that contains `now`.
core::SystemTime MonthStart(core::SystemTime now);

// What `owner`'s usage cost between `since` and `now` (records clipped to that window).
[[nodiscard]] core::Result<double> SpendSince(store::Store& store, const std::string& owner,
                                              core::SystemTime since, core::SystemTime now);

class UserDirectory {
 public:
  UserDirectory(store::Store& store, const core::Clock& clock);
  UserDirectory(const UserDirectory&) = delete;
  UserDirectory& operator=(const UserDirectory&) = delete;

  // Reads users, tokens and month-to-date spend; on success the new snapshot replaces the old one
  // in one step. On failure the previous snapshot stays.
  [[nodiscard]] core::Status Reload();
  // The latest snapshot (empty before the first successful Reload).
  std::shared_ptr<const DirectorySnapshot> Current() const;

 private:
  store::Store& store_;
  const core::Clock& clock_;
  std::mutex reload_mu_;  // one reload at a time
  mutable std::mutex mu_;
  std::shared_ptr<const DirectorySnapshot> current_;  // GUARDED_BY(mu_)
};

}  // namespace gpuorch::security
