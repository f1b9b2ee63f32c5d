#include "sim/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace gpuorch::sim {
namespace {

WaitStats Stats(int gpus, std::vector<double> waits, int jobs, int starved) {
  WaitStats s{
      .gpus = gpus, .jobs = jobs, .started = static_cast<int>(waits.size()), .starved = starved};
  if (waits.empty()) {
    return s;
  }
  std::sort(waits.begin(), waits.end());
  double sum = 0;
  for (double w : waits) {
    sum += w;
  }
  s.mean_s = sum / waits.size();
  size_t rank = static_cast<size_t>(std::ceil(0.99 * waits.size()));
  s.p99_s = waits[std::max<size_t>(rank, 1) - 1];
  s.max_s = waits.back();
  return s;
}

std::string Fmt(const char* format, double a, double b = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

std::string Row(const std::string& label, const std::string& a, const std::string& b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-24s%16s%16s\n", label.c_str(), a.c_str(), b.c_str());
  return buf;
}

std::string MeanP99(const WaitStats& s) {
  if (s.started == 0) {
    return "-";
  }
  return Fmt("%.2f/%.2f h", s.mean_s / 3600, s.p99_s / 3600);
}

std::string Starved(const Summary& s) {
  std::string text = std::to_string(s.starved);
  if (s.starved == 0) {
    return text;
  }
  std::string sizes;
  for (const WaitStats& w : s.by_size) {
    if (w.starved > 0) {
      sizes +=
          (sizes.empty() ? "" : " ") + std::to_string(w.gpus) + "g:" + std::to_string(w.starved);
    }
  }
  return text + " (" + sizes + ")";
}

// "victims (preemptions whose preemptor did not start / most of one job)".
std::string Preemptions(const Summary& s) {
  return std::to_string(s.preemptions) + " (" + std::to_string(s.wasted_preemptions) + "/" +
         std::to_string(s.most_preemptions_of_a_job) + ")";
}

}  // namespace

Summary Summarise(const SimResult& result) {
  Summary s;
  if (result.makespan_s > 0 && result.total_gpus > 0) {
    s.utilisation = result.busy_gpu_s / (result.total_gpus * result.makespan_s);
  }
  if (result.arrival_span_s > 0 && result.total_gpus > 0) {
    s.utilisation_arriving =
        result.busy_gpu_s_in_arrival_span / (result.total_gpus * result.arrival_span_s);
  }
  s.makespan_s = result.makespan_s;
  std::map<int, std::vector<double>> waits;
  std::map<int, int> jobs;
  std::map<int, int> starved;
  std::map<std::string, std::vector<double>> user_waits;
  std::map<std::string, std::pair<int, int>> user_jobs;  // jobs, starved
  std::vector<double> all;
  for (const JobOutcome& o : result.jobs) {
    ++jobs[o.gpus];
    starved[o.gpus] += o.Finished() ? 0 : 1;
    s.most_preemptions_of_a_job = std::max(s.most_preemptions_of_a_job, o.preemptions);
    ++user_jobs[o.user].first;
    user_jobs[o.user].second += o.Finished() ? 0 : 1;
    if (o.first_start_s >= 0) {
      waits[o.gpus].push_back(o.wait_s);
      user_waits[o.user].push_back(o.wait_s);
      all.push_back(o.wait_s);
    }
  }
  for (const auto& [gpus, count] : jobs) {
    s.by_size.push_back(Stats(gpus, waits[gpus], count, starved[gpus]));
  }
  for (const auto& [user, counts] : user_jobs) {
    s.by_user.emplace_back(user, Stats(0, user_waits[user], counts.first, counts.second));
  }
  s.all = Stats(0, std::move(all), static_cast<int>(result.jobs.size()), result.starved);
  s.backfilled = result.backfilled;
  s.preemptions = result.preemptions;
  s.wasted_preemptions = result.wasted_preemptions;
  s.stalls = result.stalls;
  s.starved = result.starved;
  s.starved_examples = result.starved_examples;
  return s;
}

std::string FormatReport(const ReportHeader& h, const Summary& a, const Summary& b) {
  char head[256];
  std::snprintf(head, sizeof head,
                "cluster %d nodes x %d GPUs, %d jobs, offered load %.2f (%s, preemption %s)\n",
                h.nodes, h.gpus_per_node, h.jobs, h.offered_load, h.source.c_str(),
                h.preemption ? "on" : "off");
  std::string out = head;
  out += Fmt("utilisation ceiling %.1f %% (the trace's work over its earliest possible makespan)\n",
             h.utilisation_ceiling * 100);
  out += Row("", "scheduler", "fifo");
  out +=
      Row("utilisation", Fmt("%.1f %%", a.utilisation * 100), Fmt("%.1f %%", b.utilisation * 100));
  out += Row("utilisation arriving", Fmt("%.1f %%", a.utilisation_arriving * 100),
             Fmt("%.1f %%", b.utilisation_arriving * 100));
  out += Row("makespan", Fmt("%.1f h", a.makespan_s / 3600), Fmt("%.1f h", b.makespan_s / 3600));
  out += Row("wait all mean/p99", MeanP99(a.all), MeanP99(b.all));
  for (size_t i = 0; i < a.by_size.size() && i < b.by_size.size(); ++i) {
    out += Row("wait " + std::to_string(a.by_size[i].gpus) + "-GPU mean/p99", MeanP99(a.by_size[i]),
               MeanP99(b.by_size[i]));
  }
  for (size_t i = 0; i < a.by_user.size() && i < b.by_user.size(); ++i) {
    out += Row("wait " + a.by_user[i].first + " mean/p99", MeanP99(a.by_user[i].second),
               MeanP99(b.by_user[i].second));
  }
  out += Row("wait max", Fmt("%.2f h", a.all.max_s / 3600), Fmt("%.2f h", b.all.max_s / 3600));
  out += Row("backfilled starts", std::to_string(a.backfilled), std::to_string(b.backfilled));
  out += Row("preemptions (wasted/max)", Preemptions(a), Preemptions(b));
  out += Row("idle stalls", std::to_string(a.stalls), std::to_string(b.stalls));
  out += Row("starved jobs", Starved(a), Starved(b));
  out += Fmt("utilisation gain: %+.1f points\n", (a.utilisation - b.utilisation) * 100);
  return out;
}

}  // namespace gpuorch::sim
