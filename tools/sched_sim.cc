// sched_sim: replays a mixed GPU workload, in simulated time, against the real scheduler
// (MakeScheduler: fair share, backfill, best fit; preemption with --preemption) and strict FIFO
// (MakeFifoScheduler) on the same cluster, and prints utilisation, makespan and waits per job size
// side by side. Exits 2 when a scheduler breaks an invariant (a GPU given twice, ...), 1 on bad
// input.
//
// Example: sched_sim --nodes 64 --gpus-per-node 8 --jobs 5000 --load 0.95 --mix 1:50,2:25,4:15,8:10
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "scheduler/scheduler.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace {

using gpuorch::core::Result;
namespace sim = gpuorch::sim;
namespace sched = gpuorch::scheduler;

struct Flags {
  int nodes = 64;
  int gpus_per_node = 8;
  int jobs = 5000;
  uint64_t seed = 1;
  double load = 0.95;
  std::string mix = "1:50,2:25,4:15,8:10";
  int users = 4;
  std::string trace_file;
  std::string write_trace_file;
  bool preemption = false;
};

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--nodes", f.nodes, "nodes in the cluster")->check(CLI::PositiveNumber);
  app.add_option("--gpus-per-node", f.gpus_per_node, "GPUs per node")->check(CLI::PositiveNumber);
  app.add_option("--jobs", f.jobs, "jobs to generate")->check(CLI::PositiveNumber);
  app.add_option("--seed", f.seed, "seed of the generated trace");
  app.add_option("--load", f.load, "offered load, a fraction of cluster capacity")
      ->check(CLI::Range(0.01, 10.0));
  app.add_option("--mix", f.mix, "percent of jobs per GPU count, GPUS:PERCENT,...");
  app.add_option("--users", f.users, "submitting users (u0 submits most)")
      ->check(CLI::PositiveNumber);
  app.add_option("--trace", f.trace_file,
                 "replay this CSV (arrival_s,gpus,runtime_s,bound_s,user,priority) instead");
  app.add_option("--write-trace", f.write_trace_file, "save the trace replayed to this CSV");
  app.add_flag("--preemption", f.preemption,
               "enable preemption; priority-0 jobs are submitted preemptible");
}

Result<std::vector<sim::TraceJob>> ReadOrGenerate(const Flags& f) {
  if (!f.trace_file.empty()) {
    std::ifstream in(f.trace_file);
    if (!in) {
      return gpuorch::core::Fail(gpuorch::core::Code::kNotFound, "cannot open " + f.trace_file);
    }
    return sim::ReadTraceCsv(in);
  }
  GPUORCH_ASSIGN_OR_RETURN(std::vector<sim::MixEntry> mix, sim::ParseMix(f.mix));
  return sim::GenerateTrace(sim::TraceOptions{.jobs = f.jobs,
                                              .seed = f.seed,
                                              .load = f.load,
                                              .total_gpus = f.nodes * f.gpus_per_node,
                                              .mix = mix,
                                              .users = f.users});
}

// The trace to replay, checked against the cluster, and saved when --write-trace asks.
Result<std::vector<sim::TraceJob>> LoadTrace(const Flags& f) {
  using gpuorch::core::Code;
  using gpuorch::core::Fail;
  GPUORCH_ASSIGN_OR_RETURN(std::vector<sim::TraceJob> trace, ReadOrGenerate(f));
  if (trace.empty()) {
    return Fail(Code::kInvalidArgument, "the trace has no jobs");
  }
  for (const sim::TraceJob& job : trace) {
    if (job.gpus > f.gpus_per_node) {
      return Fail(Code::kInvalidArgument, "a job needs " + std::to_string(job.gpus) +
                                              " GPUs on one node; nodes have " +
                                              std::to_string(f.gpus_per_node));
    }
  }
  if (!f.write_trace_file.empty()) {
    std::ofstream out(f.write_trace_file);
    sim::WriteTraceCsv(out, trace);
    if (!out) {
      return Fail(Code::kUnavailable, "cannot write " + f.write_trace_file);
    }
  }
  return trace;
}

// Runs one scheduler over the trace; prints the violation and returns nullopt when it breaks one.
std::optional<sim::Summary> RunOne(const char* name, sched::Scheduler& scheduler,
                                   const std::vector<sim::TraceJob>& trace,
                                   const sim::ClusterOptions& cluster) {
  Result<sim::SimResult> result = sim::Simulate(scheduler, trace, cluster);
  if (!result) {
    std::fprintf(stderr, "sched_sim: %s: %s\n", name, result.error().message.c_str());
    return std::nullopt;
  }
  return sim::Summarise(*result);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"sched_sim: replay a GPU workload against the scheduler and strict FIFO"};
  AddFlags(app, f);
  CLI11_PARSE(app, argc, argv);

  Result<std::vector<sim::TraceJob>> trace = LoadTrace(f);
  if (!trace) {
    std::fprintf(stderr, "sched_sim: %s\n", trace.error().message.c_str());
    return 1;
  }
  sim::ClusterOptions cluster{
      .nodes = f.nodes, .gpus_per_node = f.gpus_per_node, .preemption = f.preemption};
  sched::SchedulerConfig config;  // defaults: fair share, backfill, best fit
  config.preemption = f.preemption;
  std::unique_ptr<sched::Scheduler> real = sched::MakeScheduler(config);
  std::unique_ptr<sched::Scheduler> fifo = sched::MakeFifoScheduler(config);
  std::optional<sim::Summary> a = RunOne("scheduler", *real, *trace, cluster);
  std::optional<sim::Summary> b = RunOne("fifo", *fifo, *trace, cluster);
  if (!a || !b) {
    return 2;
  }
  int total_gpus = f.nodes * f.gpus_per_node;
  sim::ReportHeader header{
      .nodes = f.nodes,
      .gpus_per_node = f.gpus_per_node,
      .jobs = static_cast<int>(trace->size()),
      .offered_load = sim::OfferedLoad(*trace, total_gpus),
      .utilisation_ceiling = sim::UtilisationCeiling(*trace, total_gpus),
      .source = f.trace_file.empty() ? "seed " + std::to_string(f.seed) : "trace " + f.trace_file,
      .preemption = f.preemption};
  std::cout << sim::FormatReport(header, *a, *b);
  for (const auto& [name, summary] : {std::pair("scheduler", &*a), std::pair("fifo", &*b)}) {
    for (const std::string& example : summary->starved_examples) {
      std::cout << name << " starved " << example << "\n";
    }
  }
  return 0;
}
