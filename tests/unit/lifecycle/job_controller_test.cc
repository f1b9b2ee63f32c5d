// Tests of lifecycle::JobController against the real SQLite store (in a temp dir), an in-memory
// process runner (FakeProcessRunner) and a FakeClock. Every pass is a direct Tick(); the
// controller's background loop is never started, so nothing here sleeps or races.
#include "testing/temp_dir.h"
#include "lifecycle/job_controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "store/sqlite/sqlite_store.h"
#include "unit/lifecycle/fake_process_runner.h"

namespace gpuorch::lifecycle {
namespace {

using namespace std::chrono_literals;
using domain::Job;
using domain::JobSpec;
using domain::JobState;
using testing::FakeProcessRunner;

using ::gpuorch::testing::TempDir;

std::vector<domain::GpuDevice> Rtx4090s(int n) {
  std::vector<domain::GpuDevice> gpus;
  for (int i = 0; i < n; ++i) {
    gpus.push_back(domain::GpuDevice{
        .index = i, .name = "NVIDIA GeForce RTX 4090", .type = "RTX4090", .memory_mb = 24 * 1024});
  }
  return gpus;
}

JobSpec Spec(int gpus, int priority = 0, int max_retries = 0) {
  return JobSpec{.name = "train",
                 .priority = priority,
                 .max_retries = max_retries,
                 .gpu_type = "RTX4090",
                 .gpu_count = gpus,
                 .command = {"python", "train.py", "--epochs", "3"},
                 .env = {{"MODE", "test"}, {"WANDB_PROJECT", "demo"}}};
}

class JobControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(store::SqliteStoreOptions{.path = dir_.File("gpuorch.db")});
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
  }

  JobControllerOptions Options(int gpus = 6) {
    return JobControllerOptions{.data_dir = dir_.File("data"),
                                .node_id = "local",
                                .gpus = Rtx4090s(gpus),
                                .gpu_source = "declared",
                                .kill_grace = 10s,
                                .retry_backoff_base = 10s,
                                .retry_backoff_max = 300s,
                                .default_timeout_seconds = 24 * 3600};
  }

  std::unique_ptr<JobController> MakeController(JobControllerOptions options) {
    return std::make_unique<JobController>(JobControllerDeps{*store_, runner_, clock_},
                                           std::move(options));
  }

  // Inserts a queued job the way the API does (the store assigns seq).
  Job Submit(const std::string& id, JobSpec spec) {
    auto outcome = store_->InsertJob(Job{
        .id = id, .spec = std::move(spec), .created_at = clock_.Now(), .updated_at = clock_.Now()});
    EXPECT_TRUE(outcome) << outcome.error().message;
    return outcome ? outcome->job : Job{};
  }

  Job Get(const std::string& id) {
    auto job = store_->GetJob(id);
    EXPECT_TRUE(job) << id << ": " << job.error().message;
    return job ? *job : Job{};
  }

  // The states the job went through, creation first.
  std::vector<JobState> History(const std::string& id) {
    std::vector<JobState> states;
    auto transitions = store_->ListTransitions(id);
    EXPECT_TRUE(transitions) << transitions.error().message;
    if (transitions) {
      for (const auto& t : *transitions) {
        states.push_back(t.to);
      }
    }
    return states;
  }

  // GPU index → holding job, from the controller's published view (free GPUs left out).
  static std::map<int, std::string> Holders(const JobController& controller) {
    std::map<int, std::string> holders;
    for (const auto& usage : controller.Node().gpus) {
      if (!usage.job_id.empty()) {
        holders[usage.gpu.index] = usage.job_id;
      }
    }
    return holders;
  }

  // Every job that holds GPUs in the store (scheduled or running) has its own, disjoint set, which
  // the controller shows as held by it. Other holders may only be ended jobs still being stopped.
  void ExpectNoSharedGpus(const JobController& controller) {
    auto active = store_->ListJobsInStates({JobState::kScheduled, JobState::kRunning});
    ASSERT_TRUE(active);
    const std::map<int, std::string> holders = Holders(controller);
    std::map<int, std::string> owner;
    for (const Job& job : *active) {
      EXPECT_EQ(static_cast<int>(job.gpu_indices.size()), job.spec.gpu_count) << job.id;
      for (int g : job.gpu_indices) {
        auto [it, inserted] = owner.emplace(g, job.id);
        EXPECT_TRUE(inserted) << "GPU " << g << " given to " << it->second << " and " << job.id;
        auto held = holders.find(g);
        EXPECT_TRUE(held != holders.end() && held->second == job.id)
            << "GPU " << g << " of " << job.id << " is not shown as held by it";
      }
    }
    for (const auto& [g, id] : holders) {
      if (!owner.count(g)) {
        EXPECT_TRUE(domain::IsTerminal(Get(id).state)) << "GPU " << g << " held by " << id;
      }
    }
  }

  // Starts `id` (already submitted) with one pass and checks that it runs.
  void StartOne(JobController& controller, const std::string& id) {
    controller.Notify();
    controller.Tick();
    ASSERT_EQ(Get(id).state, JobState::kRunning) << Get(id).status_message;
  }

  TempDir dir_;
  core::FakeClock clock_;
  FakeProcessRunner runner_;
  std::unique_ptr<store::Store> store_;
};

// ---- Starting ----

TEST_F(JobControllerTest, QueuedJobIsStartedOnFreeGpus) {
  auto controller = MakeController(Options());
  const JobSpec spec = Spec(2);
  Submit("job-a", spec);
  controller->Notify();
  controller->Tick();

  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.attempt, 1);
  EXPECT_EQ(job.node_id, "local");
  EXPECT_EQ(job.gpu_indices, (std::vector<int>{0, 1}));
  EXPECT_EQ(job.started_at, clock_.Now());
  EXPECT_FALSE(job.finished_at);
  EXPECT_FALSE(job.exit_code);
  EXPECT_EQ(History("job-a"),
            (std::vector<JobState>{JobState::kQueued, JobState::kScheduled, JobState::kRunning}));
  auto transitions = store_->ListTransitions("job-a");
  ASSERT_TRUE(transitions);
  EXPECT_EQ(transitions->back().attempt, 1);

  ASSERT_EQ(runner_.LaunchCount(), 1);
  const agent::LaunchSpec launch = runner_.Launches()[0];
  EXPECT_EQ(launch.argv, spec.command);
  EXPECT_EQ(launch.attempt_dir, dir_.File("data") + "/jobs/job-a/attempt-1");
  EXPECT_EQ(launch.attempt_dir, controller->AttemptDir("job-a", 1));
  EXPECT_EQ(launch.env.at("CUDA_VISIBLE_DEVICES"), "0,1");
  EXPECT_EQ(launch.env.at("NVIDIA_VISIBLE_DEVICES"), "0,1");
  EXPECT_EQ(launch.env.at("GPUORCH_JOB_ID"), "job-a");
  EXPECT_EQ(launch.env.at("GPUORCH_ATTEMPT"), "1");
  EXPECT_EQ(launch.env.at("MODE"), "test");
  EXPECT_EQ(launch.env.at("WANDB_PROJECT"), "demo");

  EXPECT_TRUE(controller->IsAttemptLive("job-a", 1));
  EXPECT_EQ(Holders(*controller), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));
  EXPECT_EQ(controller->Node().live_attempts, 1);
  EXPECT_EQ(controller->WaitingReason("job-a"), std::nullopt);

  // More passes do not launch it again.
  clock_.Advance(5s);
  controller->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 1);
}

// ---- Ending ----

TEST_F(JobControllerTest, ExitZeroSucceeds) {
  auto controller = MakeController(Options());
  Submit("job-a", Spec(1));
  StartOne(*controller, "job-a");

  clock_.Advance(30s);
  ASSERT_TRUE(runner_.Exit("job-a", 0));
  controller->Tick();

  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kSucceeded);
  EXPECT_EQ(job.exit_code, 0);
  EXPECT_EQ(job.finished_at, clock_.Now());
  EXPECT_EQ(History("job-a").back(), JobState::kSucceeded);
  EXPECT_FALSE(controller->IsAttemptLive("job-a", 1));
  EXPECT_TRUE(Holders(*controller).empty());
  EXPECT_EQ(controller->Node().live_attempts, 0);
}

TEST_F(JobControllerTest, NonZeroExitWithoutRetriesFails) {
  auto controller = MakeController(Options());
  Submit("job-a", Spec(1, /*priority=*/0, /*max_retries=*/0));
  StartOne(*controller, "job-a");

  clock_.Advance(3s);
  ASSERT_TRUE(runner_.Exit("job-a", 3));
  controller->Tick();

  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.exit_code, 3);
  EXPECT_EQ(job.finished_at, clock_.Now());
  EXPECT_NE(job.status_message.find("exit code 3"), std::string::npos) << job.status_message;
  EXPECT_TRUE(Holders(*controller).empty());

  clock_.Advance(1h);
  controller->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 1);
  EXPECT_EQ(Get("job-a").state, JobState::kFailed);
}

TEST_F(JobControllerTest, LaunchFailureWithoutRetriesFails) {
  auto controller = MakeController(Options());
  Submit("job-a", Spec(1));
  runner_.FailNextLaunch(core::Error{.code = core::Code::kUnavailable, .message = "no shim"});
  controller->Notify();
  controller->Tick();

  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_NE(job.status_message.find("could not start"), std::string::npos) << job.status_message;
  EXPECT_EQ(History("job-a"),
            (std::vector<JobState>{JobState::kQueued, JobState::kScheduled, JobState::kFailed}));
  EXPECT_TRUE(Holders(*controller).empty());
}

// ---- Retries ----

TEST_F(JobControllerTest, RetriesBackOffExponentiallyOnTheClock) {
  auto controller = MakeController(Options());  // backoff base 10 s
  Submit("job-a", Spec(1, /*priority=*/0, /*max_retries=*/2));
  StartOne(*controller, "job-a");

  // Attempt 1 fails: queued again, not before now + 10 s.
  ASSERT_TRUE(runner_.Exit("job-a", 3));
  controller->Tick();
  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.attempt, 1);
  EXPECT_EQ(job.exit_code, 3);
  EXPECT_FALSE(job.started_at);
  EXPECT_FALSE(job.finished_at);
  EXPECT_EQ(job.not_before, clock_.Now() + 10s);
  EXPECT_NE(job.status_message.find("retry 1 of 2"), std::string::npos) << job.status_message;
  EXPECT_TRUE(Holders(*controller).empty());

  controller->Tick();
  auto reason = controller->WaitingReason("job-a");
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("retry backoff"), std::string::npos) << *reason;
  clock_.Advance(9s);
  controller->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 1);
  EXPECT_EQ(Get("job-a").state, JobState::kQueued);

  clock_.Advance(2s);
  controller->Tick();
  job = Get("job-a");
  ASSERT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.attempt, 2);
  EXPECT_FALSE(job.not_before);
  EXPECT_FALSE(job.exit_code);
  ASSERT_EQ(runner_.LaunchCount(), 2);
  EXPECT_EQ(runner_.Launches()[1].attempt_dir, controller->AttemptDir("job-a", 2));
  EXPECT_EQ(runner_.Launches()[1].env.at("GPUORCH_ATTEMPT"), "2");

  // Attempt 2 fails: twice the base.
  ASSERT_TRUE(runner_.Exit("job-a", 4));
  controller->Tick();
  job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.not_before, clock_.Now() + 20s);
  EXPECT_NE(job.status_message.find("retry 2 of 2"), std::string::npos) << job.status_message;
  clock_.Advance(19s);
  controller->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 2);
  clock_.Advance(2s);
  controller->Tick();
  job = Get("job-a");
  ASSERT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.attempt, 3);

  // Attempt 3 fails: no retries left.
  ASSERT_TRUE(runner_.Exit("job-a", 5));
  controller->Tick();
  job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.exit_code, 5);
  EXPECT_EQ(job.attempt, 3);
  EXPECT_TRUE(job.finished_at);
  clock_.Advance(1h);
  controller->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 3);
  EXPECT_EQ(History("job-a"),
            (std::vector<JobState>{JobState::kQueued, JobState::kScheduled, JobState::kRunning,
                                   JobState::kQueued, JobState::kScheduled, JobState::kRunning,
                                   JobState::kQueued, JobState::kScheduled, JobState::kRunning,
                                   JobState::kFailed}));
}

TEST_F(JobControllerTest, BackoffIsCappedAtRetryBackoffMax) {
  JobControllerOptions options = Options();
  options.retry_backoff_base = 10s;
  options.retry_backoff_max = 15s;
  auto controller = MakeController(options);
  Submit("job-a", Spec(1, /*priority=*/0, /*max_retries=*/5));
  StartOne(*controller, "job-a");

  ASSERT_TRUE(runner_.Exit("job-a", 1));
  controller->Tick();
  EXPECT_EQ(Get("job-a").not_before, clock_.Now() + 10s);
  clock_.Advance(10s);
  controller->Tick();
  ASSERT_EQ(Get("job-a").attempt, 2);

  ASSERT_TRUE(runner_.Exit("job-a", 1));
  controller->Tick();
  EXPECT_EQ(Get("job-a").not_before, clock_.Now() + 15s);  // 20 s capped
  clock_.Advance(15s);
  controller->Tick();
  ASSERT_EQ(Get("job-a").attempt, 3);

  ASSERT_TRUE(runner_.Exit("job-a", 1));
  controller->Tick();
  EXPECT_EQ(Get("job-a").not_before, clock_.Now() + 15s);  // 40 s capped
}

// ---- Timeouts ----

TEST_F(JobControllerTest, TimeoutStopsTheJobAndKillsAfterGrace) {
  auto controller = MakeController(Options());  // kill_grace 10 s
  JobSpec spec = Spec(2);
  spec.timeout_seconds = 60;
  Submit("job-a", spec);
  StartOne(*controller, "job-a");
  runner_.EndOnSignal(SIGKILL);  // the job ignores SIGTERM

  clock_.Advance(59s);
  controller->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kRunning);
  EXPECT_TRUE(runner_.SignalsTo("job-a").empty());

  clock_.Advance(1s);
  controller->Tick();
  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kTimedOut);
  EXPECT_EQ(job.finished_at, clock_.Now());
  EXPECT_FALSE(job.exit_code);
  EXPECT_NE(job.status_message.find("timed out"), std::string::npos) << job.status_message;
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM}));
  // Its GPUs stay held while its processes are being stopped.
  EXPECT_EQ(Holders(*controller), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));

  clock_.Advance(9s);
  controller->Tick();
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM}));

  clock_.Advance(1s);
  controller->Tick();
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_FALSE(runner_.IsRunning("job-a"));

  controller->Tick();  // sees the exit
  job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kTimedOut);
  EXPECT_EQ(job.exit_code, 128 + SIGKILL);
  EXPECT_NE(job.status_message.find("processes ended"), std::string::npos) << job.status_message;
  EXPECT_TRUE(Holders(*controller).empty());
  EXPECT_EQ(History("job-a").back(), JobState::kTimedOut);
}

TEST_F(JobControllerTest, TermEndingTheJobNeedsNoKill) {
  auto controller = MakeController(Options());
  JobSpec spec = Spec(1);
  spec.timeout_seconds = 5;
  Submit("job-a", spec);
  StartOne(*controller, "job-a");
  runner_.EndOnSignal(SIGTERM);

  clock_.Advance(5s);
  controller->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kTimedOut);
  controller->Tick();
  EXPECT_EQ(Get("job-a").exit_code, 128 + SIGTERM);
  clock_.Advance(1min);
  controller->Tick();
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM}));
}

TEST_F(JobControllerTest, DefaultTimeoutAppliesWhenTheSpecHasNone) {
  JobControllerOptions options = Options();
  options.default_timeout_seconds = 100;
  auto controller = MakeController(options);
  Submit("job-a", Spec(1));  // timeout_seconds 0
  StartOne(*controller, "job-a");

  clock_.Advance(99s);
  controller->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kRunning);
  clock_.Advance(1s);
  controller->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kTimedOut);
}

// ---- Cancel ----

TEST_F(JobControllerTest, CancelQueuedJobNeverLaunches) {
  auto controller = MakeController(Options());
  Submit("job-a", Spec(1));

  auto cancelled = controller->Cancel("job-a");
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(cancelled->finished_at, clock_.Now());
  EXPECT_EQ(Get("job-a").state, JobState::kCancelled);
  EXPECT_EQ(History("job-a"), (std::vector<JobState>{JobState::kQueued, JobState::kCancelled}));

  controller->Notify();
  controller->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 0);
}

TEST_F(JobControllerTest, CancelRunningJobHoldsItsGpusUntilItExits) {
  auto controller = MakeController(Options(/*gpus=*/2));
  Submit("job-a", Spec(2));
  StartOne(*controller, "job-a");
  clock_.Advance(1s);
  Submit("job-b", Spec(2));
  controller->Notify();
  controller->Tick();
  EXPECT_EQ(Get("job-b").state, JobState::kQueued);

  auto cancelled = controller->Cancel("job-a");
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM}));
  EXPECT_EQ(History("job-a").back(), JobState::kCancelled);

  // The process has not exited: job-a keeps both GPUs and job-b waits.
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(1s);
    controller->Tick();
    EXPECT_EQ(Holders(*controller), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));
    EXPECT_EQ(Get("job-b").state, JobState::kQueued);
    EXPECT_TRUE(controller->WaitingReason("job-b"));
  }
  EXPECT_EQ(runner_.LaunchCount(), 1);

  clock_.Advance(10s);  // past kill_grace
  controller->Tick();
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_EQ(Holders(*controller), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));

  ASSERT_TRUE(runner_.Exit("job-a", 128 + SIGKILL));
  controller->Tick();
  Job a = Get("job-a");
  EXPECT_EQ(a.state, JobState::kCancelled);
  EXPECT_EQ(a.exit_code, 128 + SIGKILL);
  Job b = Get("job-b");
  EXPECT_EQ(b.state, JobState::kRunning);
  EXPECT_EQ(b.gpu_indices, (std::vector<int>{0, 1}));
  EXPECT_EQ(Holders(*controller), (std::map<int, std::string>{{0, "job-b"}, {1, "job-b"}}));
  EXPECT_EQ(runner_.LaunchCount(), 2);
}

TEST_F(JobControllerTest, CancelOfEndedJobIsConflict) {
  auto controller = MakeController(Options());
  Submit("job-a", Spec(1));
  StartOne(*controller, "job-a");
  ASSERT_TRUE(runner_.Exit("job-a", 0));
  controller->Tick();
  ASSERT_EQ(Get("job-a").state, JobState::kSucceeded);

  auto result = controller->Cancel("job-a");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Code::kFailedPrecondition);
  EXPECT_EQ(result.error().reason, "conflict");
  EXPECT_EQ(Get("job-a").state, JobState::kSucceeded);

  Submit("job-b", Spec(1));
  ASSERT_TRUE(controller->Cancel("job-b"));
  auto again = controller->Cancel("job-b");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, core::Code::kFailedPrecondition);
  EXPECT_EQ(again.error().reason, "conflict");
}

TEST_F(JobControllerTest, CancelOfUnknownJobIsNotFound) {
  auto controller = MakeController(Options());
  auto result = controller->Cancel("job-nope");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Code::kNotFound);
}

// ---- Placement ----

TEST_F(JobControllerTest, NeverOvercommitsGpusAndRespectsPriority) {
  auto controller = MakeController(Options(/*gpus=*/6));
  Submit("mid-old", Spec(2));
  Submit("big", Spec(4, /*priority=*/1));
  Submit("mid-new", Spec(2));
  Submit("small", Spec(1));
  controller->Notify();
  controller->Tick();

  // big first (higher priority, though newer), then the older of the two 2-GPU jobs.
  ASSERT_EQ(runner_.LaunchCount(), 2);
  EXPECT_EQ(runner_.Launches()[0].env.at("GPUORCH_JOB_ID"), "big");
  EXPECT_EQ(runner_.Launches()[1].env.at("GPUORCH_JOB_ID"), "mid-old");
  EXPECT_EQ(Get("big").gpu_indices, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(Get("mid-old").gpu_indices, (std::vector<int>{4, 5}));
  EXPECT_EQ(runner_.Launches()[0].env.at("CUDA_VISIBLE_DEVICES"), "0,1,2,3");
  EXPECT_EQ(runner_.Launches()[1].env.at("CUDA_VISIBLE_DEVICES"), "4,5");
  ExpectNoSharedGpus(*controller);
  EXPECT_EQ(Get("mid-new").state, JobState::kQueued);
  EXPECT_EQ(Get("small").state, JobState::kQueued);
  // The head of the queue also says when its GPUs are reserved (backfill); both start the same.
  EXPECT_EQ(controller->WaitingReason("mid-new").value_or("").rfind(
                "needs 2 x RTX4090, node local has 6 x RTX4090 with 0 free", 0),
            0u)
      << *controller->WaitingReason("mid-new");
  EXPECT_EQ(controller->WaitingReason("small").value_or("").rfind(
                "needs 1 x RTX4090, node local has 6 x RTX4090 with 0 free", 0),
            0u)
      << *controller->WaitingReason("small");
  EXPECT_EQ(controller->Explain("mid-new")->position, 1);
  EXPECT_EQ(controller->Explain("small")->position, 2);

  // mid-old ends: its two GPUs go to mid-new (older than small and it fits), small still waits.
  ASSERT_TRUE(runner_.Exit("mid-old", 0));
  controller->Tick();
  EXPECT_EQ(Get("mid-new").state, JobState::kRunning);
  EXPECT_EQ(Get("mid-new").gpu_indices, (std::vector<int>{4, 5}));
  EXPECT_EQ(Get("small").state, JobState::kQueued);
  ExpectNoSharedGpus(*controller);

  // big ends: small gets the lowest free GPU.
  ASSERT_TRUE(runner_.Exit("big", 0));
  controller->Tick();
  EXPECT_EQ(Get("small").state, JobState::kRunning);
  EXPECT_EQ(Get("small").gpu_indices, (std::vector<int>{0}));
  ExpectNoSharedGpus(*controller);
  EXPECT_EQ(runner_.LaunchCount(), 4);
}

TEST_F(JobControllerTest, JobThatCanNeverFitWaitsWithAReason) {
  auto controller = MakeController(Options(/*gpus=*/2));
  Submit("huge", Spec(4));
  controller->Notify();
  controller->Tick();
  EXPECT_EQ(Get("huge").state, JobState::kQueued);
  EXPECT_EQ(runner_.LaunchCount(), 0);
  auto reason = controller->WaitingReason("huge");
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("needs 4 x RTX4090"), std::string::npos) << *reason;
}

// ---- Recovery: a second controller over the same store and runner ----

TEST_F(JobControllerTest, RecoveryReattachesARunningAttempt) {
  JobSpec spec = Spec(2);
  spec.timeout_seconds = 100;
  Submit("job-a", spec);
  {
    auto first = MakeController(Options());
    StartOne(*first, "job-a");
  }
  clock_.Advance(60s);  // the service was down for a minute

  auto second = MakeController(Options());
  ASSERT_TRUE(second->Recover());
  EXPECT_EQ(Get("job-a").state, JobState::kRunning);
  EXPECT_TRUE(second->IsAttemptLive("job-a", 1));
  EXPECT_EQ(Holders(*second), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));

  // Its GPUs are not handed out again, and it is not launched twice.
  Submit("job-b", Spec(5));
  second->Notify();
  second->Tick();
  EXPECT_EQ(runner_.LaunchCount(), 1);
  EXPECT_EQ(Get("job-b").state, JobState::kQueued);

  // The deadline still counts from the attempt's start, not from the restart.
  clock_.Advance(40s);
  second->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kTimedOut);
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM}));

  ASSERT_TRUE(runner_.Exit("job-a", 128 + SIGTERM));
  second->Tick();
  EXPECT_EQ(Get("job-a").exit_code, 128 + SIGTERM);
  EXPECT_EQ(Get("job-b").state, JobState::kRunning);
}

TEST_F(JobControllerTest, RecoverySettlesAnAttemptThatExitedWhileDown) {
  Submit("job-ok", Spec(1));
  Submit("job-bad", Spec(1));
  {
    auto first = MakeController(Options());
    first->Notify();
    first->Tick();
    ASSERT_EQ(Get("job-ok").state, JobState::kRunning);
    ASSERT_EQ(Get("job-bad").state, JobState::kRunning);
  }
  ASSERT_TRUE(runner_.Exit("job-ok", 0));
  ASSERT_TRUE(runner_.Exit("job-bad", 2));
  clock_.Advance(10s);

  auto second = MakeController(Options());
  ASSERT_TRUE(second->Recover());
  Job ok = Get("job-ok");
  EXPECT_EQ(ok.state, JobState::kSucceeded);
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.finished_at, clock_.Now());
  Job bad = Get("job-bad");
  EXPECT_EQ(bad.state, JobState::kFailed);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(Holders(*second).empty());
  EXPECT_EQ(second->Node().live_attempts, 0);
  EXPECT_EQ(runner_.LaunchCount(), 2);
}

TEST_F(JobControllerTest, RecoveryRetriesOrFailsLostAttempts) {
  Submit("lost-retry", Spec(1, /*priority=*/0, /*max_retries=*/1));
  Submit("lost-final", Spec(1, /*priority=*/0, /*max_retries=*/0));
  {
    auto first = MakeController(Options());
    first->Notify();
    first->Tick();
  }
  ASSERT_TRUE(runner_.Vanish("lost-retry"));
  ASSERT_TRUE(runner_.Vanish("lost-final"));

  auto second = MakeController(Options());
  ASSERT_TRUE(second->Recover());
  Job retry = Get("lost-retry");
  EXPECT_EQ(retry.state, JobState::kQueued);
  EXPECT_EQ(retry.not_before, clock_.Now() + 10s);
  EXPECT_NE(retry.status_message.find("lost"), std::string::npos) << retry.status_message;
  Job final_job = Get("lost-final");
  EXPECT_EQ(final_job.state, JobState::kFailed);
  EXPECT_FALSE(final_job.exit_code);
  EXPECT_NE(final_job.status_message.find("lost"), std::string::npos) << final_job.status_message;
  EXPECT_TRUE(Holders(*second).empty());

  // The retry starts as attempt 2 once its backoff is over.
  clock_.Advance(11s);
  second->Tick();
  EXPECT_EQ(Get("lost-retry").state, JobState::kRunning);
  EXPECT_EQ(Get("lost-retry").attempt, 2);
  EXPECT_EQ(runner_.LaunchCount(), 3);
}

TEST_F(JobControllerTest, RecoveryMovesAScheduledJobWhoseAttemptRunsToRunning) {
  // A crash between "scheduled" and "running": the store says scheduled, the process exists.
  Submit("job-a", Spec(1));
  Submit("job-gone", Spec(1));
  auto probe_controller = MakeController(Options());  // only for AttemptDir
  const std::vector<std::pair<std::string, int>> left = {{"job-a", 3}, {"job-gone", 4}};
  for (const auto& [id, gpu] : left) {
    auto scheduled = store_->UpdateJob({.job_id = id,
                                        .expected_state = JobState::kQueued,
                                        .new_state = JobState::kScheduled,
                                        .attempt = 1,
                                        .node_id = std::string("local"),
                                        .gpu_indices = std::vector<int>{gpu},
                                        .transition_message = "scheduled"},
                                       clock_.Now());
    ASSERT_TRUE(scheduled) << scheduled.error().message;
  }
  auto handle = runner_.Launch({.attempt_dir = probe_controller->AttemptDir("job-a", 1),
                                .argv = {"python", "train.py"},
                                .env = {{"GPUORCH_JOB_ID", "job-a"}}});
  ASSERT_TRUE(handle);
  probe_controller.reset();
  clock_.Advance(5s);

  auto controller = MakeController(Options());
  ASSERT_TRUE(controller->Recover());
  Job job = Get("job-a");
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.started_at, clock_.Now());
  EXPECT_TRUE(controller->IsAttemptLive("job-a", 1));
  EXPECT_EQ(Holders(*controller), (std::map<int, std::string>{{3, "job-a"}}));
  EXPECT_EQ(History("job-a"),
            (std::vector<JobState>{JobState::kQueued, JobState::kScheduled, JobState::kRunning}));
  // The scheduled job whose process never started goes back to the queue; the attempt that never
  // ran does not count against its retries (it has none).
  Job gone = Get("job-gone");
  EXPECT_EQ(gone.state, JobState::kQueued);
  EXPECT_EQ(gone.attempt, 0);
  EXPECT_EQ(runner_.LaunchCount(), 1);

  ASSERT_TRUE(runner_.Exit("job-a", 0));
  controller->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kSucceeded);
  EXPECT_EQ(Get("job-gone").state, JobState::kRunning);
  EXPECT_EQ(Get("job-gone").attempt, 1);
}

TEST_F(JobControllerTest, RecoveryStopsACancelledJobThatStillRuns) {
  Submit("job-a", Spec(2));
  {
    auto first = MakeController(Options());
    StartOne(*first, "job-a");
    ASSERT_TRUE(first->Cancel("job-a"));  // TERM sent; the service dies before it sees the exit
  }
  ASSERT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM}));
  Submit("job-b", Spec(6));

  auto second = MakeController(Options());
  ASSERT_TRUE(second->Recover());
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM, SIGTERM}));
  EXPECT_EQ(Get("job-a").state, JobState::kCancelled);
  EXPECT_EQ(Holders(*second), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));
  second->Tick();
  EXPECT_EQ(Get("job-b").state, JobState::kQueued);

  clock_.Advance(10s);  // kill_grace
  second->Tick();
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM, SIGTERM, SIGKILL}));

  ASSERT_TRUE(runner_.Exit("job-a", 128 + SIGKILL));
  second->Tick();
  EXPECT_EQ(Get("job-a").state, JobState::kCancelled);
  EXPECT_EQ(Get("job-a").exit_code, 128 + SIGKILL);
  EXPECT_EQ(Get("job-b").state, JobState::kRunning);
}

// A retried attempt starts with a clean slate: the previous attempt's exit code must not make
// recovery believe that a cancelled attempt 2 already ended (its GPUs would be handed out twice).
TEST_F(JobControllerTest, RecoveryStopsACancelledRetryThatStillRuns) {
  Submit("job-a", Spec(2, /*priority=*/0, /*max_retries=*/1));
  {
    auto first = MakeController(Options());
    StartOne(*first, "job-a");
    ASSERT_TRUE(runner_.Exit("job-a", 3));
    first->Tick();
    clock_.Advance(11s);
    first->Tick();
    ASSERT_EQ(Get("job-a").attempt, 2);
    ASSERT_TRUE(first->Cancel("job-a"));
  }
  EXPECT_FALSE(Get("job-a").exit_code);  // attempt 2 has not exited
  Submit("job-b", Spec(6));

  auto second = MakeController(Options());
  ASSERT_TRUE(second->Recover());
  EXPECT_EQ(runner_.SignalsTo("job-a"), (std::vector<int>{SIGTERM, SIGTERM}));
  EXPECT_EQ(Holders(*second), (std::map<int, std::string>{{0, "job-a"}, {1, "job-a"}}));
  second->Tick();
  EXPECT_EQ(Get("job-b").state, JobState::kQueued);
  ExpectNoSharedGpus(*second);

  ASSERT_TRUE(runner_.Exit("job-a", 128 + SIGTERM));
  second->Tick();
  EXPECT_EQ(Get("job-a").exit_code, 128 + SIGTERM);
  EXPECT_EQ(Get("job-b").state, JobState::kRunning);
}

// ---- Container images ----

TEST_F(JobControllerTest, ImageJobWaitsWithoutAContainerRuntime) {
  auto controller = MakeController(Options());  // container_runtime empty
  JobSpec spec = Spec(2);
  spec.docker_image = "aima/llava:1.6-34b";
  Submit("job-img", spec);
  controller->Notify();
  controller->Tick();

  EXPECT_EQ(Get("job-img").state, JobState::kQueued);
  EXPECT_EQ(runner_.LaunchCount(), 0);
  EXPECT_FALSE(controller->Node().container_runtime);
  auto reason = controller->WaitingReason("job-img");
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("container runtime"), std::string::npos) << *reason;
}

TEST_F(JobControllerTest, ImageJobRunsThroughDockerOnItsGpus) {
  JobControllerOptions options = Options();
  options.container_runtime = "docker";
  auto controller = MakeController(options);
  Submit("job-x", Spec(1));  // takes GPU 0
  JobSpec spec = Spec(2);
  spec.docker_image = "aima/llava:1.6-34b";
  spec.command = {"python", "serve.py"};
  Submit("job-img", spec);
  controller->Notify();
  controller->Tick();

  ASSERT_EQ(Get("job-img").state, JobState::kRunning);
  EXPECT_TRUE(controller->Node().container_runtime);
  auto launch = runner_.LaunchOf("job-img");
  ASSERT_TRUE(launch);
  const std::vector<std::string>& argv = launch->argv;
  ASSERT_GE(argv.size(), 5u);
  EXPECT_EQ(argv[0], "docker");
  EXPECT_EQ(argv[1], "run");
  auto gpus = std::find(argv.begin(), argv.end(), "--gpus");
  ASSERT_NE(gpus, argv.end());
  ASSERT_NE(gpus + 1, argv.end());
  EXPECT_EQ(*(gpus + 1), "\"device=1,2\"");
  // The image, then the command, end the argv.
  const std::vector<std::string> tail(argv.end() - 3, argv.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"aima/llava:1.6-34b", "python", "serve.py"}));
  // The user's env goes into the container.
  EXPECT_NE(std::find(argv.begin(), argv.end(), "MODE=test"), argv.end());
  EXPECT_EQ(launch->env.at("GPUORCH_JOB_ID"), "job-img");
}

}  // namespace
}  // namespace gpuorch::lifecycle
