// The Store: the durable record of jobs and their transitions, and of the cloud capacity they run
// on (instances, nodes, usage for cost accounting) and service settings. Backends (SQLite now,
// PostgreSQL later) implement this interface and pass the same contract tests
// (tests/unit/store/store_contract_test.cc).
//
// Durability contract: when a write's result (or callback) reports success, the write is on disk
// (SQLite: WAL with synchronous=FULL; concurrent writes share one fsync by group commit).
// Every state change of a job or an instance is a compare-and-set on its current state; a job's
// appends a JobTransition in the same transaction. Illegal arrows of the state machines
// (domain/job.h, domain/instance.h) are refused. Times are stored in whole milliseconds.
// Implementations are thread-safe; every method may block on I/O, so callers on an event loop use the
// async insert or a worker thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "domain/gpu.h"
#include "domain/instance.h"
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

// A compare-and-set update of one instance. Fields left nullopt keep their stored value.
struct InstanceUpdate {
  std::string instance_id;
  domain::InstanceState expected_state = domain::InstanceState::kRequested;
  std::optional<domain::InstanceState> new_state;  // checked against domain::CanTransition
  std::optional<std::string> status_message;
  std::optional<std::string> provider_instance_id;
  std::optional<std::string> node_id;
  std::optional<std::string> join_token_hash;
  std::optional<double> price_per_hour;
  std::optional<std::optional<core::SystemTime>> billing_started_at;
  std::optional<std::optional<core::SystemTime>> ready_at;
  std::optional<std::optional<core::SystemTime>> billing_ended_at;
  std::optional<std::optional<core::SystemTime>> last_busy_at;
};

struct InstanceQuery {
  std::vector<domain::InstanceState> states;  // empty: any state
  std::optional<std::string> owner;
  std::optional<std::string> provider;
};

// A node agent that registered (a cloud instance's, or any machine started with a join token).
struct NodeRecord {
  std::string id;
  std::string instance_id;                 // empty for nodes not created by us
  std::string provider = "local";
  std::string hostname;
  std::vector<domain::GpuDevice> gpus;
  std::map<std::string, std::string> labels;
  bool container_runtime = false;
  std::string token_hash;                  // SHA-256 hex of the node's bearer token
  std::string state = "active";            // "active", "lost" or "gone" (deregistered)
  core::SystemTime registered_at{};
  core::SystemTime updated_at{};

  bool operator==(const NodeRecord&) const = default;
};

// One attempt of a job on priced capacity: the basis of cost accounting. Cost = usd_per_hour ×
// (ended_at or now − started_at).
struct UsageRecord {
  std::string job_id;
  int attempt = 0;
  std::string owner;
  std::string instance_id;
  std::string provider;
  std::string node_id;
  double usd_per_hour = 0;                 // the job's share of its instance's price
  core::SystemTime started_at{};
  std::optional<core::SystemTime> ended_at;

  bool operator==(const UsageRecord&) const = default;
};

// What `usage` cost up to `now`: usd_per_hour × (ended_at or now − started_at), billed per second.
double UsageCostUsd(const UsageRecord& usage, core::SystemTime now);

struct UsageQuery {
  std::optional<std::string> owner;
  std::optional<std::string> job_id;
  std::optional<std::string> instance_id;
  std::optional<core::SystemTime> active_since;  // only records not ended before this time
};

// A user of the API (security/). Names are unique; ids never change.
struct UserRecord {
  std::string id;                          // "usr_..."
  std::string name;                        // unique
  std::string role = "user";               // "admin" or "user"
  std::string password_hash;               // Argon2id string (crypto_pwhash_str); empty: no login
  bool disabled = false;
  int64_t token_version = 0;               // bumped to revoke every access token issued before
  // Limits set by admins; nullopt: the service's configured default.
  std::optional<int> max_gpus;
  std::optional<int> max_queued_jobs;
  std::optional<double> monthly_budget_usd;
  core::SystemTime created_at{};
  core::SystemTime updated_at{};

  bool operator==(const UserRecord&) const = default;
};

// A long-lived API token. Only the SHA-256 of its secret is stored.
struct ApiTokenRecord {
  std::string id;                          // "tok_..."
  std::string user_id;
  std::string name;                        // what it is for, e.g. "ci"
  std::string token_hash;                  // SHA-256 hex of the secret; unique
  std::string hint;                        // last 4 characters of the secret, for display
  core::SystemTime created_at{};
  std::optional<core::SystemTime> expires_at;
  std::optional<core::SystemTime> revoked_at;

  bool operator==(const ApiTokenRecord&) const = default;
};

// A provider credential sealed by the secret vault (security/secret_vault.h); never plaintext.
struct CredentialRecord {
  std::string provider;                    // "runpod", "vastai", "aws"
  std::string name;                        // the provider variable, e.g. "RUNPOD_API_KEY"
  std::string sealed;                      // nonce + ciphertext + tag (binary)
  std::string key_id;                      // the master key that sealed it
  std::string hint;                        // last 4 characters of the plaintext
  std::string fingerprint;                 // short SHA-256 hex of the plaintext
  core::SystemTime updated_at{};

  bool operator==(const CredentialRecord&) const = default;
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

  // --- instances ---
  // Durably inserts `instance` (seq assigned by the store). kAlreadyExists when the id is taken;
  // kInvalidArgument when its state is not requested, its id is empty, or a price is not finite.
  [[nodiscard]] virtual core::Status InsertInstance(const domain::Instance& instance) = 0;
  // The instance, or kNotFound.
  [[nodiscard]] virtual core::Result<domain::Instance> GetInstance(const std::string& id) = 0;
  // Matching instances, oldest first (seq ascending).
  [[nodiscard]] virtual core::Result<std::vector<domain::Instance>> ListInstances(
      const InstanceQuery& query) = 0;
  // Applies `update` iff the instance's state is `update.expected_state`, with updated_at = `now`,
  // durably; returns the instance as stored after the update (times in whole milliseconds).
  // kNotFound; kAborted when the state moved on; kFailedPrecondition when expected_state →
  // new_state is not an arrow of the instance state machine (domain::CanTransition).
  [[nodiscard]] virtual core::Result<domain::Instance> UpdateInstance(const InstanceUpdate& update,
                                                                      core::SystemTime now) = 0;
  // The non-terminal instance whose join_token_hash is `hash` (the oldest, should there be more),
  // or kNotFound; an empty `hash` matches nothing.
  [[nodiscard]] virtual core::Result<domain::Instance> FindInstanceByJoinTokenHash(
      const std::string& hash) = 0;

  // --- nodes ---
  // Durably inserts the node, or replaces every field of the node with `node.id`.
  // kInvalidArgument when the id is empty.
  [[nodiscard]] virtual core::Status UpsertNode(const NodeRecord& node) = 0;
  // The node, or kNotFound.
  [[nodiscard]] virtual core::Result<NodeRecord> GetNode(const std::string& id) = 0;
  // Every node, oldest registration first (first inserted first among equal times).
  [[nodiscard]] virtual core::Result<std::vector<NodeRecord>> ListNodes() = 0;

  // --- usage (cost accounting) ---
  // Durably records the start of an attempt's usage. Idempotent per (job_id, attempt): a second
  // open of the same pair changes nothing and succeeds. kInvalidArgument when job_id is empty or
  // the price is not finite.
  [[nodiscard]] virtual core::Status OpenUsage(const UsageRecord& usage) = 0;
  // Durably sets ended_at of (job_id, attempt) when it is still open; no-op otherwise (also when
  // absent).
  [[nodiscard]] virtual core::Status CloseUsage(const std::string& job_id, int attempt,
                                                core::SystemTime ended_at) = 0;
  // Records matching every filter set in `query`, oldest start first.
  [[nodiscard]] virtual core::Result<std::vector<UsageRecord>> ListUsage(
      const UsageQuery& query) = 0;

  // --- settings ---
  // The stored value of `key`; when absent, durably stores `initial` first and returns it. Atomic:
  // of concurrent callers (in any process on the same store) one initialises, and all get the
  // value it stored. A stored value never changes.
  [[nodiscard]] virtual core::Result<std::string> GetOrInitSetting(const std::string& key,
                                                                   const std::string& initial) = 0;

  // --- users, API tokens, provider credentials (security) ---
  // Durably inserts `user`. kAlreadyExists when its id or name is taken; kInvalidArgument when the
  // id or name is empty, the role is not "admin" or "user", or the budget is not finite.
  [[nodiscard]] virtual core::Status InsertUser(const UserRecord& user) = 0;
  // The user with this id, or kNotFound.
  [[nodiscard]] virtual core::Result<UserRecord> GetUser(const std::string& id) = 0;
  // The user with this name, or kNotFound.
  [[nodiscard]] virtual core::Result<UserRecord> GetUserByName(const std::string& name) = 0;
  // Every user, oldest first.
  [[nodiscard]] virtual core::Result<std::vector<UserRecord>> ListUsers() = 0;
  // Durably replaces every field but id, name and created_at of the user with `user.id`; returns the
  // stored record. kNotFound; kInvalidArgument as for InsertUser.
  [[nodiscard]] virtual core::Result<UserRecord> UpdateUser(const UserRecord& user) = 0;

  // Durably inserts `token`. kAlreadyExists when its id or hash is taken; kInvalidArgument when the
  // id, user_id or hash is empty; kNotFound when the user does not exist.
  [[nodiscard]] virtual core::Status InsertApiToken(const ApiTokenRecord& token) = 0;
  // Tokens of `user_id` (every user's when nullopt), oldest first, revoked ones included.
  [[nodiscard]] virtual core::Result<std::vector<ApiTokenRecord>> ListApiTokens(
      const std::optional<std::string>& user_id) = 0;
  // Durably sets revoked_at of the token when it is not revoked yet (no-op otherwise); returns the
  // stored record. kNotFound when there is no such token.
  [[nodiscard]] virtual core::Result<ApiTokenRecord> RevokeApiToken(const std::string& id,
                                                                    core::SystemTime now) = 0;

  // Durably inserts or replaces the credential (provider, name). kInvalidArgument when provider,
  // name, sealed or key_id is empty.
  [[nodiscard]] virtual core::Status PutCredential(const CredentialRecord& credential) = 0;
  // Every stored credential, ordered by (provider, name).
  [[nodiscard]] virtual core::Result<std::vector<CredentialRecord>> ListCredentials() = 0;
  // Durably deletes (provider, name); kNotFound when absent.
  [[nodiscard]] virtual core::Status DeleteCredential(const std::string& provider,
                                                      const std::string& name) = 0;
  // Replaces the stored credentials by `credentials` in one transaction: all or nothing (for
  // re-encryption under a new master key).
  [[nodiscard]] virtual core::Status ReplaceCredentials(
      const std::vector<CredentialRecord>& credentials) = 0;

  // Succeeds when the store can read and write now; kUnavailable otherwise.
  [[nodiscard]] virtual core::Status Ping() = 0;
};

}  // namespace gpuorch::store
