// Rows of the `instances` table: the SQL and the codec between domain::Instance and columns (times
// as Unix milliseconds, NULL when unset; the offer as JSON text).
// Internal to store/sqlite. Functions run on a Connection the caller confines to one thread; the
// write functions expect the caller's transaction.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "domain/instance.h"
#include "store/sqlite/internal/connection.h"
#include "store/store.h"

namespace gpuorch::store::sqlite_internal {

// Inserts `instance` (its seq ignored). kInvalidArgument when it is not requested, has no id, or a
// field cannot be encoded (a price not finite, text of the offer not valid UTF-8); kAlreadyExists
// when the id is taken.
[[nodiscard]] core::Status InsertInstanceRow(Connection& db, const domain::Instance& instance);

// The instance with this id, or nullopt.
[[nodiscard]] core::Result<std::optional<domain::Instance>> SelectInstanceById(
    Connection& db, const std::string& id);

// Instances matching `query`, oldest first (seq ascending).
[[nodiscard]] core::Result<std::vector<domain::Instance>> SelectInstances(
    Connection& db, const InstanceQuery& query);

// The oldest non-terminal instance whose join_token_hash is `hash`, or nullopt (always for an
// empty `hash`).
[[nodiscard]] core::Result<std::optional<domain::Instance>> SelectLiveInstanceByJoinTokenHash(
    Connection& db, const std::string& hash);

// The compare-and-set of Store::UpdateInstance, inside the caller's transaction: applies `update`
// iff the row's state is update.expected_state, with updated_at = `now`, and returns the row as
// stored afterwards. kFailedPrecondition for an arrow the state machine lacks (checked first),
// kNotFound, kAborted when the state differs, kInvalidArgument for a price that is not finite.
[[nodiscard]] core::Result<domain::Instance> CompareAndSetInstance(Connection& db,
                                                                   const InstanceUpdate& update,
                                                                   core::SystemTime now);

}  // namespace gpuorch::store::sqlite_internal
