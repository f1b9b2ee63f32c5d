// Workload traces for the scheduling simulator: a list of GPU jobs with arrival times, sizes,
// actual runtimes and the runtime bounds (timeouts) their users declared. A trace is generated from
// a seed (a mixed workload: Poisson arrivals at an offered load, heavy-tailed runtimes, bucketed
// bounds, a few heavier submitters) or read from a CSV file
// "arrival_s,gpus,runtime_s,bound_s,user,priority". Thread-safe: pure functions over values.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace gpuorch::sim {

struct TraceJob {
  double arrival_s = 0;  // since the start of the trace
  int gpus = 1;          // all on one node
  double runtime_s = 0;  // how long it actually runs; REQUIRES: 0 < runtime_s <= bound_s
  double bound_s = 0;    // the runtime bound its user declared (the scheduler's backfill input)
  std::string user = "u0";
  int priority = 0;

  bool operator==(const TraceJob&) const = default;
};

// One share of the job-size mix: `percent` of jobs ask for `gpus` GPUs.
struct MixEntry {
  int gpus = 1;
  double percent = 0;

  bool operator==(const MixEntry&) const = default;
};

// Parses "1:50,2:25,4:15,8:10". Percentages need not add up to 100 (they are normalised).
// Fails with kInvalidArgument on a malformed entry, a size < 1, a percentage <= 0, or a repeated
// size.
[[nodiscard]] core::Result<std::vector<MixEntry>> ParseMix(std::string_view text);

struct TraceOptions {
  int jobs = 5000;
  uint64_t seed = 1;
  double load = 0.95;  // offered GPU-seconds per second, as a fraction of total_gpus
  int total_gpus = 512;
  std::vector<MixEntry> mix = {{1, 50}, {2, 25}, {4, 15}, {8, 10}};
  int users = 4;  // "u0".."u<users-1>"; u0 submits most (Zipf: user i ∝ 1/(i+1))
  double median_runtime_s = 20 * 60;
  double runtime_sigma = 1.5;  // of the lognormal: the tail's weight
  double min_runtime_s = 60;
  double max_runtime_s = 8 * 3600;
  double high_priority_fraction = 0.1;  // jobs with priority 1; the rest have 0
};

// A deterministic trace for `options`, sorted by arrival, the first arrival at 0 s. Runtimes are
// lognormal (median `median_runtime_s`) clamped to [min, max]; each bound is the runtime rounded up
// to the next of 1, 2, 4 or 8 hours (users over-declare, as on real clusters). The arrival rate is
// set so that the trace's own mean work per job, arriving at that rate, offers `load` of the
// cluster. REQUIRES: jobs > 0, users > 0, load > 0, total_gpus > 0, mix non-empty.
std::vector<TraceJob> GenerateTrace(const TraceOptions& options);

// The runtime bound the generator gives a job that runs `runtime_s`.
double BoundBucketFor(double runtime_s);

// Offered load of a trace: its GPU-seconds of work over (total_gpus x its arrival span). Traces
// whose arrivals all fall in one instant count their span as the mean runtime.
double OfferedLoad(const std::vector<TraceJob>& trace, int total_gpus);

// The most utilisation (busy GPU-seconds / (total_gpus x makespan)) any scheduler can reach on
// `trace`: no schedule ends before every job's arrival + runtime, nor before its work fits on
// total_gpus GPUs. A finite trace's drain (its longest late jobs) caps this below the offered load.
double UtilisationCeiling(const std::vector<TraceJob>& trace, int total_gpus);

// Reads a CSV trace; an optional header line is skipped, as are blank lines. A runtime above its
// bound is clamped to the bound (the job is killed at its timeout). The result is sorted by
// arrival. Fails with kInvalidArgument naming the line on a malformed row or a non-positive runtime
// or bound.
[[nodiscard]] core::Result<std::vector<TraceJob>> ReadTraceCsv(std::istream& in);

// Writes `trace` in the CSV form ReadTraceCsv reads, with a header line.
void WriteTraceCsv(std::ostream& out, const std::vector<TraceJob>& trace);

}  // namespace gpuorch::sim
