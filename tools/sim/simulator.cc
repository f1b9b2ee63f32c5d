#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>

namespace gpuorch::sim {
namespace {

// Simulated time: milliseconds since the trace's origin, mapped onto a fixed SystemTime so that the
// scheduler sees ordinary timestamps. Nothing here reads a real clock.
using Ms = int64_t;
const core::SystemTime kOrigin{std::chrono::seconds(1'800'000'000)};

core::SystemTime At(Ms t) { return kOrigin + std::chrono::milliseconds(t); }
Ms ToMs(double s) { return std::llround(s * 1000.0); }
double ToS(Ms t) { return static_cast<double>(t) / 1000.0; }

// After the last event, how often and how far apart Schedule is retried before the jobs still
// queued count as starved.
constexpr int kStallProbes = 3;
constexpr Ms kStallProbeGap = 3600 * 1000;
// Schedule rounds at one instant (each preemption asks for another); more is a livelock.
constexpr int kMaxRoundsPerInstant = 32;
constexpr size_t kStarvedExamples = 3;

enum class State { kPending, kQueued, kRunning, kDone };

const char* StateName(State s) {
  switch (s) {
    case State::kPending:
      return "not yet submitted";
    case State::kQueued:
      return "queued";
    case State::kRunning:
      return "running";
    case State::kDone:
      return "finished";
  }
  return "?";
}

struct SimJob {
  std::string id;
  State state = State::kPending;
  int64_t seq = 0;
  Ms remaining_ms = 0;  // work left
  Ms bound_ms = 0;      // bound left; never below remaining_ms
  Ms queued_since = 0;
  Ms started_at = 0;
  int attempt = 0;  // bumped at every start; completions of older attempts are stale
  std::string node;
};

struct Event {
  Ms t = 0;
  int job = 0;
  bool completion = false;
  int attempt = 0;
};

struct Later {
  bool operator()(const Event& a, const Event& b) const {
    return std::tie(a.t, a.job, a.completion) > std::tie(b.t, b.job, b.completion);
  }
};

class SimRun {
 public:
  SimRun(scheduler::Scheduler& scheduler, const std::vector<TraceJob>& trace,
         const ClusterOptions& cluster)
      : scheduler_(scheduler), trace_(trace), cluster_(cluster) {}

  core::Result<SimResult> Run();

 private:
  core::Status Setup();
  void ProcessBatch(Ms now);
  core::Status ScheduleAt(Ms now);
  core::Status Start(const scheduler::Assignment& a, Ms now);
  core::Status Preempt(const scheduler::Preemption& p, Ms now);
  void Complete(int j, Ms now);
  void Submit(int j, Ms now);
  void Release(int j, Ms now);
  scheduler::JobRequest Request(int j) const;
  core::Status CheckGpusInUse(Ms now);
  core::Result<int> QueuedJob(const std::string& id, Ms now, const char* what);

  static tl::unexpected<core::Error> Violation(Ms now, const std::string& what) {
    char when[32];
    std::snprintf(when, sizeof when, "t=%.3f h: ", ToS(now) / 3600);
    return core::Fail(core::Code::kInternal, when + what);
  }

  scheduler::Scheduler& scheduler_;
  const std::vector<TraceJob>& trace_;
  const ClusterOptions cluster_;
  std::vector<SimJob> jobs_;
  SimResult result_;
  std::unordered_map<std::string, int> index_of_;
  std::unordered_map<std::string, std::vector<int>> holders_;  // node → job per GPU, -1 free
  std::priority_queue<Event, std::vector<Event>, Later> events_;
  std::set<std::string> users_;
  int64_t next_seq_ = 1;
  int queued_ = 0;
  int held_gpus_ = 0;
  Ms last_end_ = 0;
  Ms first_arrival_ = 0;
  Ms last_arrival_ = 0;
};

core::Status SimRun::Setup() {
  result_.total_gpus = cluster_.nodes * cluster_.gpus_per_node;
  std::vector<int> indices(cluster_.gpus_per_node);
  for (int g = 0; g < cluster_.gpus_per_node; ++g) {
    indices[g] = g;
  }
  for (int n = 0; n < cluster_.nodes; ++n) {
    char name[32];
    std::snprintf(name, sizeof name, "node-%03d", n);
    scheduler_.UpsertNode(scheduler::NodeInfo{.id = name,
                                              .node_id = name,
                                              .gpu_type = "H100",
                                              .gpu_memory_gb = 80,
                                              .gpu_indices = indices,
                                              .container_runtime = true});
    holders_[name].assign(cluster_.gpus_per_node, -1);
  }
  jobs_.resize(trace_.size());
  if (!trace_.empty()) {
    first_arrival_ = last_arrival_ = ToMs(trace_.front().arrival_s);
  }
  for (const TraceJob& t : trace_) {
    first_arrival_ = std::min(first_arrival_, ToMs(t.arrival_s));
    last_arrival_ = std::max(last_arrival_, ToMs(t.arrival_s));
  }
  result_.arrival_span_s = ToS(last_arrival_ - first_arrival_);
  result_.jobs.resize(trace_.size());
  for (size_t j = 0; j < trace_.size(); ++j) {
    const TraceJob& t = trace_[j];
    if (t.gpus > cluster_.gpus_per_node) {
      return core::Fail(core::Code::kInvalidArgument, "trace job " + std::to_string(j) + " needs " +
                                                          std::to_string(t.gpus) +
                                                          " GPUs on one node, nodes have " +
                                                          std::to_string(cluster_.gpus_per_node));
    }
    char id[32];
    std::snprintf(id, sizeof id, "job-%06zu", j);
    jobs_[j].id = id;
    jobs_[j].remaining_ms = std::max<Ms>(1, ToMs(t.runtime_s));
    jobs_[j].bound_ms = std::max(jobs_[j].remaining_ms, ToMs(t.bound_s));
    index_of_[id] = static_cast<int>(j);
    users_.insert(t.user);
    result_.jobs[j] = JobOutcome{.gpus = t.gpus, .user = t.user, .arrival_s = t.arrival_s};
    events_.push(Event{.t = ToMs(t.arrival_s), .job = static_cast<int>(j)});
  }
  return core::Ok();
}

core::Result<SimResult> SimRun::Run() {
  GPUORCH_TRY(Setup());
  Ms now = 0;
  int probes = 0;
  while (true) {
    if (!events_.empty()) {
      now = events_.top().t;
      ProcessBatch(now);
      GPUORCH_TRY(ScheduleAt(now));
      continue;
    }
    if (queued_ == 0 || probes == kStallProbes) {
      break;
    }
    // Nothing left to happen but jobs are queued on an idle cluster: a stall. Give the scheduler a
    // few later instants (its decisions may depend on time); if it still starts nothing, they
    // starve.
    ++probes;
    ++result_.stalls;
    now += kStallProbeGap;
    GPUORCH_TRY(ScheduleAt(now));
  }
  result_.makespan_s = ToS(std::max<Ms>(0, last_end_ - first_arrival_));
  for (size_t j = 0; j < jobs_.size(); ++j) {
    if (result_.jobs[j].Finished()) {
      continue;
    }
    ++result_.starved;
    if (result_.starved_examples.size() < kStarvedExamples) {
      std::optional<scheduler::WaitInfo> why = scheduler_.Explain(jobs_[j].id, At(now));
      result_.starved_examples.push_back(jobs_[j].id + " (" + std::to_string(trace_[j].gpus) +
                                         " GPUs, " + StateName(jobs_[j].state) +
                                         "): " + (why ? why->reason : "no reason given"));
    }
  }
  return std::move(result_);
}

void SimRun::ProcessBatch(Ms now) {
  while (!events_.empty() && events_.top().t == now) {
    Event e = events_.top();
    events_.pop();
    if (!e.completion) {
      Submit(e.job, now);
    } else if (jobs_[e.job].state == State::kRunning && jobs_[e.job].attempt == e.attempt) {
      Complete(e.job, now);
    }
  }
}

scheduler::JobRequest SimRun::Request(int j) const {
  const TraceJob& t = trace_[j];
  const SimJob& job = jobs_[j];
  auto bound = std::chrono::seconds((job.bound_ms + 999) / 1000);
  return scheduler::JobRequest{.id = job.id,
                               .owner = t.user,
                               .priority = t.priority,
                               .seq = job.seq,
                               .gpu_count = t.gpus,
                               .preemptible = cluster_.preemption && t.priority == 0,
                               .runtime_bound = bound};
}

void SimRun::Submit(int j, Ms now) {
  SimJob& job = jobs_[j];
  job.seq = next_seq_++;
  job.state = State::kQueued;
  job.queued_since = now;
  ++queued_;
  scheduler_.Enqueue(Request(j));
}

// Frees the GPUs a running job holds and books the GPU-seconds it ran.
void SimRun::Release(int j, Ms now) {
  SimJob& job = jobs_[j];
  for (int& holder : holders_[job.node]) {
    if (holder == j) {
      holder = -1;
    }
  }
  held_gpus_ -= trace_[j].gpus;
  result_.busy_gpu_s += trace_[j].gpus * ToS(now - job.started_at);
  Ms overlap = std::min(now, last_arrival_) - std::max(job.started_at, first_arrival_);
  result_.busy_gpu_s_in_arrival_span += trace_[j].gpus * ToS(std::max<Ms>(0, overlap));
  scheduler_.MarkEnded(job.id, At(now));
}

void SimRun::Complete(int j, Ms now) {
  Release(j, now);
  jobs_[j].state = State::kDone;
  result_.jobs[j].end_s = ToS(now);
  last_end_ = std::max(last_end_, now);
}

core::Result<int> SimRun::QueuedJob(const std::string& id, Ms now, const char* what) {
  auto it = index_of_.find(id);
  if (it == index_of_.end()) {
    return Violation(now, std::string(what) + " unknown job '" + id + "'");
  }
  if (jobs_[it->second].state != State::kQueued) {
    return Violation(
        now, std::string(what) + " " + id + ", which is " + StateName(jobs_[it->second].state));
  }
  return it->second;
}

core::Status SimRun::Start(const scheduler::Assignment& a, Ms now) {
  GPUORCH_ASSIGN_OR_RETURN(int j, QueuedJob(a.job_id, now, "Schedule assigned"));
  auto node = holders_.find(a.node);
  if (node == holders_.end() || a.node_id != a.node) {
    return Violation(now, "Schedule assigned " + a.job_id + " to unknown node '" + a.node + "' ('" +
                              a.node_id + "')");
  }
  if (static_cast<int>(a.gpu_indices.size()) != trace_[j].gpus) {
    return Violation(now, "Schedule gave " + a.job_id + " " + std::to_string(a.gpu_indices.size()) +
                              " GPUs; it asked for " + std::to_string(trace_[j].gpus));
  }
  for (int g : a.gpu_indices) {
    if (g < 0 || g >= cluster_.gpus_per_node) {
      return Violation(now, "Schedule gave " + a.job_id + " GPU " + std::to_string(g) + " of " +
                                a.node + ", which has no such GPU");
    }
    int holder = node->second[g];
    if (holder != -1) {
      return Violation(now, "GPU " + std::to_string(g) + " of " + a.node + " given to " + a.job_id +
                                " while " + jobs_[holder].id + " holds it");
    }
    node->second[g] = j;
  }
  SimJob& job = jobs_[j];
  JobOutcome& out = result_.jobs[j];
  if (out.first_start_s < 0) {
    out.first_start_s = ToS(now);
  }
  out.wait_s += ToS(now - job.queued_since);
  job.state = State::kRunning;
  job.node = a.node;
  job.started_at = now;
  ++job.attempt;
  --queued_;
  held_gpus_ += trace_[j].gpus;
  result_.backfilled += a.backfilled ? 1 : 0;
  events_.push(
      Event{.t = now + job.remaining_ms, .job = j, .completion = true, .attempt = job.attempt});
  return core::Ok();
}

core::Status SimRun::Preempt(const scheduler::Preemption& p, Ms now) {
  GPUORCH_ASSIGN_OR_RETURN(int by, QueuedJob(p.job_id, now, "Schedule preempts for"));
  for (const std::string& victim_id : p.victims) {
    auto it = index_of_.find(victim_id);
    if (it == index_of_.end() || jobs_[it->second].state != State::kRunning) {
      return Violation(now, p.job_id + " preempts " + victim_id + ", which is not running");
    }
    int v = it->second;
    const TraceJob& vt = trace_[v];
    if (!cluster_.preemption || vt.priority != 0 || vt.priority >= trace_[by].priority ||
        jobs_[v].node != p.node) {
      return Violation(now, p.job_id + " (priority " + std::to_string(trace_[by].priority) +
                                ") preempts " + victim_id + " (priority " +
                                std::to_string(vt.priority) + ", on " + jobs_[v].node +
                                "), which is not a preemptible lower-priority job on " + p.node);
    }
    SimJob& job = jobs_[v];
    Ms ran = now - job.started_at;
    Release(v, now);
    job.remaining_ms = std::max<Ms>(1, job.remaining_ms - ran);
    job.bound_ms = std::max(job.remaining_ms, job.bound_ms - ran);
    job.state = State::kQueued;
    job.queued_since = now;
    ++queued_;
    ++result_.jobs[v].preemptions;
    ++result_.preemptions;
    scheduler_.Enqueue(Request(v));  // the same seq: it keeps its place in submission order
  }
  return core::Ok();
}

core::Status SimRun::ScheduleAt(Ms now) {
  std::vector<int> preemptors;
  for (int round = 0;; ++round) {
    scheduler::Plan plan = scheduler_.Schedule(At(now));
    ++result_.schedule_calls;
    for (const scheduler::Assignment& a : plan.assignments) {
      GPUORCH_TRY(Start(a, now));
    }
    if (plan.preemptions.empty()) {
      break;
    }
    if (round + 1 >= kMaxRoundsPerInstant) {
      return Violation(now, "Schedule still asks for preemptions after " +
                                std::to_string(kMaxRoundsPerInstant) + " rounds at one instant");
    }
    for (const scheduler::Preemption& p : plan.preemptions) {
      GPUORCH_TRY(Preempt(p, now));
      preemptors.push_back(index_of_[p.job_id]);
    }
  }
  for (int j : preemptors) {
    result_.wasted_preemptions += jobs_[j].state == State::kRunning ? 0 : 1;
  }
  return CheckGpusInUse(now);
}

core::Status SimRun::CheckGpusInUse(Ms now) {
  int reported = 0;
  for (const std::string& user : users_) {
    reported += scheduler_.GpusInUse(user);
  }
  if (reported != held_gpus_) {
    return Violation(now, "GpusInUse over all users says " + std::to_string(reported) +
                              ", but jobs hold " + std::to_string(held_gpus_) + " GPUs");
  }
  return core::Ok();
}

}  // namespace

core::Result<SimResult> Simulate(scheduler::Scheduler& scheduler,
                                 const std::vector<TraceJob>& trace,
                                 const ClusterOptions& cluster) {
  SimRun run(scheduler, trace, cluster);
  return run.Run();
}

}  // namespace gpuorch::sim
