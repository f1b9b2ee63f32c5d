#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/periodic_loop.h"
#include "store/sqlite/internal/connection.h"
#include "store/sqlite/internal/credential_table.h"
#include "store/sqlite/internal/group_commit_writer.h"
#include "store/sqlite/internal/instance_table.h"
#include "store/sqlite/internal/job_table.h"
#include "store/sqlite/internal/migrations.h"
#include "store/sqlite/internal/node_table.h"
#include "store/sqlite/internal/read_pool.h"
#include "store/sqlite/internal/usage_table.h"
#include "store/sqlite/internal/user_table.h"

namespace gpuorch::store {
namespace {

using domain::Job;
using domain::JobState;
using sqlite_internal::Connection;
using sqlite_internal::GroupCommitWriter;
using sqlite_internal::ReadPool;
using sqlite_internal::Statement;
using sqlite_internal::WriteOp;

constexpr size_t kMaxIdleReaders = 8;
constexpr int kMaxPageSize = 1000;
constexpr std::chrono::milliseconds kCheckpointEvery{100};

core::Error NotFound(const std::string& job_id) {
  return core::Error{
      .code = core::Code::kNotFound, .message = "job " + job_id + " not found", .field = "job_id"};
}

// The row a lookup by `field` (`id` its value) found, or kNotFound naming the `kind` of record.
template <typename T>
core::Result<T> FoundOrNotFound(core::Result<std::optional<T>> row, std::string_view kind,
                                const std::string& id, const std::string& field = "id") {
  if (!row) {
    return core::Fail(row.error());
  }
  if (!*row) {
    return core::Fail(core::Code::kNotFound, std::string(kind) + " " + id + " not found", field);
  }
  return std::move(**row);
}

// `job` as a read of its row returns it: the columns keep every field verbatim but times, which
// they keep in whole milliseconds.
Job AsStored(Job job) {
  auto to_millis = [](core::SystemTime t) { return core::FromUnixMillis(core::ToUnixMillis(t)); };
  job.created_at = to_millis(job.created_at);
  job.updated_at = to_millis(job.updated_at);
  for (auto* t : {&job.started_at, &job.finished_at, &job.not_before}) {
    if (*t) {
      **t = to_millis(**t);
    }
  }
  return job;
}

// kResourceExhausted when `job.owner` already has `max_queued_jobs` queued jobs.
core::Status CheckQueuedQuota(Connection& db, const Job& job, std::optional<int> max_queued_jobs) {
  if (!max_queued_jobs) {
    return core::Ok();
  }
  const int64_t max = *max_queued_jobs;
  GPUORCH_ASSIGN_OR_RETURN(int64_t queued, sqlite_internal::CountQueuedJobs(db, job.owner, max));
  if (queued >= max) {
    return core::Fail(core::Code::kResourceExhausted,
                      "user " + job.owner + " has " + std::to_string(queued) +
                          " queued jobs, the most allowed (quota); wait for some to start or "
                          "cancel some",
                      "", "quota_exceeded");
  }
  return core::Ok();
}

// The insert half of InsertJobAsync, inside the batch's transaction.
core::Result<InsertOutcome> InsertInTransaction(Connection& db, const Job& job,
                                                const InsertOptions& options) {
  if (job.state != JobState::kQueued) {
    return core::Fail(core::Code::kInvalidArgument,
                      "a new job must be queued, not " + std::string(domain::ToString(job.state)),
                      "state");
  }
  if (job.id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "a new job needs an id", "id");
  }
  // Earlier ops of the same batch are visible here (same connection, same transaction), so
  // idempotency also holds between two submits that share a batch.
  if (!job.idempotency_key.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(
        std::optional<Job> existing,
        sqlite_internal::SelectJobByIdempotencyKey(db, job.owner, job.idempotency_key));
    if (existing) {
      return InsertOutcome{.job = std::move(*existing), .created = false};
    }
  }
  // Earlier inserts of the same batch count too, so concurrent submits never overshoot the quota.
  GPUORCH_TRY(CheckQueuedQuota(db, job, options.max_queued_jobs));
  GPUORCH_ASSIGN_OR_RETURN(int64_t seq, sqlite_internal::InsertJobRow(db, job));
  GPUORCH_TRY(
      sqlite_internal::InsertTransitionRow(db, domain::JobTransition{.job_id = job.id,
                                                                     .from = std::nullopt,
                                                                     .to = JobState::kQueued,
                                                                     .at = job.created_at,
                                                                     .attempt = job.attempt,
                                                                     .message = "submitted"}));
  // The caller gets the job exactly as a later read returns it: seq assigned, times in ms.
  Job stored = AsStored(job);
  stored.seq = seq;
  return InsertOutcome{.job = std::move(stored), .created = true};
}

// Copies the fields `update` sets into `job`.
void ApplyFields(const JobUpdate& update, Job& job) {
  auto assign = [](const auto& from, auto& to) {
    if (from) {
      to = *from;
    }
  };
  assign(update.new_state, job.state);
  assign(update.status_message, job.status_message);
  assign(update.attempt, job.attempt);
  assign(update.node_id, job.node_id);
  assign(update.gpu_indices, job.gpu_indices);
  assign(update.started_at, job.started_at);
  assign(update.finished_at, job.finished_at);
  assign(update.not_before, job.not_before);
  assign(update.exit_code, job.exit_code);
}

// kFailedPrecondition when `update` asks for an arrow the job state machine does not have.
core::Status CheckArrow(const JobUpdate& update) {
  if (update.new_state && !domain::CanTransition(update.expected_state, *update.new_state)) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "store: update job: " + std::string(domain::ToString(update.expected_state)) +
                          " -> " + std::string(domain::ToString(*update.new_state)) +
                          " is not a transition of the job state machine",
                      "new_state");
  }
  return core::Ok();
}

// The compare-and-set half of UpdateJob, inside the batch's transaction. The arrow itself was
// checked by the caller.
core::Result<Job> UpdateInTransaction(Connection& db, const JobUpdate& update,
                                      core::SystemTime now) {
  GPUORCH_ASSIGN_OR_RETURN(std::optional<Job> current,
                           sqlite_internal::SelectJobById(db, update.job_id));
  if (!current) {
    return core::Fail(NotFound(update.job_id));
  }
  Job job = std::move(*current);
  if (job.state != update.expected_state) {
    return core::Fail(core::Code::kAborted,
                      "job " + job.id + " is " + std::string(domain::ToString(job.state)) +
                          ", not " + std::string(domain::ToString(update.expected_state)));
  }
  const JobState from = job.state;
  ApplyFields(update, job);
  job.updated_at = now;
  GPUORCH_TRY(sqlite_internal::UpdateJobRow(db, job));
  if (job.state != from) {
    GPUORCH_TRY(sqlite_internal::InsertTransitionRow(
        db, domain::JobTransition{.job_id = job.id,
                                  .from = from,
                                  .to = job.state,
                                  .at = now,
                                  .attempt = job.attempt,
                                  .message = update.transition_message}));
  }
  // No read-back: the row now holds `job` (the update changes no seq or spec column).
  return AsStored(std::move(job));
}

class InsertOp final : public WriteOp {
 public:
  InsertOp(Job job, InsertCallback done, const InsertOptions& options)
      : job_(std::move(job)), done_(std::move(done)), options_(options) {}

  core::Status Apply(Connection& db) override {
    result_ = InsertInTransaction(db, job_, options_);
    return result_ ? core::Ok() : core::Fail(result_.error());
  }

  void Finish(core::Status outcome) override {
    if (!outcome) {
      done_(core::Fail(outcome.error().WithContext("store: insert job")));
      return;
    }
    done_(std::move(result_));
  }

 private:
  Job job_;
  InsertCallback done_;
  const InsertOptions options_;
  core::Result<InsertOutcome> result_ = core::Fail(core::Code::kInternal, "insert not applied");
};

class UpdateOp final : public WriteOp {
 public:
  UpdateOp(const JobUpdate& update, core::SystemTime now) : update_(update), now_(now) {}

  core::Status Apply(Connection& db) override {
    result_ = UpdateInTransaction(db, update_, now_);
    return result_ ? core::Ok() : core::Fail(result_.error());
  }

  void Finish(core::Status outcome) override {
    if (!outcome) {
      done_.set_value(core::Fail(outcome.error().WithContext("store: update job")));
      return;
    }
    done_.set_value(std::move(result_));
  }

  std::future<core::Result<Job>> Done() { return done_.get_future(); }

 private:
  const JobUpdate update_;
  const core::SystemTime now_;
  core::Result<Job> result_ = core::Fail(core::Code::kInternal, "update not applied");
  std::promise<core::Result<Job>> done_;
};

core::Status RunSql(Connection& db, const char* sql) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
  return stmt.Run();
}

// UpdateJobs: one op of the writer's batch (so one transaction), whose updates each run in a
// savepoint of their own nested in the op's, so that a failed update leaves no trace and the others
// go on.
class UpdateManyOp final : public WriteOp {
 public:
  UpdateManyOp(const std::vector<JobUpdate>& updates, core::SystemTime now)
      : updates_(updates), now_(now) {}

  core::Status Apply(Connection& db) override {
    results_.clear();
    results_.reserve(updates_.size());
    for (const JobUpdate& update : updates_) {
      if (core::Status arrow = CheckArrow(update); !arrow) {
        results_.push_back(core::Fail(arrow.error()));
        continue;
      }
      GPUORCH_TRY(RunSql(db, "SAVEPOINT job_update"));
      core::Result<Job> result = UpdateInTransaction(db, update, now_);
      GPUORCH_TRY(RunSql(db, result ? "RELEASE job_update" : "ROLLBACK TO job_update"));
      if (!result) {
        GPUORCH_TRY(RunSql(db, "RELEASE job_update"));
      }
      if (!db.InTransaction()) {
        return core::Fail(core::Code::kUnavailable, "the transaction was rolled back");
      }
      results_.push_back(std::move(result));
    }
    return core::Ok();
  }

  void Finish(core::Status outcome) override {
    if (!outcome) {
      done_.set_value(core::Fail(outcome.error().WithContext("store: update jobs")));
      return;
    }
    done_.set_value(std::move(results_));
  }

  size_t Writes() const override { return std::max<size_t>(updates_.size(), 1); }

  std::future<core::Result<std::vector<core::Result<Job>>>> Done() { return done_.get_future(); }

 private:
  const std::vector<JobUpdate> updates_;
  const core::SystemTime now_;
  std::vector<core::Result<Job>> results_;
  std::promise<core::Result<std::vector<core::Result<Job>>>> done_;
};

// The Store over one SQLite file: writes through the group-commit writer, reads through the pool.
// Thread-safe.
class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> checkpointer,
              const Connection::Options& read_options, size_t max_batch)
      : reads_(read_options, kMaxIdleReaders),
        checkpointer_(std::move(checkpointer)),
        checkpoint_loop_("sqlite-checkpoint", kCheckpointEvery, [this] { Checkpoint(); }),
        writer_(std::move(writer), max_batch) {
    checkpoint_loop_.Start();
  }

  void InsertJobAsync(Job job, InsertCallback done, const InsertOptions& options) override {
    writer_.Submit(std::make_unique<InsertOp>(std::move(job), std::move(done), options));
  }

  core::Result<Job> GetJob(const std::string& job_id) override {
    GPUORCH_ASSIGN_OR_RETURN(ReadPool::Lease db, AcquireReader("get job"));
    auto job = sqlite_internal::SelectJobById(*db, job_id);
    if (!job) {
      return core::Fail(job.error().WithContext("store: get job"));
    }
    if (!*job) {
      return core::Fail(NotFound(job_id).WithContext("store: get job"));
    }
    return std::move(**job);
  }

  core::Result<JobPage> ListJobs(const JobQuery& query) override {
    JobQuery clamped = query;
    clamped.limit = std::clamp(query.limit, 1, kMaxPageSize);
    GPUORCH_ASSIGN_OR_RETURN(ReadPool::Lease db, AcquireReader("list jobs"));
    auto jobs = sqlite_internal::SelectJobPage(*db, clamped);
    if (!jobs) {
      return core::Fail(jobs.error().WithContext("store: list jobs"));
    }
    JobPage page{.jobs = std::move(*jobs)};
    if (static_cast<int>(page.jobs.size()) == clamped.limit) {
      page.next_before_seq = page.jobs.back().seq;
    }
    return page;
  }

  core::Result<std::vector<Job>> ListJobsInStates(const std::vector<JobState>& states) override {
    GPUORCH_ASSIGN_OR_RETURN(ReadPool::Lease db, AcquireReader("list jobs in states"));
    auto jobs = sqlite_internal::SelectJobsInStates(*db, states);
    if (!jobs) {
      return core::Fail(jobs.error().WithContext("store: list jobs in states"));
    }
    return std::move(*jobs);
  }

  core::Result<Job> UpdateJob(const JobUpdate& update, core::SystemTime now) override {
    GPUORCH_TRY(CheckArrow(update));
    auto op = std::make_unique<UpdateOp>(update, now);
    std::future<core::Result<Job>> done = op->Done();
    writer_.Submit(std::move(op));
    return done.get();
  }

  core::Result<std::vector<core::Result<Job>>> UpdateJobs(const std::vector<JobUpdate>& updates,
                                                          core::SystemTime now) override {
    if (updates.empty()) {
      return std::vector<core::Result<Job>>();
    }
    auto op = std::make_unique<UpdateManyOp>(updates, now);
    auto done = op->Done();
    writer_.Submit(std::move(op));
    return done.get();
  }

  core::Result<std::vector<domain::JobTransition>> ListTransitions(
      const std::string& job_id) override {
    GPUORCH_ASSIGN_OR_RETURN(ReadPool::Lease db, AcquireReader("list transitions"));
    // Jobs are never deleted, so a job seen here still exists for the second query.
    auto job = sqlite_internal::SelectJobById(*db, job_id);
    if (!job) {
      return core::Fail(job.error().WithContext("store: list transitions"));
    }
    if (!*job) {
      return core::Fail(NotFound(job_id).WithContext("store: list transitions"));
    }
    auto transitions = sqlite_internal::SelectTransitions(*db, job_id);
    if (!transitions) {
      return core::Fail(transitions.error().WithContext("store: list transitions"));
    }
    return std::move(*transitions);
  }

  core::Status InsertInstance(const domain::Instance& instance) override {
    return Write<void>("insert instance", [&](Connection& db) {
      return sqlite_internal::InsertInstanceRow(db, instance);
    });
  }

  core::Result<domain::Instance> GetInstance(const std::string& id) override {
    return Read("get instance", [&](Connection& db) {
      return FoundOrNotFound(sqlite_internal::SelectInstanceById(db, id), "instance", id);
    });
  }

  core::Result<std::vector<domain::Instance>> ListInstances(const InstanceQuery& query) override {
    return Read("list instances",
                [&](Connection& db) { return sqlite_internal::SelectInstances(db, query); });
  }

  core::Result<domain::Instance> UpdateInstance(const InstanceUpdate& update,
                                                core::SystemTime now) override {
    return Write<domain::Instance>("update instance", [&](Connection& db) {
      return sqlite_internal::CompareAndSetInstance(db, update, now);
    });
  }

  core::Result<domain::Instance> FindInstanceByJoinTokenHash(const std::string& hash) override {
    return Read("find instance by join token", [&](Connection& db) {
      return FoundOrNotFound(sqlite_internal::SelectLiveInstanceByJoinTokenHash(db, hash),
                             "live instance with join token hash", hash);
    });
  }

  core::Status UpsertNode(const NodeRecord& node) override {
    return Write<void>("upsert node",
                       [&](Connection& db) { return sqlite_internal::UpsertNodeRow(db, node); });
  }

  core::Result<NodeRecord> GetNode(const std::string& id) override {
    return Read("get node", [&](Connection& db) {
      return FoundOrNotFound(sqlite_internal::SelectNodeById(db, id), "node", id);
    });
  }

  core::Result<std::vector<NodeRecord>> ListNodes() override {
    return Read("list nodes", [](Connection& db) { return sqlite_internal::SelectNodes(db); });
  }

  core::Status OpenUsage(const UsageRecord& usage) override {
    return Write<void>("open usage", [&](Connection& db) {
      return sqlite_internal::InsertUsageRowIfAbsent(db, usage);
    });
  }

  core::Status CloseUsage(const std::string& job_id, int attempt,
                          core::SystemTime ended_at) override {
    return Write<void>("close usage", [&](Connection& db) {
      return sqlite_internal::CloseUsageRow(db, job_id, attempt, ended_at);
    });
  }

  core::Result<std::vector<UsageRecord>> ListUsage(const UsageQuery& query) override {
    return Read("list usage",
                [&](Connection& db) { return sqlite_internal::SelectUsage(db, query); });
  }

  core::Result<std::string> GetOrInitSetting(const std::string& key,
                                             const std::string& initial) override {
    // A setting, once stored, never changes: a value a reader sees is the final one, and only a
    // missing one needs the writer (whose insert-if-absent decides between racing initialisers).
    GPUORCH_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                             Read("get setting", [&](Connection& db) {
                               return sqlite_internal::SelectSetting(db, key);
                             }));
    if (stored) {
      return std::move(*stored);
    }
    return Write<std::string>("init setting", [&](Connection& db) {
      return sqlite_internal::InitAndSelectSetting(db, key, initial);
    });
  }

  core::Status InsertUser(const UserRecord& user) override {
    return Write<void>("insert user",
                       [&](Connection& db) { return sqlite_internal::InsertUserRow(db, user); });
  }

  core::Result<UserRecord> GetUser(const std::string& id) override {
    return Read("get user", [&](Connection& db) {
      return FoundOrNotFound(sqlite_internal::SelectUserById(db, id), "user", id);
    });
  }

  core::Result<UserRecord> GetUserByName(const std::string& name) override {
    return Read("get user by name", [&](Connection& db) {
      return FoundOrNotFound(sqlite_internal::SelectUserByName(db, name), "user named", name,
                             "name");
    });
  }

  core::Result<std::vector<UserRecord>> ListUsers() override {
    return Read("list users", [](Connection& db) { return sqlite_internal::SelectUsers(db); });
  }

  core::Result<UserRecord> UpdateUser(const UserRecord& user) override {
    return Write<UserRecord>(
        "update user", [&](Connection& db) { return sqlite_internal::UpdateUserRow(db, user); });
  }

  core::Status InsertApiToken(const ApiTokenRecord& token) override {
    return Write<void>("insert API token", [&](Connection& db) {
      return sqlite_internal::InsertApiTokenRow(db, token);
    });
  }

  core::Result<std::vector<ApiTokenRecord>> ListApiTokens(
      const std::optional<std::string>& user_id) override {
    return Read("list API tokens",
                [&](Connection& db) { return sqlite_internal::SelectApiTokens(db, user_id); });
  }

  core::Result<ApiTokenRecord> RevokeApiToken(const std::string& id,
                                              core::SystemTime now) override {
    return Write<ApiTokenRecord>("revoke API token", [&](Connection& db) {
      return sqlite_internal::RevokeApiTokenRow(db, id, now);
    });
  }

  core::Status PutCredential(const CredentialRecord& credential) override {
    return Write<void>("put credential", [&](Connection& db) {
      return sqlite_internal::UpsertCredentialRow(db, credential);
    });
  }

  core::Result<std::vector<CredentialRecord>> ListCredentials() override {
    return Read("list credentials",
                [](Connection& db) { return sqlite_internal::SelectCredentials(db); });
  }

  core::Status DeleteCredential(const std::string& provider, const std::string& name) override {
    return Write<void>("delete credential", [&](Connection& db) {
      return sqlite_internal::DeleteCredentialRow(db, provider, name);
    });
  }

  core::Status ReplaceCredentials(const std::vector<CredentialRecord>& credentials) override {
    // One op, so one savepoint of the writer's batch: a failure part-way rolls all of it back.
    return Write<void>("replace credentials", [&](Connection& db) {
      return sqlite_internal::ReplaceCredentialRows(db, credentials);
    });
  }

  core::Status Ping() override {
    auto db = reads_.Acquire();
    if (!db) {
      return core::Fail(core::Code::kUnavailable, "store: ping: " + db.error().message);
    }
    auto row = (**db).QueryText("SELECT COUNT(*) FROM schema_migrations");
    if (!row) {
      return core::Fail(core::Code::kUnavailable, "store: ping: " + row.error().message);
    }
    return core::Ok();
  }

  GroupCommitStats Stats() const { return writer_.Stats(); }

 private:
  core::Result<ReadPool::Lease> AcquireReader(std::string_view what) {
    auto lease = reads_.Acquire();
    if (!lease) {
      return core::Fail(lease.error().WithContext("store: " + std::string(what)));
    }
    return lease;
  }

  // Runs `fn` as one write of the next batch and waits until its batch committed (or failed).
  template <typename T>
  core::Result<T> Write(std::string_view what, std::function<core::Result<T>(Connection&)> fn) {
    auto op = std::make_unique<sqlite_internal::FunctionOp<T>>("store: " + std::string(what),
                                                               std::move(fn));
    auto done = op->Done();
    writer_.Submit(std::move(op));
    return done.get();
  }

  // Runs `fn` on a read connection of the pool; an error gets `what` as context.
  template <typename Fn>
  auto Read(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Connection&>())) {
    GPUORCH_ASSIGN_OR_RETURN(ReadPool::Lease db, AcquireReader(what));
    auto result = fn(*db);
    if (!result) {
      return core::Fail(result.error().WithContext("store: " + std::string(what)));
    }
    return result;
  }

  // Copies the WAL into the database file off the commit path, so that a commit's latency is its
  // one WAL fsync (the writer runs with wal_autocheckpoint=0). PASSIVE never blocks the writer.
  void Checkpoint() {
    if (auto status = checkpointer_->Exec("PRAGMA wal_checkpoint(PASSIVE)"); !status) {
      spdlog::warn("store: checkpoint: {}", status.error().message);
    }
  }

  ReadPool reads_;
  std::unique_ptr<Connection> checkpointer_;
  core::PeriodicLoop checkpoint_loop_;
  // Declared last so that it is destroyed first: pending writes drain while readers still exist.
  GroupCommitWriter writer_;
};

core::Status ValidatePath(const std::string& path) {
  if (path.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "the database path is empty", "path");
  }
  if (path == ":memory:" || path.rfind("file:", 0) == 0) {
    // An in-memory database is private to each connection: readers would never see the writes.
    return core::Fail(core::Code::kInvalidArgument,
                      "the database path must name a file, not " + path, "path");
  }
  return core::Ok();
}

// Opens `path` for writing in WAL mode with synchronous=FULL.
core::Result<std::unique_ptr<Connection>> OpenWriter(const Connection::Options& options) {
  GPUORCH_TRY(ValidatePath(options.path));
  GPUORCH_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, Connection::Open(options));
  GPUORCH_ASSIGN_OR_RETURN(std::string mode, db->QueryText("PRAGMA journal_mode = WAL"));
  if (mode != "wal") {
    return core::Fail(core::Code::kUnavailable,
                      "cannot put " + options.path + " in WAL mode (journal_mode is " + mode + ")");
  }
  GPUORCH_TRY(db->Exec("PRAGMA synchronous = FULL"));
  // Every op runs in a savepoint (UpdateJobs' updates in nested ones). Their undo journals are
  // scratch that dies with the transaction: kept in memory, they never spill to temp files.
  GPUORCH_TRY(db->Exec("PRAGMA temp_store = MEMORY"));
  return db;
}

// Refuses a schema this binary cannot serve; migrates a blank database when allowed.
core::Status CheckSchema(Connection& db, const SqliteStoreOptions& options) {
  GPUORCH_ASSIGN_OR_RETURN(sqlite_internal::SchemaInfo info, sqlite_internal::ReadSchemaInfo(db));
  const int latest = SqliteSchemaVersion();
  if (info.foreign) {
    return core::Fail(core::Code::kFailedPrecondition,
                      options.path + " holds tables but no schema_migrations; not a gpuorch store");
  }
  if (info.version > latest) {
    return core::Fail(core::Code::kFailedPrecondition,
                      options.path + " has schema version " + std::to_string(info.version) +
                          ", newer than version " + std::to_string(latest) +
                          " of this binary; upgrade gpuorch");
  }
  if (info.version == latest) {
    return core::Ok();
  }
  if (info.blank && options.migrate_if_empty) {
    return sqlite_internal::ApplyMigrations(db, latest).map([](int) {});
  }
  return core::Fail(core::Code::kFailedPrecondition,
                    options.path + " has schema version " + std::to_string(info.version) +
                        " but this binary needs version " + std::to_string(latest) +
                        "; run `gpuorch migrate` first");
}

core::Result<std::unique_ptr<Store>> Open(const SqliteStoreOptions& options) {
  const Connection::Options connection{
      .path = options.path, .create = true, .busy_timeout = options.busy_timeout};
  GPUORCH_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer, OpenWriter(connection));
  GPUORCH_TRY(CheckSchema(*writer, options));
  GPUORCH_TRY(writer->Exec("PRAGMA wal_autocheckpoint = 0"));
  GPUORCH_ASSIGN_OR_RETURN(std::unique_ptr<Connection> checkpointer, Connection::Open(connection));
  auto store = std::make_unique<SqliteStore>(std::move(writer), std::move(checkpointer), connection,
                                             static_cast<size_t>(std::max(options.max_batch, 1)));
  GPUORCH_TRY(store->Ping());  // fails early when readers cannot open the file
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace

core::Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options) {
  auto store = Open(options);
  if (!store) {
    return core::Fail(store.error().WithContext("store: open"));
  }
  return store;
}

core::Result<int> MigrateSqlite(const std::string& path) {
  auto migrate = [&]() -> core::Result<int> {
    GPUORCH_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db,
                             OpenWriter(Connection::Options{.path = path}));
    return sqlite_internal::ApplyMigrations(*db, SqliteSchemaVersion());
  };
  auto version = migrate();
  if (!version) {
    return core::Fail(version.error().WithContext("store: migrate"));
  }
  return version;
}

int SqliteSchemaVersion() { return sqlite_internal::LatestSchemaVersion(); }

std::optional<GroupCommitStats> GetGroupCommitStats(const Store& store) {
  const auto* sqlite = dynamic_cast<const SqliteStore*>(&store);
  if (sqlite == nullptr) {
    return std::nullopt;
  }
  return sqlite->Stats();
}

}  // namespace gpuorch::store
