// Rows of the `nodes` table: the SQL and the codec between store::NodeRecord and columns (times as
// Unix milliseconds; GPUs and labels as JSON text).
// Internal to store/sqlite. Functions run on a Connection the caller confines to one thread; the
// write functions expect the caller's transaction.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "store/sqlite/internal/connection.h"
#include "store/store.h"

namespace gpuorch::store::sqlite_internal {

// Inserts `node`, or overwrites every column of the row with its id. kInvalidArgument when it has
// no id or its text is not valid UTF-8 where it is stored as JSON (GPUs, labels).
[[nodiscard]] core::Status UpsertNodeRow(Connection& db, const NodeRecord& node);

// The node with this id, or nullopt.
[[nodiscard]] core::Result<std::optional<NodeRecord>> SelectNodeById(Connection& db,
                                                                     const std::string& id);

// Every node, oldest registration first (first insert first among equal times).
[[nodiscard]] core::Result<std::vector<NodeRecord>> SelectNodes(Connection& db);

}  // namespace gpuorch::store::sqlite_internal
