// Rows of the `jobs` and `job_transitions` tables: the SQL and the codec between domain values and
// columns (times as Unix milliseconds, NULL when unset; command, env, gpu_indices, node_selector
// and allowed_providers as JSON text).
// Internal to store/sqlite. Functions run on a Connection the caller confines to one thread; the
// write functions expect the caller's transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "domain/job.h"
#include "store/sqlite/internal/connection.h"
#include "store/store.h"

namespace gpuorch::store::sqlite_internal {

// The job with this id, or nullopt.
[[nodiscard]] core::Result<std::optional<domain::Job>> SelectJobById(Connection& db,
                                                                     const std::string& job_id);

// The job of `owner` that carries `idempotency_key` (non-empty), or nullopt.
[[nodiscard]] core::Result<std::optional<domain::Job>> SelectJobByIdempotencyKey(
    Connection& db, const std::string& owner, const std::string& idempotency_key);

// Inserts `job` (its seq ignored) and returns the seq assigned. kInvalidArgument when a field
// cannot be encoded (command or env not valid UTF-8, memory_gb not finite); kAlreadyExists on a
// duplicate id or (owner, idempotency_key).
[[nodiscard]] core::Result<int64_t> InsertJobRow(Connection& db, const domain::Job& job);

// The number of `owner`'s jobs in state queued, counting no further than `at_most`.
[[nodiscard]] core::Result<int64_t> CountQueuedJobs(Connection& db, const std::string& owner,
                                                    int64_t at_most);

// Overwrites the mutable columns of the row with `job.seq`.
[[nodiscard]] core::Status UpdateJobRow(Connection& db, const domain::Job& job);

[[nodiscard]] core::Status InsertTransitionRow(Connection& db,
                                               const domain::JobTransition& transition);

// Transitions of `job_id`, oldest first (may be empty).
[[nodiscard]] core::Result<std::vector<domain::JobTransition>> SelectTransitions(
    Connection& db, const std::string& job_id);

// One page of jobs for `query` (limit already clamped by the caller), newest first.
[[nodiscard]] core::Result<std::vector<domain::Job>> SelectJobPage(Connection& db,
                                                                   const JobQuery& query);

// Jobs in any of `states`, oldest first.
[[nodiscard]] core::Result<std::vector<domain::Job>> SelectJobsInStates(
    Connection& db, const std::vector<domain::JobState>& states);

}  // namespace gpuorch::store::sqlite_internal
