// Rows of the `users` and `api_tokens` tables: the SQL and the codec between store::UserRecord /
// store::ApiTokenRecord and columns (times as Unix milliseconds, NULL when unset; unset quotas as
// NULL).
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

// Inserts `user`. kInvalidArgument when its id or name is empty, its role is not "admin" or
// "user", or its budget is not finite; kAlreadyExists when its id or name is taken.
[[nodiscard]] core::Status InsertUserRow(Connection& db, const UserRecord& user);

// The user with this id, or nullopt.
[[nodiscard]] core::Result<std::optional<UserRecord>> SelectUserById(Connection& db,
                                                                     const std::string& id);

// The user with this name, or nullopt.
[[nodiscard]] core::Result<std::optional<UserRecord>> SelectUserByName(Connection& db,
                                                                       const std::string& name);

// Every user, oldest first (first inserted first among equal times).
[[nodiscard]] core::Result<std::vector<UserRecord>> SelectUsers(Connection& db);

// Overwrites every column but id, name and created_at of the row with `user.id` and returns the
// row as stored afterwards. `user.name` and `user.created_at` are ignored. kNotFound; otherwise
// kInvalidArgument as for InsertUserRow (but for the name, which is not written).
[[nodiscard]] core::Result<UserRecord> UpdateUserRow(Connection& db, const UserRecord& user);

// Inserts `token`. kInvalidArgument when its id, user_id or token_hash is empty; kNotFound when no
// user has its user_id; kAlreadyExists when its id or token_hash is taken.
[[nodiscard]] core::Status InsertApiTokenRow(Connection& db, const ApiTokenRecord& token);

// The tokens of `user_id` (of every user when nullopt), oldest first (first inserted first among
// equal times), revoked ones included.
[[nodiscard]] core::Result<std::vector<ApiTokenRecord>> SelectApiTokens(
    Connection& db, const std::optional<std::string>& user_id);

// Sets revoked_at of the token to `now` unless it is revoked already, and returns the row as
// stored afterwards. kNotFound when there is no such token.
[[nodiscard]] core::Result<ApiTokenRecord> RevokeApiTokenRow(Connection& db, const std::string& id,
                                                             core::SystemTime now);

}  // namespace gpuorch::store::sqlite_internal
