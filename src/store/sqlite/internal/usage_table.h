// Rows of the `usage` table (one per job attempt on priced capacity, the basis of cost accounting)
// and of the `settings` table (values the service initialises once).
// Internal to store/sqlite. Functions run on a Connection the caller confines to one thread; the
// write functions expect the caller's transaction.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "store/sqlite/internal/connection.h"
#include "store/store.h"

namespace gpuorch::store::sqlite_internal {

// Inserts `usage` unless a row of the same (job_id, attempt) exists, which is then left as it is.
// kInvalidArgument when it has no job_id or its price is not finite.
[[nodiscard]] core::Status InsertUsageRowIfAbsent(Connection& db, const UsageRecord& usage);

// Sets ended_at of (job_id, attempt) when that row exists and is open; otherwise changes nothing.
[[nodiscard]] core::Status CloseUsageRow(Connection& db, const std::string& job_id, int attempt,
                                         core::SystemTime ended_at);

// Rows matching `query`, oldest start first (first opened first among equal times).
[[nodiscard]] core::Result<std::vector<UsageRecord>> SelectUsage(Connection& db,
                                                                 const UsageQuery& query);

// Stores `initial` as the value of `key` unless it has one; returns the stored value.
[[nodiscard]] core::Result<std::string> InitAndSelectSetting(Connection& db, const std::string& key,
                                                             const std::string& initial);

// The value of `key`, or nullopt.
[[nodiscard]] core::Result<std::optional<std::string>> SelectSetting(Connection& db,
                                                                     const std::string& key);

}  // namespace gpuorch::store::sqlite_internal
