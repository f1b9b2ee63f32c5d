// Durable job inserts into the SQLite store (WAL, synchronous=FULL), to show what group commit
// buys: with more concurrent submitters, more inserts share one COMMIT (one fsync).
//
//   BM_InsertJob/threads:N        N threads, each calling the blocking InsertJob in a loop.
//   BM_InsertJobAsync/window:W    one thread submitting W InsertJobAsync calls, then waiting for
//                                 all W callbacks, in a loop.
//   BM_CommitPlacements/batch:B   the scheduler's side: one thread committing placements (queued →
//                                 scheduled, with node and GPU indices) through UpdateJobs, B per
//                                 call (one transaction each).
//   BM_CommitPlacementsOneByOne/threads:N
//                                 N threads each committing placements through UpdateJob, one per
//                                 call (group commit batches them).
//
// The placement benchmarks insert the queued jobs they will place before their timed loop;
// items_per_second there is committed placements per second.
//
// Counters: items_per_second (durable inserts per second, all threads together) and batch (mean
// writes per transaction during the run). Each run uses a fresh database in the system temp dir
// (set TMPDIR to measure another disk).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "core/clock.h"
#include "domain/job.h"
#include "store/sqlite/sqlite_store.h"

namespace gpuorch::store {
namespace {

struct BenchDb {
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
  GroupCommitStats start;
};

BenchDb* g_db = nullptr;
std::atomic<int64_t> g_next_id{0};

void OpenDb(const benchmark::State&) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "gpuorch-store-bench-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::abort();
  }
  auto store = OpenSqliteStore(SqliteStoreOptions{.path = pattern + "/bench.db"});
  if (!store) {
    std::abort();
  }
  g_db = new BenchDb{.dir = pattern, .store = std::move(*store)};
  g_db->start = GetGroupCommitStats(*g_db->store).value_or(GroupCommitStats{});
}

void CloseDb(const benchmark::State&) {
  std::filesystem::path dir = g_db->dir;
  delete g_db;
  g_db = nullptr;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

domain::Job NewJob() {
  static const core::SystemTime kCreated = core::FromUnixMillis(1'800'000'000'000);
  domain::Job job;
  job.id = "bench-" + std::to_string(g_next_id.fetch_add(1));
  job.owner = "bench";
  job.spec = domain::JobSpec{.name = "resnet50-train",
                             .job_type = "training",
                             .gpu_type = "RTX4090",
                             .gpu_count = 4,
                             .docker_image = "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
                             .command = {"python", "train.py", "--epochs", "90"},
                             .env = {{"NCCL_DEBUG", "WARN"}},
                             .config_json = R"({"gpu_count":4,"gpu_type":"RTX4090"})"};
  job.created_at = kCreated;
  job.updated_at = kCreated;
  return job;
}

void ReportBatch(benchmark::State& state) {
  const GroupCommitStats now = GetGroupCommitStats(*g_db->store).value_or(GroupCommitStats{});
  const double transactions = static_cast<double>(now.transactions - g_db->start.transactions);
  const double writes = static_cast<double>(now.writes - g_db->start.writes);
  state.counters["batch"] = transactions > 0 ? writes / transactions : 0;
}

void BM_InsertJob(benchmark::State& state) {
  for (auto _ : state) {
    auto outcome = g_db->store->InsertJob(NewJob());
    if (!outcome) {
      state.SkipWithError(outcome.error().message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    ReportBatch(state);  // after the loop's closing barrier: every thread's inserts are counted
  }
}
BENCHMARK(BM_InsertJob)
    ->Setup(OpenDb)
    ->Teardown(CloseDb)
    ->Threads(1)
    ->Threads(16)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(0.5);

// Inserts `n` queued jobs of `owner` through the async path, waits for every commit, and returns
// their ids; empty after a failure.
std::vector<std::string> InsertQueued(int64_t n, const std::string& owner) {
  std::vector<std::string> ids;
  ids.reserve(static_cast<size_t>(n));
  std::mutex mu;
  std::condition_variable cv;
  int64_t pending = n;
  std::atomic<bool> failed{false};
  for (int64_t i = 0; i < n; ++i) {
    domain::Job job = NewJob();
    job.owner = owner;
    ids.push_back(job.id);
    g_db->store->InsertJobAsync(std::move(job), [&](core::Result<InsertOutcome> outcome) {
      if (!outcome) {
        failed = true;
      }
      std::lock_guard lock(mu);
      if (--pending == 0) {
        cv.notify_one();
      }
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  return failed ? std::vector<std::string>() : ids;
}

void BM_InsertJobAsync(benchmark::State& state) {
  const int64_t window = state.range(0);
  bool failed = false;
  for (auto _ : state) {
    failed |= InsertQueued(window, "default").empty();
  }
  if (failed) {
    state.SkipWithError("an insert failed");
  }
  state.SetItemsProcessed(state.iterations() * window);
  ReportBatch(state);
}
BENCHMARK(BM_InsertJobAsync)
    ->Setup(OpenDb)
    ->Teardown(CloseDb)
    ->ArgName("window")
    ->Arg(256)
    ->UseRealTime()
    ->MinTime(0.5);


// The placement of job number `i` on a 64-node cluster of 8-GPU nodes, 4 GPUs per job.
JobUpdate Placement(const std::string& job_id, int64_t i) {
  const int first_gpu = static_cast<int>(i % 2) * 4;
  return JobUpdate{
      .job_id = job_id,
      .expected_state = domain::JobState::kQueued,
      .new_state = domain::JobState::kScheduled,
      .status_message = "placed",
      .attempt = 1,
      .node_id = "node-" + std::to_string((i / 2) % 64),
      .gpu_indices = std::vector<int>{first_gpu, first_gpu + 1, first_gpu + 2, first_gpu + 3},
      .transition_message = "scheduler placed it"};
}

const core::SystemTime kPlacedAt = core::FromUnixMillis(1'800'000'100'000);

void BM_CommitPlacements(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const std::vector<std::string> ids = InsertQueued(state.max_iterations * batch, "bench");
  if (ids.empty()) {
    state.SkipWithError("inserting the queued jobs failed");  // the loop below then runs no round
  }
  const GroupCommitStats before = GetGroupCommitStats(*g_db->store).value_or(GroupCommitStats{});
  int64_t next = 0;
  std::vector<JobUpdate> updates;
  for (auto _ : state) {
    updates.clear();
    for (int64_t i = 0; i < batch; ++i, ++next) {
      updates.push_back(Placement(ids[static_cast<size_t>(next)], next));
    }
    auto results = g_db->store->UpdateJobs(updates, kPlacedAt);
    if (!results || !std::all_of(results->begin(), results->end(),
                                 [](const auto& r) { return r.has_value(); })) {
      state.SkipWithError("a placement failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  const GroupCommitStats now = GetGroupCommitStats(*g_db->store).value_or(GroupCommitStats{});
  const double transactions = static_cast<double>(now.transactions - before.transactions);
  state.counters["batch"] =
      transactions > 0 ? static_cast<double>(now.writes - before.writes) / transactions : 0;
}
BENCHMARK(BM_CommitPlacements)
    ->Setup(OpenDb)
    ->Teardown(CloseDb)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(64)
    ->Arg(512)
    ->UseRealTime()
    ->MinTime(0.5);

void BM_CommitPlacementsOneByOne(benchmark::State& state) {
  // Each thread places its own jobs; all of them are inserted before any thread's timed loop
  // starts (the loop begins with a barrier of all threads).
  const std::vector<std::string> ids =
      InsertQueued(state.max_iterations, "bench-" + std::to_string(state.thread_index()));
  if (ids.empty()) {
    // No return: every thread must reach the loop's start barrier; the loop then runs no round.
    state.SkipWithError("inserting the queued jobs failed");
  }
  int64_t next = 0;
  for (auto _ : state) {
    auto placed =
        g_db->store->UpdateJob(Placement(ids[static_cast<size_t>(next)], next), kPlacedAt);
    ++next;
    if (!placed) {
      state.SkipWithError(placed.error().message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CommitPlacementsOneByOne)
    ->Setup(OpenDb)
    ->Teardown(CloseDb)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(0.5);

}  // namespace
}  // namespace gpuorch::store

BENCHMARK_MAIN();
