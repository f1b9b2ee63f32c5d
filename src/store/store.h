// The Store: the durable record of jobs and their transitions. Backends (SQLite now, PostgreSQL later)
// implement this interface and pass the same contract tests (tests/unit/store/store_contract_test.cc).
//
// Durability contract: when a write's result (or callback) reports success, the write is on disk
// (SQLite: WAL with synchronous=FULL; concurrent writes share one fsync by group commit).
// Every state change is a compare-and-set on the job's current state and appends a JobTransition in
// the same transaction; illegal arrows of the state machine (domain/job.h) are refused.
// Implementations are thread-safe; every method may block on I/O, so callers on an event loop use the
// async insert or a worker thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "domain/job.h"

namespace gpuorch::store {

struct InsertOutcome {
  domain::Job job;
  bool created = true;  // false: an earlier submit with the same (owner, idempotency key) won
};

struct JobQuery {
  std::optional<std::string> owner;              // nullopt: all owners
  std::vector<domain::JobState> states;          // empty: any state
  std::optional<std::string> job_type;
  int limit = 50;                                // 1..1000
  std::optional<int64_t> before_seq;             // cursor: only jobs with seq < before_seq
};

struct JobPage {
  std::vector<domain::Job> jobs;                 // newest first (seq descending)
  std::optional<int64_t> next_before_seq;        // set when more jobs may follow
};

// A compare-and-set update of one job. Fields left nullopt keep their stored value.
struct JobUpdate {
  std::string job_id;
  domain::JobState expected_state = domain::JobState::kQueued;
  std::optional<domain::JobState> new_state;     // nullopt: no transition, only field updates
  std::optional<std::string> status_message;
  std::optional<int> attempt;
  std::optional<std::string> node_id;
  std::optional<std::vector<int>> gpu_indices;
  std::optional<std::optional<core::SystemTime>> started_at;
  std::optional<std::optional<core::SystemTime>> finished_at;
  std::optional<std::optional<core::SystemTime>> not_before;
  std::optional<std::optional<int>> exit_code;
  std::string transition_message;               // stored with the transition, when there is one
};

// Per-insert options, checked inside the insert's transaction.
struct InsertOptions {
  // When set, the insert fails (kResourceExhausted, reason "quota_exceeded") if the job's owner
  // already has this many jobs or more in state queued. nullopt: no limit.
  std::optional<int> max_queued_jobs;
};

using InsertCallback = std::function<void(core::Result<InsertOutcome>)>;

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // Durably inserts `job` (state queued, seq assigned by the store; created_at/updated_at as given)
  // and its creation transition. When `job.idempotency_key` is non-empty and a job of the same
  // owner already has it, inserts nothing and reports that job with created=false (even when the
  // owner is over quota). Otherwise, when `options.max_queued_jobs` is set and the owner already
  // has that many queued jobs, inserts nothing and fails with kResourceExhausted, reason
  // "quota_exceeded"; the count and the insert are one atomic step, so concurrent inserts never
  // overshoot the limit.
  // Does not block: `done` runs exactly once, on a store thread, after the commit (or failure:
  // kUnavailable when the disk write failed, kInvalidArgument when the job is not queued).
  virtual void InsertJobAsync(domain::Job job, InsertCallback done,
                              const InsertOptions& options) = 0;
  // InsertJobAsync without options (no quota).
  void InsertJobAsync(domain::Job job, InsertCallback done) {
    InsertJobAsync(std::move(job), std::move(done), InsertOptions{});
  }

  // Blocking form of InsertJobAsync.
  core::Result<InsertOutcome> InsertJob(domain::Job job, const InsertOptions& options = {});

  // The job, or kNotFound.
  [[nodiscard]] virtual core::Result<domain::Job> GetJob(const std::string& job_id) = 0;

  [[nodiscard]] virtual core::Result<JobPage> ListJobs(const JobQuery& query) = 0;

  // All jobs in any of `states`, oldest first. For the scheduler and recovery.
  [[nodiscard]] virtual core::Result<std::vector<domain::Job>> ListJobsInStates(
      const std::vector<domain::JobState>& states) = 0;

  // Applies `update` iff the job's state is `update.expected_state`, with updated_at = `now`;
  // appends a transition when the state changes. Returns the job as stored after the update.
  // kNotFound: no such job. kAborted: the job's state is no longer expected_state.
  // kFailedPrecondition: expected_state → new_state is not an arrow of the state machine.
  [[nodiscard]] virtual core::Result<domain::Job> UpdateJob(const JobUpdate& update,
                                                            core::SystemTime now) = 0;

  // Applies `updates` in order, in one transaction, each with the semantics (and error codes) of
  // UpdateJob and updated_at = `now`. Each update succeeds or fails on its own: a failed one
  // changes nothing and does not stop the others; a later update sees the earlier ones (two
  // updates may move one job along two arrows). Returns one result per update, in the order given.
  // The outer result fails (kUnavailable) only when the transaction could not commit; then none of
  // it is stored. Blocks until the commit. An empty `updates` returns an empty vector at once.
  [[nodiscard]] virtual core::Result<std::vector<core::Result<domain::Job>>> UpdateJobs(
      const std::vector<JobUpdate>& updates, core::SystemTime now) = 0;

  // The job's transitions, oldest first; kNotFound when the job does not exist.
  [[nodiscard]] virtual core::Result<std::vector<domain::JobTransition>> ListTransitions(
      const std::string& job_id) = 0;

  // Succeeds when the store can read and write now; kUnavailable otherwise.
  [[nodiscard]] virtual core::Status Ping() = 0;
};

}  // namespace gpuorch::store
