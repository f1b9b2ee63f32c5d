// What only the SQLite backend promises: group commit, schema versions and migrations, WAL readers,
// and failing cleanly when the file or the disk does not cooperate. The Store contract itself is in
// store_contract_test.cc.
#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "store/sqlite/internal/connection.h"
#include "store/sqlite/internal/job_table.h"
#include "store/sqlite/internal/migrations.h"
#include "unit/store/fault_vfs.h"
#include "unit/store/store_test_util.h"

namespace gpuorch::store {
namespace {

using core::Code;
using domain::Job;
using domain::JobState;
using testing::Describe;
using namespace std::chrono_literals;

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.File("gpuorch.db"); }

  std::unique_ptr<Store> OpenOrDie(SqliteStoreOptions options = {}) {
    if (options.path.empty()) {
      options.path = DbPath();
    }
    auto store = OpenSqliteStore(options);
    EXPECT_TRUE(store.has_value()) << Describe(store);
    return store ? std::move(*store) : nullptr;
  }

  Job NewJob(const std::string& key = "") {
    Job job;
    job.id = "job-" + std::to_string(next_id_++);
    job.idempotency_key = key;
    job.created_at = clock_.Now();
    job.updated_at = job.created_at;
    clock_.Advance(1ms);
    return job;
  }

  // Runs a statement on a raw connection of our own, outside the store.
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  testing::TempDir dir_;
  core::FakeClock clock_;
  std::atomic<int> next_id_{1};
};

// Holds the writer thread inside an insert's callback until Release(), so that writes submitted
// meanwhile pile up and form one batch.
class WriterBlocker {
 public:
  WriterBlocker(Store& store, Job job) {
    // The callback holds its own handle on the release signal: the blocker may be gone by the time
    // the callback returns from waiting.
    store.InsertJobAsync(std::move(job),
                         [this, release = release_future_](core::Result<InsertOutcome>) {
                           entered_.set_value();
                           release.wait();
                         });
    entered_.get_future().wait();
  }
  ~WriterBlocker() { Release(); }
  void Release() {
    if (!released_) {
      released_ = true;
      release_.set_value();
    }
  }

 private:
  std::promise<void> entered_;
  std::promise<void> release_;
  std::shared_future<void> release_future_ = release_.get_future().share();
  bool released_ = false;
};

// Submits `job` asynchronously; the future gets the callback's result.
std::future<core::Result<InsertOutcome>> InsertAsync(Store& store, Job job) {
  auto promise = std::make_shared<std::promise<core::Result<InsertOutcome>>>();
  auto future = promise->get_future();
  store.InsertJobAsync(std::move(job), [promise](core::Result<InsertOutcome> outcome) {
    promise->set_value(std::move(outcome));
  });
  return future;
}

GroupCommitStats StatsOf(const Store& store) {
  std::optional<GroupCommitStats> stats = GetGroupCommitStats(store);
  EXPECT_TRUE(stats.has_value());
  return stats.value_or(GroupCommitStats{});
}

TEST_F(SqliteStoreTest, ConcurrentWritersShareCommits) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const GroupCommitStats before = StatsOf(*store);
  constexpr int kThreads = 64;
  constexpr int kPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        failures += store->InsertJob(NewJob()).has_value() ? 0 : 1;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  const GroupCommitStats after = StatsOf(*store);
  const uint64_t writes = after.writes - before.writes;
  const uint64_t transactions = after.transactions - before.transactions;
  EXPECT_EQ(writes, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LT(transactions, writes);
  std::cout << "[ stats    ] " << writes << " writes in " << transactions
            << " transactions, mean batch " << static_cast<double>(writes) / transactions << "\n";
}

TEST_F(SqliteStoreTest, WritesQueuedDuringACommitFormOneBatch) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  WriterBlocker blocker(*store, NewJob());
  const GroupCommitStats before = StatsOf(*store);
  std::vector<std::future<core::Result<InsertOutcome>>> results;
  for (int i = 0; i < 100; ++i) {
    results.push_back(InsertAsync(*store, NewJob()));
  }
  blocker.Release();
  for (auto& r : results) {
    auto outcome = r.get();
    EXPECT_TRUE(outcome.has_value()) << Describe(outcome);
  }
  const GroupCommitStats after = StatsOf(*store);
  EXPECT_EQ(after.writes - before.writes, 100u);
  EXPECT_EQ(after.transactions - before.transactions, 1u);
}

TEST_F(SqliteStoreTest, MaxBatchBoundsTheBatch) {
  auto store = OpenOrDie({.max_batch = 10});
  ASSERT_NE(store, nullptr);
  WriterBlocker blocker(*store, NewJob());
  const GroupCommitStats before = StatsOf(*store);
  std::vector<std::future<core::Result<InsertOutcome>>> results;
  for (int i = 0; i < 35; ++i) {
    results.push_back(InsertAsync(*store, NewJob()));
  }
  blocker.Release();
  for (auto& r : results) {
    EXPECT_TRUE(r.get().has_value());
  }
  const GroupCommitStats after = StatsOf(*store);
  EXPECT_EQ(after.writes - before.writes, 35u);
  EXPECT_EQ(after.transactions - before.transactions, 4u);
}

TEST_F(SqliteStoreTest, IdempotencyHoldsInsideOneBatch) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  WriterBlocker blocker(*store, NewJob());
  const GroupCommitStats before = StatsOf(*store);
  auto first = InsertAsync(*store, NewJob("same-key"));
  auto second = InsertAsync(*store, NewJob("same-key"));
  blocker.Release();
  auto a = first.get();
  auto b = second.get();
  ASSERT_TRUE(a.has_value()) << Describe(a);
  ASSERT_TRUE(b.has_value()) << Describe(b);
  EXPECT_TRUE(a->created);
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->job, a->job);
  EXPECT_EQ(StatsOf(*store).transactions - before.transactions, 1u);
}

TEST_F(SqliteStoreTest, AFailingWriteDoesNotSpoilItsBatch) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Job existing = NewJob();
  ASSERT_TRUE(store->InsertJob(existing).has_value());
  WriterBlocker blocker(*store, NewJob());
  const GroupCommitStats before = StatsOf(*store);
  Job good1 = NewJob();
  Job not_queued = NewJob();
  not_queued.state = JobState::kRunning;
  Job good2 = NewJob();
  auto r1 = InsertAsync(*store, good1);
  auto r2 = InsertAsync(*store, existing);  // duplicate id
  auto r3 = InsertAsync(*store, not_queued);
  auto r4 = InsertAsync(*store, good2);
  blocker.Release();
  EXPECT_TRUE(r1.get().has_value());
  auto dup = r2.get();
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, Code::kAlreadyExists);
  auto bad = r3.get();
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(r4.get().has_value());
  EXPECT_EQ(StatsOf(*store).transactions - before.transactions, 1u);
  EXPECT_TRUE(store->GetJob(good1.id).has_value());
  EXPECT_TRUE(store->GetJob(good2.id).has_value());
  EXPECT_EQ(store->ListTransitions(existing.id)->size(), 1u);
  EXPECT_EQ(store->GetJob(not_queued.id).error().code, Code::kNotFound);
}

TEST_F(SqliteStoreTest, QuotaHoldsInsideOneBatch) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  WriterBlocker blocker(*store, NewJob());
  const GroupCommitStats before = StatsOf(*store);
  std::vector<std::future<core::Result<InsertOutcome>>> results;
  for (int i = 0; i < 5; ++i) {
    Job job = NewJob();
    job.owner = "alice";
    auto promise = std::make_shared<std::promise<core::Result<InsertOutcome>>>();
    results.push_back(promise->get_future());
    store->InsertJobAsync(
        job, [promise](core::Result<InsertOutcome> r) { promise->set_value(std::move(r)); },
        InsertOptions{.max_queued_jobs = 2});
  }
  blocker.Release();
  std::vector<bool> accepted;
  for (auto& r : results) {
    accepted.push_back(r.get().has_value());
  }
  EXPECT_EQ(accepted, (std::vector<bool>{true, true, false, false, false}));
  EXPECT_EQ(StatsOf(*store).transactions - before.transactions, 1u);
}

// Queued jobs to place, inserted by `store`.
std::vector<Job> InsertQueued(Store& store, int n, const std::function<Job()>& make) {
  std::vector<Job> jobs;
  for (int i = 0; i < n; ++i) {
    auto outcome = store.InsertJob(make());
    EXPECT_TRUE(outcome.has_value()) << Describe(outcome);
    if (outcome) {
      jobs.push_back(outcome->job);
    }
  }
  return jobs;
}

JobUpdate PlaceOn(const Job& job, int gpu) {
  return JobUpdate{.job_id = job.id,
                   .expected_state = JobState::kQueued,
                   .new_state = JobState::kScheduled,
                   .node_id = "node-1",
                   .gpu_indices = std::vector<int>{gpu}};
}

TEST_F(SqliteStoreTest, UpdateJobsIsOneTransaction) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  std::vector<Job> jobs = InsertQueued(*store, 100, [this] { return NewJob(); });
  std::vector<JobUpdate> updates;
  for (size_t i = 0; i < jobs.size(); ++i) {
    updates.push_back(PlaceOn(jobs[i], static_cast<int>(i)));
  }
  updates.push_back(PlaceOn(jobs[0], 0));  // fails (kAborted), still in the same transaction
  const GroupCommitStats before = StatsOf(*store);
  auto results = store->UpdateJobs(updates, clock_.Now());
  ASSERT_TRUE(results.has_value()) << Describe(results);
  const GroupCommitStats after = StatsOf(*store);
  EXPECT_EQ(after.transactions - before.transactions, 1u);
  EXPECT_EQ(after.writes - before.writes, 101u);
  EXPECT_EQ(results->back().error().code, Code::kAborted);
  EXPECT_EQ(store->ListJobsInStates({JobState::kScheduled})->size(), 100u);
}

TEST_F(SqliteStoreTest, UpdateJobsLargerThanMaxBatchCommitsAlone) {
  auto store = OpenOrDie({.max_batch = 10});
  ASSERT_NE(store, nullptr);
  std::vector<Job> jobs = InsertQueued(*store, 25, [this] { return NewJob(); });
  std::vector<JobUpdate> updates;
  for (const Job& job : jobs) {
    updates.push_back(PlaceOn(job, 0));
  }
  const GroupCommitStats before = StatsOf(*store);
  auto results = store->UpdateJobs(updates, clock_.Now());
  ASSERT_TRUE(results.has_value()) << Describe(results);
  for (const auto& r : *results) {
    EXPECT_TRUE(r.has_value()) << Describe(r);
  }
  const GroupCommitStats after = StatsOf(*store);
  EXPECT_EQ(after.transactions - before.transactions, 1u);
  EXPECT_EQ(after.writes - before.writes, 25u);
}

TEST_F(SqliteStoreTest, FailedCommitFailsTheWholeUpdateJobs) {
  testing::FaultVfs vfs;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  std::vector<Job> jobs = InsertQueued(*store, 3, [this] { return NewJob(); });
  vfs.set_fail_syncs(true);
  auto results = store->UpdateJobs({PlaceOn(jobs[0], 0), PlaceOn(jobs[1], 1), PlaceOn(jobs[2], 2)},
                                   clock_.Now());
  vfs.set_fail_syncs(false);
  ASSERT_FALSE(results.has_value());
  EXPECT_EQ(results.error().code, Code::kUnavailable) << results.error().message;
  for (const Job& job : jobs) {
    EXPECT_EQ(store->GetJob(job.id)->state, JobState::kQueued);
    EXPECT_EQ(store->ListTransitions(job.id)->size(), 1u);
  }
  auto retried = store->UpdateJobs({PlaceOn(jobs[0], 0)}, clock_.Now());
  ASSERT_TRUE(retried.has_value()) << Describe(retried);
  EXPECT_TRUE(retried->front().has_value());
}

class NotSqlite final : public Store {
 public:
  void InsertJobAsync(Job, InsertCallback done, const InsertOptions&) override {
    done(core::Fail(Code::kUnimplemented, ""));
  }
  core::Result<Job> GetJob(const std::string&) override { return core::Fail(Code::kNotFound, ""); }
  core::Result<JobPage> ListJobs(const JobQuery&) override { return JobPage{}; }
  core::Result<std::vector<Job>> ListJobsInStates(const std::vector<JobState>&) override {
    return std::vector<Job>{};
  }
  core::Result<Job> UpdateJob(const JobUpdate&, core::SystemTime) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Result<std::vector<core::Result<Job>>> UpdateJobs(const std::vector<JobUpdate>&,
                                                          core::SystemTime) override {
    return std::vector<core::Result<Job>>{};
  }
  core::Result<std::vector<domain::JobTransition>> ListTransitions(const std::string&) override {
    return std::vector<domain::JobTransition>{};
  }
  core::Status InsertInstance(const domain::Instance&) override { return core::Ok(); }
  core::Result<domain::Instance> GetInstance(const std::string&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Result<std::vector<domain::Instance>> ListInstances(const InstanceQuery&) override {
    return std::vector<domain::Instance>{};
  }
  core::Result<domain::Instance> UpdateInstance(const InstanceUpdate&, core::SystemTime) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Result<domain::Instance> FindInstanceByJoinTokenHash(const std::string&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Status UpsertNode(const NodeRecord&) override { return core::Ok(); }
  core::Result<NodeRecord> GetNode(const std::string&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Result<std::vector<NodeRecord>> ListNodes() override { return std::vector<NodeRecord>{}; }
  core::Status OpenUsage(const UsageRecord&) override { return core::Ok(); }
  core::Status CloseUsage(const std::string&, int, core::SystemTime) override { return core::Ok(); }
  core::Result<std::vector<UsageRecord>> ListUsage(const UsageQuery&) override {
    return std::vector<UsageRecord>{};
  }
  core::Result<std::string> GetOrInitSetting(const std::string&,
                                             const std::string& initial) override {
    return initial;
  }
  core::Status InsertUser(const UserRecord&) override { return core::Ok(); }
  core::Result<UserRecord> GetUser(const std::string&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Result<UserRecord> GetUserByName(const std::string&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Result<std::vector<UserRecord>> ListUsers() override { return std::vector<UserRecord>{}; }
  core::Result<UserRecord> UpdateUser(const UserRecord&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Status InsertApiToken(const ApiTokenRecord&) override { return core::Ok(); }
  core::Result<std::vector<ApiTokenRecord>> ListApiTokens(
      const std::optional<std::string>&) override {
    return std::vector<ApiTokenRecord>{};
  }
  core::Result<ApiTokenRecord> RevokeApiToken(const std::string&, core::SystemTime) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Status PutCredential(const CredentialRecord&) override { return core::Ok(); }
  core::Result<std::vector<CredentialRecord>> ListCredentials() override {
    return std::vector<CredentialRecord>{};
  }
  core::Status DeleteCredential(const std::string&, const std::string&) override {
    return core::Fail(Code::kNotFound, "");
  }
  core::Status ReplaceCredentials(const std::vector<CredentialRecord>&) override {
    return core::Ok();
  }
  core::Status Ping() override { return core::Ok(); }
};

TEST(GroupCommitStatsTest, IsNulloptForOtherStores) {
  NotSqlite store;
  EXPECT_FALSE(GetGroupCommitStats(store).has_value());
}

TEST_F(SqliteStoreTest, FreshFileIsMigratedToTheLatestVersionInWalMode) {
  ASSERT_GE(SqliteSchemaVersion(), 2);
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto db = sqlite_internal::Connection::Open({.path = DbPath(), .create = false});
  ASSERT_TRUE(db.has_value()) << Describe(db);
  EXPECT_EQ(*(*db)->QueryText("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(*(*db)->QueryText("SELECT group_concat(version) FROM schema_migrations"), "1,2,3,4,5,6");
  EXPECT_EQ(*(*db)->QueryText("SELECT COUNT(*) FROM schema_migrations WHERE applied_at_ms > "
                              "1600000000000"),
            "6");
  EXPECT_EQ(*(*db)->QueryText("SELECT group_concat(name) FROM (SELECT name FROM sqlite_master "
                              "WHERE type = 'index' AND sql IS NOT NULL ORDER BY name)"),
            "api_tokens_user_id,instances_join_token_hash,instances_owner_seq,"
            "instances_provider_seq,instances_state_seq,job_transitions_job_id,jobs_job_type_seq,"
            "jobs_owner_idempotency_key,jobs_owner_seq,jobs_owner_state,jobs_state_seq,"
            "usage_instance_started,usage_owner_started");
  EXPECT_EQ(*(*db)->QueryText("SELECT group_concat(name) FROM (SELECT name FROM sqlite_master "
                              "WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name)"),
            "api_tokens,instances,job_transitions,jobs,nodes,provider_credentials,queued_counts,"
            "schema_migrations,settings,usage,users");
}

// The plan SQLite picks for `sql`, one detail per step.
std::string QueryPlan(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* plan = nullptr;
  const std::string explain = "EXPLAIN QUERY PLAN " + sql;
  EXPECT_EQ(sqlite3_prepare_v2(db, explain.c_str(), -1, &plan, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  std::string details;
  while (sqlite3_step(plan) == SQLITE_ROW) {
    details += reinterpret_cast<const char*>(sqlite3_column_text(plan, 3));
    details += "; ";
  }
  sqlite3_finalize(plan);
  sqlite3_close(db);
  return details;
}

// For each (query, index) of `cases`: SQLite's plan for the query names the index.
void ExpectEachUsesItsIndex(const std::string& path,
                            const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [sql, index] : cases) {
    const std::string plan = QueryPlan(path, sql);
    EXPECT_NE(plan.find(index), std::string::npos) << sql << "\n" << plan;
  }
}

TEST_F(SqliteStoreTest, CapacityQueriesUseTheirIndexes) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"SELECT * FROM instances WHERE join_token_hash = 'h' AND join_token_hash <> '' AND state "
       "NOT IN ('terminated', 'failed', 'lost') ORDER BY seq ASC LIMIT 1",
       "instances_join_token_hash"},
      {"SELECT * FROM instances WHERE 1 AND state IN ('ready', 'provisioning') ORDER BY seq ASC",
       "instances_state_seq"},
      {"SELECT * FROM instances WHERE 1 AND owner = 'alice' ORDER BY seq ASC",
       "instances_owner_seq"},
      {"SELECT * FROM instances WHERE 1 AND provider = 'aws' ORDER BY seq ASC",
       "instances_provider_seq"},
      {"SELECT * FROM usage WHERE 1 AND owner = 'alice' ORDER BY started_at_ms, seq",
       "usage_owner_started"},
      {"SELECT * FROM usage WHERE 1 AND instance_id = 'i' ORDER BY started_at_ms, seq",
       "usage_instance_started"},
      {"SELECT * FROM usage WHERE 1 AND job_id = 'j' ORDER BY started_at_ms, seq",
       "sqlite_autoindex_usage"},
  };
  ExpectEachUsesItsIndex(DbPath(), cases);
}

TEST_F(SqliteStoreTest, CapacityWritesAreAcknowledgedOnlyOnceSynced) {
  testing::FaultVfs vfs;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  uint64_t syncs = vfs.syncs();
  ASSERT_TRUE(store->InsertInstance(domain::Instance{.id = "inst-1"}).has_value());
  EXPECT_GT(vfs.syncs(), syncs);
  syncs = vfs.syncs();
  ASSERT_TRUE(store
                  ->UpdateInstance(InstanceUpdate{.instance_id = "inst-1",
                                                  .new_state = domain::InstanceState::kFailed},
                                   clock_.Now())
                  .has_value());
  EXPECT_GT(vfs.syncs(), syncs);

  vfs.set_fail_syncs(true);
  auto insert = store->InsertInstance(domain::Instance{.id = "inst-2"});
  auto node = store->UpsertNode(NodeRecord{.id = "node-1"});
  auto usage = store->OpenUsage(UsageRecord{.job_id = "job-1"});
  auto setting = store->GetOrInitSetting("key", "value");
  vfs.set_fail_syncs(false);
  for (const core::Status& status : {insert, node, usage, setting.map([](auto&&) {})}) {
    ASSERT_FALSE(status.has_value());
    EXPECT_EQ(status.error().code, Code::kUnavailable) << status.error().message;
  }
  EXPECT_EQ(store->GetInstance("inst-2").error().code, Code::kNotFound);
  EXPECT_EQ(store->GetNode("node-1").error().code, Code::kNotFound);
  EXPECT_TRUE(store->ListUsage({})->empty());
  EXPECT_EQ(*store->GetOrInitSetting("key", "other"), "other");
}

TEST_F(SqliteStoreTest, QuotaCountReadsOneCounterRowByPrimaryKey) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* plan = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "EXPLAIN QUERY PLAN SELECT queued FROM queued_counts WHERE "
                               "owner = 'alice'",
                               -1, &plan, nullptr),
            SQLITE_OK);
  std::string details;
  while (sqlite3_step(plan) == SQLITE_ROW) {
    details += reinterpret_cast<const char*>(sqlite3_column_text(plan, 3));
    details += "; ";
  }
  sqlite3_finalize(plan);
  sqlite3_close(db);
  EXPECT_NE(details.find("PRIMARY KEY"), std::string::npos) << details;
}

// A job row as a binary of schema version 1 or 2 wrote it (no scheduling columns).
constexpr const char* kOldJobRow =
    "INSERT INTO jobs(id, owner, idempotency_key, name, job_type, command_json, env_json, "
    "config_json, state, created_at_ms, updated_at_ms) VALUES('job-old', 'alice', 'k', 'old', "
    "'custom', '[\"true\"]', '{\"A\":\"1\"}', '{}', 'queued', 1700000000000, 1700000000000)";

TEST_F(SqliteStoreTest, OldSchemaWithDataIsRefusedUntilMigrated) {
  {
    auto db = sqlite_internal::Connection::Open({.path = DbPath()});
    ASSERT_TRUE(db.has_value()) << Describe(db);
    auto version = sqlite_internal::ApplyMigrations(**db, 1);
    ASSERT_TRUE(version.has_value()) << Describe(version);
    ASSERT_EQ(*version, 1);
    ASSERT_TRUE((**db).Exec(kOldJobRow).has_value());
  }
  auto refused = OpenSqliteStore({.path = DbPath()});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("gpuorch migrate"), std::string::npos)
      << refused.error().message;

  auto migrated = MigrateSqlite(DbPath());
  ASSERT_TRUE(migrated.has_value()) << Describe(migrated);
  EXPECT_EQ(*migrated, SqliteSchemaVersion());
  auto store = OpenOrDie({.migrate_if_empty = false});
  ASSERT_NE(store, nullptr);
  auto job = store->GetJob("job-old");
  ASSERT_TRUE(job.has_value()) << Describe(job);
  EXPECT_EQ(job->idempotency_key, "k");
}

TEST_F(SqliteStoreTest, RowsOfVersion2ReadBackWithSchedulingDefaults) {
  {
    auto db = sqlite_internal::Connection::Open({.path = DbPath()});
    ASSERT_TRUE(db.has_value()) << Describe(db);
    auto version = sqlite_internal::ApplyMigrations(**db, 2);
    ASSERT_TRUE(version.has_value()) << Describe(version);
    ASSERT_EQ(*version, 2);
    ASSERT_TRUE((**db).Exec(kOldJobRow).has_value());
  }
  auto migrated = MigrateSqlite(DbPath());
  ASSERT_TRUE(migrated.has_value()) << Describe(migrated);
  EXPECT_EQ(*migrated, SqliteSchemaVersion());
  auto store = OpenOrDie({.migrate_if_empty = false});
  ASSERT_NE(store, nullptr);
  auto job = store->GetJob("job-old");
  ASSERT_TRUE(job.has_value()) << Describe(job);
  EXPECT_EQ(job->owner, "alice");
  EXPECT_EQ(job->spec.command, std::vector<std::string>{"true"});
  EXPECT_EQ(job->spec.env, (std::map<std::string, std::string>{{"A", "1"}}));
  EXPECT_FALSE(job->spec.preemptible);
  EXPECT_TRUE(job->spec.node_selector.empty());
  EXPECT_TRUE(job->spec.allowed_providers.empty());
  // The old row counts toward its owner's quota.
  Job next = NewJob();
  next.owner = "alice";
  auto refused = store->InsertJob(next, InsertOptions{.max_queued_jobs = 1});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kResourceExhausted);
}

// The submit quota reads a per-owner counter that triggers keep in step with every insert and state
// change; the migration that adds it counts the jobs already queued.
TEST_F(SqliteStoreTest, QueuedCountsFollowEveryTransitionAndCountExistingRows) {
  {
    auto db = sqlite_internal::Connection::Open({.path = DbPath()});
    ASSERT_TRUE(db.has_value()) << Describe(db);
    ASSERT_EQ(*sqlite_internal::ApplyMigrations(**db, 5), 5);
    ASSERT_TRUE((**db).Exec(kOldJobRow).has_value());  // alice, queued
  }
  ASSERT_TRUE(MigrateSqlite(DbPath()).has_value());
  auto store = OpenOrDie({.migrate_if_empty = false});
  ASSERT_NE(store, nullptr);
  auto insert = [&](const std::string& id, const std::string& owner, int limit) {
    domain::Job job{.id = id, .owner = owner};
    job.spec.command = {"true"};
    return store->InsertJob(job, InsertOptions{.max_queued_jobs = limit});
  };
  auto full = insert("job-a2", "alice", 1);
  ASSERT_FALSE(full.has_value()) << "the migrated row counts";
  EXPECT_EQ(full.error().reason, "quota_exceeded");
  ASSERT_TRUE(insert("job-a2", "alice", 2).has_value());
  ASSERT_TRUE(insert("job-b1", "bob", 1).has_value());
  // Leaving the queue frees a place; coming back takes it again.
  const auto now = core::SystemTime(std::chrono::seconds(1'800'000'000));
  ASSERT_TRUE(store
                  ->UpdateJob({.job_id = "job-old",
                               .expected_state = domain::JobState::kQueued,
                               .new_state = domain::JobState::kScheduled},
                              now)
                  .has_value());
  ASSERT_TRUE(insert("job-a3", "alice", 2).has_value());
  EXPECT_FALSE(insert("job-a4", "alice", 2).has_value());
  ASSERT_TRUE(store
                  ->UpdateJob({.job_id = "job-old",
                               .expected_state = domain::JobState::kScheduled,
                               .new_state = domain::JobState::kQueued},
                              now)
                  .has_value());
  EXPECT_FALSE(insert("job-a4", "alice", 3).has_value()) << "3 queued again";
  EXPECT_TRUE(insert("job-a4", "alice", 4).has_value());
  auto db = sqlite_internal::Connection::Open({.path = DbPath(), .create = false});
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(*(*db)->QueryText("SELECT group_concat(owner || ':' || queued) FROM queued_counts"),
            "alice:4,bob:1");
}

TEST_F(SqliteStoreTest, Version3DatabaseMigratesToCapacityTables) {
  {
    auto db = sqlite_internal::Connection::Open({.path = DbPath()});
    ASSERT_TRUE(db.has_value()) << Describe(db);
    ASSERT_EQ(*sqlite_internal::ApplyMigrations(**db, 3), 3);
    ASSERT_TRUE((**db).Exec(kOldJobRow).has_value());
  }
  ASSERT_FALSE(OpenSqliteStore({.path = DbPath()}).has_value());  // needs `gpuorch migrate`
  auto migrated = MigrateSqlite(DbPath());
  ASSERT_TRUE(migrated.has_value()) << Describe(migrated);
  EXPECT_EQ(*migrated, SqliteSchemaVersion());
  auto store = OpenOrDie({.migrate_if_empty = false});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetJob("job-old")->owner, "alice");
  EXPECT_TRUE(store->ListInstances({})->empty());
  domain::Instance instance{.id = "inst-1", .provider = "aws"};
  ASSERT_TRUE(store->InsertInstance(instance).has_value());
  EXPECT_EQ(store->GetInstance("inst-1")->provider, "aws");
}

TEST_F(SqliteStoreTest, Version4DatabaseMigratesToSecurityTablesKeepingItsRows) {
  {
    auto db = sqlite_internal::Connection::Open({.path = DbPath()});
    ASSERT_TRUE(db.has_value()) << Describe(db);
    ASSERT_EQ(*sqlite_internal::ApplyMigrations(**db, 4), 4);
    ASSERT_TRUE((**db).Exec(kOldJobRow).has_value());
    ASSERT_TRUE((**db)
                    .Exec("INSERT INTO instances(id, provider, state, created_at_ms, "
                          "updated_at_ms) VALUES('inst-old', 'aws', 'requested', 1, 1); "
                          "INSERT INTO settings(key, value) VALUES('signing_key', 'k1')")
                    .has_value());
  }
  auto refused = OpenSqliteStore({.path = DbPath()});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  auto migrated = MigrateSqlite(DbPath());
  ASSERT_TRUE(migrated.has_value()) << Describe(migrated);
  EXPECT_EQ(*migrated, SqliteSchemaVersion());
  auto store = OpenOrDie({.migrate_if_empty = false});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetJob("job-old")->owner, "alice");
  EXPECT_EQ(store->GetInstance("inst-old")->provider, "aws");
  EXPECT_EQ(*store->GetOrInitSetting("signing_key", "k2"), "k1");
  EXPECT_TRUE(store->ListUsers()->empty());
  EXPECT_TRUE(store->ListApiTokens(std::nullopt)->empty());
  EXPECT_TRUE(store->ListCredentials()->empty());
  const UserRecord user{.id = "usr_1", .name = "alice", .role = "admin"};
  ASSERT_TRUE(store->InsertUser(user).has_value());
  EXPECT_EQ(*store->GetUserByName("alice"), user);
  ASSERT_TRUE(
      store->InsertApiToken({.id = "tok_1", .user_id = "usr_1", .token_hash = "h"}).has_value());
  ASSERT_TRUE(store
                  ->PutCredential({.provider = "runpod",
                                   .name = "RUNPOD_API_KEY",
                                   .sealed = std::string("\0\1", 2),
                                   .key_id = "k1"})
                  .has_value());
  EXPECT_EQ(store->ListCredentials()->size(), 1u);
}

TEST_F(SqliteStoreTest, SealedCredentialIsStoredAsABlobOfEveryByte) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::string sealed("\0nonce\0\xff\xfe", 9);
  ASSERT_TRUE(
      store->PutCredential({.provider = "aws", .name = "KEY", .sealed = sealed, .key_id = "k"})
          .has_value());
  auto db = sqlite_internal::Connection::Open({.path = DbPath(), .create = false});
  ASSERT_TRUE(db.has_value()) << Describe(db);
  EXPECT_EQ(*(*db)->QueryText("SELECT typeof(sealed) || ' ' || length(sealed) || ' ' || "
                              "hex(sealed) FROM provider_credentials"),
            "blob 9 006E6F6E636500FFFE");
}

TEST_F(SqliteStoreTest, SecurityQueriesUseTheirIndexes) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"SELECT * FROM users WHERE id = 'u'", "sqlite_autoindex_users_1"},
      {"SELECT * FROM users WHERE name = 'alice'", "sqlite_autoindex_users_2"},
      {"SELECT * FROM api_tokens WHERE user_id = 'u' ORDER BY created_at_ms, rowid",
       "api_tokens_user_id"},
      {"SELECT 1 FROM api_tokens WHERE token_hash = 'h'", "sqlite_autoindex_api_tokens_2"},
  };
  ExpectEachUsesItsIndex(DbPath(), cases);
}

TEST_F(SqliteStoreTest, SecurityWritesAreAcknowledgedOnlyOnceSynced) {
  testing::FaultVfs vfs;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const UserRecord alice{.id = "usr_1", .name = "alice"};
  const ApiTokenRecord ci{.id = "tok_1", .user_id = "usr_1", .token_hash = "h1"};
  const CredentialRecord key{
      .provider = "runpod", .name = "RUNPOD_API_KEY", .sealed = "s1", .key_id = "k1"};
  uint64_t syncs = vfs.syncs();
  ASSERT_TRUE(store->InsertUser(alice).has_value());
  EXPECT_GT(vfs.syncs(), syncs);
  ASSERT_TRUE(store->InsertApiToken(ci).has_value());
  ASSERT_TRUE(store->PutCredential(key).has_value());
  CredentialRecord resealed = key;
  resealed.sealed = "s2";
  syncs = vfs.syncs();
  ASSERT_TRUE(store->PutCredential(resealed).has_value());
  EXPECT_GT(vfs.syncs(), syncs);

  vfs.set_fail_syncs(true);
  UserRecord changed = alice;
  changed.role = "admin";
  CredentialRecord other = key;
  other.name = "OTHER";
  const std::vector<core::Status> failed = {
      store->InsertUser({.id = "usr_2", .name = "bob"}),
      store->UpdateUser(changed).map([](auto&&) {}),
      store->InsertApiToken({.id = "tok_2", .user_id = "usr_1", .token_hash = "h2"}),
      store->RevokeApiToken("tok_1", clock_.Now()).map([](auto&&) {}),
      store->PutCredential(other),
      store->DeleteCredential(key.provider, key.name),
      store->ReplaceCredentials({other}),
  };
  vfs.set_fail_syncs(false);
  for (const core::Status& status : failed) {
    ASSERT_FALSE(status.has_value());
    EXPECT_EQ(status.error().code, Code::kUnavailable) << status.error().message;
  }
  EXPECT_EQ(*store->ListUsers(), std::vector<UserRecord>{alice});
  EXPECT_EQ(*store->ListApiTokens(std::nullopt), std::vector<ApiTokenRecord>{ci});
  EXPECT_EQ(*store->ListCredentials(), std::vector<CredentialRecord>{resealed});
}

TEST_F(SqliteStoreTest, BlankFileIsRefusedWhenMigrationOnOpenIsOff) {
  auto refused = OpenSqliteStore({.path = DbPath(), .migrate_if_empty = false});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("gpuorch migrate"), std::string::npos);
  ASSERT_TRUE(MigrateSqlite(DbPath()).has_value());
  EXPECT_NE(OpenOrDie({.migrate_if_empty = false}), nullptr);
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefused) {
  ASSERT_TRUE(MigrateSqlite(DbPath()).has_value());
  RawExec("INSERT INTO schema_migrations(version, applied_at_ms) VALUES(" +
          std::to_string(SqliteSchemaVersion() + 1) + ", 0)");
  auto refused = OpenSqliteStore({.path = DbPath()});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  auto migrate = MigrateSqlite(DbPath());
  ASSERT_FALSE(migrate.has_value());
  EXPECT_EQ(migrate.error().code, Code::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, ForeignDatabaseIsRefused) {
  RawExec("CREATE TABLE jobs(x INTEGER)");
  auto refused = OpenSqliteStore({.path = DbPath()});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_FALSE(MigrateSqlite(DbPath()).has_value());
}

TEST_F(SqliteStoreTest, MigrateIsIdempotent) {
  auto first = MigrateSqlite(DbPath());
  auto second = MigrateSqlite(DbPath());
  ASSERT_TRUE(first.has_value()) << Describe(first);
  ASSERT_TRUE(second.has_value()) << Describe(second);
  EXPECT_EQ(*first, SqliteSchemaVersion());
  EXPECT_EQ(*second, SqliteSchemaVersion());
}

TEST_F(SqliteStoreTest, UnusablePathsAreErrorsNotCrashes) {
  const std::string file = dir_.File("plain-file");
  std::ofstream(file) << "x";
  const std::vector<std::string> paths = {
      dir_.File("missing-dir/gpuorch.db"),  // directory does not exist
      file + "/gpuorch.db",                 // a parent is a regular file
      dir_.path().string(),                 // the path is a directory
  };
  for (const std::string& path : paths) {
    auto store = OpenSqliteStore({.path = path});
    ASSERT_FALSE(store.has_value()) << path;
    EXPECT_EQ(store.error().code, Code::kUnavailable) << path << ": " << store.error().message;
    EXPECT_FALSE(MigrateSqlite(path).has_value()) << path;
  }
  for (const std::string& path : {std::string(), std::string(":memory:")}) {
    auto store = OpenSqliteStore({.path = path});
    ASSERT_FALSE(store.has_value());
    EXPECT_EQ(store.error().code, Code::kInvalidArgument);
  }
}

TEST_F(SqliteStoreTest, UnwritableDirectoryIsAnError) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root ignores directory permissions";
  }
  const std::filesystem::path locked = dir_.path() / "locked";
  std::filesystem::create_directory(locked);
  std::filesystem::permissions(
      locked, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  auto store = OpenSqliteStore({.path = (locked / "gpuorch.db").string()});
  std::filesystem::permissions(locked, std::filesystem::perms::owner_all);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, Code::kUnavailable);
}

TEST_F(SqliteStoreTest, FileThatIsNotADatabaseIsAnError) {
  std::ofstream out(DbPath(), std::ios::binary);
  for (int i = 0; i < 1000; ++i) {
    out << "this is not a database ";
  }
  out.close();
  auto store = OpenSqliteStore({.path = DbPath()});
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, Code::kFailedPrecondition) << store.error().message;
}

TEST_F(SqliteStoreTest, ReadsDoNotWaitForTheWriteLock) {
  auto store = OpenOrDie({.busy_timeout = 100ms});
  ASSERT_NE(store, nullptr);
  Job job = NewJob();
  ASSERT_TRUE(store->InsertJob(job).has_value());

  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  // Another process holds the write lock: reads still work...
  EXPECT_TRUE(store->GetJob(job.id).has_value());
  EXPECT_TRUE(store->ListJobs({}).has_value());
  EXPECT_TRUE(store->ListTransitions(job.id).has_value());
  EXPECT_TRUE(store->Ping().has_value());
  // ...and a write gives up after busy_timeout with kUnavailable, the retryable code.
  auto blocked = store->InsertJob(NewJob());
  ASSERT_FALSE(blocked.has_value());
  EXPECT_EQ(blocked.error().code, Code::kUnavailable) << blocked.error().message;
  auto update = store->UpdateJob(
      JobUpdate{
          .job_id = job.id, .expected_state = JobState::kQueued, .new_state = JobState::kScheduled},
      clock_.Now());
  ASSERT_FALSE(update.has_value());
  EXPECT_EQ(update.error().code, Code::kUnavailable);

  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(store->InsertJob(NewJob()).has_value());
  EXPECT_EQ(store->GetJob(job.id)->state, JobState::kQueued);
}

TEST_F(SqliteStoreTest, AcknowledgesOnlyAfterTheCommitIsSynced) {
  testing::FaultVfs vfs;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const uint64_t syncs_before = vfs.syncs();
  std::promise<uint64_t> syncs_at_callback;
  store->InsertJobAsync(NewJob(), [&](core::Result<InsertOutcome> outcome) {
    EXPECT_TRUE(outcome.has_value()) << Describe(outcome);
    syncs_at_callback.set_value(vfs.syncs());
  });
  EXPECT_GT(syncs_at_callback.get_future().get(), syncs_before);
}

TEST_F(SqliteStoreTest, FailedCommitFailsEveryWriteOfTheBatch) {
  testing::FaultVfs vfs;
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Job existing = NewJob();
  ASSERT_TRUE(store->InsertJob(existing).has_value());

  std::vector<Job> jobs;
  std::vector<std::future<core::Result<InsertOutcome>>> results;
  {
    WriterBlocker blocker(*store, NewJob());
    vfs.set_fail_syncs(true);
    for (int i = 0; i < 5; ++i) {
      jobs.push_back(NewJob());
      results.push_back(InsertAsync(*store, jobs.back()));
    }
    results.push_back(InsertAsync(*store, existing));  // would fail on its own, too
  }
  for (auto& r : results) {
    auto outcome = r.get();
    ASSERT_FALSE(outcome.has_value());
    EXPECT_EQ(outcome.error().code, Code::kUnavailable) << outcome.error().message;
  }
  for (const Job& job : jobs) {
    EXPECT_EQ(store->GetJob(job.id).error().code, Code::kNotFound);
  }

  vfs.set_fail_syncs(false);
  auto after = store->InsertJob(NewJob());
  EXPECT_TRUE(after.has_value()) << Describe(after);
}

}  // namespace
}  // namespace gpuorch::store
