#include "sim/trace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <istream>
#include <ostream>
#include <random>
#include <set>
#include <sstream>

namespace gpuorch::sim {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    parts.push_back(Trim(s.substr(start, pos == std::string_view::npos ? pos : pos - start)));
    if (pos == std::string_view::npos) {
      return parts;
    }
    start = pos + 1;
  }
}

template <typename T>
bool ParseNumber(std::string_view s, T& out) {
  if (s.empty()) {
    return false;
  }
  if constexpr (std::is_floating_point_v<T>) {
    // from_chars for double is in libstdc++ 11+, but strtod also takes "1e3" forms users write.
    std::string copy(s);
    char* end = nullptr;
    out = std::strtod(copy.c_str(), &end);
    return end == copy.c_str() + copy.size() && std::isfinite(out);
  } else {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && ptr == s.data() + s.size();
  }
}

// Rounds to milliseconds so that a trace written to CSV and read back is the same trace.
double RoundMs(double s) { return std::round(s * 1000.0) / 1000.0; }

}  // namespace

core::Result<std::vector<MixEntry>> ParseMix(std::string_view text) {
  std::vector<MixEntry> mix;
  std::set<int> seen;
  for (std::string_view item : Split(text, ',')) {
    std::vector<std::string_view> kv = Split(item, ':');
    MixEntry entry;
    if (kv.size() != 2 || !ParseNumber(kv[0], entry.gpus) || !ParseNumber(kv[1], entry.percent)) {
      return core::Fail(core::Code::kInvalidArgument,
                        "mix entry '" + std::string(item) + "' is not GPUS:PERCENT", "mix");
    }
    if (entry.gpus < 1 || entry.percent <= 0) {
      return core::Fail(core::Code::kInvalidArgument,
                        "mix entry '" + std::string(item) + "' needs GPUS >= 1 and PERCENT > 0",
                        "mix");
    }
    if (!seen.insert(entry.gpus).second) {
      return core::Fail(core::Code::kInvalidArgument,
                        "mix names " + std::to_string(entry.gpus) + " GPUs twice", "mix");
    }
    mix.push_back(entry);
  }
  return mix;
}

double BoundBucketFor(double runtime_s) {
  for (double hours : {1.0, 2.0, 4.0, 8.0}) {
    if (runtime_s <= hours * 3600) {
      return hours * 3600;
    }
  }
  return std::ceil(runtime_s / 3600) * 3600;
}

std::vector<TraceJob> GenerateTrace(const TraceOptions& options) {
  std::mt19937_64 rng(options.seed);
  std::vector<double> mix_weights;
  for (const MixEntry& m : options.mix) {
    mix_weights.push_back(m.percent);
  }
  std::vector<double> user_weights;
  for (int u = 0; u < options.users; ++u) {
    user_weights.push_back(1.0 / (u + 1));
  }
  std::discrete_distribution<size_t> pick_size(mix_weights.begin(), mix_weights.end());
  std::discrete_distribution<int> pick_user(user_weights.begin(), user_weights.end());
  std::lognormal_distribution<double> runtime(std::log(options.median_runtime_s),
                                              options.runtime_sigma);
  std::bernoulli_distribution high_priority(options.high_priority_fraction);

  std::vector<TraceJob> trace(options.jobs);
  double work_gpu_s = 0;
  for (TraceJob& job : trace) {
    job.gpus = options.mix[pick_size(rng)].gpus;
    job.runtime_s = RoundMs(std::clamp(runtime(rng), options.min_runtime_s, options.max_runtime_s));
    job.bound_s = BoundBucketFor(job.runtime_s);
    job.user = "u" + std::to_string(pick_user(rng));
    job.priority = high_priority(rng) ? 1 : 0;
    work_gpu_s += job.gpus * job.runtime_s;
  }
  // Jobs per second such that rate x mean work = load x capacity.
  double rate = options.load * options.total_gpus / (work_gpu_s / options.jobs);
  std::exponential_distribution<double> gap(rate);
  double t = 0;
  for (size_t i = 0; i < trace.size(); ++i) {
    trace[i].arrival_s = RoundMs(t);
    t += gap(rng);
  }
  return trace;
}

double OfferedLoad(const std::vector<TraceJob>& trace, int total_gpus) {
  if (trace.empty() || total_gpus <= 0) {
    return 0;
  }
  double work = 0;
  double runtime = 0;
  double first = trace.front().arrival_s;
  double last = trace.front().arrival_s;
  for (const TraceJob& job : trace) {
    work += job.gpus * job.runtime_s;
    runtime += job.runtime_s;
    first = std::min(first, job.arrival_s);
    last = std::max(last, job.arrival_s);
  }
  double span = last > first ? last - first : runtime / trace.size();
  return work / (total_gpus * span);
}

double UtilisationCeiling(const std::vector<TraceJob>& trace, int total_gpus) {
  if (trace.empty() || total_gpus <= 0) {
    return 0;
  }
  double work = 0;
  double first = trace.front().arrival_s;
  double last_end = 0;
  for (const TraceJob& job : trace) {
    work += job.gpus * job.runtime_s;
    first = std::min(first, job.arrival_s);
    last_end = std::max(last_end, job.arrival_s + job.runtime_s);
  }
  double makespan = std::max(last_end - first, work / total_gpus);
  return work / (total_gpus * makespan);
}

core::Result<std::vector<TraceJob>> ReadTraceCsv(std::istream& in) {
  std::vector<TraceJob> trace;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::string_view row = Trim(line);
    if (row.empty() || row.front() == '#') {
      continue;
    }
    if (line_no == 1 && !std::isdigit(static_cast<unsigned char>(row.front())) &&
        row.front() != '.') {
      continue;  // header
    }
    std::vector<std::string_view> f = Split(row, ',');
    TraceJob job;
    auto bad = [&](const std::string& why) {
      return core::Fail(core::Code::kInvalidArgument,
                        "trace line " + std::to_string(line_no) + ": " + why, "trace");
    };
    if (f.size() != 6) {
      return bad("want 6 fields arrival_s,gpus,runtime_s,bound_s,user,priority, got " +
                 std::to_string(f.size()));
    }
    if (!ParseNumber(f[0], job.arrival_s) || !ParseNumber(f[1], job.gpus) ||
        !ParseNumber(f[2], job.runtime_s) || !ParseNumber(f[3], job.bound_s) ||
        !ParseNumber(f[5], job.priority) || f[4].empty()) {
      return bad("malformed field");
    }
    if (job.arrival_s < 0 || job.gpus < 1 || job.runtime_s <= 0 || job.bound_s <= 0) {
      return bad("needs arrival_s >= 0, gpus >= 1, runtime_s > 0 and bound_s > 0");
    }
    job.user = std::string(f[4]);
    job.runtime_s = std::min(job.runtime_s, job.bound_s);
    trace.push_back(std::move(job));
  }
  std::stable_sort(trace.begin(), trace.end(),
                   [](const TraceJob& a, const TraceJob& b) { return a.arrival_s < b.arrival_s; });
  return trace;
}

void WriteTraceCsv(std::ostream& out, const std::vector<TraceJob>& trace) {
  out << "arrival_s,gpus,runtime_s,bound_s,user,priority\n";
  for (const TraceJob& job : trace) {
    std::ostringstream row;
    row.precision(15);
    row << job.arrival_s << ',' << job.gpus << ',' << job.runtime_s << ',' << job.bound_s << ','
        << job.user << ',' << job.priority << '\n';
    out << row.str();
  }
}

}  // namespace gpuorch::sim
