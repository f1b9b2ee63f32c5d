// Figures of merit for a simulated run (utilisation, makespan, waits per job size) and the
// side-by-side table the simulator prints. Thread-safe: pure functions over values.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "sim/simulator.h"

namespace gpuorch::sim {

struct WaitStats {
  int gpus = 0;  // 0: all sizes together (or a user's jobs, in by_user)
  int jobs = 0;
  int started = 0;  // jobs that started at least once; waits are over these
  double mean_s = 0;
  double p99_s = 0;  // nearest-rank
  double max_s = 0;
  int starved = 0;  // jobs that never finished

  bool operator==(const WaitStats&) const = default;
};

struct Summary {
  double utilisation = 0;  // busy GPU-seconds / (total GPUs x makespan), 0..1
  // The same while jobs still arrive (first to last arrival): the scheduler's steady state, without
  // the drain at the end that every scheduler pays for the trace's longest jobs.
  double utilisation_arriving = 0;
  double makespan_s = 0;
  WaitStats all;
  std::vector<WaitStats> by_size;  // ascending GPU count, one per size in the trace
  std::vector<std::pair<std::string, WaitStats>> by_user;  // by name
  int backfilled = 0;
  int preemptions = 0;
  int wasted_preemptions = 0;
  int most_preemptions_of_a_job = 0;
  int stalls = 0;
  int starved = 0;
  std::vector<std::string> starved_examples;
};

Summary Summarise(const SimResult& result);

struct ReportHeader {
  int nodes = 0;
  int gpus_per_node = 0;
  int jobs = 0;
  double offered_load = 0;
  double utilisation_ceiling = 0;  // UtilisationCeiling of the trace
  std::string source;              // e.g. "seed 1" or "trace jobs.csv"
  bool preemption = false;
};

// The table: one column per summary, then "utilisation gain: +X.X points" (first minus second).
// REQUIRES: both summaries come from the same trace (same job sizes).
std::string FormatReport(const ReportHeader& header, const Summary& scheduler, const Summary& fifo);

}  // namespace gpuorch::sim
