#include "scheduler/fair_scheduler.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "scheduler/internal/explain.h"
#include "scheduler/internal/node_search.h"
#include "scheduler/internal/preemption.h"
#include "scheduler/plugins/quota.h"

namespace gpuorch::scheduler {
namespace {

using internal::NodeChoice;
using internal::QueuedJob;
using internal::Shape;

// Behind the head, how many jobs of one shape a pass tries that the reservation alone holds back
// (a shorter runtime bound might fit before the reserved time) before it gives up on the shape.
// Bounded like Slurm's bf_max_job_test, so one pass stays cheap with long queues.
constexpr int kMaxBackfillTestsPerShape = 32;

}  // namespace

FairScheduler::FairScheduler(SchedulerConfig config, Pipeline pipeline)
    : config_(std::move(config)),
      pipeline_(std::move(pipeline)),
      cluster_(config_),
      queue_(cluster_) {}

// ---- state changes ----------------------------------------------------------------------------

void FairScheduler::UpsertNode(const NodeInfo& node) {
  if (int index = cluster_.FindNode(node.id); index >= 0) {
    CancelPreemptionsOn(index);  // the upsert resets its GPUs' holds: claims would be lost
  }
  cluster_.UpsertNode(node);
  changed_ = true;
}

void FairScheduler::RemoveNode(const std::string& id) {
  const int index = cluster_.FindNode(id);
  if (index < 0) {
    return;
  }
  CancelPreemptionsOn(index);
  for (const std::string& job_id : cluster_.RemoveNode(id)) {
    victim_of_.erase(job_id);
  }
  if (reservation_ && reservation_->node == index) {
    reservation_.reset();  // its slot may be reused; the next pass reserves again
  }
  changed_ = true;
}

void FairScheduler::Enqueue(const JobRequest& job) {
  // The caller re-announces its whole queue from time to time: an unchanged job costs nothing.
  if (const QueuedJob* queued = queue_.Find(job.id); queued != nullptr && queued->req == job) {
    return;
  }
  // A job queued again holds no GPUs any more.
  EndJob(job.id, core::SystemTime{}, /*charge=*/false);
  queue_.Add(job);
  changed_ = true;
}

void FairScheduler::Dequeue(const std::string& job_id) {
  if (QueuedJob* job = queue_.Find(job_id)) {
    CancelPreemption(job_id);
    queue_.Remove(job);
    changed_ = true;
  }
}

void FairScheduler::MarkRunning(const RunningJob& job) {
  if (QueuedJob* queued = queue_.Find(job.job_id)) {
    CancelPreemption(job.job_id);
    queue_.Remove(queued);
  }
  cluster_.Record(job);
  if (job.preemptible) {
    new_preemptible_priority_ = std::min(new_preemptible_priority_, job.priority);
  }
  changed_ = true;
}

void FairScheduler::MarkEnded(const std::string& job_id, core::SystemTime now) {
  EndJob(job_id, now, /*charge=*/true);
}

void FairScheduler::Unreserve(const std::string& job_id) {
  const internal::Running* running = cluster_.FindRunning(job_id);
  if (running == nullptr) {
    return;
  }
  std::optional<internal::Running> ended = EndJob(job_id, running->job.started_at, false);
  if (ended && ended->request) {
    queue_.Add(std::move(*ended->request));
  }
}

std::optional<internal::Running> FairScheduler::EndJob(const std::string& job_id,
                                                       core::SystemTime now, bool charge) {
  std::optional<internal::Running> ended = cluster_.End(job_id, now, charge);
  if (!ended) {
    return ended;
  }
  changed_ = true;
  auto victim = victim_of_.find(job_id);
  if (victim == victim_of_.end()) {
    return ended;
  }
  // A victim's GPUs go to its preemptor, not to whoever comes first.
  if (auto it = pending_.find(victim->second); it != pending_.end()) {
    PendingPreemption& pending = it->second;
    if (ended->node == pending.node) {
      cluster_.Hold(pending.node, ended->job.gpu_indices);
      pending.claimed.insert(pending.claimed.end(), ended->job.gpu_indices.begin(),
                             ended->job.gpu_indices.end());
    }
    std::erase(pending.victims_left, job_id);
    if (pending.victims_left.empty()) {
      ready_.push_back(victim->second);
    }
  }
  victim_of_.erase(victim);
  return ended;
}

void FairScheduler::CancelPreemption(const std::string& job_id) {
  auto it = pending_.find(job_id);
  if (it == pending_.end()) {
    return;
  }
  PendingPreemption pending = std::move(it->second);
  pending_.erase(it);
  cluster_.Release(pending.node, pending.claimed);
  cluster_.Claim(pending.account, -pending.gpus);
  for (const std::string& victim : pending.victims_left) {
    if (internal::Running* running = cluster_.FindRunning(victim)) {
      running->victim = false;
      new_preemptible_priority_ = std::min(new_preemptible_priority_, running->job.priority);
    }
    victim_of_.erase(victim);
  }
  std::erase(ready_, job_id);
  if (QueuedJob* job = queue_.Find(job_id)) {
    queue_.MarkDirty(job->shape);
  }
  changed_ = true;
}

void FairScheduler::CancelPreemptionsOn(int node) {
  std::vector<std::string> on_node;
  for (const auto& [job_id, pending] : pending_) {
    if (pending.node == node) {
      on_node.push_back(job_id);
    }
  }
  for (const std::string& job_id : on_node) {
    CancelPreemption(job_id);
  }
}

// ---- the pass ---------------------------------------------------------------------------------

Plan FairScheduler::Schedule(core::SystemTime now) {
  Plan plan;
  if (queue_.Wake(now)) {
    changed_ = true;
  }
  if (!changed_ && !full_passes_) {
    return plan;
  }
  changed_ = false;
  ++pass_;
  StartPreempted(now, plan);
  queue_.Sync(HeadAccount());
  NoteChanges();
  if (full_passes_) {
    queue_.MarkAllDirty();
  }
  std::optional<internal::Reservation> reservation;
  QueuedJob* head = PlaceInOrder(now, plan, reservation);
  if (reservation != reservation_) {
    queue_.DirtyReservationBlocked();
    reservation_ = std::move(reservation);
  }
  queue_.Sync(HeadAccount());
  if (head != nullptr && config_.backfill) {
    Backfill(*head, now, plan);
  }
  queue_.ClearDirty();
  queue_.Sync(HeadAccount());
  // What this pass started or claimed can change what the next pass decides (the reservation's
  // kept GPUs, whose quota the head needs): a pass that changed nothing is the one that may be
  // skipped.
  changed_ = !plan.assignments.empty() || !plan.preemptions.empty();
  return plan;
}

int FairScheduler::HeadAccount() const {
  const QueuedJob* head = reservation_ ? queue_.Find(reservation_->job_id) : nullptr;
  return head ? head->account : -1;
}

// Dirties the shapes that what changed since the last pass might let start: free GPUs on a node
// they fit (or could fit by preempting there), and new preemptible jobs below their priority.
void FairScheduler::NoteChanges() {
  const plugins::CycleState cycle{.users = cluster_};
  for (int index : cluster_.TakeFreedNodes()) {
    const internal::Node& node = cluster_.node(index);
    int room = node.free;
    for (const internal::Running* running : node.running) {
      if (config_.preemption && running->job.preemptible && !running->victim) {
        room += static_cast<int>(running->job.gpu_indices.size());
      }
    }
    const plugins::NodeState state{node.info, room};
    queue_.MarkDirtyFitting(node.info.gpu_type, room, [&](const JobRequest& sample) {
      return pipeline_.Accepts(cycle, sample, state);
    });
  }
  if (new_preemptible_priority_ != INT_MAX) {
    if (config_.preemption) {
      queue_.MarkDirtyAbove(new_preemptible_priority_);
    }
    new_preemptible_priority_ = INT_MAX;
  }
}

// Phase one: from the front of the queue, start what fits or preempt for it, until the first job
// that can do neither (the head; returned, with its reservation).
QueuedJob* FairScheduler::PlaceInOrder(core::SystemTime now, Plan& plan,
                                       std::optional<internal::Reservation>& reservation) {
  const plugins::CycleState cycle{.users = cluster_};
  internal::OrderWalk walk(cluster_);
  walk.Add(queue_.heads());
  while (QueuedJob* job = walk.Next()) {
    Shape* shape = job->shape;
    if (!pipeline_.PreFilter(cycle, job->req).ok) {
      walk.SkipSource();  // over quota: so are the rest of this user's jobs of this shape
      continue;
    }
    if (pending_.contains(job->req.id)) {
      continue;  // waits for its victims to stop
    }
    if (shape->no_fit_pass != pass_) {
      NodeChoice choice = FindBestNode(cluster_, pipeline_, cycle, job->req, nullptr, now);
      if (choice.node >= 0) {
        Start(*job, choice.node, std::move(choice.gpus), /*backfilled=*/false, now, plan);
        continue;
      }
      shape->no_fit_pass = pass_;
    }
    if (shape->unschedulable_version == cluster_.nodes_version()) {
      walk.SkipSource();
      continue;
    }
    if (TryPreempt(*job, /*exclude_node=*/-1, now, plan)) {
      continue;
    }
    reservation = ComputeReservation(cluster_, pipeline_, cycle, job->req,
                                     reservation_ ? reservation_->node : -1, now);
    if (!reservation) {
      shape->unschedulable_version = cluster_.nodes_version();  // no node could ever take it
      walk.SkipSource();
      continue;
    }
    return job;
  }
  return nullptr;
}

// Phase two (EASY backfill): jobs of dirty shapes behind the head start where they cannot delay its
// reservation.
void FairScheduler::Backfill(const QueuedJob& head, core::SystemTime now, Plan& plan) {
  const plugins::CycleState cycle{.users = cluster_};
  const internal::OrderKey head_key = queue_.KeyOf(head);
  const internal::Reservation* reservation = &*reservation_;  // a head has one
  internal::OrderWalk walk(cluster_);
  for (Shape* shape : queue_.dirty()) {
    walk.Add(shape->heads);
  }
  // Held back by the reservation (or the head's quota room): look at up to
  // kMaxBackfillTestsPerShape such jobs of a shape per pass, and again when the reservation
  // changes.
  auto hold_back = [&](Shape* shape) {
    queue_.MarkReservationBlocked(shape);
    if (shape->backfill_pass != pass_) {
      shape->backfill_pass = pass_;
      shape->backfill_tests = 0;
    }
    ++shape->backfill_tests;
  };
  while (QueuedJob* job = walk.Next()) {
    Shape* shape = job->shape;
    if ((shape->backfill_pass == pass_ && shape->backfill_tests >= kMaxBackfillTestsPerShape) ||
        (shape->no_fit_pass == pass_ && shape->preempt_failed_pass == pass_ &&
         job->req.priority <= shape->preempt_failed_priority) ||
        shape->unschedulable_version == cluster_.nodes_version()) {
      walk.SkipRestOfSet();  // nothing left to try for this shape in this pass
      continue;
    }
    if (pending_.contains(job->req.id)) {
      continue;  // waits for its victims
    }
    if (!(head_key < queue_.KeyOf(*job))) {
      // At or before the head, phase one has seen it: the head itself, or a job over quota.
      walk.SkipSource();
      continue;
    }
    if (!pipeline_.PreFilter(cycle, job->req).ok) {
      walk.SkipSource();
      continue;
    }
    if (!LeavesQuotaForHead(*job, head)) {
      hold_back(shape);
      continue;
    }
    if (shape->no_fit_pass != pass_) {
      NodeChoice choice = FindBestNode(cluster_, pipeline_, cycle, job->req, reservation, now);
      if (choice.node >= 0) {
        Start(*job, choice.node, std::move(choice.gpus), /*backfilled=*/true, now, plan);
        continue;
      }
      if (choice.held_back) {
        // It fits only where it would delay the head. Preempting elsewhere cannot delay it.
        if (!TryPreempt(*job, reservation->node, now, plan)) {
          hold_back(shape);
        }
        continue;
      }
      shape->no_fit_pass = pass_;
    }
    if (!TryPreempt(*job, reservation->node, now, plan)) {
      walk.SkipRestOfSet();  // the rest of the shape has no higher priority: no better luck
    }
  }
}

// A backfilled job of the head's owner must leave the head the quota room it needs, even one that
// ends before the reserved time: over quota now, the head would stop being the head, and the
// owner's later jobs would take its room.
bool FairScheduler::LeavesQuotaForHead(const QueuedJob& job, const QueuedJob& head) const {
  if (job.account != head.account) {
    return true;
  }
  const internal::Account& account = cluster_.account(job.account);
  return plugins::QuotaAllows(account.QuotaUse() + std::max(0, head.req.gpu_count),
                              job.req.gpu_count, account.quota);
}

bool FairScheduler::TryPreempt(QueuedJob& job, int exclude_node, core::SystemTime now, Plan& plan) {
  // Jobs later in a walk have no higher priority: once one of a shape fails, so do they.
  Shape* shape = job.shape;
  if (shape->preempt_failed_pass == pass_ && job.req.priority <= shape->preempt_failed_priority) {
    return false;
  }
  std::optional<internal::PreemptionChoice> found;
  const bool possible =
      config_.preemption && job.req.priority > cluster_.LowestPreemptiblePriority();
  if (possible) {
    const plugins::CycleState cycle{.users = cluster_};
    found = internal::FindPreemption(cluster_, pipeline_, cycle, job.req, exclude_node, now);
  }
  if (!found) {
    shape->preempt_failed_pass = pass_;
    shape->preempt_failed_priority = job.req.priority;
    if (possible && exclude_node >= 0) {
      queue_.MarkReservationBlocked(shape);  // the reserved node might have served
    }
    return false;
  }
  PendingPreemption& pending = pending_[job.req.id];
  pending.node = found->node;
  pending.account = job.account;
  pending.gpus = std::max(0, job.req.gpu_count);
  cluster_.Claim(job.account, pending.gpus);
  Preemption preemption{.job_id = job.req.id, .node = cluster_.node(found->node).info.id};
  for (const internal::Running* victim : found->victims) {
    const std::string& victim_id = victim->job.job_id;
    cluster_.FindRunning(victim_id)->victim = true;
    victim_of_[victim_id] = job.req.id;
    pending.victims_left.push_back(victim_id);
    preemption.victims.push_back(victim_id);
  }
  pending.claimed =
      cluster_.LowestFree(found->node, std::max(0, job.req.gpu_count - found->victim_gpus));
  cluster_.Hold(found->node, pending.claimed);
  plan.preemptions.push_back(preemption);
  return true;
}

void FairScheduler::Start(QueuedJob& job, int node, std::vector<int> gpus, bool backfilled,
                          core::SystemTime now, Plan& plan) {
  const internal::Node& where = cluster_.node(node);
  const Assignment assignment{.job_id = job.req.id,
                              .node = where.info.id,
                              .node_id = where.info.node_id,
                              .gpu_indices = gpus,
                              .backfilled = backfilled};
  plan.assignments.push_back(assignment);
  if (job.req.preemptible) {
    new_preemptible_priority_ = std::min(new_preemptible_priority_, job.req.priority);
  }
  cluster_.Start(queue_.Take(&job), node, std::move(gpus), now);
}

// Preemptors whose victims have all stopped start on the GPUs claimed for them, before anyone else
// can take those.
void FairScheduler::StartPreempted(core::SystemTime now, Plan& plan) {
  const plugins::CycleState cycle{.users = cluster_};
  std::vector<std::string> ready;
  ready.swap(ready_);
  for (const std::string& job_id : ready) {
    auto it = pending_.find(job_id);
    if (it == pending_.end()) {
      continue;
    }
    const PendingPreemption pending = std::move(it->second);
    pending_.erase(it);
    cluster_.Release(pending.node, pending.claimed);
    cluster_.Claim(pending.account, -pending.gpus);
    QueuedJob* job = queue_.Find(job_id);
    if (job == nullptr || job->source == nullptr) {
      continue;  // gone or asleep: the GPUs are for anyone
    }
    const internal::Node& node = cluster_.node(pending.node);
    if (pipeline_.PreFilter(cycle, job->req).ok && node.alive &&
        pipeline_.Accepts(cycle, job->req, node.State())) {
      Start(*job, pending.node, cluster_.LowestFree(pending.node, std::max(0, job->req.gpu_count)),
            /*backfilled=*/false, now, plan);
    } else {
      queue_.MarkDirty(job->shape);  // back to the ordinary queue
    }
  }
}

// ---- views ------------------------------------------------------------------------------------

// Per Queue() call: what depends only on a job's shape.
struct FairScheduler::ShapeReasons {
  struct Entry {
    NodeChoice fit;
    std::string why_not;
  };
  std::unordered_map<const Shape*, Entry> by_shape;
};

std::string FairScheduler::ReasonFor(const QueuedJob& job, core::SystemTime now,
                                     ShapeReasons* cache, bool* needs_capacity) const {
  const JobRequest& req = job.req;
  if (req.not_before && *req.not_before > now) {
    return "retry backoff until " + core::FormatRfc3339(*req.not_before);
  }
  const internal::Account& account = cluster_.account(job.account);
  if (auto it = pending_.find(req.id); it != pending_.end()) {
    std::string victims;
    for (const std::string& victim : it->second.victims_left) {
      victims += (victims.empty() ? "" : ", ") + victim;
    }
    return "waiting for preempted job" +
           std::string(it->second.victims_left.size() > 1 ? "s " : " ") + victims +
           " to stop on node " + cluster_.node(it->second.node).info.id;
  }
  plugins::Fit quota =
      plugins::QuotaFit(req.owner, account.QuotaUse(), req.gpu_count, account.quota, true);
  if (!quota.ok) {
    return quota.reason;
  }
  const plugins::CycleState cycle{.users = cluster_};
  ShapeReasons local;
  ShapeReasons& shapes = cache ? *cache : local;
  auto [entry, fresh] = shapes.by_shape.try_emplace(job.shape);
  if (fresh) {
    entry->second.fit = FindBestNode(cluster_, pipeline_, cycle, req, nullptr, now);
    if (entry->second.fit.node < 0) {
      entry->second.why_not = internal::WhyNoNode(cluster_, pipeline_, req);
    }
  }
  const internal::Reservation* reserved = reservation_ ? &*reservation_ : nullptr;
  const bool reserved_node_alive = reserved && cluster_.node(reserved->node).alive;
  const QueuedJob* head = reserved ? queue_.Find(reserved->job_id) : nullptr;
  const std::string at = reserved ? core::FormatRfc3339(reserved->at) : "";
  if (entry->second.fit.node < 0) {
    if (needs_capacity != nullptr) {
      *needs_capacity = true;
    }
    if (head == &job && reserved_node_alive) {
      return entry->second.why_not + "; GPUs reserved on node " +
             cluster_.node(reserved->node).info.id + " at " + at;
    }
    return entry->second.why_not;
  }
  if (head != nullptr && head != &job && queue_.KeyOf(*head) < queue_.KeyOf(job)) {
    if (!config_.backfill) {
      return "waiting behind job " + head->req.id + " (backfill is off)";
    }
    if (!LeavesQuotaForHead(job, *head)) {
      return "user " + req.owner + " keeps " + std::to_string(head->req.gpu_count) +
             " GPUs of quota for job " + head->req.id + ", reserved at " + at;
    }
    if (reserved_node_alive &&
        FindBestNode(cluster_, pipeline_, cycle, req, reserved, now).node < 0) {
      return "waiting for GPUs reserved for job " + head->req.id + " at " + at;
    }
  }
  return "fits node " + cluster_.node(entry->second.fit.node).info.id + "; starts at the next pass";
}

std::optional<WaitInfo> FairScheduler::Explain(const std::string& job_id,
                                               core::SystemTime now) const {
  const QueuedJob* job = queue_.Find(job_id);
  if (job == nullptr) {
    return std::nullopt;
  }
  WaitInfo info{.position = queue_.PositionOf(*job)};
  info.reason = ReasonFor(*job, now, nullptr, &info.needs_capacity);
  return info;
}

std::vector<QueueEntry> FairScheduler::Queue(core::SystemTime now, size_t limit,
                                             std::string_view owner) const {
  ShapeReasons cache;
  std::vector<QueueEntry> out;
  for (const auto& [job, position] : queue_.FirstInOrder(limit, owner)) {
    QueueEntry entry{.job_id = job->req.id,
                     .owner = job->req.owner,
                     .priority = job->req.priority,
                     .gpu_count = job->req.gpu_count,
                     .wait = WaitInfo{.position = position}};
    entry.wait.reason = ReasonFor(*job, now, &cache, &entry.wait.needs_capacity);
    out.push_back(std::move(entry));
  }
  return out;
}

int FairScheduler::QueuedJobs(const std::string& owner) const {
  const int index = cluster_.FindAccount(owner);
  return index < 0 ? 0 : cluster_.account(index).queued_jobs;
}

int FairScheduler::GpusInUse(const std::string& owner) const {
  const int index = cluster_.FindAccount(owner);
  return index < 0 ? 0 : cluster_.account(index).gpus_in_use;
}

double FairScheduler::FairShareUsage(const std::string& owner, core::SystemTime now) const {
  const int index = cluster_.FindAccount(owner);
  return index < 0 ? 0 : cluster_.ShareAt(index, now);
}

Quota FairScheduler::QuotaOf(const std::string& owner) const { return cluster_.QuotaOf(owner); }

void FairScheduler::SetQuota(const std::string& owner, const std::optional<Quota>& quota) {
  if (quota) {
    config_.user_quotas[owner] = *quota;
  } else {
    config_.user_quotas.erase(owner);
  }
  cluster_.SetQuota(owner, quota);
  queue_.TouchAccount(cluster_.FindAccount(owner));
  changed_ = true;
}

}  // namespace gpuorch::scheduler
