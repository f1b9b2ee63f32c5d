// The Store contract (store/store.h) for jobs, written against the interface only. Every backend
// runs it: add a BackendFactory to testing::AllBackends(). Instances, nodes, usage and settings are
// in store_capacity_contract_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "domain/job.h"
#include "store/store.h"
#include "unit/store/store_test_util.h"

namespace gpuorch::store {
namespace {

using core::Code;
using domain::Job;
using domain::JobState;
using domain::JobTransition;
using testing::BackendFactory;
using testing::Describe;
using namespace std::chrono_literals;

class StoreContractTest : public testing::StoreContractFixture {
 protected:
  // A queued job with a fresh id, stamped with the fake clock (which then moves on by 1 ms).
  Job NewJob(const std::string& owner = "alice", const std::string& key = "",
             const std::string& job_type = "custom") {
    Job job;
    job.id = "job-" + std::to_string(next_id_.fetch_add(1));
    job.owner = owner;
    job.idempotency_key = key;
    job.spec.job_type = job_type;
    job.spec.command = {"python", "train.py"};
    job.created_at = clock_.Now();
    job.updated_at = job.created_at;
    clock_.Advance(1ms);
    return job;
  }

  Job Insert(Job job) {
    auto outcome = store().InsertJob(std::move(job));
    EXPECT_TRUE(outcome.has_value()) << Describe(outcome);
    return outcome ? outcome->job : Job{};
  }

  // Moves `job_id` from `from` to `to`; the test fails if the store refuses.
  Job Move(const std::string& job_id, JobState from, JobState to, std::string message = "moved",
           std::optional<int> attempt = std::nullopt) {
    clock_.Advance(1ms);
    JobUpdate update{.job_id = job_id, .expected_state = from, .new_state = to};
    update.attempt = attempt;
    update.transition_message = std::move(message);
    auto job = store().UpdateJob(update, clock_.Now());
    EXPECT_TRUE(job.has_value()) << Describe(job);
    return job ? *job : Job{};
  }

  std::vector<int64_t> Seqs(const std::vector<Job>& jobs) {
    std::vector<int64_t> seqs;
    for (const Job& job : jobs) {
      seqs.push_back(job.seq);
    }
    return seqs;
  }

  core::FakeClock clock_;
  std::atomic<int> next_id_{1};
};

// Every field set, with text that a careless encoder would mangle.
Job FullJob(core::SystemTime t) {
  Job job;
  job.id = "job-full-ü";
  job.owner = "Ünïcødé owner 👩‍🚀";
  job.idempotency_key = "key-ζ-1";
  job.spec = domain::JobSpec{
      .name = std::string("训练 run #1 \"quoted\" with a NUL ") + '\0' + " inside",
      .job_type = "training",
      .template_name = "llama-3.1-70b",
      .priority = -7,
      .timeout_seconds = 3 * 86400,
      .max_retries = 3,
      .gpu_type = "RTX4090",
      .gpu_count = 4,
      .memory_gb = 95.25,
      .docker_image = "ghcr.io/acme/trainer:1.2@sha256:0123abcd",
      .model_name = "meta-llama/Llama-3.1-70B",
      .command = {"sh", "-c",
                  "echo $(whoami) `id`; rm -rf / && cat <in >out | tee 'q' \"dq\" \\ * ${X}\n", "",
                  std::string("nul\0arg", 7), "--flag=値"},
      .env = {{"A", "1"},
              {"PATH", "/usr/bin:$PATH"},
              {"EMOJI", "🚀"},
              {"EMPTY", ""},
              {"MULTI", "line1\nline2\r\n\ttab"},
              {"JSONISH", "{\"k\": [1, 2]}"}},
      .config_json = R"({"gpu_count":4,"extra":{"nested":[1,2,3],"s":"ü"},"n":null})",
      .preemptible = true,
      .node_selector = {{"zone", "us-east-1a"}, {"gpuorch.io/pool", "spot"}, {"a", "b-c_d.e"}},
      .allowed_providers = {"runpod", "aws", "local"},
  };
  job.state = JobState::kQueued;
  job.status_message = "waiting for 4 x RTX4090 — none free";
  job.attempt = 0;
  job.created_at = t;
  job.updated_at = t + 5ms;
  job.started_at = t + 10ms;
  job.finished_at = t + 20ms;
  job.not_before = t + 30s;
  job.exit_code = -137;
  job.node_id = "node-ä1";
  job.gpu_indices = {0, 3, 7};
  return job;
}

TEST_P(StoreContractTest, RoundTripsEveryField) {
  const Job job = FullJob(clock_.Now());
  auto outcome = store().InsertJob(job);
  ASSERT_TRUE(outcome.has_value()) << Describe(outcome);
  EXPECT_TRUE(outcome->created);
  EXPECT_GT(outcome->job.seq, 0);
  Job expected = job;
  expected.seq = outcome->job.seq;
  EXPECT_EQ(outcome->job, expected);

  auto got = store().GetJob(job.id);
  ASSERT_TRUE(got.has_value()) << Describe(got);
  EXPECT_EQ(*got, expected);
  EXPECT_EQ(got->spec.command[2], job.spec.command[2]);  // verbatim, no shell interpretation
}

TEST_P(StoreContractTest, RoundTripsEmptyAndUnsetFields) {
  Job job;
  job.id = "job-empty";
  job.spec = domain::JobSpec{};  // empty command, env and config
  job.created_at = clock_.Now();
  job.updated_at = job.created_at;
  Job stored = Insert(job);
  job.seq = stored.seq;
  EXPECT_EQ(stored, job);
  auto got = store().GetJob(job.id);
  ASSERT_TRUE(got.has_value()) << Describe(got);
  EXPECT_EQ(*got, job);
  EXPECT_TRUE(got->spec.command.empty());
  EXPECT_TRUE(got->spec.env.empty());
  EXPECT_TRUE(got->gpu_indices.empty());
  EXPECT_FALSE(got->started_at.has_value());
  EXPECT_FALSE(got->finished_at.has_value());
  EXPECT_FALSE(got->not_before.has_value());
  EXPECT_FALSE(got->exit_code.has_value());
  EXPECT_FALSE(got->spec.preemptible);
  EXPECT_TRUE(got->spec.node_selector.empty());
  EXPECT_TRUE(got->spec.allowed_providers.empty());
}

TEST_P(StoreContractTest, InsertAssignsIncreasingSeqAndWritesCreationTransition) {
  Job a = Insert(NewJob());
  Job b = Insert(NewJob());
  EXPECT_GT(b.seq, a.seq);
  auto transitions = store().ListTransitions(a.id);
  ASSERT_TRUE(transitions.has_value()) << Describe(transitions);
  ASSERT_EQ(transitions->size(), 1u);
  EXPECT_EQ((*transitions)[0], (JobTransition{.job_id = a.id,
                                              .from = std::nullopt,
                                              .to = JobState::kQueued,
                                              .at = a.created_at,
                                              .attempt = 0,
                                              .message = "submitted"}));
}

TEST_P(StoreContractTest, InsertRefusesJobThatIsNotQueued) {
  Job job = NewJob();
  job.state = JobState::kRunning;
  auto outcome = store().InsertJob(job);
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error().code, Code::kInvalidArgument);
  EXPECT_EQ(store().GetJob(job.id).error().code, Code::kNotFound);
  EXPECT_EQ(store().ListTransitions(job.id).error().code, Code::kNotFound);
}

TEST_P(StoreContractTest, InsertRefusesDuplicateIdWithoutKey) {
  Job job = NewJob();
  Insert(job);
  job.spec.name = "second";
  auto outcome = store().InsertJob(job);
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error().code, Code::kAlreadyExists);
  EXPECT_EQ(store().GetJob(job.id)->spec.name, "");
  EXPECT_EQ(store().ListTransitions(job.id)->size(), 1u);
}

TEST_P(StoreContractTest, SameOwnerSameKeyReturnsFirstJob) {
  Job first = Insert(NewJob("alice", "k1"));
  Job retry = NewJob("alice", "k1");
  retry.spec.name = "a retried submit";
  auto outcome = store().InsertJob(retry);
  ASSERT_TRUE(outcome.has_value()) << Describe(outcome);
  EXPECT_FALSE(outcome->created);
  EXPECT_EQ(outcome->job, first);
  EXPECT_EQ(store().GetJob(retry.id).error().code, Code::kNotFound);
  EXPECT_EQ(store().ListJobs(JobQuery{})->jobs.size(), 1u);
}

TEST_P(StoreContractTest, SameKeyOtherOwnerMakesNewJob) {
  Job alice = Insert(NewJob("alice", "k1"));
  auto outcome = store().InsertJob(NewJob("bob", "k1"));
  ASSERT_TRUE(outcome.has_value()) << Describe(outcome);
  EXPECT_TRUE(outcome->created);
  EXPECT_NE(outcome->job.id, alice.id);
  EXPECT_EQ(store().ListJobs(JobQuery{})->jobs.size(), 2u);
}

TEST_P(StoreContractTest, EmptyKeyNeverDeduplicates) {
  Insert(NewJob("alice", ""));
  auto outcome = store().InsertJob(NewJob("alice", ""));
  ASSERT_TRUE(outcome.has_value()) << Describe(outcome);
  EXPECT_TRUE(outcome->created);
}

TEST_P(StoreContractTest, IdempotencyHoldsForBackToBackAsyncInserts) {
  std::promise<core::Result<InsertOutcome>> first;
  std::promise<core::Result<InsertOutcome>> second;
  store().InsertJobAsync(NewJob("alice", "same"), [&](auto r) { first.set_value(std::move(r)); });
  store().InsertJobAsync(NewJob("alice", "same"), [&](auto r) { second.set_value(std::move(r)); });
  auto a = first.get_future().get();
  auto b = second.get_future().get();
  ASSERT_TRUE(a.has_value()) << Describe(a);
  ASSERT_TRUE(b.has_value()) << Describe(b);
  EXPECT_TRUE(a->created);
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->job, a->job);
}

TEST_P(StoreContractTest, ConcurrentSubmitsWithOneKeyMakeOneJob) {
  constexpr int kThreads = 32;
  std::vector<core::Result<InsertOutcome>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    Job job = NewJob("alice", "retry-storm");
    threads.emplace_back([&, i, job] { results[i] = store().InsertJob(job); });
  }
  for (auto& t : threads) {
    t.join();
  }
  int created = 0;
  std::set<std::string> ids;
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_value()) << Describe(r);
    created += r->created ? 1 : 0;
    ids.insert(r->job.id);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(store().ListJobs(JobQuery{})->jobs.size(), 1u);
}

TEST_P(StoreContractTest, ConcurrentInsertsAreAllStoredAndDistinct) {
  constexpr int kThreads = 64;
  constexpr int kPerThread = 50;
  std::vector<std::vector<Job>> stored(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Job job = NewJob("owner-" + std::to_string(t));
        auto outcome = store().InsertJob(job);
        if (outcome) {
          stored[t].push_back(outcome->job);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::set<int64_t> seqs;
  std::set<std::string> ids;
  for (const auto& jobs : stored) {
    ASSERT_EQ(jobs.size(), static_cast<size_t>(kPerThread));
    for (const Job& job : jobs) {
      seqs.insert(job.seq);
      ids.insert(job.id);
    }
  }
  EXPECT_EQ(seqs.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
  auto all = store().ListJobsInStates({JobState::kQueued});
  ASSERT_TRUE(all.has_value()) << Describe(all);
  ASSERT_EQ(all->size(), static_cast<size_t>(kThreads * kPerThread));
  for (const Job& job : *all) {
    EXPECT_EQ(ids.count(job.id), 1u) << job.id;
  }
}

TEST_P(StoreContractTest, InsertCallbackRunsOnceAfterTheJobIsReadable) {
  Job job = NewJob();
  std::promise<bool> visible;
  std::atomic<int> calls{0};
  store().InsertJobAsync(job, [&](core::Result<InsertOutcome> outcome) {
    ++calls;
    // A reader on another connection must already see the job: the callback means "committed".
    visible.set_value(outcome.has_value() && store().GetJob(job.id).has_value());
  });
  EXPECT_TRUE(visible.get_future().get());
  Insert(NewJob());  // a later write; the first callback must not run again
  EXPECT_EQ(calls.load(), 1);
}

TEST_P(StoreContractTest, CallbackMayCallBackIntoTheStore) {
  Job job = NewJob();
  Job other = NewJob();
  std::promise<std::string> done;
  store().InsertJobAsync(job, [&](core::Result<InsertOutcome> outcome) {
    auto moved = store().UpdateJob(JobUpdate{.job_id = job.id,
                                             .expected_state = JobState::kQueued,
                                             .new_state = JobState::kScheduled},
                                   clock_.Now());
    auto inserted = store().InsertJob(other);
    done.set_value(Describe(outcome) + " " + Describe(moved) + " " + Describe(inserted));
  });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(30s), std::future_status::ready) << "deadlock";
  EXPECT_EQ(future.get(), "ok ok ok");
}

TEST_P(StoreContractTest, DestroyingTheStoreCommitsPendingWrites) {
  constexpr int kJobs = 200;
  std::atomic<int> ok{0};
  std::atomic<int> calls{0};
  for (int i = 0; i < kJobs; ++i) {
    store().InsertJobAsync(NewJob(), [&](core::Result<InsertOutcome> outcome) {
      ++calls;
      ok += outcome.has_value() ? 1 : 0;
    });
  }
  Reopen();
  EXPECT_EQ(calls.load(), kJobs);
  EXPECT_EQ(ok.load(), kJobs);
  EXPECT_EQ(store().ListJobsInStates({JobState::kQueued})->size(), static_cast<size_t>(kJobs));
}

TEST_P(StoreContractTest, UpdateAppliesFieldsAndReturnsStoredJob) {
  Job job = Insert(NewJob());
  clock_.Advance(1s);
  const core::SystemTime now = clock_.Now();
  JobUpdate update{.job_id = job.id,
                   .expected_state = JobState::kQueued,
                   .new_state = JobState::kScheduled,
                   .status_message = "placed on node-1",
                   .attempt = 1,
                   .node_id = "node-1",
                   .gpu_indices = std::vector<int>{2, 3},
                   .transition_message = "scheduler placed it"};
  update.not_before.emplace(now + 1min);
  auto updated = store().UpdateJob(update, now);
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  Job expected = job;
  expected.state = JobState::kScheduled;
  expected.status_message = "placed on node-1";
  expected.attempt = 1;
  expected.node_id = "node-1";
  expected.gpu_indices = {2, 3};
  expected.not_before = now + 1min;
  expected.updated_at = now;
  EXPECT_EQ(*updated, expected);
  EXPECT_EQ(*store().GetJob(job.id), expected);
}

TEST_P(StoreContractTest, UpdateWithoutNewStateChangesFieldsOnly) {
  Job job = Insert(NewJob());
  JobUpdate update{.job_id = job.id, .expected_state = JobState::kQueued};
  update.status_message = "no node has 4 free GPUs";
  auto updated = store().UpdateJob(update, clock_.Now());
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  EXPECT_EQ(updated->state, JobState::kQueued);
  EXPECT_EQ(updated->status_message, "no node has 4 free GPUs");
  EXPECT_EQ(store().ListTransitions(job.id)->size(), 1u);
}

TEST_P(StoreContractTest, UpdateSetsAndClearsOptionalFields) {
  Job job = Insert(NewJob());
  Move(job.id, JobState::kQueued, JobState::kScheduled);
  const core::SystemTime t = clock_.Now();
  JobUpdate set{
      .job_id = job.id, .expected_state = JobState::kScheduled, .new_state = JobState::kRunning};
  set.started_at.emplace(t);
  set.exit_code.emplace(0);
  set.not_before.emplace(t);
  auto running = store().UpdateJob(set, t);
  ASSERT_TRUE(running.has_value()) << Describe(running);
  EXPECT_EQ(running->started_at, t);
  EXPECT_EQ(running->exit_code, 0);

  JobUpdate clear{.job_id = job.id, .expected_state = JobState::kRunning};
  clear.started_at.emplace(std::nullopt);
  clear.exit_code.emplace(std::nullopt);
  clear.not_before.emplace(std::nullopt);
  auto cleared = store().UpdateJob(clear, t);
  ASSERT_TRUE(cleared.has_value()) << Describe(cleared);
  EXPECT_FALSE(cleared->started_at.has_value());
  EXPECT_FALSE(cleared->exit_code.has_value());
  EXPECT_FALSE(cleared->not_before.has_value());
  EXPECT_EQ(*store().GetJob(job.id), *cleared);
}

TEST_P(StoreContractTest, UpdateOfMissingJobIsNotFound) {
  auto updated = store().UpdateJob(JobUpdate{.job_id = "no-such-job",
                                             .expected_state = JobState::kQueued,
                                             .new_state = JobState::kScheduled},
                                   clock_.Now());
  ASSERT_FALSE(updated.has_value());
  EXPECT_EQ(updated.error().code, Code::kNotFound);
  EXPECT_EQ(store().GetJob("no-such-job").error().code, Code::kNotFound);
  EXPECT_EQ(store().ListTransitions("no-such-job").error().code, Code::kNotFound);
}

TEST_P(StoreContractTest, UpdateWithStaleExpectedStateIsAbortedAndChangesNothing) {
  Job job = Insert(NewJob());
  Job scheduled = Move(job.id, JobState::kQueued, JobState::kScheduled);
  JobUpdate stale{.job_id = job.id,
                  .expected_state = JobState::kQueued,
                  .new_state = JobState::kCancelled,
                  .status_message = "should not stick"};
  auto updated = store().UpdateJob(stale, clock_.Now() + 1h);
  ASSERT_FALSE(updated.has_value());
  EXPECT_EQ(updated.error().code, Code::kAborted);
  EXPECT_EQ(*store().GetJob(job.id), scheduled);
  EXPECT_EQ(store().ListTransitions(job.id)->size(), 2u);
}

TEST_P(StoreContractTest, UpdateAlongAnIllegalArrowIsFailedPrecondition) {
  Job job = Insert(NewJob());
  for (JobState to :
       {JobState::kRunning, JobState::kSucceeded, JobState::kTimedOut, JobState::kQueued}) {
    auto updated = store().UpdateJob(
        JobUpdate{.job_id = job.id, .expected_state = JobState::kQueued, .new_state = to},
        clock_.Now());
    ASSERT_FALSE(updated.has_value()) << domain::ToString(to);
    EXPECT_EQ(updated.error().code, Code::kFailedPrecondition) << domain::ToString(to);
  }
  EXPECT_EQ(*store().GetJob(job.id), job);
}

TEST_P(StoreContractTest, TerminalStatesAreFinal) {
  for (JobState terminal :
       {JobState::kSucceeded, JobState::kFailed, JobState::kCancelled, JobState::kTimedOut}) {
    Job job = Insert(NewJob());
    Move(job.id, JobState::kQueued, JobState::kScheduled);
    Move(job.id, JobState::kScheduled, JobState::kRunning);
    Job final_job = Move(job.id, JobState::kRunning, terminal);
    for (JobState to : domain::AllJobStates()) {
      auto updated = store().UpdateJob(
          JobUpdate{.job_id = job.id, .expected_state = terminal, .new_state = to}, clock_.Now());
      ASSERT_FALSE(updated.has_value());
      EXPECT_EQ(updated.error().code, Code::kFailedPrecondition)
          << domain::ToString(terminal) << " -> " << domain::ToString(to);
    }
    EXPECT_EQ(*store().GetJob(job.id), final_job);
    EXPECT_EQ(store().ListTransitions(job.id)->size(), 4u);
  }
}

TEST_P(StoreContractTest, ConcurrentCompareAndSetHasOneWinner) {
  Job job = Insert(NewJob());
  constexpr int kThreads = 16;
  std::vector<core::Result<Job>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      JobUpdate update{.job_id = job.id,
                       .expected_state = JobState::kQueued,
                       .new_state = JobState::kScheduled,
                       .node_id = "node-" + std::to_string(i)};
      results[i] = store().UpdateJob(update, clock_.Now());
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  int won = 0;
  std::string winner;
  for (const auto& r : results) {
    if (r) {
      ++won;
      winner = r->node_id;
    } else {
      EXPECT_EQ(r.error().code, Code::kAborted) << r.error().message;
    }
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(store().GetJob(job.id)->node_id, winner);
  EXPECT_EQ(store().ListTransitions(job.id)->size(), 2u);
}

TEST_P(StoreContractTest, TransitionsAreRecordedInOrder) {
  Job job = Insert(NewJob());
  const core::SystemTime t0 = job.created_at;
  Job j1 = Move(job.id, JobState::kQueued, JobState::kScheduled, "placed", 1);
  Job j2 = Move(job.id, JobState::kScheduled, JobState::kRunning, "started");
  Job j3 = Move(job.id, JobState::kRunning, JobState::kQueued, "node lost; retrying");
  Job j4 = Move(job.id, JobState::kQueued, JobState::kScheduled, "placed again", 2);
  Job j5 = Move(job.id, JobState::kScheduled, JobState::kRunning, "started again");
  Job j6 = Move(job.id, JobState::kRunning, JobState::kSucceeded, "exit 0");
  auto transitions = store().ListTransitions(job.id);
  ASSERT_TRUE(transitions.has_value()) << Describe(transitions);
  using S = JobState;
  const std::vector<JobTransition> expected = {
      {job.id, std::nullopt, S::kQueued, t0, 0, "submitted"},
      {job.id, S::kQueued, S::kScheduled, j1.updated_at, 1, "placed"},
      {job.id, S::kScheduled, S::kRunning, j2.updated_at, 1, "started"},
      {job.id, S::kRunning, S::kQueued, j3.updated_at, 1, "node lost; retrying"},
      {job.id, S::kQueued, S::kScheduled, j4.updated_at, 2, "placed again"},
      {job.id, S::kScheduled, S::kRunning, j5.updated_at, 2, "started again"},
      {job.id, S::kRunning, S::kSucceeded, j6.updated_at, 2, "exit 0"},
  };
  EXPECT_EQ(*transitions, expected);
  EXPECT_LT(j1.updated_at, j6.updated_at);
}

TEST_P(StoreContractTest, ListJobsFiltersAndSortsNewestFirst) {
  Job a1 = Insert(NewJob("alice", "", "training"));
  Job b1 = Insert(NewJob("bob", "", "training"));
  Job a2 = Insert(NewJob("alice", "", "inference"));
  Job a3 = Insert(NewJob("alice", "", "training"));
  Job b2 = Insert(NewJob("bob", "", "inference"));
  Move(a1.id, JobState::kQueued, JobState::kScheduled);
  Move(b2.id, JobState::kQueued, JobState::kCancelled);

  auto seqs_of = [&](JobQuery query) {
    auto page = store().ListJobs(query);
    EXPECT_TRUE(page.has_value()) << Describe(page);
    return page ? Seqs(page->jobs) : std::vector<int64_t>{};
  };
  EXPECT_EQ(seqs_of({}), (std::vector<int64_t>{b2.seq, a3.seq, a2.seq, b1.seq, a1.seq}));
  EXPECT_EQ(seqs_of({.owner = "alice"}), (std::vector<int64_t>{a3.seq, a2.seq, a1.seq}));
  EXPECT_EQ(seqs_of({.owner = "carol"}), std::vector<int64_t>{});
  EXPECT_EQ(seqs_of({.states = {JobState::kScheduled, JobState::kCancelled}}),
            (std::vector<int64_t>{b2.seq, a1.seq}));
  EXPECT_EQ(seqs_of({.job_type = "training"}), (std::vector<int64_t>{a3.seq, b1.seq, a1.seq}));
  EXPECT_EQ(seqs_of({.owner = "alice", .states = {JobState::kQueued}, .job_type = "training"}),
            (std::vector<int64_t>{a3.seq}));
  EXPECT_EQ(seqs_of({.before_seq = a2.seq}), (std::vector<int64_t>{b1.seq, a1.seq}));
  auto page = store().ListJobs({.owner = "alice", .limit = 10});
  ASSERT_TRUE(page.has_value());
  EXPECT_FALSE(page->next_before_seq.has_value());
}

TEST_P(StoreContractTest, CursorPaginationVisitsEveryJobOnce) {
  std::vector<int64_t> all;
  for (int i = 0; i < 23; ++i) {
    all.push_back(Insert(NewJob(i % 3 == 0 ? "bob" : "alice")).seq);
  }
  std::reverse(all.begin(), all.end());
  for (int limit : {1, 5, 7, 23, 50}) {
    std::vector<int64_t> seen;
    JobQuery query{.limit = limit};
    int pages = 0;
    for (;;) {
      auto page = store().ListJobs(query);
      ASSERT_TRUE(page.has_value()) << Describe(page);
      ASSERT_LE(page->jobs.size(), static_cast<size_t>(limit));
      for (const Job& job : page->jobs) {
        seen.push_back(job.seq);
      }
      ++pages;
      ASSERT_LT(pages, 100);
      if (!page->next_before_seq) {
        break;
      }
      EXPECT_EQ(*page->next_before_seq, page->jobs.back().seq);
      query.before_seq = page->next_before_seq;
    }
    EXPECT_EQ(seen, all) << "limit " << limit;
  }
}

TEST_P(StoreContractTest, FullLastPageLeadsToAnEmptyPage) {
  for (int i = 0; i < 10; ++i) {
    Insert(NewJob());
  }
  auto first = store().ListJobs({.limit = 5});
  ASSERT_TRUE(first.has_value() && first->next_before_seq);
  auto second = store().ListJobs({.limit = 5, .before_seq = first->next_before_seq});
  ASSERT_TRUE(second.has_value() && second->next_before_seq);
  EXPECT_EQ(second->jobs.size(), 5u);
  auto third = store().ListJobs({.limit = 5, .before_seq = second->next_before_seq});
  ASSERT_TRUE(third.has_value());
  EXPECT_TRUE(third->jobs.empty());
  EXPECT_FALSE(third->next_before_seq.has_value());
}

TEST_P(StoreContractTest, ListJobsClampsLimit) {
  constexpr int kJobs = 1005;
  std::atomic<int> ok{0};
  std::promise<void> all_done;
  std::atomic<int> remaining{kJobs};
  for (int i = 0; i < kJobs; ++i) {
    store().InsertJobAsync(NewJob(), [&](core::Result<InsertOutcome> outcome) {
      ok += outcome.has_value() ? 1 : 0;
      if (--remaining == 0) {
        all_done.set_value();
      }
    });
  }
  all_done.get_future().get();
  ASSERT_EQ(ok.load(), kJobs);
  for (int limit : {0, -5}) {
    auto page = store().ListJobs({.limit = limit});
    ASSERT_TRUE(page.has_value()) << Describe(page);
    EXPECT_EQ(page->jobs.size(), 1u);
    EXPECT_TRUE(page->next_before_seq.has_value());
  }
  auto page = store().ListJobs({.limit = 5000});
  ASSERT_TRUE(page.has_value()) << Describe(page);
  EXPECT_EQ(page->jobs.size(), 1000u);
  ASSERT_TRUE(page->next_before_seq.has_value());
  auto rest = store().ListJobs({.limit = 5000, .before_seq = page->next_before_seq});
  ASSERT_TRUE(rest.has_value()) << Describe(rest);
  EXPECT_EQ(rest->jobs.size(), 5u);
}

TEST_P(StoreContractTest, ListJobsInStatesIsOldestFirst) {
  Job a = Insert(NewJob());
  Job b = Insert(NewJob());
  Job c = Insert(NewJob());
  Job d = Insert(NewJob());
  Move(b.id, JobState::kQueued, JobState::kScheduled);
  Move(d.id, JobState::kQueued, JobState::kScheduled);
  Move(d.id, JobState::kScheduled, JobState::kRunning);
  Move(c.id, JobState::kQueued, JobState::kFailed);

  auto live =
      store().ListJobsInStates({JobState::kRunning, JobState::kQueued, JobState::kScheduled});
  ASSERT_TRUE(live.has_value()) << Describe(live);
  EXPECT_EQ(Seqs(*live), (std::vector<int64_t>{a.seq, b.seq, d.seq}));
  auto queued = store().ListJobsInStates({JobState::kQueued, JobState::kQueued});
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(Seqs(*queued), (std::vector<int64_t>{a.seq}));
  auto none = store().ListJobsInStates({});
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreContractTest, DataPersistsAcrossReopen) {
  Job full = Insert(FullJob(clock_.Now()));
  Job job = Insert(NewJob("bob", "key-b"));
  Move(job.id, JobState::kQueued, JobState::kScheduled, "placed", 1);
  Job running = Move(job.id, JobState::kScheduled, JobState::kRunning, "started");
  auto transitions_before = store().ListTransitions(job.id);
  auto page_before = store().ListJobs({});
  ASSERT_TRUE(transitions_before.has_value() && page_before.has_value());

  Reopen();
  EXPECT_EQ(*store().GetJob(full.id), full);
  EXPECT_EQ(*store().GetJob(job.id), running);
  EXPECT_EQ(*store().ListTransitions(job.id), *transitions_before);
  EXPECT_EQ(store().ListJobs({})->jobs, page_before->jobs);
  auto again = store().InsertJob(NewJob("bob", "key-b"));
  ASSERT_TRUE(again.has_value()) << Describe(again);
  EXPECT_FALSE(again->created);  // idempotency survives the restart
  Job later = Insert(NewJob());
  EXPECT_GT(later.seq, running.seq);
}

// ---- Queued-jobs quota (InsertOptions::max_queued_jobs) ----

TEST_P(StoreContractTest, QuotaRefusesTheInsertThatWouldExceedIt) {
  const InsertOptions quota{.max_queued_jobs = 3};
  for (int i = 0; i < 3; ++i) {
    auto outcome = store().InsertJob(NewJob("alice"), quota);
    ASSERT_TRUE(outcome.has_value()) << Describe(outcome);
    EXPECT_TRUE(outcome->created);
  }
  Job refused = NewJob("alice");
  auto outcome = store().InsertJob(refused, quota);
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error().code, Code::kResourceExhausted);
  EXPECT_EQ(outcome.error().reason, "quota_exceeded");
  EXPECT_EQ(outcome.error().field, "");
  EXPECT_NE(outcome.error().message.find("user alice has 3 queued jobs, the most allowed (quota)"),
            std::string::npos)
      << outcome.error().message;
  EXPECT_EQ(store().GetJob(refused.id).error().code, Code::kNotFound);
  EXPECT_EQ(store().ListTransitions(refused.id).error().code, Code::kNotFound);

  // Other owners, and inserts without the option, are not limited by alice's jobs.
  EXPECT_TRUE(store().InsertJob(NewJob("bob"), quota).has_value());
  EXPECT_TRUE(store().InsertJob(NewJob("alice")).has_value());
  EXPECT_EQ(store().ListJobs({.owner = "alice"})->jobs.size(), 4u);
}

TEST_P(StoreContractTest, QuotaCountsOnlyQueuedJobs) {
  const InsertOptions quota{.max_queued_jobs = 2};
  Job a = Insert(NewJob("alice"));
  Job b = Insert(NewJob("alice"));
  EXPECT_FALSE(store().InsertJob(NewJob("alice"), quota).has_value());
  Move(a.id, JobState::kQueued, JobState::kScheduled);
  Move(b.id, JobState::kQueued, JobState::kCancelled);
  EXPECT_TRUE(store().InsertJob(NewJob("alice"), quota).has_value());
  EXPECT_TRUE(store().InsertJob(NewJob("alice"), quota).has_value());
  EXPECT_FALSE(store().InsertJob(NewJob("alice"), quota).has_value());
  // A job requeued for a retry counts again.
  Move(a.id, JobState::kScheduled, JobState::kQueued, "retrying");
  auto over = store().InsertJob(NewJob("alice"), InsertOptions{.max_queued_jobs = 3});
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, Code::kResourceExhausted);
}

TEST_P(StoreContractTest, QuotaOfZeroRefusesEveryNewJob) {
  auto outcome = store().InsertJob(NewJob("alice"), InsertOptions{.max_queued_jobs = 0});
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error().reason, "quota_exceeded");
}

TEST_P(StoreContractTest, IdempotentReplayIsAnsweredEvenOverQuota) {
  const InsertOptions quota{.max_queued_jobs = 1};
  auto first = store().InsertJob(NewJob("alice", "k1"), quota);
  ASSERT_TRUE(first.has_value()) << Describe(first);
  auto replay = store().InsertJob(NewJob("alice", "k1"), quota);
  ASSERT_TRUE(replay.has_value()) << Describe(replay);
  EXPECT_FALSE(replay->created);
  EXPECT_EQ(replay->job, first->job);
  auto fresh = store().InsertJob(NewJob("alice", "k2"), quota);
  ASSERT_FALSE(fresh.has_value());
  EXPECT_EQ(fresh.error().code, Code::kResourceExhausted);
}

TEST_P(StoreContractTest, ConcurrentInsertsNeverOvershootTheQuota) {
  constexpr int kThreads = 50;
  constexpr int kMax = 10;
  std::vector<core::Result<InsertOutcome>> alice(kThreads);
  std::vector<core::Result<InsertOutcome>> bob(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    Job a = NewJob("alice");
    Job b = NewJob("bob");
    threads.emplace_back([&, i, a] { alice[i] = store().InsertJob(a, {.max_queued_jobs = kMax}); });
    threads.emplace_back([&, i, b] { bob[i] = store().InsertJob(b, {.max_queued_jobs = 1000}); });
  }
  for (auto& t : threads) {
    t.join();
  }
  int accepted = 0;
  for (const auto& r : alice) {
    if (r) {
      EXPECT_TRUE(r->created);
      ++accepted;
    } else {
      EXPECT_EQ(r.error().code, Code::kResourceExhausted) << r.error().message;
      EXPECT_EQ(r.error().reason, "quota_exceeded");
    }
  }
  EXPECT_EQ(accepted, kMax);
  for (const auto& r : bob) {
    EXPECT_TRUE(r.has_value()) << Describe(r);
  }
  EXPECT_EQ(store().ListJobs({.owner = "alice", .limit = 1000})->jobs.size(),
            static_cast<size_t>(kMax));
  EXPECT_EQ(store().ListJobs({.owner = "bob", .limit = 1000})->jobs.size(),
            static_cast<size_t>(kThreads));
}

// ---- UpdateJobs ----

JobUpdate Placement(const std::string& job_id, const std::string& node, std::vector<int> gpus) {
  return JobUpdate{.job_id = job_id,
                   .expected_state = JobState::kQueued,
                   .new_state = JobState::kScheduled,
                   .status_message = "placed on " + node,
                   .attempt = 1,
                   .node_id = node,
                   .gpu_indices = std::move(gpus),
                   .transition_message = "placed"};
}

TEST_P(StoreContractTest, UpdateJobsAppliesEachUpdateLikeUpdateJob) {
  Job a = Insert(NewJob());
  Job b = Insert(NewJob());
  Job c = Insert(NewJob());
  Move(c.id, JobState::kQueued, JobState::kCancelled);
  clock_.Advance(1s);
  const core::SystemTime now = clock_.Now();
  const std::vector<JobUpdate> updates = {
      Placement(a.id, "node-1", {0, 1}),
      Placement("no-such-job", "node-1", {2}),
      Placement(c.id, "node-2", {0}),  // cancelled: kAborted
      JobUpdate{.job_id = b.id,
                .expected_state = JobState::kQueued,
                .new_state = JobState::kSucceeded},  // not an arrow
      Placement(b.id, "node-2", {3}),
  };
  auto results = store().UpdateJobs(updates, now);
  ASSERT_TRUE(results.has_value()) << Describe(results);
  ASSERT_EQ(results->size(), updates.size());
  const std::vector<core::Result<Job>>& r = *results;
  ASSERT_TRUE(r[0].has_value()) << Describe(r[0]);
  EXPECT_EQ(r[0]->state, JobState::kScheduled);
  EXPECT_EQ(r[0]->node_id, "node-1");
  EXPECT_EQ(r[0]->gpu_indices, (std::vector<int>{0, 1}));
  EXPECT_EQ(r[0]->attempt, 1);
  EXPECT_EQ(r[0]->status_message, "placed on node-1");
  EXPECT_EQ(r[0]->updated_at, now);
  EXPECT_EQ(r[1].error().code, Code::kNotFound);
  EXPECT_EQ(r[2].error().code, Code::kAborted);
  EXPECT_EQ(r[3].error().code, Code::kFailedPrecondition);
  ASSERT_TRUE(r[4].has_value()) << Describe(r[4]);
  EXPECT_EQ(r[4]->node_id, "node-2");

  EXPECT_EQ(*store().GetJob(a.id), *r[0]);
  EXPECT_EQ(*store().GetJob(b.id), *r[4]);
  EXPECT_EQ(store().GetJob(c.id)->state, JobState::kCancelled);
  EXPECT_EQ(store().GetJob("no-such-job").error().code, Code::kNotFound);
  auto transitions = store().ListTransitions(a.id);
  ASSERT_TRUE(transitions.has_value());
  ASSERT_EQ(transitions->size(), 2u);
  EXPECT_EQ(transitions->back(), (JobTransition{.job_id = a.id,
                                                .from = JobState::kQueued,
                                                .to = JobState::kScheduled,
                                                .at = now,
                                                .attempt = 1,
                                                .message = "placed"}));
  EXPECT_EQ(store().ListTransitions(b.id)->size(), 2u);
  EXPECT_EQ(store().ListTransitions(c.id)->size(), 2u);
}

TEST_P(StoreContractTest, UpdateJobsSeesItsEarlierUpdates) {
  Job job = Insert(NewJob());
  const core::SystemTime now = clock_.Now();
  auto results = store().UpdateJobs({Placement(job.id, "node-1", {0}),
                                     JobUpdate{.job_id = job.id,
                                               .expected_state = JobState::kScheduled,
                                               .new_state = JobState::kRunning,
                                               .transition_message = "started"},
                                     Placement(job.id, "node-9", {9})},  // no longer queued
                                    now);
  ASSERT_TRUE(results.has_value()) << Describe(results);
  ASSERT_EQ(results->size(), 3u);
  EXPECT_TRUE((*results)[0].has_value());
  ASSERT_TRUE((*results)[1].has_value());
  EXPECT_EQ((*results)[1]->state, JobState::kRunning);
  EXPECT_EQ((*results)[1]->node_id, "node-1");
  EXPECT_EQ((*results)[2].error().code, Code::kAborted);
  EXPECT_EQ(*store().GetJob(job.id), *(*results)[1]);
  EXPECT_EQ(store().ListTransitions(job.id)->size(), 3u);
}

TEST_P(StoreContractTest, UpdateJobsOfNothingIsEmpty) {
  auto results = store().UpdateJobs({}, clock_.Now());
  ASSERT_TRUE(results.has_value()) << Describe(results);
  EXPECT_TRUE(results->empty());
}

TEST_P(StoreContractTest, UpdateJobsRacingUpdateJobHasOneWinnerPerJob) {
  constexpr int kJobs = 40;
  std::vector<Job> jobs;
  std::vector<JobUpdate> batch;
  for (int i = 0; i < kJobs; ++i) {
    jobs.push_back(Insert(NewJob()));
    batch.push_back(Placement(jobs.back().id, "batch-node", {i % 8}));
  }
  core::Result<std::vector<core::Result<Job>>> batched = std::vector<core::Result<Job>>{};
  std::vector<core::Result<Job>> singles(kJobs);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { batched = store().UpdateJobs(batch, clock_.Now()); });
  for (int i = 0; i < kJobs; ++i) {
    threads.emplace_back([&, i] {
      singles[i] = store().UpdateJob(Placement(jobs[i].id, "single-node", {i % 8}), clock_.Now());
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  ASSERT_TRUE(batched.has_value()) << Describe(batched);
  ASSERT_EQ(batched->size(), static_cast<size_t>(kJobs));
  for (int i = 0; i < kJobs; ++i) {
    const auto& from_batch = (*batched)[i];
    const auto& single = singles[i];
    EXPECT_NE(from_batch.has_value(), single.has_value()) << jobs[i].id;
    const auto& loser = from_batch ? single : from_batch;
    if (!loser) {
      EXPECT_EQ(loser.error().code, Code::kAborted);
    }
    const std::string winner_node = from_batch ? "batch-node" : "single-node";
    EXPECT_EQ(store().GetJob(jobs[i].id)->node_id, winner_node);
    EXPECT_EQ(store().ListTransitions(jobs[i].id)->size(), 2u);
  }
}

TEST_P(StoreContractTest, UpdateJobsPersistAcrossReopen) {
  Job a = Insert(NewJob());
  Job b = Insert(NewJob());
  auto results =
      store().UpdateJobs({Placement(a.id, "n1", {0}), Placement(b.id, "n1", {1})}, clock_.Now());
  ASSERT_TRUE(results.has_value()) << Describe(results);
  Reopen();
  EXPECT_EQ(*store().GetJob(a.id), *(*results)[0]);
  EXPECT_EQ(*store().GetJob(b.id), *(*results)[1]);
}

TEST_P(StoreContractTest, PingSucceedsOnAHealthyStore) {
  auto ping = store().Ping();
  EXPECT_TRUE(ping.has_value()) << Describe(ping);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContractTest, ::testing::ValuesIn(testing::AllBackends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace gpuorch::store
