// Rows of the `provider_credentials` table: the SQL and the codec between store::CredentialRecord
// and columns (the sealed value as a BLOB, byte for byte; times as Unix milliseconds).
// Internal to store/sqlite. Functions run on a Connection the caller confines to one thread; the
// write functions expect the caller's transaction (ReplaceCredentialRows relies on it to be all or
// nothing).
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "store/sqlite/internal/connection.h"
#include "store/store.h"

namespace gpuorch::store::sqlite_internal {

// Inserts `credential`, or overwrites every column of the row with its (provider, name).
// kInvalidArgument when its provider, name, sealed or key_id is empty.
[[nodiscard]] core::Status UpsertCredentialRow(Connection& db, const CredentialRecord& credential);

// Every credential, ordered by (provider, name).
[[nodiscard]] core::Result<std::vector<CredentialRecord>> SelectCredentials(Connection& db);

// Deletes the row (provider, name); kNotFound when there is none.
[[nodiscard]] core::Status DeleteCredentialRow(Connection& db, const std::string& provider,
                                               const std::string& name);

// Deletes every row and inserts `credentials`. kInvalidArgument, before anything is written, when
// one of them is invalid (as for UpsertCredentialRow) or two share a (provider, name). On an error
// the caller rolls back its transaction (or savepoint) to keep the rows as they were.
[[nodiscard]] core::Status ReplaceCredentialRows(Connection& db,
                                                 const std::vector<CredentialRecord>& credentials);

}  // namespace gpuorch::store::sqlite_internal
