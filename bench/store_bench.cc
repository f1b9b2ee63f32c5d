// Durable job inserts into the SQLite store (WAL, synchronous=FULL), to show what group commit
// buys: with more concurrent submitters, more inserts share one COMMIT (one fsync).
//
//   BM_InsertJob/threads:N        N threads, each calling the blocking InsertJob in a loop.
//   BM_InsertJobAsync/window:W    one thread submitting W InsertJobAsync calls, then waiting for
//                                 all W callbacks, in a loop.
//
// Counters: items_per_second (durable inserts per second, all threads together) and batch (mean
// writes per transaction during the run). Each run uses a fresh database in the system temp dir
// (set TMPDIR to measure another disk).
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>

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

void BM_InsertJobAsync(benchmark::State& state) {
  const int64_t window = state.range(0);
  std::mutex mu;
  std::condition_variable cv;
  int64_t pending = 0;
  std::atomic<bool> failed{false};
  for (auto _ : state) {
    pending = window;  // the previous window has fully drained: no callback is running
    for (int64_t i = 0; i < window; ++i) {
      g_db->store->InsertJobAsync(NewJob(), [&](core::Result<InsertOutcome> outcome) {
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

}  // namespace
}  // namespace gpuorch::store

BENCHMARK_MAIN();
