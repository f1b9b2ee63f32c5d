// The fair scheduler at scale: 100,000 queued jobs (1, 2, 4 or 8 GPUs; a few GPU types or any; some
// with a node selector; 100 users; priorities 0-2) over 10,000 8-GPU nodes of three types, which
// running jobs keep mostly full (about 5% of GPUs free before the first pass).
//
//   BM_FullPass          a fresh scheduler, one Schedule(): the first pass looks at every shape.
//   BM_IncrementalPass   on that cluster after its first pass: one running job ends (MarkEnded,
//                        not timed), then one Schedule() (timed). The cluster stays full: what
//                        frees is taken again.
//   BM_EndAndSchedule    the same with MarkEnded timed too.
//   BM_Views             Queue(now, 50, "") (explain:0) and Explain of the last queued job (explain:1).
//
// Counters: bytes_per_queued_job (heap growth over the 100,000 Enqueue calls, from mallinfo2),
// assigned (jobs started per pass), queued (queue length).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <chrono>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "scheduler/scheduler.h"

namespace gpuorch::scheduler {
namespace {

constexpr int kNodes = 10'000;
constexpr int kGpusPerNode = 8;
constexpr int kQueued = 100'000;
constexpr int kUsers = 100;

const core::SystemTime kStart = core::SystemTime(std::chrono::seconds(1'800'000'000));
const char* const kTypes[] = {"H100", "A100", "RTX4090"};

struct Cluster {
  std::unique_ptr<Scheduler> scheduler;
  std::deque<std::string> running;  // oldest first
  double bytes_per_queued_job = 0;
};

int Pick(std::mt19937& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

int PickSize(std::mt19937& rng) {
  const int r = Pick(rng, 0, 99);
  return r < 40 ? 1 : r < 70 ? 2 : r < 90 ? 4 : 8;
}

std::vector<JobRequest> QueuedJobs(std::mt19937& rng) {
  std::vector<JobRequest> jobs;
  jobs.reserve(kQueued);
  for (int i = 0; i < kQueued; ++i) {
    const int prio = Pick(rng, 0, 99);
    JobRequest job{.id = "q" + std::to_string(i),
                   .owner = "u" + std::to_string(Pick(rng, 0, kUsers - 1)),
                   .priority = prio < 80   ? 0
                               : prio < 95 ? 1
                                           : 2,
                   .seq = 1'000'000 + i,
                   .gpu_type = Pick(rng, 0, 9) == 0 ? "" : kTypes[Pick(rng, 0, 2)],
                   .gpu_count = PickSize(rng),
                   .runtime_bound = std::chrono::seconds(Pick(rng, 3600, 4 * 3600))};
    if (Pick(rng, 0, 19) == 0) {
      job.node_selector = {{"zone", "z" + std::to_string(Pick(rng, 0, 3))}};
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::unique_ptr<Cluster> Build() {
  std::mt19937 rng(42);
  auto cluster = std::make_unique<Cluster>();
  cluster->scheduler = MakeScheduler(SchedulerConfig{});
  Scheduler& s = *cluster->scheduler;
  int64_t running_seq = 0;
  for (int n = 0; n < kNodes; ++n) {
    NodeInfo node{.id = "n" + std::to_string(n),
                  .node_id = "n" + std::to_string(n),
                  .labels = {{"zone", "z" + std::to_string(n % 4)}},
                  .gpu_type = kTypes[n % 10 < 4   ? 0
                                     : n % 10 < 7 ? 1
                                                  : 2],
                  .gpu_memory_gb = 80,
                  .container_runtime = true};
    for (int g = 0; g < kGpusPerNode; ++g) {
      node.gpu_indices.push_back(g);
    }
    s.UpsertNode(node);
    // Fill it: most nodes completely, some with one to three GPUs left.
    const int leave = Pick(rng, 0, 99) < 85 ? 0 : Pick(rng, 1, 3);
    int next = 0;
    while (next < kGpusPerNode - leave) {
      const int size = std::min(PickSize(rng), kGpusPerNode - leave - next);
      RunningJob job{.job_id = "r" + std::to_string(running_seq++),
                     .owner = "u" + std::to_string(Pick(rng, 0, kUsers - 1)),
                     .node = node.id,
                     .started_at = kStart - std::chrono::minutes(Pick(rng, 1, 120)),
                     .expected_end = kStart + std::chrono::minutes(Pick(rng, 5, 240))};
      for (int g = 0; g < size; ++g) {
        job.gpu_indices.push_back(next++);
      }
      s.MarkRunning(job);
      cluster->running.push_back(job.job_id);
    }
  }
  std::vector<JobRequest> jobs = QueuedJobs(rng);
  const size_t before = mallinfo2().uordblks;
  for (const JobRequest& job : jobs) {
    s.Enqueue(job);
  }
  const size_t after = mallinfo2().uordblks;
  cluster->bytes_per_queued_job = static_cast<double>(after - before) / kQueued;
  return cluster;
}

void BM_FullPass(benchmark::State& state) {
  double assigned = 0;
  double bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<Cluster> cluster = Build();
    bytes = cluster->bytes_per_queued_job;
    state.ResumeTiming();
    Plan plan = cluster->scheduler->Schedule(kStart);
    state.PauseTiming();
    assigned = static_cast<double>(plan.assignments.size());
    cluster.reset();
    state.ResumeTiming();
  }
  state.counters["assigned"] = assigned;
  state.counters["bytes_per_queued_job"] = bytes;
}
BENCHMARK(BM_FullPass)->Unit(benchmark::kMillisecond)->Iterations(3);

void RunIncremental(benchmark::State& state, bool time_mark_ended) {
  std::unique_ptr<Cluster> cluster = Build();
  Scheduler& s = *cluster->scheduler;
  core::SystemTime now = kStart;
  for (const Assignment& a : s.Schedule(now).assignments) {
    cluster->running.push_back(a.job_id);
  }
  int64_t assigned = 0;
  for (auto _ : state) {
    if (cluster->running.empty()) {
      state.SkipWithError("nothing left running");
      break;
    }
    now += std::chrono::seconds(1);
    const std::string ended = cluster->running.front();
    cluster->running.pop_front();
    if (!time_mark_ended) {
      state.PauseTiming();
      s.MarkEnded(ended, now);
      state.ResumeTiming();
    } else {
      s.MarkEnded(ended, now);
    }
    Plan plan = s.Schedule(now);
    assigned += static_cast<int64_t>(plan.assignments.size());
    for (const Assignment& a : plan.assignments) {
      cluster->running.push_back(a.job_id);
    }
  }
  state.counters["assigned"] =
      benchmark::Counter(static_cast<double>(assigned), benchmark::Counter::kAvgIterations);
  int queued = 0;
  for (int u = 0; u < kUsers; ++u) {
    queued += s.QueuedJobs("u" + std::to_string(u));
  }
  state.counters["queued"] = queued;
  state.counters["bytes_per_queued_job"] = cluster->bytes_per_queued_job;
}

void BM_IncrementalPass(benchmark::State& state) { RunIncremental(state, false); }
BENCHMARK(BM_IncrementalPass)->Unit(benchmark::kMicrosecond)->Iterations(20'000);

void BM_EndAndSchedule(benchmark::State& state) { RunIncremental(state, true); }
BENCHMARK(BM_EndAndSchedule)->Unit(benchmark::kMicrosecond)->Iterations(20'000);

// The views, computed on demand: the first 50 queue entries with reasons, and one job deep in the
// queue explained (its position counts the jobs ahead of it).
void BM_Views(benchmark::State& state) {
  std::unique_ptr<Cluster> cluster = Build();
  Scheduler& s = *cluster->scheduler;
  s.Schedule(kStart);
  const bool queue = state.range(0) == 0;
  int position = 0;
  for (auto _ : state) {
    if (queue) {
      benchmark::DoNotOptimize(s.Queue(kStart, 50, ""));
    } else {
      position = s.Explain("q" + std::to_string(kQueued - 1), kStart)->position;
    }
  }
  if (!queue) {
    state.counters["position"] = position;
  }
}
BENCHMARK(BM_Views)->ArgName("explain")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace gpuorch::scheduler

BENCHMARK_MAIN();
