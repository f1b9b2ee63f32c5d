#include "scheduler/internal/job_queue.h"

#include <algorithm>
#include <climits>
#include <limits>

#include "domain/gpu.h"
#include "scheduler/plugins/gpu_memory.h"
#include "scheduler/plugins/quota.h"

namespace gpuorch::scheduler::internal {
namespace {

const std::string kAnyType;

OrderKey KeyIn(const Cluster& cluster, const QueuedJob& job) {
  return OrderKey{.neg_priority = -job.req.priority,
                  .share = cluster.account(job.account).share_key,
                  .seq = job.req.seq,
                  .tie = &job};
}

}  // namespace

QueuedJob* JobQueue::Find(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

OrderKey JobQueue::KeyOf(const QueuedJob& job) const { return KeyIn(cluster_, job); }

QueuedJob& JobQueue::Add(JobRequest request) {
  if (QueuedJob* old = Find(request.id)) {
    Remove(old);
  }
  request.gpu_type = domain::CanonicalGpuType(request.gpu_type);
  auto owned = std::make_unique<QueuedJob>();
  QueuedJob* job = owned.get();
  job->account = cluster_.AccountOf(request.owner);
  job->shape = ShapeFor(request);
  job->req = std::move(request);
  jobs_.emplace(job->req.id, std::move(owned));
  ++cluster_.account(job->account).queued_jobs;
  ++job->shape->jobs;
  if (job->req.not_before) {
    job->asleep = asleep_.emplace(*job->req.not_before, job);
  } else {
    Enter(job);
  }
  return *job;
}

void JobQueue::Remove(QueuedJob* job) {
  Leave(job);
  Forget(job, job->req.id);
}

JobRequest JobQueue::Take(QueuedJob* job) {
  Leave(job);
  JobRequest request = std::move(job->req);
  Forget(job, request.id);
  return request;
}

void JobQueue::Forget(QueuedJob* job, const std::string& id) {
  Shape* shape = job->shape;
  --shape->jobs;
  --cluster_.account(job->account).queued_jobs;
  if (shape->jobs == 0 && shape->heads.empty()) {
    DropShapeIfUnused(shape);
  }
  jobs_.erase(jobs_.find(id));  // `id` may live in `job`: not used once erasing starts
}

bool JobQueue::Wake(core::SystemTime now) {
  bool woke = false;
  while (!asleep_.empty() && asleep_.begin()->first <= now) {
    QueuedJob* job = asleep_.begin()->second;
    asleep_.erase(asleep_.begin());
    Enter(job);
    woke = true;
  }
  return woke;
}

void JobQueue::Enter(QueuedJob* job) {
  job->source = SourceFor(job->account, job->shape);
  job->source->jobs.insert(job);
  Touch(job->source);
  MarkDirty(job->shape);
}

void JobQueue::Leave(QueuedJob* job) {
  if (job->source != nullptr) {
    job->source->jobs.erase(job);
    Touch(job->source);
    job->source = nullptr;
  } else {
    asleep_.erase(job->asleep);
  }
}

void JobQueue::Touch(Source* source) {
  if (!source->touched) {
    source->touched = true;
    touched_.push_back(source);
  }
}

Shape* JobQueue::ShapeFor(const JobRequest& request) {
  ShapeKey key{.gpu_type = domain::CanonicalGpuType(request.gpu_type),
               .gpu_count = request.gpu_count,
               .per_gpu_gb = plugins::PerGpuMemoryGb(request),
               .needs_container = request.needs_container,
               .node_selector = request.node_selector,
               .providers = request.allowed_providers};
  std::sort(key.providers.begin(), key.providers.end());
  key.providers.erase(std::unique(key.providers.begin(), key.providers.end()), key.providers.end());
  auto [it, inserted] = shapes_.try_emplace(key);
  if (inserted) {
    auto shape = std::make_unique<Shape>();
    shape->key = key;
    shape->sample = JobRequest{.gpu_type = key.gpu_type,
                               .gpu_count = key.gpu_count,
                               .memory_gb = key.per_gpu_gb * key.gpu_count,
                               .node_selector = key.node_selector,
                               .allowed_providers = key.providers,
                               .needs_container = key.needs_container};
    shapes_by_type_[key.gpu_type].push_back(shape.get());
    it->second = std::move(shape);
  }
  return it->second.get();
}

Source* JobQueue::SourceFor(int account, Shape* shape) {
  if (static_cast<int>(sources_.size()) <= account) {
    sources_.resize(account + 1);
  }
  auto& slot = sources_[account][shape];
  if (!slot) {
    slot = std::make_unique<Source>();
    slot->account = account;
    slot->shape = shape;
  }
  return slot.get();
}

void JobQueue::TouchAccount(int account) {
  if (account < 0 || account >= static_cast<int>(sources_.size())) {
    return;
  }
  for (auto& [shape, source] : sources_[account]) {
    Touch(source.get());
    MarkDirty(shape);
  }
}

void JobQueue::Sync(int watched_account) {
  for (int index : cluster_.TakeTouchedAccounts()) {
    if (index >= static_cast<int>(sources_.size())) {
      continue;
    }
    // Its sources move when its share moved, and may (un)block when its quota is bounded.
    const Account& account = cluster_.account(index);
    if (static_cast<int>(filed_share_.size()) <= index) {
      filed_share_.resize(index + 1, std::numeric_limits<double>::quiet_NaN());  // unknown: moved
    }
    const bool share_moved = filed_share_[index] != account.share_key;
    filed_share_[index] = account.share_key;
    if (!share_moved && account.quota.max_gpus_in_use == INT_MAX && index != watched_account) {
      continue;
    }
    for (auto& [shape, source] : sources_[index]) {
      Touch(source.get());
      if (index == watched_account) {
        MarkDirty(shape);
      }
    }
  }
  std::vector<Source*> touched;
  touched.swap(touched_);
  std::vector<Shape*> emptied;
  for (Source* source : touched) {
    source->touched = false;
    Refile(source);
    if (source->jobs.empty()) {
      Shape* shape = source->shape;
      sources_[source->account].erase(shape);  // destroys `source`
      if (shape->jobs == 0) {
        emptied.push_back(shape);
      }
    }
  }
  std::sort(emptied.begin(), emptied.end());
  emptied.erase(std::unique(emptied.begin(), emptied.end()), emptied.end());
  for (Shape* shape : emptied) {
    if (shape->jobs == 0 && shape->heads.empty()) {
      DropShapeIfUnused(shape);
    }
  }
}

void JobQueue::Refile(Source* source) {
  Shape* shape = source->shape;
  const Account& account = cluster_.account(source->account);
  const bool blocked =
      !plugins::QuotaAllows(account.QuotaUse(), shape->key.gpu_count, account.quota);
  if (source->blocked && !blocked && !source->jobs.empty()) {
    MarkDirty(shape);  // room in the quota again
  }
  source->blocked = blocked;
  const bool file = !blocked && !source->jobs.empty();
  HeadKey key;
  if (file) {
    key = HeadKey{.key = KeyOf(**source->jobs.begin()), .source = source};
    if (source->filed && source->filed_as.key.tie == key.key.tie &&
        source->filed_as.key.share == key.key.share) {
      return;  // filed under the same head and share already
    }
  }
  if (source->filed) {
    heads_.erase(source->in_all);
    shape->heads.erase(source->in_shape);
    source->filed = false;
  }
  if (file) {
    source->filed_as = key;
    source->in_all = heads_.insert(key).first;
    source->in_shape = shape->heads.insert(key).first;
    source->filed = true;
  }
}

void JobQueue::DropShapeIfUnused(Shape* shape) {
  // Sources of this shape may still sit in touched_ (empty): keep it until Sync() drops them.
  for (Source* source : touched_) {
    if (source->shape == shape) {
      return;
    }
  }
  std::erase(dirty_, shape);
  std::erase(reservation_blocked_, shape);
  std::erase(shapes_by_type_[shape->key.gpu_type], shape);
  shapes_.erase(shapes_.find(shape->key));
}

void JobQueue::MarkDirty(Shape* shape) {
  if (!shape->dirty) {
    shape->dirty = true;
    dirty_.push_back(shape);
  }
}

void JobQueue::MarkAllDirty() {
  for (auto& [key, shape] : shapes_) {
    MarkDirty(shape.get());
  }
}

void JobQueue::MarkDirtyFitting(const std::string& gpu_type, int free,
                                const std::function<bool(const JobRequest&)>& fits) {
  for (const std::string* type : {&gpu_type, &kAnyType}) {
    auto it = shapes_by_type_.find(*type);
    if (it == shapes_by_type_.end()) {
      continue;
    }
    for (Shape* shape : it->second) {
      if (!shape->dirty && !shape->heads.empty() && shape->key.gpu_count <= free &&
          fits(shape->sample)) {
        MarkDirty(shape);
      }
    }
    if (gpu_type.empty()) {
      break;
    }
  }
}

void JobQueue::MarkDirtyAbove(int priority) {
  for (auto& [key, shape] : shapes_) {
    if (!shape->dirty && !shape->heads.empty() &&
        -shape->heads.begin()->key.neg_priority > priority) {
      MarkDirty(shape.get());
    }
  }
}

void JobQueue::ClearDirty() {
  for (Shape* shape : dirty_) {
    shape->dirty = false;
  }
  dirty_.clear();
}

void JobQueue::MarkReservationBlocked(Shape* shape) {
  if (!shape->reservation_blocked) {
    shape->reservation_blocked = true;
    reservation_blocked_.push_back(shape);
  }
}

void JobQueue::DirtyReservationBlocked() {
  for (Shape* shape : reservation_blocked_) {
    shape->reservation_blocked = false;
    MarkDirty(shape);
  }
  reservation_blocked_.clear();
}

// ---- views ------------------------------------------------------------------------------------

std::vector<const Source*> JobQueue::AllSources() const {
  std::vector<const Source*> out;
  for (const auto& by_shape : sources_) {
    for (const auto& [shape, source] : by_shape) {
      if (!source->jobs.empty()) {
        out.push_back(source.get());
      }
    }
  }
  return out;
}

std::vector<std::pair<const QueuedJob*, int>> JobQueue::FirstInOrder(size_t limit,
                                                                     std::string_view owner) const {
  struct Cursor {
    OrderKey key;
    std::set<QueuedJob*, ByPrioritySeq>::const_iterator it, end;
  };
  auto later = [](const Cursor& a, const Cursor& b) { return b.key < a.key; };
  std::vector<Cursor> heap;
  for (const Source* source : AllSources()) {
    heap.push_back(Cursor{KeyOf(**source->jobs.begin()), source->jobs.begin(), source->jobs.end()});
  }
  std::make_heap(heap.begin(), heap.end(), later);
  std::vector<const QueuedJob*> sleepers;
  for (const auto& [at, job] : asleep_) {
    sleepers.push_back(job);
  }
  std::sort(sleepers.begin(), sleepers.end(),
            [&](const QueuedJob* a, const QueuedJob* b) { return KeyOf(*a) < KeyOf(*b); });
  std::vector<std::pair<const QueuedJob*, int>> out;
  int position = 0;
  auto take = [&](const QueuedJob* job) {
    ++position;
    if (owner.empty() || job->req.owner == owner) {
      out.emplace_back(job, position);
    }
  };
  size_t next_sleeper = 0;
  while (out.size() < limit && (!heap.empty() || next_sleeper < sleepers.size())) {
    if (next_sleeper < sleepers.size() &&
        (heap.empty() || KeyOf(*sleepers[next_sleeper]) < heap.front().key)) {
      take(sleepers[next_sleeper++]);
      continue;
    }
    std::pop_heap(heap.begin(), heap.end(), later);
    Cursor& cursor = heap.back();
    take(*cursor.it);
    if (++cursor.it == cursor.end) {
      heap.pop_back();
    } else {
      cursor.key = KeyOf(**cursor.it);
      std::push_heap(heap.begin(), heap.end(), later);
    }
  }
  return out;
}

int JobQueue::PositionOf(const QueuedJob& job) const {
  const OrderKey key = KeyOf(job);
  int ahead = 0;
  for (const Source* source : AllSources()) {
    for (const QueuedJob* other : source->jobs) {
      if (!(KeyOf(*other) < key)) {
        break;
      }
      ++ahead;
    }
  }
  for (const auto& [at, other] : asleep_) {
    ahead += KeyOf(*other) < key ? 1 : 0;
  }
  return ahead + 1;
}

// ---- OrderWalk --------------------------------------------------------------------------------

OrderWalk::Cursor OrderWalk::Seed(const HeadSet& set, HeadSet::const_iterator filed) const {
  return Cursor{.key = filed->key,
                .set = &set,
                .filed = filed,
                .next = filed->source->jobs.begin(),
                .source = filed->source};
}

void OrderWalk::Push(Cursor cursor) {
  heap_.push_back(std::move(cursor));
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

void OrderWalk::Add(const HeadSet& set) {
  if (!set.empty()) {
    Push(Seed(set, set.begin()));
  }
}

// The source filed after a cursor's joins the merge when the cursor's first job has been returned
// and the caller has had its say (SkipRestOfSet), on the next call: no job of it can come earlier.
QueuedJob* OrderWalk::Next() {
  if (current_) {
    if (!current_->seeded && !skip_set_) {
      if (auto after = std::next(current_->filed); after != current_->set->end()) {
        Push(Seed(*current_->set, after));
      }
    }
    current_->seeded = true;
    if (!skip_source_ && current_->next != current_->source->jobs.end()) {
      current_->key = KeyIn(cluster_, **current_->next);
      Push(*current_);
    }
  }
  current_.reset();
  skip_source_ = skip_set_ = false;
  if (heap_.empty()) {
    return nullptr;
  }
  std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
  Cursor cursor = heap_.back();
  heap_.pop_back();
  QueuedJob* job = *cursor.next;
  ++cursor.next;
  current_ = cursor;
  return job;
}

}  // namespace gpuorch::scheduler::internal
